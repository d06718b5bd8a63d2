"""Annotations, masks and labels from someone else (issue 33): every hostile case gives either
the correct result (the bad box or file named in skipped.csv, the rest used) or one line naming
the file and line or field, exit code 2, no traceback; nothing outside the data folder is read
unless --allow-outside-data says so."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image

from conftest import cli_in_process
from tlcv.errors import TlcvError
from tlcv.tasks.detection.data import discover_detection


def _images(root, n: int = 3):
    (root / "images").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.new("RGB", (80, 60), (i * 40, 90, 90)).save(root / "images" / f"s{i}.png")
    return root


def _gt(root, *bad: str):
    """A gt.txt with one good box per image, then the ``bad`` lines."""
    lines = [f"s{i}.png;10;10;30;30;0" for i in range(3)] + list(bad)
    (root / "gt.txt").write_text("\n".join(lines) + "\n")
    return root


_KEEP = object()


def _coco(root, annotations=None, first=_KEEP, replace=None):
    """Three images with a box each, then ``annotations``; ``first``: image 0's file_name;
    ``replace``: top-level fields swapped for others."""
    images = [{"id": i, "file_name": f"s{i}.png"} for i in range(3)]
    if first is not _KEEP:
        images[0]["file_name"] = first
    good = [{"id": i, "image_id": i, "category_id": 1, "bbox": [10, 10, 20, 20]} for i in range(3)]
    data = {
        "images": images,
        "categories": [{"id": 1, "name": "sign"}],
        "annotations": good + (annotations or []),
    }
    data.update(replace or {})
    (root / "annotations.json").write_text(json.dumps(data))
    return root


def _voc(root, filename: str = "s0.png", xmin: str = "10"):
    (root / "Annotations").mkdir(exist_ok=True)
    (root / "JPEGImages").mkdir(exist_ok=True)
    for i in range(3):
        Image.new("RGB", (80, 60)).save(root / "JPEGImages" / f"s{i}.png")
    for i in range(3):
        name, x = (filename, xmin) if i == 0 else (f"s{i}.png", "10")
        (root / "Annotations" / f"s{i}.xml").write_text(
            f"<annotation><filename>{name}</filename><object><name>sign</name><bndbox>"
            f"<xmin>{x}</xmin><ymin>10</ymin><xmax>30</xmax><ymax>30</ymax></bndbox></object>"
            "</annotation>"
        )
    return root


def _yolo(root, line: str = "0 0.5 0.5 0.2 0.2", names: bytes | None = b"sign\nstop\n"):
    _images(root)
    (root / "labels").mkdir()
    for i in range(3):
        text = line if i == 0 else "0 0.5 0.5 0.2 0.2"
        (root / "labels" / f"s{i}.txt").write_text(text + "\n")
    if names is not None:
        (root / "classes.txt").write_bytes(names)
    return root


def _named(source, where: str, reason: str) -> bool:
    return any(where in w and reason in r for w, r in source.missing)


def _boxes(source) -> int:
    return sum(len(item.boxes) for item in source.all_items())


# --- NaN and inf: never a box over the whole image ----------------------------------------


NAN_CASES = {
    "gt.txt": lambda root: _gt(_images(root), "s0.png;nan;nan;nan;nan;0"),
    "coco": lambda root: _coco(
        _images(root), [{"id": 9, "image_id": 0, "category_id": 1, "bbox": [float("nan")] * 4}]
    ),
    "voc": lambda root: _voc(root, xmin="nan"),
    "yolo": lambda root: _yolo(root, "0 nan nan nan nan"),
    "gt.txt-inf": lambda root: _gt(_images(root), "s1.png;0;0;inf;30;0"),
}


@pytest.mark.parametrize("case", sorted(NAN_CASES))
def test_a_non_finite_coordinate_is_named_and_left_out(tmp_path, case):
    source = discover_detection(NAN_CASES[case](tmp_path))
    assert any("finite" in reason for _, reason in source.missing), source.missing
    for item in source.all_items():
        assert all(np.isfinite(box).all() for box in item.boxes)
    expected_good = 2 if case in ("voc", "yolo") else 3  # there, image 0's box was the bad one
    assert _boxes(source) == expected_good


def test_a_one_class_detector_trains_past_a_named_bad_box(tmp_path, monkeypatch):
    """End to end through the CLI: the NaN box named in skipped.csv, the rest trained on (one
    class: torchmetrics' accuracy once refused it with a traceback); an FPN too narrow for
    FCOS's 32 norm groups is one line, exit 2 (it was a traceback at the 1 x 1 top level)."""
    data = _gt(_images(tmp_path / "data"), "s0.png;nan;nan;nan;nan;0")
    monkeypatch.chdir(tmp_path)
    fast = ["--task", "detection", "--data", data, "--backbone", "mobilenet_v3_small",
            "--weights", "none", "--image-size", "64", "--epochs", "1", "--batch-size", "2",
            "--num-workers", "0"]  # fmt: skip
    narrow = cli_in_process("train", *fast, "--fpn-channels", "32", "--out", tmp_path / "n",
                            check=False)  # fmt: skip
    assert narrow.returncode == 2 and "at least 64" in narrow.stderr
    done = cli_in_process("train", *fast, "--fpn-channels", "64", "--out", tmp_path / "run")
    assert done.returncode == 0
    assert "not a finite number" in (tmp_path / "run" / "skipped.csv").read_text()


# --- class ids -----------------------------------------------------------------------------


@pytest.mark.parametrize("class_id", ["-1", "-2", "2", "7"])
def test_a_yolo_class_id_outside_the_declared_classes_is_named(tmp_path, class_id):
    source = discover_detection(_yolo(tmp_path, f"{class_id} 0.5 0.5 0.2 0.2"))
    assert _named(source, "s0.txt:1", f"class id {class_id} is not a declared class (0-1)")
    assert _boxes(source) == 2  # the two good boxes; no box given the last class by mistake


def test_a_coco_category_not_among_its_categories_is_named(tmp_path):
    bad = [{"id": 7, "image_id": 0, "category_id": 5, "bbox": [1, 1, 5, 5]}]
    source = discover_detection(_coco(_images(tmp_path), bad))
    assert _named(source, "annotation 7", "category_id 5 is not among the categories")
    assert source.classes == ["sign"] and _boxes(source) == 3


# --- paths that leave the data folder ----------------------------------------------------


def _secret(tmp_path):
    """An image outside the data folder that no annotation may reach by default."""
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    Image.new("RGB", (80, 60)).save(outside / "secret.png")
    return outside / "secret.png"


OUTSIDE_CASES = {
    "coco-absolute": lambda root, secret: _coco(_images(root), first=str(secret)),
    "coco-dotdot": lambda root, secret: _coco(_images(root), first="../../elsewhere/secret.png"),
    "voc-dotdot": lambda root, secret: _voc(root, filename="../../elsewhere/secret.png"),
    "gt.txt-dotdot": lambda root, secret: _gt(
        _images(root), "../../elsewhere/secret.png;10;10;30;30;0"
    ),
    "gt.txt-absolute": lambda root, secret: _gt(_images(root), f"{secret};10;10;30;30;0"),
    "gt.txt-etc-passwd": lambda root, secret: _gt(_images(root), "/etc/passwd;1;1;5;5;0"),
    "symlink-in-images": lambda root, secret: (
        _gt(_images(root)),
        os.symlink(secret, root / "images" / "linked.png"),
    )[0],
}


@pytest.mark.parametrize("case", sorted(OUTSIDE_CASES))
def test_an_annotation_path_leaving_the_data_folder_is_named_and_not_read(tmp_path, case):
    secret = _secret(tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    OUTSIDE_CASES[case](data, secret)
    source = discover_detection(data)
    assert any("outside the data folder" in reason for _, reason in source.missing)
    used = {os.path.realpath(item.path) for item in source.all_items()}
    assert str(secret.resolve()) not in used and "/etc/passwd" not in used
    if case != "gt.txt-etc-passwd":  # the same data, allowed on purpose
        allowed = discover_detection(data, allow_outside=True)
        assert str(secret.resolve()) in {os.path.realpath(i.path) for i in allowed.all_items()}


# --- files that are not what they claim: one line, exit 2 --------------------------------


FATAL_CASES = {
    "coco-annotations-is-5": (
        lambda root: _coco(_images(root), replace={"annotations": 5}),
        "'annotations' is int, not a list",
    ),  # fmt: skip
    "coco-file-name-number": (
        lambda root: _coco(_images(root), first=5),
        "images[0]: 'file_name' is int",
    ),  # fmt: skip
    "coco-file-name-null": (
        lambda root: _coco(_images(root), first=None),
        "images[0]: 'file_name' is NoneType",
    ),  # fmt: skip
    "coco-nested-200000": (
        lambda root: (_images(root) / "annotations.json").write_text("[" * 200_000 + "]" * 200_000),
        "nests 200000 levels deep",
    ),  # fmt: skip
    "coco-truncated": (
        lambda root: (_coco(_images(root)) / "annotations.json").write_text(
            (root / "annotations.json").read_text()[:-40]
        ),
        "annotations.json is not valid JSON",
    ),  # fmt: skip
    "coco-top-level-list": (
        lambda root: (_images(root) / "annotations.json").write_text("[1, 2]"),
        "the top level is list, not an object",
    ),  # fmt: skip
    "classes-txt-not-utf8": (
        lambda root: _yolo(root, names=b"sign\n\xff\xfe stop\n"),
        "classes.txt is not UTF-8",
    ),  # fmt: skip
    "data-yaml-python-tag": (
        lambda root: (_yolo(root, names=None) / "data.yaml").write_text(
            "names: !!python/object/apply:os.system ['touch PWNED']\n"
        ),
        "is not plain YAML",
    ),  # fmt: skip
    "data-yaml-names-5": (
        lambda root: (_yolo(root, names=None) / "data.yaml").write_text("names: 5\n"),
        "'names' is int, not a list",
    ),  # fmt: skip
}


@pytest.mark.parametrize("case", sorted(FATAL_CASES))
def test_a_malformed_annotation_file_is_one_line_with_exit_2(tmp_path, case, monkeypatch):
    make, message = FATAL_CASES[case]
    data = tmp_path / "data"
    data.mkdir()
    make(data)
    with pytest.raises(TlcvError, match=message.replace("(", r"\(").replace("[", r"\[")):
        discover_detection(data)
    monkeypatch.chdir(tmp_path)
    done = cli_in_process("train", "--task", "detection", "--data", data, "--out",
                          tmp_path / "run", check=False)  # fmt: skip
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "".join(message.split()) in "".join(done.stderr.split())  # the same one line
    assert not (tmp_path / "PWNED").exists()  # no code from the YAML ran


def test_an_annotation_that_is_a_string_and_labels_not_in_utf8_are_named(tmp_path):
    source = discover_detection(_coco(_images(tmp_path / "coco"), ["not an object"]))
    assert _named(source, "annotations[3]", "is str, not an object") and _boxes(source) == 3
    yolo = _yolo(tmp_path / "yolo")
    (yolo / "labels" / "s0.txt").write_bytes(b"0 0.5 0.5 0.2 0.2 \xff\n")
    source = discover_detection(yolo)
    assert _named(source, "s0.txt", "is not UTF-8") and _boxes(source) == 2


def test_a_coco_file_is_streamed_in_any_key_order(tmp_path):
    """Annotations before images and categories (COCO does not fix the order), read as items
    arrive: the same boxes as the usual order, and the records are never one list."""
    from tlcv.data.annotations import stream_json

    root = _coco(
        _images(tmp_path),
        [
            {
                "id": 7,
                "image_id": 1,
                "category_id": 1,
                "bbox": [5.5, 5, 10, 10],
                "segmentation": [[1, 2, 3]],
            }
        ],
    )
    data = json.loads((root / "annotations.json").read_text())
    reordered = {k: data[k] for k in ("annotations", "categories", "images")}
    (root / "annotations.json").write_text(json.dumps(reordered))
    tables = stream_json(root / "annotations.json", ("images",), "annotations")
    assert not isinstance(tables["annotations"], list) and len(tables["images"]) == 3
    source = discover_detection(root)
    assert _boxes(source) == 4 and not source.missing


def test_nan_is_read_leniently_only_in_files_small_enough_to_parse_whole(tmp_path, monkeypatch):
    """Python's json.dump writes NaN, which no streaming parser accepts: such a file is parsed
    whole (its bad box named, above) up to MAX_LENIENT_BYTES, refused in one line beyond."""
    from tlcv.data import annotations

    root = _coco(_images(tmp_path), [{"id": 9, "image_id": 0, "category_id": 1,
                                      "bbox": [float("nan")] * 4}])  # fmt: skip
    monkeypatch.setattr(annotations, "MAX_LENIENT_BYTES", 100)
    with pytest.raises(TlcvError, match="holds NaN or Infinity, which JSON does not allow"):
        discover_detection(root)


# --- decode guards on the header --------------------------------------------------------


def test_a_144_megapixel_pair_is_refused_from_its_headers(tmp_path, monkeypatch):
    """The image and mask headers say 12000 x 12000: refused before any pixel is decoded."""
    from tlcv.tasks.segmentation import data as seg

    for folder in ("images", "masks"):
        (tmp_path / folder).mkdir()
        Image.new("L", (12000, 12000)).save(tmp_path / folder / "big.png")
    decoded = []
    monkeypatch.setattr(seg.MaskFormat, "decode", lambda self, path: decoded.append(path))
    fmt = seg.MaskFormat(["background", "thing"], "index", {0: 0, 1: 1}, "")
    reason = seg.check_pair(tmp_path / "images" / "big.png", tmp_path / "masks" / "big.png", fmt)
    assert "12000x12000 (144 MP), over the 120 MP safety limit" in reason
    assert decoded == []
