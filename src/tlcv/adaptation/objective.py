"""Domain adaptation on the one engine: paired source/target batches and the objective that
adds the methods' loss terms to the source cross-entropy."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from torchmetrics.classification import MulticlassAccuracy

from ..engine.data import EpochSampler, collate_labelled
from ..engine.module import Objective
from ..engine.seeding import seed_of
from .methods import AdaptationMethod, DomainBatch
from .validators import ValidationData, metric_name, score_all


class FeatureRows(Dataset):
    """Cached feature rows in the engine's sample format: (features, label or -1, no error)."""

    def __init__(self, features: torch.Tensor, labels: list[int] | None = None):
        self.features = features
        self.labels = labels

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, key):
        index = key[0] if isinstance(key, tuple) else key
        return self.features[index], -1 if self.labels is None else self.labels[index], None


class PairedDomains(Dataset):
    """(index, epoch) -> (source sample, target sample). An epoch covers the larger domain once;
    the smaller one cycles, the target in its own seeded order per epoch."""

    def __init__(self, source: Dataset, target: Dataset, seed: int):
        self.source, self.target, self.seed = source, target, seed
        self._order: tuple[int, list[int]] | None = None

    def __len__(self) -> int:
        return max(len(self.source), len(self.target))

    def _target_order(self, epoch: int) -> list[int]:
        if self._order is None or self._order[0] != epoch:
            gen = torch.Generator().manual_seed(seed_of(self.seed, epoch, 7) % (2**63))
            self._order = (epoch, torch.randperm(len(self.target), generator=gen).tolist())
        return self._order[1]

    def __getitem__(self, key):
        index, epoch = key
        order = self._target_order(epoch)
        return (
            self.source[(index % len(self.source), epoch)],
            self.target[(order[index % len(self.target)], epoch)],
        )


def collate_pairs(samples):
    xs, ys, bad_s = collate_labelled([s for s, _ in samples])
    xt, _, bad_t = collate_labelled([t for _, t in samples])
    return xs, ys, xt, bad_s + bad_t


def paired_loader(
    source: Dataset, target: Dataset, *, batch_size: int, seed: int, num_workers: int = 0
) -> DataLoader:
    paired = PairedDomains(source, target, seed)
    from ..data.loading import lower_priority

    return DataLoader(
        paired,
        batch_size=min(batch_size, len(paired)),
        sampler=EpochSampler(len(paired), seed, shuffle=True),
        collate_fn=collate_pairs,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
        worker_init_fn=lower_priority if num_workers else None,
        # Batch norm (bottleneck, discriminators) needs more than one sample per batch.
        drop_last=len(paired) > batch_size,
    )


def eval_loader(dataset: Dataset, *, batch_size: int, num_workers: int = 0) -> DataLoader:
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=EpochSampler(len(dataset), 0, shuffle=False),
        collate_fn=collate_labelled,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
    )


def training_progress(module) -> float:
    """The share of training steps done, 0..1 (the methods' warm-ups read it)."""
    total_steps = max(1, int(module.trainer.estimated_stepping_batches))
    return min(1.0, module.global_step / total_steps)


def add_method_terms(
    methods: list[AdaptationMethod], batch: DomainBatch, task_loss: torch.Tensor, name: str
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The task's loss plus every method's trainable terms, and all of them for the log
    (``name``: the task loss's own log key)."""
    logs: dict[str, torch.Tensor] = {name: task_loss.detach()}
    loss = task_loss
    for method in methods:
        for key, value in method.loss(batch).items():
            if value.requires_grad:
                loss = loss + value
            logs[key] = value.detach()
    return loss, logs


class AdaptObjective(Objective):
    """Source cross-entropy + every method's terms. ``frozen``: batches hold cached backbone
    features and the module's model is the head; otherwise images through the full model.

    Validation loader 0 is the held-out source split (val_acc, val_loss); loader 1, when given,
    is the target: its mean prediction entropy (an unsupervised selection criterion) and, only
    when the target loader carries labels (``--oracle``), the oracle accuracy.
    """

    def __init__(
        self,
        methods: list[AdaptationMethod],
        num_classes: int,
        *,
        frozen: bool,
        label_smoothing: float = 0.0,
        seed: int = 0,
    ):
        super().__init__(label_smoothing)
        self.methods, self.frozen = methods, frozen
        for method in methods:
            self.parts[method.name.replace("+", "_")] = method
        self.parts["oracle_acc"] = MulticlassAccuracy(num_classes, average="micro")
        self.seed = seed
        self._outputs: dict[int, list] = {0: [], 1: []}

    def _head(self, module):
        return module.model if self.frozen else module.model.head

    def _embed(self, module, x: torch.Tensor) -> torch.Tensor:
        if self.frozen:
            return x.to(module.device)
        return module.model.backbone(module.normalize_images(x))

    def forward(self, module, batch):
        x, y, bad = batch
        module.skipped.extend(bad)
        if len(x) == 0:
            return None, None
        return self._head(module)(self._embed(module, x)), y

    def loss(self, module, batch):
        xs, ys, xt, bad = batch
        module.skipped.extend(bad)
        if len(xs) < 2 or len(xt) < 2:
            return None, None, None, {}
        head = self._head(module)
        f = head.features(self._embed(module, torch.cat([xs, xt])))
        logits = head.classifier(f)
        n = len(xs)
        cls_loss = F.cross_entropy(logits[:n], ys, label_smoothing=self.label_smoothing)
        domain = DomainBatch(f[:n], f[n:], logits[:n], logits[n:], training_progress(module))
        loss, logs = add_method_terms(self.methods, domain, cls_loss, "cls_loss")
        return loss, logits[:n], ys, logs

    def validate(self, module, batch, dataloader_idx: int = 0) -> None:
        """Loader 0 (held-out source): the usual val_acc / val_loss. Both loaders' bottleneck
        features and logits are kept for the validators at the epoch's end."""
        x, y, bad = batch
        module.skipped.extend(bad)
        if len(x) == 0:
            return
        head = self._head(module)
        features = head.features(self._embed(module, x))
        logits = head.classifier(features)
        self._outputs[dataloader_idx].append(
            (features.float().cpu(), logits.float().cpu(), y.cpu())
        )
        if dataloader_idx == 0:
            self.log_validation(module, logits, y)
            return
        probs = F.softmax(logits.float(), dim=1)
        entropy = -(probs * torch.log(probs + 1e-8)).sum(dim=1).mean()
        n = len(logits)
        module.log("target_entropy", entropy, on_epoch=True, batch_size=n, add_dataloader_idx=False)
        if bool((y >= 0).all()):
            self.parts["oracle_acc"](logits.argmax(1), y)
            module.log(
                "oracle_target_acc",
                self.parts["oracle_acc"],
                on_epoch=True,
                batch_size=n,
                add_dataloader_idx=False,
            )

    def validation_epoch_end(self, module) -> None:
        """Every validator's score of this epoch, from the outputs kept by ``validate``
        (target labels, even when the loader carries them for the oracle, are not passed)."""
        source, target = self._outputs[0], self._outputs[1]
        self._outputs = {0: [], 1: []}
        if not source or not target:
            return
        data = ValidationData(
            source_features=torch.cat([f for f, _, _ in source]),
            source_logits=torch.cat([g for _, g, _ in source]),
            source_labels=torch.cat([y for _, _, y in source]),
            target_features=torch.cat([f for f, _, _ in target]),
            target_logits=torch.cat([g for _, g, _ in target]),
            seed=self.seed,
        )
        for name, score in score_all(data).items():
            module.log(metric_name(name), score, sync_dist=True)
