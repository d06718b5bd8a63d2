import json
import stat
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import DATA, link_subset, tlcv_torchrun
from tlcv.backbones import create_backbone
from tlcv.data import discover
from tlcv.errors import TlcvError
from tlcv.features import cache_for, extract_features, resolve_device
from tlcv.io import _atomic, write_json


@pytest.fixture(scope="module")
def small_net():
    return create_backbone("mobilenet_v3_small", weights="none", image_size=32)


@pytest.fixture
def cifar_items(tmp_path):
    return discover(link_subset(DATA / "cifar10" / "train", tmp_path / "c", 6)).all_items()


def _count_calls(net):
    calls = {"images": 0}
    original = net.net.forward

    def counting(x):
        calls["images"] += x.shape[0]
        return original(x)

    net.net.forward = counting
    return calls


def test_cache_hit_skips_the_network(tmp_path, small_net, cifar_items):
    calls = _count_calls(small_net)
    first = extract_features(cifar_items, small_net, cache_dir=tmp_path, batch_size=16)
    assert first.computed == 60 and calls["images"] == 60
    again = extract_features(cifar_items, small_net, cache_dir=tmp_path, batch_size=16)
    assert again.cached == 60 and again.computed == 0 and calls["images"] == 60
    np.testing.assert_array_equal(first.features, again.features)
    # a changed file is recomputed, only it
    changed = Path(cifar_items[5].path).resolve()
    target = tmp_path / "changed.jpg"
    target.write_bytes(changed.read_bytes() + b"\0")
    from tlcv.data import ImageItem, file_identity

    items = [*cifar_items, ImageItem(str(target), "x", file_identity(target))]
    third = extract_features(items, small_net, cache_dir=tmp_path, batch_size=16)
    assert third.computed == 1 and calls["images"] == 61


def test_interrupted_run_resumes_without_recomputing(tmp_path, small_net, cifar_items):
    original = small_net.net.forward
    seen = {"batches": 0}

    def dying(x):
        seen["batches"] += 1
        if seen["batches"] == 4:
            raise KeyboardInterrupt
        return original(x)

    small_net.net.forward = dying
    with pytest.raises(KeyboardInterrupt):
        extract_features(
            cifar_items, small_net, cache_dir=tmp_path, batch_size=8, shard_rows=8, num_workers=0
        )
    small_net.net.forward = original
    resumed = extract_features(cifar_items, small_net, cache_dir=tmp_path, batch_size=8)
    assert resumed.cached == 24 and resumed.computed == 36
    fresh = extract_features(cifar_items, small_net, cache_dir=tmp_path / "fresh", batch_size=8)
    np.testing.assert_allclose(resumed.features, fresh.features, atol=1e-5)


def test_half_written_shard_is_never_read(tmp_path, small_net, cifar_items):
    extract_features(cifar_items[:10], small_net, cache_dir=tmp_path)
    cache = cache_for(small_net, tmp_path, resolve_device("cpu"))
    (cache.dir / ".shard-abc.safetensors.1234.tmp").write_bytes(b"partial")
    (cache.dir / "shard-broken.safetensors").write_bytes(b"\x00\x01garbage")
    again = extract_features(cifar_items[:10], small_net, cache_dir=tmp_path)
    assert again.cached == 10 and again.features.shape == (10, small_net.feature_dim)


def test_bad_images_are_skipped_and_listed(tmp_path, small_net, cifar_items):
    from badfiles import make_bad_files
    from tlcv.data import ImageItem, file_identity
    from tlcv.errors import BadImageError

    bad = make_bad_files(tmp_path / "bad", Path(cifar_items[0].path))
    items = cifar_items[:5] + [ImageItem(str(p), "x", file_identity(p)) for p in bad.values()]
    fs = extract_features(items, small_net, cache_dir=tmp_path)
    assert len(fs.items) == 5 and {p for p, _ in fs.skipped} == {str(p) for p in bad.values()}
    with pytest.raises(BadImageError):
        extract_features(items, small_net, cache_dir=tmp_path / "strict", strict=True)


def test_torchrun_two_processes_fill_one_cache(tmp_path):
    data = link_subset(DATA / "cifar10" / "test", tmp_path / "data", 4)
    cache = tmp_path / "cache"
    tlcv_torchrun(
        [
            "extract",
            "--data",
            str(data),
            "--backbone",
            "mobilenet_v3_small",
            "--weights",
            "none",
            "--image-size",
            "32",
            "--cache",
            str(cache),
            "--num-workers",
            "0",
            "--batch-size",
            "4",
        ],
        29517,
        timeout=300,
    )
    shards = list(next(cache.iterdir()).glob("shard-*.safetensors"))
    assert len(shards) >= 2  # both ranks wrote their own share
    net = create_backbone("mobilenet_v3_small", weights="none", image_size=32)
    fs = extract_features(discover(data).all_items(), net, cache_dir=cache)
    assert fs.cached == 40 and fs.computed == 0
    assert torch.isfinite(torch.from_numpy(fs.features)).all()


def test_a_backbone_stays_trainable_after_extraction(tmp_path, cifar_items):
    # converting parameters inside inference mode once made them untrainable forever
    net = create_backbone("mobilenet_v3_small", weights="none", image_size=32)
    extract_features(cifar_items[:4], net, cache_dir=tmp_path)
    for p in net.parameters():
        p.requires_grad_(True)
    net.train()(torch.zeros(2, 3, 32, 32)).sum().backward()
    assert all(p.grad is not None for p in net.parameters())


def test_atomic_writes_keep_the_usual_file_mode_and_the_old_file_on_failure(tmp_path):
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    written = write_json(tmp_path / "run" / "metrics.json", {"accuracy": 0.5})
    assert stat.S_IMODE(written.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)
    with pytest.raises(TlcvError, match="could not write"):
        _atomic(written, lambda tmp: (_ for _ in ()).throw(OSError(28, "No space left")))
    assert json.loads(written.read_text()) == {"accuracy": 0.5}
    assert [p.name for p in written.parent.iterdir()] == ["metrics.json"]  # no temp file left
