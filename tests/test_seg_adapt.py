"""Segmentation domain adaptation (CamVid day -> dusk at reduced scale): each dense method's
terms on a constructed case, the validators' pick blind to target masks, kill -9 + resume,
two torchrun processes, and one-line errors."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import (
    DATA,
    MOBILENET_V2,
    cli_in_process,
    conv_output_dtypes,
    kill_after_first_checkpoint,
    tlcv_torchrun,
)
from tlcv.adaptation.methods import DomainBatch, build_methods, methods_for
from tlcv.engine.trainer import cpu_has_bf16

CAMVID = DATA / "camvid"
DAY, DUSK = "0006R0_*,0016E5_*", "0001TP_*"
OPTIONS = dict(method="advent", backbone="mobilenet_v2", weights=str(MOBILENET_V2), mode="full",
               image_size=64, batch_size=4, epochs=2, seed=3, ignore_index=11, num_workers=0,
               source_include=DAY, target_include=DUSK, oracle=True, trade_off=0.5)  # fmt: skip


def _copy_frames(dst, shuffle_dusk_masks: bool = False):
    """5 daylight and 3 dusk CamVid frames (files copied: a data folder holds its own files)."""
    dst.mkdir(parents=True, exist_ok=True)
    shutil.copy(CAMVID / "classes.txt", dst / "classes.txt")
    for sub in ("images", "masks"):
        (dst / "train" / sub).mkdir(parents=True)
    names = sorted(p.stem for p in (CAMVID / "train" / "images").iterdir())
    day = [n for n in names if n.startswith("0006R0")][:3] + [
        n for n in names if n.startswith("0016E5")
    ][:2]
    dusk = [n for n in names if n.startswith("0001TP")][:3]
    masks = list(dusk)
    if shuffle_dusk_masks:  # each dusk frame gets another frame's mask
        masks = masks[1:] + masks[:1]
    for name, mask in zip(day + dusk, day + masks, strict=True):
        shutil.copy(CAMVID / "train" / "images" / f"{name}.jpg", dst / "train" / "images")
        shutil.copy(CAMVID / "train" / "masks" / f"{mask}.png",
                    dst / "train" / "masks" / f"{name}.png")  # fmt: skip
    return dst


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    return _copy_frames(tmp_path_factory.mktemp("camvid"))


@pytest.fixture(scope="module")
def straight(frames, tmp_path_factory):
    import tlcv

    out = tmp_path_factory.mktemp("straight") / "run"
    return tlcv.adapt(frames, frames / "train", out, **OPTIONS)


# --- each method's terms on a case built so the right answer is known ------------------------


def _uniform_vs_confident():
    confident = torch.zeros(2, 3, 16, 16)
    confident[:, 0] = 8.0
    return confident, torch.zeros(2, 3, 16, 16, requires_grad=True)


def check_advent():
    (method,) = build_methods("advent", 0, 3, outputs="pixel")
    source, target = _uniform_vs_confident()
    terms = method.loss(DomainBatch(None, None, source, target, progress=0.5))
    assert terms["entropy_loss"] > 0.99  # uniform target: the entropy term at its maximum
    sure = method.loss(DomainBatch(None, None, source, source * 2, progress=0.5))
    assert sure["entropy_loss"] < 0.01
    terms["advent_loss"].backward()
    assert target.grad is not None and torch.isfinite(target.grad).all()


def check_output_adversarial():
    (method,) = build_methods("output-adversarial", 0, 3, outputs="pixel")
    source, target = _uniform_vs_confident()
    # the maps receive the discriminator's gradient through the reversal layer, whose
    # strength warms up from 0 (start of training) to ~1 (end)
    for progress, moves in ((0.0, False), (1.0, True)):
        target.grad = None
        loss = method.loss(DomainBatch(None, None, source, target, progress=progress))
        loss["output_adv_loss"].backward()
        assert bool(target.grad.abs().sum() > 0) == moves
    optimiser = torch.optim.Adam(method.parameters(), 1e-3)
    losses = []
    for _ in range(20):  # the discriminator learns to tell the two kinds of maps apart
        optimiser.zero_grad()
        loss = method.loss(DomainBatch(None, None, source, target.detach(), progress=0.0))
        loss["output_adv_loss"].backward()
        optimiser.step()
        losses.append(loss["output_adv_loss"].item())
    assert losses[-1] < losses[0] and loss["domain_acc"].item() == 1.0


def check_fda():
    from tlcv.adaptation.methods.fda import swap_low_frequencies

    g = torch.Generator().manual_seed(0)
    source = torch.rand(2, 3, 64, 64, generator=g) * 100 + 20  # dark, textured
    target = torch.full((2, 3, 64, 64), 200.0)  # bright, flat
    mixed = swap_low_frequencies(source, target, beta=0.05)
    assert abs(float(mixed.mean()) - 200.0) < 1.0  # the lighting (DC term) is the target's
    detail = source - source.mean(dim=(-2, -1), keepdim=True)
    kept = mixed - mixed.mean(dim=(-2, -1), keepdim=True)
    assert torch.corrcoef(torch.stack([detail.flatten(), kept.flatten()]))[0, 1] > 0.95
    (method,) = build_methods("fda", 0, 3, outputs="pixel")
    images = method.source_images(source.to(torch.uint8), target.to(torch.uint8))
    assert images.dtype == torch.uint8 and images.shape == source.shape


def check_self_training():
    from tlcv.adaptation.methods.self_training import class_balanced_pseudo_labels

    probs = torch.zeros(200, 2)
    probs[:100, 0] = torch.linspace(0.95, 0.99, 100)  # class 0: always very sure
    probs[100:, 1] = torch.linspace(0.55, 0.75, 100)  # class 1 (a rare one): never sure
    probs[:, 1][:100], probs[:, 0][100:] = 1 - probs[:100, 0], 1 - probs[100:, 1]
    pseudo, kept = class_balanced_pseudo_labels(probs, share=0.5)
    assert kept[:100].sum() == 50 and kept[100:].sum() == 50  # half of each, not 100 + 0
    assert (pseudo[100:][kept[100:]] == 1).all()
    (method,) = build_methods("self-training", 0, 2, outputs="pixel")
    logits = torch.log(probs).T.reshape(1, 2, 10, 20).requires_grad_(True)
    terms = method.loss(DomainBatch(None, None, logits, logits, progress=1.0))
    terms["pseudo_loss"].backward()
    assert 0.4 < float(terms["pseudo_share"]) < 0.6 and logits.grad.abs().sum() > 0


def check_adabn():
    (method,) = build_methods("adabn", 0, 3, outputs="pixel")
    assert (
        method.recalibrates_bn
        and method.loss(DomainBatch(None, None, *_uniform_vs_confident(), 0.5)) == {}
    )


def check_source_only():
    assert build_methods("source-only", 0, 3, outputs="pixel") == []


@pytest.mark.parametrize("name", methods_for("pixel"))
def test_each_dense_method_on_a_constructed_case(name):
    check = globals().get("check_" + name.replace("-", "_"))
    assert check is not None, f"{name} adapts segmentation: give it a constructed case here"
    check()


def test_classification_only_methods_are_refused_for_segmentation(frames, tmp_path):
    done = cli_in_process("adapt", "--source", frames, "--target", frames / "train",
                          "--method", "dann", "--out", tmp_path / "x", check=False)  # fmt: skip
    assert done.returncode != 0 and "dann does not adapt per-pixel predictions" in done.stderr
    assert "Traceback" not in done.stderr and "advent" in done.stderr
    done = cli_in_process("adapt", "--source", frames, "--target", frames / "train",
                          "--target-include", "9999*", "--ignore-index", "11",
                          "--out", tmp_path / "y", check=False)  # fmt: skip
    assert done.returncode != 0 and "no target file name matches 9999*" in done.stderr


# --- the run: validators blind to target masks, a complete folder, resume, torchrun ----------


def _history(run_dir) -> list[dict]:
    with open(run_dir / "history.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_an_adapted_run_is_a_segmentation_run_scored_on_the_target(straight, frames):
    m = straight.metrics
    assert straight.info["task"] == "segmentation" and straight.info["method"] == "advent"
    assert m["target"]["pixels"] > 0 and 0 <= m["target"]["miou"] <= 1
    assert "miou" in m["target"]["intervals"] and m["health"]["reference"].startswith("none")
    assert "oracle" in m and (straight.path / "overlays").is_dir()
    result = cli_in_process("evaluate", straight.path, "--data", frames / "train", "--json",
                            "--bootstrap", "0")  # fmt: skip
    assert json.loads(result.stdout)["miou"] > 0
    cli_in_process("report", straight.path, "--out", straight.path / "report.html")
    report = (straight.path / "report.md").read_text()
    assert "| target | 3 |" in report and "ORACLE: epoch chosen on target masks" in report
    # `tlcv export` checks the graph on the run's source data, read with its void value (11)
    from tlcv.runs import load_run
    from tlcv.tasks.segmentation.export import _splits

    config = load_run(straight.path).config
    found = _splits(config["source"], ignore_index=config["ignore_index"])
    assert len(found["train"]) == 8


def test_validator_pick_is_blind_to_target_masks(straight, tmp_path):
    """The same run with every dusk frame given another frame's mask: every validator's
    score and the chosen epoch are the same (only the final target score may differ)."""
    import tlcv

    shuffled = _copy_frames(tmp_path / "shuffled", shuffle_dusk_masks=True)
    again = tlcv.adapt(shuffled, shuffled / "train", tmp_path / "run", **OPTIONS)
    first, second = _history(straight.path), _history(again.path)
    columns = [c for c in first[0] if c.startswith("sel_")]
    assert {"sel_bnm", "sel_im", "sel_entropy"} <= set(columns)
    assert [[r[c] for c in columns] for r in first] == [[r[c] for c in columns] for r in second]
    assert straight.metrics["selection"] == again.metrics["selection"]
    oracle = [r["oracle_target_miou"] for r in first], [r["oracle_target_miou"] for r in second]
    assert oracle[0] != oracle[1]  # the masks did reach the oracle: the test can tell


def test_kill_9_and_resume_of_a_segmentation_adaptation_is_identical(straight, frames, tmp_path):
    from test_cli import tlcv

    out = tmp_path / "killed"
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in OPTIONS.items() if k != "oracle"]
    command = ["adapt", "--source", frames, "--target", frames / "train", "--out", out,
               "--oracle", *flags]  # fmt: skip
    kill_after_first_checkpoint(command, out)
    tlcv("adapt", "--resume", out)
    a = load_file(str(straight.path / "model.safetensors"))
    b = load_file(str(out / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_two_torchrun_processes_adapt_a_segmentation_model(frames, tmp_path):
    out = tmp_path / "ddp"
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in OPTIONS.items()
             if k not in ("oracle", "epochs", "method")]  # fmt: skip
    tlcv_torchrun(["adapt", "--source", frames, "--target", frames / "train", "--out", out,
                   "--method", "fda+self-training", "--epochs", "1", *flags], 29541)  # fmt: skip
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["target"]["pixels"] > 0 and metrics["selection"]["epochs_run"] == 1


@pytest.mark.skipif(not cpu_has_bf16(), reason="this CPU has no native bfloat16")
def test_adapt_trains_in_bfloat16_when_asked(frames, tmp_path, monkeypatch):
    """`tlcv adapt --precision bf16` reaches the engine: training convolutions autocast."""
    import tlcv

    seen = conv_output_dtypes(monkeypatch)
    options = {**OPTIONS, "epochs": 1, "oracle": False, "precision": "bf16"}
    run = tlcv.adapt(frames, frames / "train", tmp_path / "bf16", **options)
    assert torch.bfloat16 in seen
    assert run.config["precision"] == "bf16"
    assert 0.0 <= run.metrics["target"]["miou"] <= 1.0


def test_an_init_run_is_the_guards_reference(straight, frames, tmp_path):
    import tlcv

    options = {**OPTIONS, "method": "self-training", "epochs": 1, "init": str(straight.path),
               "oracle": False}  # fmt: skip
    run = tlcv.adapt(frames, frames / "train", tmp_path / "st", **options)
    health = run.metrics["health"]
    assert health["reference"].startswith("the --init run")
    assert 0 <= health["agreement_with_source_only"] <= 1 and "init_target" in run.metrics


def test_the_guard_keeps_the_init_model_when_predictions_collapse(straight, frames):
    """A model whose every pixel says 'sky' against the --init model: the check fires and the
    run keeps the reference; the reference itself passes."""
    from tlcv.config import AdaptConfig
    from tlcv.tasks.segmentation.adapt import read_domains
    from tlcv.tasks.segmentation.adapt_guard import assess

    cfg = AdaptConfig.from_options(source=str(frames), target=str(frames / "train"), out="-",
                                   init=str(straight.path), **{k: v for k, v in OPTIONS.items()
                                   if k not in ("oracle",)})  # fmt: skip
    domains = read_domains(cfg)
    reference, collapsed = straight.load_model(), straight.load_model()
    last = [m for m in collapsed.head.modules() if isinstance(m, torch.nn.Conv2d)][-1]
    with torch.no_grad():
        last.bias[0] += 100.0  # class 0, sky, everywhere
    health, kept = assess(cfg, collapsed, reference, domains, 64)
    assert health["fired"] and kept is reference and health["kept"] == "source-only"
    assert any("collapsed" in r and "target pixels" in r for r in health["reasons"])
    health, kept = assess(cfg, reference, reference, domains, 64)
    assert not health["fired"] and kept is reference


def test_the_guard_names_classes_that_vanish_from_the_target_pixels():
    """Entropy minimisation's failure: small classes all but disappear while the class mix
    as a whole hardly moves (KL and collapse stay quiet)."""
    from tlcv.tasks.segmentation.adapt_guard import vanished

    classes = ["road", "sky", "pole", "sign"]
    reference = {"histogram": [0.5, 0.45, 0.03, 0.001 * 1.9]}
    kept = {"adapted": {"histogram": [0.5, 0.46, 0.011, 0.0001]}, "source_only": reference}
    assert vanished(kept, classes) == []  # pole at 1/2.7 of its share; sign too rare to count
    gone = {"adapted": {"histogram": [0.52, 0.47, 0.009, 0.0]}, "source_only": reference}
    (reason,) = vanished(gone, classes)
    assert "'pole' 0.90% vs 3.00%" in reason and "sign" not in reason
    assert vanished({"adapted": gone["adapted"]}, classes) == []  # no --init: nothing to compare


def test_targets_of_images_only_adapt_and_bad_target_masks_are_named(frames, tmp_path):
    """A folder of dusk images only: adapted, nothing scored. A target with masks whose values
    fit no class table: one error naming the file, not a silent run without a target score."""
    from tlcv.config import AdaptConfig
    from tlcv.errors import TlcvError
    from tlcv.tasks.segmentation.adapt import read_domains

    images = tmp_path / "dusk"
    images.mkdir()
    for f in sorted((frames / "train" / "images").glob("0001TP_*")):
        shutil.copy(f, images)
    options = {k: v for k, v in OPTIONS.items() if k != "oracle"}
    cfg = AdaptConfig.from_options(source=str(frames), target=str(images), out="-", **options)
    domains = read_domains(cfg)
    assert len(domains.target) == 3 and domains.target_scored == []
    assert all(it.mask is None for it in domains.target)
    cfg = AdaptConfig.from_options(source=str(frames), target=str(frames / "train"), out="-",
                                   **{**options, "ignore_index": 255})  # fmt: skip
    with pytest.raises(TlcvError) as info:
        read_domains(cfg)
    assert "mask value(s) 11" in info.value.message and "--ignore-index 11" in info.value.message


def test_file_name_patterns_choose_the_domains_of_a_classifier_too():
    from tlcv.adaptation.domains import Domains, select_files
    from tlcv.data import ImageItem

    def item(name, label):
        return ImageItem(f"/d/{label}/{name}", label, name)

    domains = Domains(
        [item("day_1.jpg", "a"), item("dusk_1.jpg", "a"), item("day_2.jpg", "b")],
        [item("dusk_2.jpg", None), item("day_3.jpg", None)],
        ["a", "b"],
        ["a", "b"],
    )
    kept = select_files(domains, "day_*", "dusk_*")
    assert [Path(it.path).name for it in kept.source] == ["day_1.jpg", "day_2.jpg"]
    assert [Path(it.path).name for it in kept.target] == ["dusk_2.jpg"] and kept.target_labels == [
        "a"
    ]
