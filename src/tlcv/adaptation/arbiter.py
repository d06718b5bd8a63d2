"""Where the adapted and the source-only model disagree, which one does the data side with?

The histogram symptoms of ``health`` see collapse and label shift, not a model that is simply a
few points worse while predicting every class as often as before. The arbiter looks at the
images the two models label differently. It is a k-nearest-neighbour vote in the starting
backbone's feature space among two kinds of labelled points: the labelled source images, and
the target images both models agree on (two different models that agree are mostly right),
labelled with that shared prediction. Each disagreement is then settled by its neighbours, and
the estimated gain is

    (disagreements the vote gives the adapted model - those it gives the reference) / N.

It needs no target label, costs one neighbour search, and leans on two assumptions a user can
judge: the starting features put images of a class near each other (the reason the reference
works at all), and the agreed-on target images are mostly right. Where the domains are close,
the source neighbours speak loudest and side with the reference unless the adaptation moved an
image towards a cluster of agreed target images; where they are far apart, the target's own
agreed images decide.
"""

from __future__ import annotations

import numpy as np

# scikit-learn's default k; with 10 or 20 neighbours the source voters outweighed more of the
# target's own agreed images and the vote removed real gains (docs/benchmarks.md).
NEIGHBOURS = 5


def _unit(features: np.ndarray) -> np.ndarray:
    features = np.asarray(features, dtype=np.float32)
    return features / (np.linalg.norm(features, axis=1, keepdims=True) + 1e-6)


def arbitrate(
    pred: np.ndarray,
    reference_pred: np.ndarray,
    target_features: np.ndarray,
    source_features: np.ndarray,
    source_labels: np.ndarray,
    neighbours: int = NEIGHBOURS,
) -> dict:
    """The vote on the target images where ``pred`` and ``reference_pred`` differ (rows of
    ``target_features`` aligned with both); source rows carry their true class indices."""
    from sklearn.neighbors import KNeighborsClassifier

    pred, reference_pred = np.asarray(pred), np.asarray(reference_pred)
    differ = pred != reference_pred
    out = {
        "disagreements": int(differ.sum()),
        "sides_with_adapted": 0,
        "sides_with_source_only": 0,
        "estimated_gain": 0.0,
        "source_only_lead_sd": 0.0,
        "neighbours": neighbours,
    }
    if not differ.any() or len(source_features) + int((~differ).sum()) < neighbours:
        return out
    target = _unit(target_features)
    voters = np.concatenate([_unit(source_features), target[~differ]])
    labels = np.concatenate([np.asarray(source_labels), pred[~differ]])
    vote = KNeighborsClassifier(n_neighbors=neighbours).fit(voters, labels)
    said = vote.predict(target[differ])
    adapted, reference = (
        int(np.sum(said == pred[differ])),
        int(np.sum(said == reference_pred[differ])),
    )
    out.update(
        sides_with_adapted=adapted,
        sides_with_source_only=reference,
        estimated_gain=(adapted - reference) / len(pred),
        # source-only's lead in standard deviations of a fair coin (a sign test): a dozen
        # disagreements split 7 to 5 is no evidence either way
        source_only_lead_sd=(reference - adapted) / np.sqrt(max(1, adapted + reference)),
    )
    return out
