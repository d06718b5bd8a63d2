"""Segmentation adaptation on the one engine: paired source/target batches and the objective
that adds the dense methods' terms (adaptation/methods) to the source pixel loss.

Validation, every epoch: loader 0 is the held-out source split (val_miou, val_loss, val_acc),
loader 1 the target images. A fixed sample of pixels of each image (their logits, and for the
source their labels) goes to the validators (adaptation/validators), the same scores that
choose a classifier's epoch, here over pixels. The target loader carries no mask unless
``--oracle`` asked for the target mIoU per epoch, and validators never see one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from torchmetrics.classification import MulticlassJaccardIndex

from ...adaptation.methods import AdaptationMethod, DomainBatch
from ...adaptation.objective import PairedDomains, add_method_terms, training_progress
from ...adaptation.validators import ValidationData, metric_name, score_all
from ...data.loading import default_workers_for, lower_priority
from ...engine.data import EpochSampler
from ...engine.seeding import seed_of
from .loading import SegmentationPairs, collate_pairs, eval_transform, train_transform
from .masks import IGNORE
from .objective import SegmentationObjective

PIXELS_PER_IMAGE = 512  # sampled for the validators (62 dusk frames: 31,744 target rows)


def collate_domains(samples):
    xs, ys, bad_s = collate_pairs([s for s, _ in samples])
    xt, _, bad_t = collate_pairs([t for _, t in samples])  # all void: targets carry no mask
    return xs, ys, xt, bad_s + bad_t


def paired_pair_loader(
    source, target, fmt, size: int, *, augment: str, flips: str, batch_size: int, seed: int,
    num_workers: int | None,
) -> DataLoader:  # fmt: skip
    """Source pairs and target images, each augmented and cropped to ``size`` squares (the
    same shape, so FDA can swap spectra), seeded per (image, epoch) for exact resumes."""
    transform = train_transform(size, augment, flips)
    paired = PairedDomains(
        SegmentationPairs(source, fmt, transform, seed),
        SegmentationPairs(target, fmt, transform, seed + 1),
        seed,
    )
    workers = default_workers_for(len(paired)) if num_workers is None else num_workers
    return DataLoader(
        paired,
        batch_size=min(batch_size, len(paired)),
        sampler=EpochSampler(len(paired), seed, shuffle=True),
        collate_fn=collate_domains,
        num_workers=workers,
        persistent_workers=workers > 0,
        worker_init_fn=lower_priority if workers else None,
        drop_last=len(paired) > batch_size,  # batch norm needs more than one crop
    )


def image_loader(items, fmt, size: int, *, batch_size: int, num_workers: int | None):
    """Whole images in order at the model's scale (masks: all void for unlabelled items)."""
    workers = default_workers_for(len(items)) if num_workers is None else num_workers
    return DataLoader(
        SegmentationPairs(items, fmt, eval_transform(size), 0),
        batch_size=min(batch_size, max(1, len(items))),
        sampler=EpochSampler(len(items), 0, shuffle=False),
        collate_fn=collate_pairs,
        num_workers=workers,
        persistent_workers=workers > 0,
        worker_init_fn=lower_priority if workers else None,
    )


def sample_pixels(logits: torch.Tensor, labels: torch.Tensor, valid: torch.Tensor, seed: int):
    """PIXELS_PER_IMAGE of the ``valid`` pixels of each image (seeded: the same ones every
    epoch): (rows of logits, their labels)."""
    rows, picked = [], []
    gen = torch.Generator().manual_seed(seed % (2**63))
    for image_logits, image_labels, image_valid in zip(logits, labels, valid, strict=True):
        where = image_valid.reshape(-1).nonzero().squeeze(1).cpu()
        if len(where) == 0:
            continue
        take = where[torch.randperm(len(where), generator=gen)[:PIXELS_PER_IMAGE]]
        take = take.to(image_logits.device)
        rows.append(image_logits.reshape(image_logits.shape[0], -1)[:, take].T)
        picked.append(image_labels.reshape(-1)[take])
    if not rows:
        return logits.new_zeros(0, logits.shape[1]), labels.new_zeros(0)
    return torch.cat(rows), torch.cat(picked)


def inside_images(x: torch.Tensor) -> torch.Tensor:
    """(B, H, W): the pixels inside each image, not the batch's right/bottom padding. Read
    from the pixels alone, so target pixels are sampled the same with or without masks."""
    content = (x != 0).any(1)
    valid = torch.zeros_like(content)
    for i, image in enumerate(content):
        rows, cols = image.any(1).nonzero(), image.any(0).nonzero()
        if len(rows) and len(cols):
            valid[i, : int(rows.max()) + 1, : int(cols.max()) + 1] = True
    return valid


