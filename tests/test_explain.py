"""Class-activation maps: they exist for every registered CNN, and they mean something (the
Adebayo et al. 2018 sanity checks: a map follows its target class, and a randomised model
gives a different map)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from test_cli import tlcv

from conftest import DATA
from tlcv.backbones.registry import BACKBONES
from tlcv.interpret import EXPLAINERS
from tlcv.interpret.pictures import explain_tensors

OFFICE = DATA / "office31" / "amazon"


def _image(name: str, size: int = 224) -> torch.Tensor:
    from tlcv.data import open_rgb

    path = sorted((OFFICE / name).iterdir())[0]
    image = open_rgb(str(path)).resize((size, size))
    return torch.from_numpy(np.array(image)).permute(2, 0, 1)


@pytest.mark.parametrize("name", sorted({s.name for _, s in BACKBONES.items()}))
def test_every_registered_backbone_names_a_layer_to_explain(name):
    spec = BACKBONES.get(name)
    if spec.family == "classical":
        assert spec.cam_layer == ""
        return
    net = spec.strip_head(spec.build()).eval()
    seen = {}
    dict(net.named_modules())[spec.cam_layer].register_forward_hook(
        lambda m, i, o: seen.update(shape=o.shape)
    )
    with torch.no_grad():
        net(torch.zeros(1, 3, 64, 64))
    assert len(seen["shape"]) == 4  # a spatial map, before pooling


def test_explain_methods_match_their_cli_choices():
    from tlcv.config import EXPLAIN_METHODS

    assert sorted(EXPLAINERS.names()) == sorted(EXPLAIN_METHODS)


def test_the_map_follows_the_target_class(office_run):
    """A bike beside a keyboard: the bike map's mass lies on the bike's side, the keyboard's on
    the other."""
    scene = torch.cat([_image("bike"), _image("keyboard")], dim=2)  # (3, 224, 448)
    ((bike, _, _),) = explain_tensors(office_run, [scene], target="bike")
    ((keyboard, _, _),) = explain_tensors(office_run, [scene], target="keyboard")

    def left_share(heat):
        return heat[:, :224].sum() / heat.sum()

    assert left_share(bike) > 0.6 and left_share(keyboard) < 0.4
    assert left_share(bike) - left_share(keyboard) > 0.3


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_randomised_model_gives_a_different_map(office_run, seed):
    """Cascading randomisation from the top: the head and the explained layer re-drawn."""
    image = _image("mug")
    ((trained, _, _),) = explain_tensors(office_run, [image], target="mug")
    model = office_run.model()
    top = [model.head, dict(model.backbone.net.named_modules())["features.18"]]
    saved = [{k: v.clone() for k, v in m.state_dict().items()} for m in top]
    try:
        torch.manual_seed(seed)
        with torch.no_grad():
            for m in top:
                for p in m.parameters():
                    p.copy_(torch.randn_like(p) * p.std())
        ((randomised, _, _),) = explain_tensors(office_run, [image], target="mug")
    finally:
        for m, state in zip(top, saved, strict=True):
            m.load_state_dict(state)
    assert trained.std() > 0.05  # the trained model's map has a shape
    if randomised.std() == 0:
        return  # a flat (all-zero) map: nothing like the trained one
    rho = spearmanr(trained.ravel(), randomised.ravel()).statistic
    assert rho < 0.5, rho


@pytest.mark.parametrize("method", sorted(EXPLAINERS.names()))
def test_every_method_saves_a_map_per_image_and_a_grid(tmp_path, office_run, method):
    from tlcv import api

    images = sorted((OFFICE / "mug").iterdir())[:2]
    answers = api.explain(office_run, images, tmp_path / "maps", method=method, target="mug")
    assert [a["target"] for a in answers if "path" in a] == ["mug", "mug"]
    pngs = sorted(p.name for p in (tmp_path / "maps").iterdir())
    assert pngs == sorted([*(p.stem + ".png" for p in images), "grid.png"])


def test_cli_explain_and_evaluate_explain(tmp_path, office_run):
    images = sorted((OFFICE / "mug").iterdir())[:2]
    done = tlcv("explain", office_run.path, *images, "--out", tmp_path / "maps")
    assert "grid" in done.stdout and (tmp_path / "maps" / "grid.png").is_file()
    refused = tlcv(
        "explain",
        office_run.path,
        images[0],
        "--out",
        tmp_path / "x",
        "--target",
        "zebra",
        check=False,
    )
    assert refused.returncode != 0 and "not one of the run's classes" in refused.stderr
    out = tmp_path / "eval"
    data = office_run.config["data"]
    tlcv("evaluate", office_run.path, "--data", data, "--out", out, "--explain", "2", "--json")
    metrics = json.loads((out / "metrics.json").read_text())
    wrong = round((1 - metrics["accuracy"]) * metrics["n"])
    maps = [f for f in metrics.get("explained_errors", []) if not f.endswith("grid.png")]
    assert len(maps) == min(2, wrong)
