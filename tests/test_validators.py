"""Validators (issue 16): each one's value on a constructed case where the right answer is
known, and the registry agrees with the --select choices."""

from __future__ import annotations

import math

import pytest
import torch

from tlcv.adaptation.validators import VALIDATORS, ValidationData
from tlcv.config import SELECTIONS

NEEDS_SHARED = False
C = 4


def onehot_logits(classes: torch.Tensor, scale: float = 8.0, noise: float = 0.3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return scale * torch.nn.functional.one_hot(classes, C).float() + noise * torch.randn(
        len(classes), C, generator=g
    )


def data(target_logits, source_logits=None, source_labels=None, sf=None, tf=None):
    n_s = 40
    labels = torch.arange(n_s) % C if source_labels is None else source_labels
    logits = onehot_logits(labels) if source_logits is None else source_logits
    return ValidationData(
        source_features=torch.randn(len(labels), 3) if sf is None else sf,
        source_logits=logits,
        source_labels=labels,
        target_features=torch.randn(len(target_logits), 3) if tf is None else tf,
        target_logits=target_logits,
    )


balanced = onehot_logits(torch.arange(200) % C)  # confident, every class used
collapsed = onehot_logits(torch.zeros(200, dtype=torch.long))  # confident, one class
uniform = torch.zeros(200, C)  # no opinion


def test_registry_matches_the_select_choices():
    assert set(VALIDATORS.names()) == set(SELECTIONS) - {"last"}


def test_source_val_is_held_out_accuracy():
    labels = torch.arange(40) % C
    logits = onehot_logits(labels)
    logits[:10] = onehot_logits((labels[:10] + 1) % C)  # 10 of 40 wrong
    assert VALIDATORS.get("source-val")(data(balanced, logits, labels)) == pytest.approx(0.75)


def test_entropy_prefers_confidence_but_cannot_see_collapse():
    score = VALIDATORS.get("entropy")
    assert score(data(balanced)) > score(data(uniform))
    assert score(data(collapsed)) == pytest.approx(score(data(balanced)), abs=0.05)


@pytest.mark.parametrize("name", ["im", "bnm"])
def test_im_and_bnm_prefer_confident_balanced_predictions(name):
    score = VALIDATORS.get(name)
    assert score(data(balanced)) > 1.5 * score(data(collapsed))
    assert score(data(balanced)) > 1.5 * score(data(uniform))


def test_bnm_runs_from_one_to_sqrt_classes():
    bnm = VALIDATORS.get("bnm")
    assert bnm(data(collapsed)) == pytest.approx(1.0, abs=0.02)
    assert bnm(data(balanced)) == pytest.approx(math.sqrt(C), abs=0.05)


def test_im_is_maximal_for_confident_balanced_predictions():
    assert VALIDATORS.get("im")(data(balanced)) == pytest.approx(math.log(C), abs=0.05)


def test_snd_is_higher_for_clustered_target_outputs():
    scattered = 3.0 * torch.randn(200, C, generator=torch.Generator().manual_seed(1))
    snd = VALIDATORS.get("snd")
    assert snd(data(balanced)) > snd(data(scattered))


def test_dev_weights_the_source_errors_that_lie_where_the_target_is():
    """Two classifiers with the same 50% held-out source accuracy: the one whose errors lie
    far from the target scores better under DEV (and the same under source-val)."""
    g = torch.Generator().manual_seed(0)
    n = 200
    side = torch.arange(n) % 2  # source images on two sides of feature space
    sf = torch.randn(n, 2, generator=g) * 0.5 + torch.stack([4.0 * side - 2, 0 * side], 1)
    tf = torch.randn(300, 2, generator=g) * 0.5 + torch.tensor([2.0, 0.0])  # target: side 1
    labels = torch.arange(n) % C
    right = onehot_logits(labels, seed=1)
    wrong = onehot_logits((labels + 1) % C, seed=2)
    good_on_target = torch.where(side[:, None] == 1, right, wrong)
    bad_on_target = torch.where(side[:, None] == 1, wrong, right)
    dev, acc = VALIDATORS.get("dev"), VALIDATORS.get("source-val")
    good = data(balanced[:300], good_on_target, labels, sf, tf)
    bad = data(balanced[:300], bad_on_target, labels, sf, tf)
    assert acc(good) == acc(bad) == pytest.approx(0.5)
    assert dev(good) > dev(bad) + 1.0
