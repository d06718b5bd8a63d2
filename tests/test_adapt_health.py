"""The label-free negative-transfer check: its measures and when it fires (no data needed)."""

from __future__ import annotations

import numpy as np
import pytest

from tlcv.adaptation.health import check, class_histogram, kl_to_prior, mean_entropy, verdict

NEEDS_SHARED = False  # method maths on generated tensors

CLASSES = [f"c{i}" for i in range(10)]


def _onehot_probs(pred: np.ndarray, n: int = 10, confidence: float = 0.9) -> np.ndarray:
    probs = np.full((len(pred), n), (1 - confidence) / (n - 1))
    probs[np.arange(len(pred)), pred] = confidence
    return probs


def test_measures_on_known_cases():
    assert kl_to_prior(np.full(4, 0.25), np.full(4, 0.25)) == pytest.approx(0.0, abs=1e-9)
    assert kl_to_prior(np.array([1.0, 0, 0, 0]), np.full(4, 0.25)) == pytest.approx(
        np.log(4), rel=1e-3
    )
    assert mean_entropy(np.full((3, 5), 0.2)) == pytest.approx(1.0, rel=1e-4)
    assert mean_entropy(np.eye(5)) == pytest.approx(0.0, abs=1e-4)
    np.testing.assert_allclose(class_histogram(np.array([0, 0, 2]), 3), [2 / 3, 0, 1 / 3])


def test_collapse_onto_a_rare_class_fires():
    rng = np.random.default_rng(0)
    source = np.arange(500) % 10  # balanced source: 10% per class
    reference = rng.integers(0, 10, 300)  # source-only spreads its predictions
    collapsed = np.where(rng.random(300) < 0.65, 3, reference)  # 65%+ predicted 'c3'
    health = check(_onehot_probs(collapsed), source, 10, _onehot_probs(reference))
    reasons = verdict(health, CLASSES)
    assert any("collapsed" in r and "'c3'" in r for r in reasons)
    assert health["agreement_with_source_only"] < 0.5


def test_healthy_adaptation_and_a_truly_imbalanced_target_stay_quiet():
    rng = np.random.default_rng(1)
    source = np.arange(500) % 10
    reference = rng.integers(0, 10, 300)
    improved = np.where(rng.random(300) < 0.2, rng.integers(0, 10, 300), reference)
    assert (
        verdict(check(_onehot_probs(improved), source, 10, _onehot_probs(reference)), CLASSES) == []
    )
    # The target really is mostly class 3, and the source-only model sees it too: no alarm.
    skewed_ref = np.where(rng.random(300) < 0.5, 3, reference)
    skewed = np.where(rng.random(300) < 0.15, 3, skewed_ref)
    health = check(_onehot_probs(skewed), source, 10, _onehot_probs(skewed_ref))
    assert verdict(health, CLASSES) == []


def test_predictions_pulled_to_the_source_mix_under_label_shift_fire():
    """The target is mostly three classes (the source-only model sees it); the adapted model
    spreads its predictions like the balanced source: marginal alignment under label shift."""
    rng = np.random.default_rng(2)
    source = np.arange(500) % 10
    reference = np.where(rng.random(300) < 0.8, rng.integers(0, 3, 300), rng.integers(0, 10, 300))
    flattened = rng.integers(0, 10, 300)
    health = check(_onehot_probs(flattened), source, 10, _onehot_probs(reference))
    reasons = verdict(health, CLASSES)
    assert any("pulled towards the source class mix" in r for r in reasons)
    assert health["source_only"]["kl_to_source_prior"] > health["adapted"]["kl_to_source_prior"]


def test_without_a_reference_the_prior_alone_decides():
    source = np.arange(500) % 10
    collapsed = np.array([7] * 80 + list(range(10)) * 2)
    health = check(_onehot_probs(collapsed), source, 10)
    assert "source_only" not in health
    assert any("collapsed" in r for r in verdict(health, CLASSES))


def _clusters(rng, n_per_class: int, n_classes: int = 4, dim: int = 16):
    """Well-separated class clusters: features and their true classes."""
    centres = rng.normal(0, 5, (n_classes, dim))
    labels = np.repeat(np.arange(n_classes), n_per_class)
    return centres[labels] + rng.normal(0, 1, (len(labels), dim)), labels


def test_the_arbiter_sides_with_whichever_model_the_neighbourhoods_support():
    """A swap of two classes on part of the target leaves the class histogram as it was (the
    histogram symptoms cannot see it); the labelled neighbours can. Fixing the reference's
    errors is credited to the adapted model."""
    from tlcv.adaptation.arbiter import arbitrate

    rng = np.random.default_rng(3)
    source, source_y = _clusters(rng, 50)
    target, truth = source + rng.normal(0, 0.5, source.shape), source_y.copy()
    reference = truth.copy()
    swapped = truth.copy()
    for a, b in ((0, 1), (2, 3)):  # 20 images of each class moved to its partner class
        swapped[np.flatnonzero(truth == a)[:20]] = b
        swapped[np.flatnonzero(truth == b)[:20]] = a
    vote = arbitrate(swapped, reference, target, source, source_y)
    assert vote["disagreements"] == 80 and vote["sides_with_source_only"] >= 70
    assert vote["estimated_gain"] < -0.3
    health = check(
        _onehot_probs(swapped, 4),
        source_y,
        4,
        _onehot_probs(reference, 4),
        (target, source, source_y),
    )
    assert health["adapted"]["histogram"] == health["source_only"]["histogram"]
    assert any("side with source-only" in r for r in verdict(health, CLASSES[:4]))
    # the other way round: the reference is the one with the swapped classes
    fixed = arbitrate(reference, swapped, target, source, source_y)
    assert fixed["estimated_gain"] > 0.3
    health = check(
        _onehot_probs(reference, 4),
        source_y,
        4,
        _onehot_probs(swapped, 4),
        (target, source, source_y),
    )
    assert verdict(health, CLASSES[:4]) == []


def test_a_narrow_vote_on_few_disagreements_does_not_fire():
    """Six to five on a 50-image target estimates -2 points, but a fair coin splits a dozen
    votes that way often: only a lead of one standard deviation or more fires."""
    source = np.arange(500) % 10
    pred = np.arange(50) % 10
    health = check(_onehot_probs(pred), source, 10, _onehot_probs(pred))
    narrow = {"disagreements": 12, "sides_with_adapted": 5, "sides_with_source_only": 6}
    health["arbiter"] = {**narrow, "estimated_gain": -0.02, "source_only_lead_sd": 1 / 11**0.5}
    assert verdict(health, CLASSES) == []
    clear = {"disagreements": 12, "sides_with_adapted": 1, "sides_with_source_only": 10}
    health["arbiter"] = {**clear, "estimated_gain": -0.18, "source_only_lead_sd": 9 / 11**0.5}
    assert any("side with source-only 10 times" in r for r in verdict(health, CLASSES))
