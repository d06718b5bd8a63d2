"""The negative-transfer guard on real adaptation runs: a constructed collapse is caught, named
and (by default, --fallback source-only) replaced by the source-only model; a sound run stays
quiet."""

from __future__ import annotations

import json

import pytest
import torch.nn.functional as F

from conftest import DATA, MOBILENET_V2, link_subset
from tlcv import api
from tlcv.adaptation.methods import METHODS, AdaptationMethod, register_method

CLASSES = ["back_pack", "bike", "calculator", "keyboard", "mug"]


@pytest.fixture
def collapsing_method():
    """A harmful 'adaptation' for the test: it pushes every target image towards class 0, as a
    mis-weighted alignment term can. Registered for this test only."""

    @register_method("test-collapse")
    class Collapse(AdaptationMethod):
        def loss(self, batch):
            target = batch.logits_t.new_zeros(len(batch.logits_t), dtype=int)
            return {"collapse": 5.0 * F.cross_entropy(batch.logits_t, target)}

    yield "test-collapse"
    METHODS.remove("test-collapse")


@pytest.fixture
def confusing_method():
    """A subtly harmful 'adaptation': on the target it pulls classes 0 and 1 (and 2 and 3)
    towards each other's predictions, so their images end up split at random between the two,
    while the predicted-class mix stays as it was. Registered for this test only."""

    @register_method("test-confuse")
    class Confuse(AdaptationMethod):
        def loss(self, batch):
            probs = F.softmax(batch.logits_t, 1).detach()
            partner = probs[:, [1, 0, 3, 2, *range(4, probs.shape[1])]]
            return {"confuse": 5.0 * F.cross_entropy(batch.logits_t, partner)}

    yield "test-confuse"
    METHODS.remove("test-confuse")


@pytest.fixture(scope="module")
def domains(tmp_path_factory):
    base = tmp_path_factory.mktemp("guard")
    return (
        link_subset(DATA / "office31" / "amazon", base / "amazon", 16, CLASSES),
        link_subset(DATA / "office31" / "webcam", base / "webcam", 10, CLASSES),
    )


COMMON = dict(
    backbone="mobilenet_v2",
    weights=str(MOBILENET_V2),
    mode="frozen",
    image_size=64,
    epochs=4,
    batch_size=16,
    plots=False,
    select="last",
)


def _metrics(run) -> dict:
    return json.loads((run.path / "metrics.json").read_text())


def test_collapse_is_caught_and_the_fallback_keeps_source_only(
    domains, collapsing_method, tmp_path
):
    source, target = domains
    warned = api.adapt(
        source, target, tmp_path / "warn", method=collapsing_method, fallback="none", **COMMON
    )
    m = _metrics(warned)
    health = m["health"]
    assert health["fired"] and any("collapsed" in r for r in health["reasons"])
    assert health["adapted"]["top_share"] > 0.6
    assert "WARNING" in (warned.path / "notes.txt").read_text()
    assert warned.info["kept"] == collapsing_method  # --fallback none: warned only
    assert m["target"]["accuracy"] < m["target_source_only"]["accuracy"] - 0.2
    html, _ = api.report([warned.path], tmp_path / "report.html")
    text = html.read_text()
    assert "target check (no labels)" in text and "collapsed" in text

    kept = api.adapt(source, target, tmp_path / "fallback", method=collapsing_method, **COMMON)
    k = _metrics(kept)
    assert kept.info["kept"] == "source-only (fallback)" and k["health"]["kept"] == "source-only"
    assert k["target"]["accuracy"] == pytest.approx(k["target_source_only"]["accuracy"])
    # the saved model is the source-only one: predictions through the run folder agree
    evaluated = api.evaluate(kept, target, out=tmp_path / "eval")
    assert evaluated["accuracy"] == pytest.approx(k["target"]["accuracy"])


def test_a_loss_without_a_histogram_trace_is_caught_by_the_arbiter(
    domains, confusing_method, tmp_path
):
    source, target = domains
    run = api.adapt(
        source, target, tmp_path / "confused", method=confusing_method, fallback="none", **COMMON
    )
    m = _metrics(run)
    health, vote = m["health"], m["health"]["arbiter"]
    assert vote["sides_with_source_only"] > vote["sides_with_adapted"]
    assert health["fired"] and any("side with source-only" in r for r in health["reasons"])
    assert len(health["reasons"]) == 1  # the histogram symptoms saw nothing
    # and it was right: the target labels, read after the check, agree
    assert m["target"]["accuracy"] < m["target_source_only"]["accuracy"] - 0.1


def test_a_sound_adaptation_stays_quiet(domains, tmp_path):
    source, target = domains
    run = api.adapt(source, target, tmp_path / "ok", method="cdan", **COMMON)
    health = _metrics(run)["health"]
    assert not health["fired"] and health["reasons"] == []
    assert 0 <= health["agreement_with_source_only"] <= 1