class DenseAdaptObjective(SegmentationObjective):
    """Source pixel loss + every method's terms on (B, C, H, W) logits of both domains."""

    def __init__(self, methods: list[AdaptationMethod], num_classes: int, *, loss: str = "ce",
                 class_weights: torch.Tensor | None = None, seed: int = 0):  # fmt: skip
        super().__init__(num_classes, class_weights, loss=loss)
        self.methods, self.seed = methods, seed
        for method in methods:
            self.parts[method.name.replace("+", "_")] = method
        self.metrics["oracle_miou"] = MulticlassJaccardIndex(num_classes, ignore_index=IGNORE)
        # source-only and AdaBN train on the source alone: the target never shapes a step
        self.reads_target = any(type(m).loss is not AdaptationMethod.loss for m in methods) or any(
            type(m).source_images is not AdaptationMethod.source_images for m in methods
        )
        self._outputs: dict[int, list] = {0: [], 1: []}

    def loss(self, module, batch):
        xs, ys, xt, bad = batch
        module.skipped.extend(bad)
        if len(xs) < 2 or not bool((ys != IGNORE).any()):
            return None, None, None, {}
        ys = ys.to(module.device)
        if not self.reads_target or len(xt) == 0:
            logits = module.model(module.normalize_images(xs))
            return self.pixel_loss(logits, ys), logits, ys, {}
        for method in self.methods:
            xs = method.source_images(xs, xt)
        n = len(xs)
        logits = module.model(module.normalize_images(torch.cat([xs, xt])))
        domain = DomainBatch(None, None, logits[:n], logits[n:], training_progress(module))
        loss, logs = add_method_terms(self.methods, domain, self.pixel_loss(logits[:n], ys),
                                      "seg_loss")  # fmt: skip
        return loss, logits[:n], ys, logs

    def validate(self, module, batch, dataloader_idx: int = 0) -> None:
        x, y, bad = batch
        module.skipped.extend(bad)
        if len(x) == 0:
            return
        y = y.to(module.device)
        logits = module.model(module.normalize_images(x))
        seed = seed_of(self.seed, dataloader_idx, len(self._outputs[dataloader_idx]))
        # source: its labelled pixels; target: every pixel of the image, labelled or not
        valid = (y != IGNORE) if dataloader_idx == 0 else inside_images(x).to(y.device)
        rows, labels = sample_pixels(logits.float().detach(), y, valid, seed)
        self._outputs[dataloader_idx].append((rows.cpu(), labels.cpu()))
        if dataloader_idx == 0:
            if bool((y != IGNORE).any()):
                self._log_source(module, logits, y)
            return
        if bool((y != IGNORE).any()):  # --oracle: the target masks, for the ORACLE line only
            oracle = self.metrics["oracle_miou"]
            oracle.update(logits.argmax(1), y)
            module.log("oracle_target_miou", oracle, on_epoch=True, batch_size=len(y),
                       add_dataloader_idx=False)  # fmt: skip

    def _log_source(self, module, logits, y) -> None:
        loss = F.cross_entropy(logits.float(), y, ignore_index=IGNORE)
        module.log("val_loss", loss, on_epoch=True, batch_size=len(y), sync_dist=True,
                   add_dataloader_idx=False)  # fmt: skip
        predicted = logits.argmax(1)
        module.val_acc.update(predicted, y)
        module.log("val_acc", module.val_acc, on_epoch=True, batch_size=len(y),
                   add_dataloader_idx=False)  # fmt: skip
        miou = self.metrics["val_miou"]
        miou.update(predicted, y)
        module.log("val_miou", miou, on_epoch=True, prog_bar=True, batch_size=len(y),
                   add_dataloader_idx=False)  # fmt: skip

    def validation_epoch_end(self, module) -> None:
        """Every validator's score over the sampled pixels (target labels never passed)."""
        source, target = self._outputs[0], self._outputs[1]
        self._outputs = {0: [], 1: []}
        if not source or not target:
            return
        source_logits = torch.cat([r for r, _ in source])
        target_logits = torch.cat([r for r, _ in target])
        # a pixel has no bottleneck: the validators that read features (snd, dev) read the
        # pixel logits
        data = ValidationData(
            source_features=source_logits,
            source_logits=source_logits,
            source_labels=torch.cat([y for _, y in source]),
            target_features=target_logits,
            target_logits=target_logits,
            seed=self.seed,
        )
        for name, score in score_all(data).items():
            module.log(metric_name(name), score, sync_dist=True)
