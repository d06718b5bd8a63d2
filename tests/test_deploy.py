"""ONNX export, the onnxruntime engine and the standalone example (issue 14)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_cli import tlcv

from conftest import DATA, MOBILENET_V2, link_subset
from tlcv import api
from tlcv.errors import TlcvError

ROOT = Path(__file__).resolve().parents[1]
CLASSES = ["back_pack", "bike", "calculator", "keyboard"]


@pytest.fixture(scope="module")
def small_run(tmp_path_factory) -> Path:
    """A frozen-feature MobileNetV2 run on 4 Office-31 classes at 64 px (seconds)."""
    base = tmp_path_factory.mktemp("deploy")
    data = link_subset(DATA / "office31" / "amazon", base / "data", 12, CLASSES)
    run = base / "run"
    api.train(
        data,
        run,
        backbone="mobilenet_v2",
        weights=str(MOBILENET_V2),
        image_size=64,
        cache=str(base / "cache"),
    )
    return run


@pytest.fixture(scope="module")
def exported(small_run) -> dict:
    return api.export(small_run)


def test_export_writes_one_checked_file_with_metadata(small_run, exported):
    from tlcv.deploy import OnnxEngine

    path = Path(exported["file"])
    assert path == small_run / "export" / "model.onnx" and path.is_file()
    assert not list(path.parent.glob("*.data"))  # one file, no external weights
    assert exported["exporter"] == "dynamo"
    check = exported["verification"]["onnxruntime_fp32"]
    assert check["top1_agreement"] == 1.0 and check["max_abs_logit_diff"] < 1e-3
    assert exported["verification"]["images"] > 0
    beside = json.loads((path.parent / "model.verify.json").read_text())
    assert beside["verification"] == exported["verification"]
    meta = OnnxEngine(path).metadata
    assert meta["classes"] == json.loads((small_run / "classes.json").read_text())
    assert meta["preprocessing"]["input_size"] == 64
    assert meta["run_fingerprint"] == exported["run_fingerprint"]
    assert meta["tlcv_version"]
    # dynamic batch axis: 1 and 5 images both run
    engine = OnnxEngine(path)
    for n in (1, 5):
        out = engine.run(np.zeros((n, 3, 64, 64), np.uint8))
        assert out["logits"].shape == (n, len(CLASSES)) and out["features"].shape == (n, 1280)


def test_engine_switch_gives_the_same_predictions(small_run, exported, tmp_path):
    images = sorted((DATA / "office31" / "webcam" / "bike").iterdir())[:6]
    by_engine = {
        engine: api.predict(small_run, images, top_k=2, engine=engine, cache=str(tmp_path))
        for engine in ("torch", "onnxruntime")
    }
    for a, b in zip(by_engine["torch"], by_engine["onnxruntime"], strict=True):
        assert [t["label"] for t in a["top"]] == [t["label"] for t in b["top"]]
        assert a["top"][0]["score"] == pytest.approx(b["top"][0]["score"], abs=1e-4)
    scored = {
        engine: api.evaluate(
            small_run,
            DATA / "office31" / "webcam",
            engine=engine,
            cache=str(tmp_path),
            out=tmp_path / engine,
        )
        for engine in ("torch", "onnxruntime")
    }
    assert scored["torch"]["accuracy"] == scored["onnxruntime"]["accuracy"]
    assert (tmp_path / "onnxruntime" / "predictions.csv").is_file()


def test_onnx_features_are_cached_apart_from_torch(tmp_path):
    data = link_subset(DATA / "office31" / "dslr", tmp_path / "d", 3, ["bike", "mug"])
    common = dict(weights=str(MOBILENET_V2), image_size=32, cache=str(tmp_path / "c"))
    torch_fs = api.extract(data, "mobilenet_v2", **common)
    onnx_fs = api.extract(data, "mobilenet_v2", engine="onnxruntime", **common)
    assert onnx_fs.computed == 6  # not served from torch's cache
    np.testing.assert_allclose(onnx_fs.features, torch_fs.features, atol=1e-4)
    again = api.extract(data, "mobilenet_v2", engine="onnxruntime", **common)
    assert again.cached == 6
    namespaces = [json.loads(p.read_text()) for p in (tmp_path / "c").glob("*/namespace.json")]
    assert sorted(n.get("engine", "torch") for n in namespaces) == ["onnxruntime", "torch"]


def test_int8_kept_within_the_limit_and_refused_beyond_it(small_run, tmp_path):
    kept = api.export(small_run, out=tmp_path / "m.onnx", int8=True, max_drop=100.0)
    assert kept["int8_kept"] and Path(kept["int8_file"]).is_file()
    assert kept["verification"]["onnxruntime_int8"]["top1_agreement"] > 0.5
    with pytest.raises(TlcvError, match="no int8 graph"):  # kept elsewhere, not in the run
        api.predict(small_run, [str(DATA / "office31/amazon/bike")], engine="onnxruntime-int8")
    with pytest.raises(TlcvError, match="int8 refused"):
        api.export(small_run, out=tmp_path / "r.onnx", int8=True, max_drop=-100.0)
    assert (tmp_path / "r.onnx").is_file() and not (tmp_path / "r.int8.onnx").exists()
    report = json.loads((tmp_path / "r.verify.json").read_text())
    assert report["int8_kept"] is False and "points drop" in report["int8_reason"]


def test_standalone_example_runs_without_torch(small_run, exported):
    image = str(sorted((DATA / "office31" / "amazon" / "bike").iterdir())[0])
    blocker = (
        "import runpy, sys\n"
        "for name in ('torch', 'torchvision', 'tlcv', 'timm'):\n"
        "    sys.modules[name] = None  # importing any of them now fails\n"
        f"sys.argv = ['onnx_predict.py', {exported['file']!r}, {image!r}, '--top-k', '1']\n"
        f"runpy.run_path({str(ROOT / 'examples' / 'onnx_predict.py')!r}, run_name='__main__')\n"
    )
    done = subprocess.run([sys.executable, "-c", blocker], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    standalone = json.loads(done.stdout)[0]["top"][0]
    ours = api.predict(small_run, [image], top_k=1, engine="onnxruntime")[0]["top"][0]
    assert standalone["label"] == ours["label"]
    assert standalone["score"] == pytest.approx(ours["score"], abs=1e-5)


def test_bad_inputs_get_one_line_errors(small_run, tmp_path, monkeypatch):
    from tlcv.deploy import OnnxEngine
    from tlcv.deploy.engine import require_onnxruntime

    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"\x08\x01 this is not a protobuf")
    with pytest.raises(TlcvError, match="ONNX Runtime cannot load"):
        OnnxEngine(broken)
    with pytest.raises(TlcvError, match="unknown --engine"):
        api.predict(small_run, [str(broken)], engine="tensorrt")
    done = tlcv("export", str(small_run), "--format", "tflite", check=False)
    assert done.returncode == 2 and "unknown --format" in done.stderr
    assert "Traceback" not in done.stderr
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(TlcvError, match=r"pip install 'tlcv\[onnx\]'"):
        require_onnxruntime()


def test_cli_export_prints_the_check(small_run, tmp_path):
    done = tlcv("export", str(small_run), "--out", str(tmp_path / "cli.onnx"))
    assert done.returncode == 0, done.stderr
    assert "top-1 agreement 100.00%" in " ".join(done.stdout.split())


def _run_copy(small_run, tmp_path) -> Path:
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(small_run, copy, ignore=shutil.ignore_patterns(".lock"))
    return copy


@pytest.mark.parametrize("case", ["altered", "random-bytes", "unrecorded"])
def test_a_foreign_or_altered_graph_is_never_run(small_run, exported, tmp_path, case):
    """A graph carrying the run's own metadata but other weights (the back_pack photo that came
    back "bike 1.0"), random bytes, or a graph model.json never recorded: one line, exit 2,
    and the file is left as it was (not silently exported over)."""
    import onnx
    from onnx import numpy_helper

    run = _run_copy(small_run, tmp_path)
    graph = run / "export" / "model.onnx"
    if case == "altered":  # same metadata, same shapes, other numbers
        model = onnx.load(str(graph))
        biggest = max(model.graph.initializer, key=lambda t: int(np.prod(t.dims)))
        values = numpy_helper.to_array(biggest)
        biggest.CopyFrom(numpy_helper.from_array(values[::-1].copy(), biggest.name))
        onnx.save(model, str(graph))
    elif case == "random-bytes":
        graph.write_bytes(np.random.default_rng(0).bytes(4096))
    else:
        info = json.loads((run / "model.json").read_text())
        info.pop("graphs")
        (run / "model.json").write_text(json.dumps(info))
    before = graph.read_bytes()
    image = str(sorted((DATA / "office31" / "amazon" / "back_pack").iterdir())[0])
    done = tlcv("predict", str(run), image, "--engine", "onnxruntime", check=False)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "is not a graph tlcv exported for this run" in done.stderr
    assert str(graph) in "".join(done.stderr.split()) and "tlcv export" in done.stderr
    assert graph.read_bytes() == before


def test_a_graph_whose_outputs_misfit_the_run_is_refused_before_the_first_batch(
    small_run, exported
):
    from tlcv.deploy import OnnxEngine
    from tlcv.deploy.graphs import check_signature

    engine = OnnxEngine(exported["file"])
    check_signature(engine, {"logits": len(CLASSES), "features": 1280}, 64)  # it fits
    with pytest.raises(TlcvError, match="its output 'logits' is 4 wide, not 5"):
        check_signature(engine, {"logits": 5, "features": 1280}, 64)
    with pytest.raises(TlcvError, match="the run's 96x96"):
        check_signature(engine, {"logits": 4}, 96)
    with pytest.raises(TlcvError, match="no output 'maps'"):
        check_signature(engine, {"maps": None}, 64)


def test_export_records_the_graph_digest_and_retrained_weights_reexport(small_run, tmp_path):
    from tlcv.io import sha256_file

    run = _run_copy(small_run, tmp_path)
    report = api.export(run)
    info = json.loads((run / "model.json").read_text())
    assert info["graphs"]["export/model.onnx"] == report["sha256"]
    assert report["sha256"] == sha256_file(run / "export" / "model.onnx")
    image = str(sorted((DATA / "office31" / "amazon" / "bike").iterdir())[0])
    assert api.predict(run, [image], engine="onnxruntime")[0]["top"]
