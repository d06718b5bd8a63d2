"""The one LightningModule. What differs between transfer methods is the Objective plugged into
it (a loss over a batch); the loop, optimiser, schedule and logging are written once here."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from ..config import OPTIMIZERS
from ..data import normalize
from ..errors import TlcvError
from ..heads.model import ClassifierModel
from .seeding import seed_of

NAN_CHECK_EVERY = 32  # steps between checks that the loss is finite


@dataclass
class Recipe:
    """Optimisation hyper-parameters shared by fine-tuning, scratch, adaptation and sequences."""

    epochs: int = 10
    lr: float = 1e-3  # head learning rate
    backbone_lr_ratio: float = 0.1  # pretrained layers learn at this fraction of the head's lr
    layer_decay: float = 1.0  # extra factor per layer group below the top one
    optimizer: str = "adamw"
    weight_decay: float = 0.01
    momentum: float = 0.9
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.1
    seed: int = 0

    @classmethod
    def from_config(cls, cfg) -> Recipe:
        """The recipe fields of any run config (TrainConfig, AdaptConfig: same names)."""
        return cls(**{f.name: getattr(cfg, f.name) for f in fields(cls) if hasattr(cfg, f.name)})


def make_optimizer(recipe: Recipe, groups: list[dict]) -> torch.optim.Optimizer:
    """AdamW or SGD with the fused kernel (one kernel for all parameters instead of a few per
    tensor: 5 ms of a 30 ms LeNet step on CPU) wherever this torch offers it."""
    if recipe.optimizer == "adamw":
        kind, extra = torch.optim.AdamW, {}
    else:
        kind, extra = torch.optim.SGD, {"momentum": recipe.momentum, "nesterov": True}
    try:
        return kind(groups, lr=recipe.lr, fused=True, **extra)
    except (RuntimeError, TypeError, ValueError):  # a device or dtype without fused kernels
        return kind(groups, lr=recipe.lr, **extra)


class Objective:
    """How a batch becomes logits and a loss. The default reads image batches (x, y, bad);
    sequence and domain-adaptation methods subclass it. The loop itself never changes."""

    def __init__(self, label_smoothing: float = 0.0):
        self.label_smoothing = label_smoothing
        # Trainable parts of the method itself (e.g. a domain discriminator): optimised at the
        # head's learning rate, checkpointed for resume, not part of the saved model.
        self.parts: nn.ModuleDict = nn.ModuleDict()
        # torchmetrics the objective logs (moved to the device with the module, not trained).
        self.metrics: nn.ModuleDict = nn.ModuleDict()

    def forward(self, module: TransferModule, batch):
        """(logits, labels) for a batch, or (None, None) when it held no readable sample."""
        x, y, bad = batch
        module.skipped.extend(bad)
        if len(x) == 0:
            return None, None
        return module.model(module.normalize_images(x)), y

    def loss(self, module: TransferModule, batch):
        logits, y = self.forward(module, batch)
        if logits is None:
            return None, None, None, {}
        loss = F.cross_entropy(logits, y, label_smoothing=self.label_smoothing)
        return loss, logits, y, {}

    def validation_epoch_end(self, module: TransferModule) -> None:
        """Log what only a whole epoch gives (detection's mAP); nothing by default."""

    def validate(self, module: TransferModule, batch, dataloader_idx: int = 0) -> None:
        """Log validation metrics; a method with extra validation loaders overrides this."""
        logits, y = self.forward(module, batch)
        if logits is not None:
            self.log_validation(module, logits, y)

    def log_validation(self, module: TransferModule, logits: torch.Tensor, y: torch.Tensor):
        """val_loss and val_acc of one labelled validation batch."""
        module.val_acc.update(logits.argmax(1), y)
        module.log(
            "val_loss",
            F.cross_entropy(logits, y),
            on_epoch=True,
            prog_bar=True,
            batch_size=len(y),
            sync_dist=True,
            add_dataloader_idx=False,
        )
        module.log(
            "val_acc",
            module.val_acc,
            on_epoch=True,
            prog_bar=True,
            batch_size=len(y),
            add_dataloader_idx=False,
        )


class TransferModule(L.LightningModule):
    def __init__(
        self,
        model: ClassifierModel,
        num_classes: int,
        recipe: Recipe,
        objective: Objective | None = None,
        ignore_index: int | None = None,
    ):
        """``ignore_index``: a label value left out of the accuracies (void pixels)."""
        super().__init__()
        self.model = model
        self.recipe = recipe
        self.objective = objective or Objective(recipe.label_smoothing)
        self.objective_parts = self.objective.parts
        self.objective_metrics = self.objective.metrics
        # a one-class detector (every box a "sign") is valid; torchmetrics wants >= 2 classes
        counted = max(num_classes, 2)
        self.train_acc = MulticlassAccuracy(counted, average="micro", ignore_index=ignore_index)
        self.val_acc = MulticlassAccuracy(counted, average="micro", ignore_index=ignore_index)
        self.skipped: list[tuple[str, str]] = []
        self.frozen_modules: list[nn.Module] = []  # kept in eval mode (BN statistics fixed)
        self._epoch_sums: dict[str, torch.Tensor] = {}
        self._epoch_count, self._has_train_acc = 0, False

    # -- batches ---------------------------------------------------------------------------
    def normalize_images(self, x: torch.Tensor) -> torch.Tensor:
        return normalize(x, self.model.backbone.preprocessing, self.device, channels_last=True)

    def training_step(self, batch, batch_idx):
        loss, logits, y, extra = self.objective.loss(self, batch)
        if loss is None:
            return None
        if batch_idx % NAN_CHECK_EVERY == 0:  # a host sync: not every step
            self._check_finite(loss)
        n = len(y)
        if logits is not None:  # detection has no per-sample class scores to count
            if logits.ndim == 4:  # per-pixel scores: training accuracy on a 1-in-16 pixel grid
                logits, y = logits[:, :, ::4, ::4], y[:, ::4, ::4]
            # update only: the epoch value is computed once at the end (calling the metric
            # would also compute a per-batch value nobody reads)
            self.train_acc.update(logits.argmax(1), y)
            self._has_train_acc = True
        self._add_to_epoch({"train_loss": loss, **extra}, n)
        return loss

    # -- epoch means: summed on the device per step, logged once per epoch ------------------
    # (a Lightning ``self.log`` per value per step cost more than a LeNet step itself)
    def _add_to_epoch(self, values: dict[str, torch.Tensor], n: int) -> None:
        for key, value in values.items():
            weighted = value.detach().float() * n
            self._epoch_sums[key] = (
                self._epoch_sums[key] + weighted if key in self._epoch_sums else weighted
            )
        self._epoch_count += n

    def _check_finite(self, loss: torch.Tensor, where: str | None = None) -> None:
        if not torch.isfinite(loss):
            raise TlcvError(
                f"training loss became {loss.item()} at epoch {self.current_epoch}, "
                f"{where or f'step {self.global_step}'}",
                hint=f"lower --lr (now {self.recipe.lr}) or set --grad-clip; the weights of the "
                "last finished epoch are kept in the run's checkpoints/ folder",
            )

    def on_train_epoch_start(self) -> None:
        self._epoch_sums, self._epoch_count, self._has_train_acc = {}, 0, False

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        # the last batch, not on_train_epoch_end: callbacks (the history) read the values
        # before the module's own epoch-end hook runs
        if not self.trainer.is_last_batch:
            return
        count = max(1, self._epoch_count)
        means = {key: total / count for key, total in self._epoch_sums.items()}
        if "train_loss" in means:
            self._check_finite(means["train_loss"], "in the epoch's mean")
        # logged once per epoch, so the batch size weights nothing; giving it spares Lightning
        # guessing it from a detection batch (lists of images and box dicts), with a warning
        once = dict(on_step=False, on_epoch=True, batch_size=1)
        for key, value in means.items():
            self.log(key, value, prog_bar=key == "train_loss", sync_dist=True, **once)
        if self._has_train_acc:
            self.log("train_acc", self.train_acc, **once)

    def validation_step(self, batch, batch_idx, dataloader_idx: int = 0):
        self.objective.validate(self, batch, dataloader_idx)

    def on_validation_epoch_end(self) -> None:
        self.objective.validation_epoch_end(self)

    def export_weights(self) -> dict[str, torch.Tensor]:
        """Tensors as a run folder stores them: backbone.* (when trained here) and head.*."""
        backbone = getattr(self.model, "backbone", None)
        if backbone is None:
            return {f"head.{k}": v for k, v in self.model.state_dict().items()}
        tensors = {f"backbone.{k}": v for k, v in backbone.net.state_dict().items()}
        tensors.update({f"head.{k}": v for k, v in self.model.head.state_dict().items()})
        return tensors

    def import_weights(self, tensors: dict[str, torch.Tensor]) -> None:
        """Inverse of ``export_weights``."""
        head = {k[5:]: v for k, v in tensors.items() if k.startswith("head.")}
        backbone = getattr(self.model, "backbone", None)
        if backbone is None:
            self.model.load_state_dict(head)
            return
        backbone.net.load_state_dict(
            {k[9:]: v for k, v in tensors.items() if k.startswith("backbone.")}
        )
        self.model.head.load_state_dict(head)

    def on_fit_start(self) -> None:
        # Backbones are built in eval mode for inference; training needs BN/dropout active.
        self.train()
        # Batches arrive channels_last (normalize): convolution weights in the same layout
        # spare oneDNN / cuDNN a layout conversion per layer (measured in bench_segmentation).
        self.model.to(memory_format=torch.channels_last)

    def on_train_batch_start(self, batch, batch_idx: int) -> None:
        # Dropout & co draw from the global RNG: reseed per batch from (epoch, batch, rank),
        # so a resumed run draws what the uninterrupted one drew. Seeding per epoch was not
        # enough: Lightning consumes the global RNG in a different order when it restarts an
        # epoch loop (adaptation runs with dropout resumed to different weights).
        seed = seed_of(self.recipe.seed, self.current_epoch, batch_idx, self.global_rank) % (2**63)
        # the device's generator only (torch.manual_seed also queues a CUDA reseed that
        # records a stack trace, ~1 ms a call on CUDA builds of torch)
        torch.default_generator.manual_seed(seed)
        if self.device.type == "cuda":
            torch.cuda.manual_seed(seed)

    def train(self, mode: bool = True):
        super().train(mode)
        for module in self.frozen_modules:
            module.eval()
        return self

    # -- optimisation ----------------------------------------------------------------------
    def param_groups(self) -> list[dict]:
        """Head at ``lr``; backbone group i of G at lr * ratio * layer_decay**(G-1-i).

        Norm weights and biases get no weight decay (the usual practice for fine-tuning).
        """
        r = self.recipe
        extra = [p for p in self.objective_parts.parameters() if p.requires_grad]
        method = (
            [{"params": extra, "lr": r.lr, "weight_decay": r.weight_decay, "name": "method"}]
            if extra
            else []
        )
        if getattr(self.model, "backbone", None) is None:  # a head over cached features
            return [
                {
                    "params": [p for p in self.model.parameters() if p.requires_grad],
                    "lr": r.lr,
                    "weight_decay": r.weight_decay,
                    "name": "head",
                },
                *method,
            ]
        named = dict(self.model.backbone.net.named_parameters())
        groups = self.model.backbone.layer_groups()
        spec = [
            (
                name,
                [named[p] for p in params],
                r.lr * r.backbone_lr_ratio * r.layer_decay ** (len(groups) - 1 - i),
            )
            for i, (name, params) in enumerate(groups)
        ]
        spec.append(("head", list(self.model.head.parameters()), r.lr))
        out = []
        for name, params, lr in spec:
            decay = [p for p in params if p.ndim > 1]
            no_decay = [p for p in params if p.ndim <= 1]
            for suffix, ps, wd in (("", decay, r.weight_decay), ("/no_decay", no_decay, 0.0)):
                if ps:
                    out.append({"params": ps, "lr": lr, "weight_decay": wd, "name": name + suffix})
        return out + method

    def configure_optimizers(self):
        r = self.recipe
        groups = self.param_groups()
        if r.optimizer not in OPTIMIZERS:
            raise TlcvError(f"unknown optimizer {r.optimizer!r}", hint="use adamw or sgd")
        opt = make_optimizer(r, groups)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warmup = min(total - 1, int(round(r.warmup_epochs * total / max(1, r.epochs))))

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / (warmup + 1)
            progress = (step - warmup) / max(1, total - warmup)
            return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
