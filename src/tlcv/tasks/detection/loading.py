"""Image + box batches: box-aware augmentation with torchvision transforms v2
(``tv_tensors.BoundingBoxes`` move with their image), seeded per image and epoch like every
other task (engine.data.seeded), resized once here so the detector's own resize is a no-op.
With ``crop``, training sees a crop of each resized scene (half of them around a random object,
like sampling positives for small-object detectors): the object keeps its pixels while a step
costs a fraction of a whole scene."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader
from torchvision import tv_tensors
from torchvision.transforms import v2

from ...data import open_rgb
from ...data.loading import default_workers_for, lower_priority
from ...engine.data import EpochItems, EpochSampler, seeded
from ...errors import BadImageError
from .data import DetItem


class ObjectCrop(v2.Transform):
    """A ``size`` x ``size`` window of the image (padded when smaller): with probability
    ``towards_object`` one that contains a randomly chosen box, otherwise anywhere."""

    def __init__(self, size: int, towards_object: float = 0.5):
        super().__init__()
        self.size, self.towards_object = int(size), towards_object

    def make_params(self, flat_inputs: list) -> dict:
        height, width = v2.query_size(flat_inputs)
        boxes = next((x for x in flat_inputs if isinstance(x, tv_tensors.BoundingBoxes)), None)
        span_y, span_x = max(0, height - self.size), max(0, width - self.size)
        top = int(torch.randint(span_y + 1, ()))
        left = int(torch.randint(span_x + 1, ()))
        if boxes is not None and len(boxes) and float(torch.rand(())) < self.towards_object:
            x1, y1, x2, y2 = boxes[int(torch.randint(len(boxes), ()))].tolist()
            top = _window_start(y1, y2, self.size, span_y)
            left = _window_start(x1, x2, self.size, span_x)
        return {"top": top, "left": left}

    def transform(self, inpt, params: dict):
        return self._call_kernel(
            v2.functional.crop, inpt, params["top"], params["left"], self.size, self.size
        )


def _window_start(low: float, high: float, size: int, span: int) -> int:
    """A random start of a ``size`` window over [low, high) inside [0, span + size)."""
    first = max(0, int(high) - size)
    last = min(span, int(low))
    if first > last:  # the object is larger than the window: centre on it
        return min(span, max(0, int((low + high - size) / 2)))
    return first + int(torch.randint(last - first + 1, ()))


MAX_ASPECT = 1.7  # the long side is at most this x the short side (GTSDB's scenes: 1360x800)


def max_side(size: int) -> int:
    return int(round(size * MAX_ASPECT))


def transform(size: int, augment: str | None, crop: int | None = None) -> v2.Compose:
    """Short side to ``size``; training adds photometric jitter ("light") and, with "strong",
    horizontal flips (mind signs whose meaning flips, e.g. turn arrows); ``crop`` cuts a
    training window (ObjectCrop)."""
    steps: list = [v2.Resize(size, max_size=max_side(size), antialias=True)]
    if crop and augment is not None:
        steps.append(ObjectCrop(crop))
    if augment in ("light", "strong"):
        steps.append(v2.RandomPhotometricDistort(p=0.5))
    if augment == "strong":
        steps.append(v2.RandomHorizontalFlip())
    steps.append(v2.SanitizeBoundingBoxes(min_size=1))
    return v2.Compose(steps)


class DetectionImages(EpochItems):
    """(index, epoch) -> (uint8 image, target dict with boxes and labels 1..K)."""

    def __init__(self, items: list[DetItem], classes: list[str], tf, seed: int):
        self.items, self.tf, self.seed = items, tf, seed
        self.lookup = {c: i + 1 for i, c in enumerate(classes)}  # 0 is the background

    def load(self, item: DetItem, index: int, epoch: int):
        try:
            image = torch.from_numpy(np.array(open_rgb(item.path))).permute(2, 0, 1)
        except BadImageError as exc:
            return None, None, item.path, exc.message
        boxes = tv_tensors.BoundingBoxes(
            torch.tensor(item.boxes, dtype=torch.float32).reshape(-1, 4),
            format="XYXY",
            canvas_size=tuple(image.shape[-2:]),
        )
        labels = torch.tensor([self.lookup[n] for n in item.labels], dtype=torch.int64)
        with seeded(self.seed, epoch, index):
            image, target = self.tf(tv_tensors.Image(image), {"boxes": boxes, "labels": labels})
        target["boxes"] = target["boxes"].as_subclass(torch.Tensor)
        return image.as_subclass(torch.Tensor), target, None, None


def collate(samples):
    good = [(x, t) for x, t, _, err in samples if err is None]
    bad = [(path, err) for _, _, path, err in samples if err is not None]
    return [g[0] for g in good], [g[1] for g in good], bad


def detection_loader(
    items: list[DetItem],
    classes: list[str],
    size: int,
    *,
    augment: str | None,
    batch_size: int,
    seed: int,
    num_workers: int | None,
    crop: int | None = None,
) -> DataLoader:
    """Training batches when ``augment`` is given (shuffled; a last batch of one image is
    left out, as batch norm on 1 x 1 maps cannot train on it), else in order."""
    workers = default_workers_for(len(items)) if num_workers is None else num_workers
    batch = min(batch_size, max(1, len(items)))
    return DataLoader(
        DetectionImages(items, classes, transform(size, augment, crop), seed),
        batch_size=batch,
        drop_last=augment is not None and batch > 1 and len(items) % batch == 1,
        sampler=EpochSampler(len(items), seed, shuffle=augment is not None),
        num_workers=workers,
        collate_fn=collate,
        persistent_workers=workers > 0,
        worker_init_fn=lower_priority if workers else None,
    )
