"""Traditional hand-crafted features as registry entries: HOG, colour histograms, LBP.

They plug in where a CNN would (same preprocessing, cache, heads, run folders, evaluate and
predict), so the classical baseline differs from feature extraction in one thing only: the
features. Computed with scikit-image on the CPU; nothing is learned.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..catalog import CATALOG
from .registry import BackboneSpec, Preprocessing, register_backbone

HOG_CELLS = 8  # cells per side whatever the input size, so the feature size is fixed
HOG_ORIENTATIONS = 9
HOG_BLOCK = 2
COLOUR_BINS = 16
LBP_POINTS, LBP_RADIUS = 8, 1


def hog_dim() -> int:
    blocks = HOG_CELLS - HOG_BLOCK + 1
    return HOG_ORIENTATIONS * HOG_BLOCK * HOG_BLOCK * blocks * blocks


def hog_features(gray: np.ndarray) -> np.ndarray:
    """scikit-image's HOG on an 8 x 8 grid of cells (Dalal & Triggs' block normalisation)."""
    from skimage.feature import hog

    cell = max(1, gray.shape[0] // HOG_CELLS)
    return hog(
        gray,
        orientations=HOG_ORIENTATIONS,
        pixels_per_cell=(cell, cell),
        cells_per_block=(HOG_BLOCK, HOG_BLOCK),
        block_norm="L2-Hys",
        feature_vector=True,
    )


def colour_histogram(rgb: np.ndarray) -> np.ndarray:
    """Hue, saturation and value histograms (each sums to 1)."""
    from skimage.color import rgb2hsv

    hsv = rgb2hsv(rgb)
    parts = [np.histogram(hsv[..., c], bins=COLOUR_BINS, range=(0.0, 1.0))[0] for c in range(3)]
    return np.concatenate([p / max(1, p.sum()) for p in parts])


def lbp_histogram(gray: np.ndarray) -> np.ndarray:
    """Uniform local binary patterns: a rotation-invariant texture histogram."""
    from skimage.feature import local_binary_pattern

    codes = local_binary_pattern(
        (gray * 255).astype(np.uint8), LBP_POINTS, LBP_RADIUS, method="uniform"
    )
    hist = np.histogram(codes, bins=LBP_POINTS + 2, range=(0, LBP_POINTS + 2))[0]
    return hist / max(1, hist.sum())


class HandCrafted(nn.Module):
    """Images in [0, 1] (B, 3, H, W) -> concatenated classical descriptors (B, D)."""

    def __init__(self, parts: tuple[str, ...]):
        super().__init__()
        self.parts = parts
        self.feature_dim = sum(
            {"hog": hog_dim(), "colour": 3 * COLOUR_BINS, "lbp": LBP_POINTS + 2}[p] for p in parts
        )

    def describe(self, rgb: np.ndarray) -> np.ndarray:
        from skimage.color import rgb2gray

        gray = rgb2gray(rgb)
        out = []
        for part in self.parts:
            if part == "hog":
                out.append(hog_features(gray))
            elif part == "colour":
                out.append(colour_histogram(rgb))
            else:
                out.append(lbp_histogram(gray))
        return np.concatenate(out).astype(np.float32)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        batch = images.detach().float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()
        feats = np.stack([self.describe(np.ascontiguousarray(img)) for img in batch])
        return torch.from_numpy(feats).to(images.device)


_PREP = Preprocessing(input_size=64, resize_size=64, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))

for _name, _parts in [
    ("hog", ("hog",)),
    ("hog_color", ("hog", "colour")),
    ("hog_color_lbp", ("hog", "colour", "lbp")),
]:
    register_backbone(
        BackboneSpec(
            name=_name,
            build=lambda parts=_parts: HandCrafted(parts),
            strip_head=lambda m: m,
            feature_dim=HandCrafted(_parts).feature_dim,
            preprocessing=_PREP,
            weights=(),
            layer_groups=lambda m: [],
            family="classical",
            description=CATALOG[_name].description,
        )
    )
