"""What an anomaly run draws: heat maps over images, image | map | truth panels, and the
score histogram of good vs defective images with the threshold."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...evaluation.figures import png_of, pyplot


def resize_map(heat: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A (S, S) map brought to an image's own (height, width), bilinear."""
    from ...deploy.runtime import resize_bilinear

    if heat.shape == tuple(size):
        return heat
    return resize_bilinear(np.asarray(heat, np.float32)[None], *size)[0]


def scaled(heat: np.ndarray, span: list[float] | None) -> np.ndarray:
    """Map values to [0, 1] by the run's display range (good parts' range, from the held-out
    images); without one, by the map's own range."""
    lo, hi = (span or (float(heat.min()), float(heat.max())))[:2]
    return np.clip((heat - lo) / max(hi - lo, 1e-12), 0.0, 1.0)


def heat_overlay(image: np.ndarray, heat: np.ndarray, span, alpha: float = 0.5) -> np.ndarray:
    """uint8 (H, W, 3): the image under the jet-coloured map (blue: like the good parts)."""
    from matplotlib import colormaps

    colours = colormaps["jet"](scaled(resize_map(heat, image.shape[:2]), span))[..., :3] * 255
    return ((1 - alpha) * image + alpha * colours).round().clip(0, 255).astype(np.uint8)


def panel_png(
    image: np.ndarray, heat: np.ndarray, truth: np.ndarray | None, span, title: str
) -> bytes:
    """image | heat map | truth mask (when there is one), one PNG."""
    plt = pyplot()
    columns = 3 if truth is not None else 2
    fig, axes = plt.subplots(1, columns, figsize=(3.6 * columns, 3.6))
    axes[0].imshow(image)
    axes[0].set_title("image")
    axes[1].imshow(heat_overlay(image, heat, span))
    axes[1].set_title("anomaly map")
    if truth is not None:
        axes[2].imshow(truth > 0, cmap="gray")
        axes[2].set_title("truth")
    for ax in axes:
        ax.axis("off")
    fig.suptitle(title, fontsize=9)
    return png_of(fig)


def histogram_png(
    scores: np.ndarray, defective: np.ndarray, threshold: float | None, title: str
) -> bytes:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.4))
    bins = np.histogram_bin_edges(scores, bins=30)
    ax.hist(scores[~defective], bins=bins, alpha=0.6, label=f"good ({int((~defective).sum())})")
    ax.hist(scores[defective], bins=bins, alpha=0.6, label=f"defective ({int(defective.sum())})")
    if threshold is not None:
        ax.axvline(threshold, color="k", linestyle="--", label="threshold")
    ax.set_xlabel("image anomaly score")
    ax.set_ylabel("images")
    ax.set_title(title)
    ax.legend()
    return png_of(fig)


def write_png(path: Path, data: bytes) -> str:
    from ...io import write_bytes

    return str(write_bytes(path, data))
