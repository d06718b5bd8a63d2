"""The in-memory decoded-image store and batched augmentation (issue 19): the cache changes
speed, never results."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from tlcv.backbones.registry import Preprocessing
from tlcv.data.decode import ImageItem, file_identity
from tlcv.data.memory import DECODED, DecodedImages, memory_key, preload
from tlcv.engine.augment import crop_batch, draw_crop
from tlcv.engine.data import LabelledImages, collate_labelled, labelled_loader

NEEDS_SHARED = False
PREP = Preprocessing(input_size=28, resize_size=32, mean=(0.5,) * 3, std=(0.5,) * 3)


@pytest.fixture
def images(tmp_path) -> list[ImageItem]:
    rng = np.random.default_rng(0)
    items = []
    for i in range(24):
        size = (40, 36) if i % 3 else (36, 36)  # two shapes: the per-image path is used too
        path = tmp_path / f"{i}.png"
        Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(path)
        items.append(ImageItem(str(path), "ab"[i % 2], file_identity(path)))
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    items.append(ImageItem(str(bad), "a", file_identity(bad)))
    yield items
    DECODED.clear()


def batches(items, augment: str, epochs=(0, 1)):
    out = []
    for memory in (False, True):
        DECODED.clear()
        loader = labelled_loader(
            items, ["a", "b"], PREP, augment=augment, batch_size=8, seed=3, shuffle=True,
            num_workers=0, memory=memory,
        )  # fmt: skip
        run = []
        for epoch in epochs:
            loader.sampler.set_epoch(epoch)
            run += [(x, y, sorted(bad)) for x, y, bad in loader]
        out.append(run)
    return out


@pytest.mark.parametrize("augment", ["none", "light", "strong"])
def test_memory_cache_gives_the_same_batches(images, augment):
    uncached, cached = batches(images, augment)
    assert len(uncached) == len(cached) > 0
    for (x0, y0, bad0), (x1, y1, bad1) in zip(uncached, cached, strict=True):
        assert torch.equal(x0, x1) and torch.equal(y0, y1) and bad0 == bad1
    assert any(bad for _, _, bad in cached)  # the corrupt file is skipped in both
    assert cached[0][0].shape[1:] == (3, 28, 28)


def test_epochs_draw_different_views_and_runs_repeat(images):
    first, _ = batches(images, "light", epochs=(0,))
    again, _ = batches(images, "light", epochs=(0,))
    other, _ = batches(images, "light", epochs=(1,))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(first, again, strict=True))
    assert not all(torch.equal(a[0], b[0]) for a, b in zip(first, other, strict=True))


def test_preload_holds_images_and_remembers_bad_files(images):
    DECODED.clear()
    assert preload(images, PREP)
    assert DECODED.has_all(memory_key(it, PREP) for it in images)
    assert isinstance(DECODED.get(memory_key(images[-1], PREP)), str)  # the reason, kept
    held = DECODED.get(memory_key(images[0], PREP))
    assert held.dtype == torch.uint8 and min(held.shape[1:]) == PREP.resize_size
    sample = LabelledImages(images, ["a", "b"], PREP, "none", 0)[len(images) - 1]
    assert sample[0] is None and "not an image" in sample[2]


def test_a_split_over_the_limit_is_not_cached(images, monkeypatch):
    small = DecodedImages(limit_bytes=1000)
    monkeypatch.setattr("tlcv.data.memory.DECODED", small)
    assert not preload(images, PREP)
    assert small.bytes == 0


def test_crop_draws_stay_inside_and_follow_the_seed():
    for seed in range(200):
        d = draw_crop(30, 50, 24, seed)
        assert 0 <= d.top and d.top + d.height <= 30 and 0 <= d.left and d.left + d.width <= 50
        assert 0.3 * 1500 <= d.height * d.width <= 1500 * 1.05
        assert d == draw_crop(30, 50, 24, seed)
    assert len({draw_crop(30, 50, 24, s) for s in range(50)}) > 40


def test_batched_crop_matches_one_image_at_a_time_and_is_exact_for_the_whole_image():
    g = torch.Generator().manual_seed(0)
    imgs = [torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8, generator=g) for _ in range(6)]
    draws = [draw_crop(32, 32, 28, s) for s in range(6)]
    together = crop_batch(imgs, draws)
    alone = torch.cat([crop_batch([img], [d]) for img, d in zip(imgs, draws, strict=True)])
    assert torch.equal(together, alone)
    whole = draw_crop(32, 32, 32, 0)
    whole = type(whole)(0, 0, 32, 32, False, 0, 32)
    assert torch.equal(crop_batch([imgs[0]], [whole])[0], imgs[0])
    flipped = type(whole)(0, 0, 32, 32, True, 0, 32)
    assert torch.equal(crop_batch([imgs[0]], [flipped])[0], imgs[0].flip(-1))


def test_features_rows_still_collate():
    x, y, bad = collate_labelled([(torch.ones(4), 1, None), (torch.zeros(4), -1, None)])
    assert x.shape == (2, 4) and y.tolist() == [1, -1] and bad == []
