"""Training augmentation on batches of uint8 tensors: random resized crop + flip for a whole
batch in one ``roi_align`` call, instead of one torchvision transform call per image.

Per-image v2 transforms cost ~130 us each in Python dispatch; for 28-32 px images that is more
than the network's own step. The crop of each image is drawn from a generator seeded by (seed,
epoch, index), so a batch is the same whichever process builds it and whether the run was
resumed; the box distribution is RandomResizedCrop's (area share ``scale``, log-uniform aspect
``ratio``, ten tries, then the largest centred box of an allowed aspect).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import torch
from torchvision.ops import roi_align
from torchvision.transforms import InterpolationMode, v2

from .seeding import seeded

CROP_SCALE = (0.35, 1.0)
CROP_RATIO = (3 / 4, 4 / 3)


@dataclass(frozen=True)
class CropDraw:
    """One image's random view: a box of its base image, a flip, and the seed for whatever
    else is drawn per image (the ``strong`` preset's TrivialAugment)."""

    top: int
    left: int
    height: int
    width: int
    flip: bool
    seed: int
    size: int  # output side
    strong: bool = False


def draw_crop(height: int, width: int, size: int, seed: int, strong: bool = False) -> CropDraw:
    rng = random.Random(seed)
    area = height * width
    lo, hi = math.log(CROP_RATIO[0]), math.log(CROP_RATIO[1])
    for _ in range(10):
        target = area * rng.uniform(*CROP_SCALE)
        aspect = math.exp(rng.uniform(lo, hi))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top, left = rng.randint(0, height - h), rng.randint(0, width - w)
            return CropDraw(top, left, h, w, rng.random() < 0.5, seed, size, strong)
    shape = width / height
    if shape < CROP_RATIO[0]:
        w, h = width, int(round(width / CROP_RATIO[0]))
    elif shape > CROP_RATIO[1]:
        h, w = height, int(round(height * CROP_RATIO[1]))
    else:
        h, w = height, width
    top, left = (height - h) // 2, (width - w) // 2
    return CropDraw(top, left, h, w, rng.random() < 0.5, seed, size, strong)


def _resample(images: torch.Tensor, draws: list[CropDraw]) -> torch.Tensor:
    """Crop each box and resize it to the output side; area-averaging where it shrinks."""
    boxes = torch.tensor(
        [[i, d.left, d.top, d.left + d.width, d.top + d.height] for i, d in enumerate(draws)],
        dtype=torch.float32,
    )
    size = draws[0].size
    out = roi_align(images.float(), boxes, (size, size), 1.0, -1, True)
    return out.round_().clamp_(0, 255).to(torch.uint8)


def crop_batch(images: list[torch.Tensor], draws: list[CropDraw]) -> torch.Tensor:
    """uint8 (B, 3, size, size) from base images (any sizes) and their draws."""
    if all(img.shape == images[0].shape for img in images):
        out = _resample(torch.stack(images), draws)
    else:
        out = torch.cat([_resample(img[None], [d]) for img, d in zip(images, draws, strict=True)])
    flips = torch.tensor([d.flip for d in draws])
    if flips.any():
        out[flips] = out[flips].flip(-1)
    if any(d.strong for d in draws):
        wide = v2.TrivialAugmentWide(interpolation=InterpolationMode.BILINEAR)
        for i, d in enumerate(draws):
            with seeded(d.seed):
                out[i] = wide(out[i])
    return out
