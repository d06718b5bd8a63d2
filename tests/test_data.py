import numpy as np
import pytest
from PIL import Image

from badfiles import make_bad_files, make_odd_but_valid
from conftest import DATA
from tlcv.data import discover, make_splits, open_rgb
from tlcv.errors import BadImageError, TlcvError

A_JPEG = (
    DATA
    / "office31"
    / "amazon"
    / "bike"
    / sorted(p.name for p in (DATA / "office31" / "amazon" / "bike").iterdir())[0]
)


def test_imagefolder_with_split_folders():
    src = discover(DATA / "digits" / "mnist")
    assert set(src.splits) == {"train", "test"} and src.classes == [str(i) for i in range(10)]
    splits = make_splits(src, val_fraction=0.1, seed=0)
    assert len(splits.test) == 1000 and len(splits.train) + len(splits.val) == 4000
    assert abs(len(splits.val) - 400) <= 10
    assert not {it.path for it in splits.train} & {it.path for it in splits.val}


def test_stratified_split_is_seeded_and_keeps_every_class(office_small):
    src = discover(office_small)
    a = make_splits(src, seed=1)
    b = make_splits(src, seed=1)
    c = make_splits(src, seed=2)
    assert [i.path for i in a.test] == [i.path for i in b.test] != [i.path for i in c.test]
    for part in (a.train, a.val, a.test):
        assert {it.label for it in part} == set(src.classes)
    assert sum(map(len, (a.train, a.val, a.test))) == 48


def test_per_class_few_shot(office_small):
    splits = make_splits(discover(office_small), per_class=3, seed=0)
    counts = {c: sum(it.label == c for it in splits.train) for c in splits.classes}
    assert set(counts.values()) == {3}
    many = make_splits(discover(office_small), per_class=500, seed=0)
    assert any("only" in n for n in many.notes)


def test_npz_medmnist():
    src = discover(DATA / "medmnist" / "breastmnist.npz")
    assert src.classes == ["0", "1"] and len(src.splits["train"]) == 546
    img = open_rgb(src.splits["test"][3].path)
    assert img.mode == "RGB" and img.size == (28, 28)


def test_csv_manifest_with_missing_files(tmp_path):
    files = sorted((DATA / "cifar10" / "train" / "cat").iterdir())[:3]
    rows = ["path,label"] + [f"{f},cat" for f in files] + [f"{tmp_path}/gone.jpg,dog"]
    manifest = tmp_path / "m.csv"
    manifest.write_text("\n".join(rows) + "\n")
    src = discover(manifest)
    assert len(src.all_items()) == 3 and src.missing[0][0].endswith("gone.jpg")
    with pytest.raises(TlcvError, match="gone.jpg"):
        discover(manifest, strict=True)


def test_empty_class_folder_and_single_class(tmp_path, office_small):
    (office_small / "empty_class").mkdir()
    src = discover(office_small)
    assert "empty_class" not in src.classes
    assert any("holds no images" in n for n in src.notes)
    with pytest.raises(TlcvError, match="empty_class"):
        discover(office_small, strict=True)
    single = tmp_path / "single" / "only"
    single.mkdir(parents=True)
    (single / "a.jpg").symlink_to(A_JPEG)
    with pytest.raises(TlcvError, match="at least 2"):
        make_splits(discover(tmp_path / "single"))


def test_missing_path_is_a_clear_error(tmp_path):
    with pytest.raises(TlcvError, match="does not exist"):
        discover(tmp_path / "nope")


@pytest.mark.parametrize(
    "kind,message",
    [
        ("truncated", "truncated"),
        ("zero", "0 bytes"),
        ("text", "not an image"),
        ("bomb", "decompression"),
    ],
)
def test_bad_files_raise_named_errors(tmp_path, kind, message):
    path = make_bad_files(tmp_path, A_JPEG)[kind]
    with pytest.raises(BadImageError) as info:
        open_rgb(str(path))
    assert message in info.value.message and info.value.path == str(path)


def test_awkward_modes_become_rgb(tmp_path):
    for kind, path in make_odd_but_valid(tmp_path, A_JPEG).items():
        img = open_rgb(str(path))
        assert img.mode == "RGB", kind
        arr = np.asarray(img)
        assert 20 < arr.mean() < 250, kind  # 16-bit scaled, not clipped to white


def test_exif_orientation_is_honoured(tmp_path):
    img = Image.new("RGB", (60, 30), (200, 10, 10))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    path = tmp_path / "rotated.jpg"
    img.save(path, exif=exif)
    assert open_rgb(str(path)).size == (30, 60)


def test_jpeg_draft_decodes_large_photos_smaller():
    big = DATA / "office31" / "dslr" / "bike"
    path = sorted(big.iterdir())[0]
    full = open_rgb(str(path))
    draft = open_rgb(str(path), draft_size=256)
    assert min(draft.size) >= 256 and draft.size[0] < full.size[0]
