"""Bad input found by a hostile test of tlcv (issue 11), each fixed at its root."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from test_cli import tlcv

from conftest import DATA, MOBILENET_V2
from tlcv import api
from tlcv.errors import TlcvError

BAD_NAME = b"bad_\xff\xfe_name.jpg"  # not valid UTF-8


@pytest.fixture
def folder_with_a_non_utf8_name(tmp_path) -> Path:
    root = tmp_path / "data"
    for cls, src in (("bike", "bike"), ("mug", "mug")):
        (root / cls).mkdir(parents=True)
        for f in sorted((DATA / "office31" / "dslr" / src).iterdir())[:5]:
            shutil.copyfile(f, root / cls / f.name)
    first = sorted((root / "bike").iterdir())[0]
    shutil.copyfile(first, os.path.join(os.fsencode(root / "bike"), BAD_NAME))
    return root


def test_file_names_that_are_not_utf8_work_everywhere(folder_with_a_non_utf8_name, tmp_path):
    data = folder_with_a_non_utf8_name
    common = dict(backbone="mobilenet_v2", weights=str(MOBILENET_V2), image_size=32)
    fs = api.extract(data, cache=str(tmp_path / "c"), **common)
    assert len(fs.items) == 11 and any("bad_" in it.path for it in fs.items)
    run = api.train(data, tmp_path / "run", cache=str(tmp_path / "c"), **common)
    predictions = api.predict(run, [data / "bike"], cache=str(tmp_path / "c"))
    assert sum("bad_" in p["path"] for p in predictions) == 1
    assert all("top" in p for p in predictions)
    metrics = api.evaluate(run, data, cache=str(tmp_path / "c"), out=tmp_path / "eval")
    assert metrics["n"] == 11
    assert os.fsencode(data / "bike") + b"/" + BAD_NAME in (
        tmp_path / "eval" / "predictions.csv"
    ).read_bytes()


@pytest.mark.parametrize("size", [0, -5, 3, 100_000])
def test_unusable_image_sizes_are_refused_up_front(size, tmp_path):
    with pytest.raises(TlcvError, match="--image-size"):
        api.extract(DATA / "office31" / "dslr", "mobilenet_v2", image_size=size, cache=tmp_path)


def test_a_huge_image_size_is_one_line_from_the_cli(tmp_path):
    done = tlcv(
        "train",
        "--data",
        DATA / "office31" / "dslr",
        "--out",
        tmp_path / "r",
        "--image-size",
        "100000",
        check=False,
    )
    assert done.returncode == 2 and "too large for this machine" in done.stderr
    assert "Traceback" not in done.stderr
