"""Detection losses and validation mAP for the one training engine (engine/module.py)."""

from __future__ import annotations

import torch

from ...engine.module import Objective


def box_metric(class_metrics: bool = False, sync: bool = True):
    """torchmetrics' COCO-style mean average precision (faster-coco-eval, else pycocotools).
    ``sync=False`` scores what this process saw (rank 0's final scoring, after the others left)."""
    from torchmetrics.detection import MeanAveragePrecision

    try:
        import faster_coco_eval  # noqa: F401

        backend = "faster_coco_eval"
    except ImportError:
        backend = "pycocotools"
    return MeanAveragePrecision(
        box_format="xyxy",
        iou_type="bbox",
        backend=backend,
        class_metrics=class_metrics,
        extended_summary=class_metrics,
        sync_on_compute=sync,
    )


def as_float(images: list[torch.Tensor], device) -> list[torch.Tensor]:
    return [im.to(device, non_blocking=True).float().div_(255.0) for im in images]


class DetectionObjective(Objective):
    """The detector's own losses (classification + box regression, summed); validation scores
    mAP@0.5 and mAP@[.5:.95] on the val split at epoch end."""

    def __init__(self):
        super().__init__(label_smoothing=0.0)
        self.metrics["val_map"] = box_metric()

    def _batch(self, module, batch):
        images, targets, bad = batch
        module.skipped.extend(bad)
        device = module.device
        targets = [{k: v.to(device) for k, v in t.items()} for t in targets]
        return as_float(images, device), targets

    def loss(self, module, batch):
        images, targets = self._batch(module, batch)
        if not images:
            return None, None, None, {}
        losses = module.model(images, targets)
        extra = {f"train_{k}": v.detach() for k, v in losses.items()}
        return sum(losses.values()), None, targets, extra

    def validate(self, module, batch, dataloader_idx: int = 0) -> None:
        images, targets = self._batch(module, batch)
        if images:
            self.metrics["val_map"].update(module.model(images), targets)

    def validation_epoch_end(self, module) -> None:
        metric = self.metrics["val_map"]
        if not metric.detection_box and not metric.groundtruth_box:  # no validation this epoch
            return
        result = metric.compute()
        module.log("val_map50", float(result["map_50"]), prog_bar=True)
        module.log("val_map", float(result["map"]))
        metric.reset()
