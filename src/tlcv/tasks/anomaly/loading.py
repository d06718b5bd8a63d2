"""Images in, scores out: decoding at the model's square input size (unreadable files named,
never fatal unless --strict), batched through the model."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from ...data import normalize, open_rgb
from ...data.loading import default_workers_for
from ...errors import BadImageError


def read_square(path: str, size: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """uint8 (3, size, size) of the image resized (antialiased), and its own (height, width).
    Grey and paletted images become RGB, as the backbone was trained on."""
    image = open_rgb(path)
    own = (image.height, image.width)
    image = image.resize((size, size), Image.Resampling.BILINEAR)
    return torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1), own


class _Squares(Dataset):
    def __init__(self, paths: list[str], size: int):
        self.paths, self.size = paths, size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        try:
            pixels, own = read_square(self.paths[index], self.size)
            return index, pixels, own, None
        except BadImageError as exc:
            return index, None, None, exc.message


def _collate(rows):
    good = [r for r in rows if r[1] is not None]
    images = torch.stack([r[1] for r in good]) if good else None
    return (
        [r[0] for r in good],
        images,
        [r[2] for r in good],
        [(r[0], r[3]) for r in rows if r[1] is None],
    )


def image_batches(
    paths: list[str], size: int, batch_size: int = 16, num_workers: int | None = None
) -> Iterator[tuple]:
    """(indices, uint8 images, own sizes, [(index, why unreadable)]) per batch."""
    workers = default_workers_for(len(paths)) if num_workers is None else num_workers
    loader = DataLoader(
        _Squares(paths, size), batch_size=batch_size, num_workers=workers, collate_fn=_collate
    )
    yield from loader


@dataclass
class Scores:
    """What the model said about the readable images, in input order."""

    indices: list[int]  # into the items scored
    scores: np.ndarray  # (n,) image scores
    maps: list[np.ndarray]  # (S, S) float32 anomaly maps (at the model's input size)
    sizes: list[tuple[int, int]]  # each image's own (height, width)
    failed: list[tuple[int, str]]  # (index, why unreadable)


def torch_forward(model, device):
    """uint8 images -> (image scores, maps) as numpy, through the model in eager torch."""
    model = model.to(device).eval()
    prep = model.backbone.preprocessing

    def forward(images: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        with torch.inference_mode():
            scores, maps = model(normalize(images, prep, device))
        return scores.float().cpu().numpy(), maps[:, 0].float().cpu().numpy()

    return forward


def score_paths(
    forward,
    size: int,
    paths: list[str],
    *,
    batch_size: int = 16,
    num_workers: int | None = None,
    keep_maps: bool = True,
) -> Scores:
    """``forward(uint8 images) -> (scores, maps)`` over the readable ``paths``."""
    out = Scores([], np.zeros(0, np.float32), [], [], [])
    scores = []
    for indices, images, sizes, failed in image_batches(paths, size, batch_size, num_workers):
        out.failed.extend(failed)
        if images is None:
            continue
        image_scores, maps = forward(images)
        scores.append(np.asarray(image_scores, dtype=np.float32))
        out.indices.extend(indices)
        out.sizes.extend(sizes)
        if keep_maps:
            out.maps.extend(np.asarray(maps, dtype=np.float32))
    out.scores = np.concatenate(scores) if scores else np.zeros(0, np.float32)
    return out


def batches_for_fit(
    paths: list[str], size: int, device, batch_size: int, num_workers: int | None, failed: list
):
    """``batches_of(model)`` for model.build_model: normalised batches of good images."""

    def batches_of(model):
        prep = model.backbone.preprocessing
        for _, images, _, bad in image_batches(paths, size, batch_size, num_workers):
            failed.extend((paths[i], why) for i, why in bad)
            if images is not None:
                yield normalize(images, prep, device)

    return batches_of
