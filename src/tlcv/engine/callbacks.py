"""Behaviour that plugs into the engine as Lightning callbacks: freeze schedules, weights in
safetensors (best and last), and the per-epoch history CSV."""

from __future__ import annotations

import time
from pathlib import Path

import lightning as L
from torch import nn

from ..config import BN_MODES, UNFREEZE_MODES  # declared with the options
from ..io import save_tensors, write_text
from ..runs import rows_to_csv


class FreezeSchedule(L.Callback):
    """Head-only for ``freeze_epochs``, then unfreeze the backbone: all at once (fastai's
    fine_tune) or one layer group per epoch from the top (gradual unfreezing).

    Frozen groups get ``requires_grad=False`` (no gradient, no update, no weight decay) and their
    batch-norm layers stay in eval mode; ``bn="frozen"`` keeps every backbone BN in eval mode.
    """

    def __init__(self, freeze_epochs: int = 0, mode: str = "all", bn: str = "train"):
        if mode not in UNFREEZE_MODES:
            raise ValueError(f"unfreeze mode must be one of {UNFREEZE_MODES}")
        if bn not in BN_MODES:
            raise ValueError(f"bn mode must be one of {BN_MODES}")
        self.freeze_epochs, self.mode, self.bn = freeze_epochs, mode, bn

    def trainable_groups(self, epoch: int, n_groups: int) -> int:
        if epoch < self.freeze_epochs:
            return 0
        if self.mode == "all":
            return n_groups
        return min(n_groups, epoch - self.freeze_epochs + 1)

    def apply(self, module, epoch: int) -> None:
        if getattr(module.model, "backbone", None) is None:
            return  # a head over cached features: nothing to freeze
        net = module.model.backbone.net
        named = dict(net.named_parameters())
        groups = module.model.backbone.layer_groups()
        n_train = self.trainable_groups(epoch, len(groups))
        frozen_params: set[str] = set()
        for i, (_, params) in enumerate(groups):
            trainable = i >= len(groups) - n_train
            for p in params:
                named[p].requires_grad_(trainable)
                if not trainable:
                    frozen_params.add(p)
        frozen_modules = []
        for name, sub in net.named_modules():
            if isinstance(sub, nn.modules.batchnorm._BatchNorm):
                own = {f"{name}.{p}" for p, _ in sub.named_parameters(recurse=False)}
                if self.bn == "frozen" or (own and own <= frozen_params):
                    frozen_modules.append(sub)
        module.frozen_modules = frozen_modules
        module.train(module.training)

    def on_train_epoch_start(self, trainer, module) -> None:
        self.apply(module, trainer.current_epoch)


class RunArtifacts(L.Callback):
    """After each validation: append to history.csv, write last.safetensors, and
    best.safetensors when the monitored metric improved. Atomic writes throughout."""

    def __init__(self, run_dir: Path, monitor: str | None = "val_acc", mode: str = "max"):
        self.dir = Path(run_dir)
        self.monitor = monitor  # None: the last epoch is the chosen one
        self.mode = mode
        self.history: list[dict] = []
        self.best: float | None = None
        self.best_epoch: int | None = None
        self._t0 = time.perf_counter()
        self._elapsed_before = 0.0
        self._val_start, self._val_seconds = 0.0, 0.0

    def state_dict(self) -> dict:
        return {
            "history": self.history,
            "best": self.best,
            "best_epoch": self.best_epoch,
            "elapsed": self._elapsed(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.history = list(state["history"])
        self.best, self.best_epoch = state["best"], state["best_epoch"]
        self._elapsed_before = float(state.get("elapsed", 0.0))
        self._t0 = time.perf_counter()

    def _elapsed(self) -> float:
        return self._elapsed_before + time.perf_counter() - self._t0

    def on_validation_epoch_start(self, trainer, module) -> None:
        self._val_start = time.perf_counter()

    def on_validation_epoch_end(self, trainer, module) -> None:
        # how much of each epoch's time is validation (training speed is the rest)
        self._val_seconds += time.perf_counter() - self._val_start

    def on_train_epoch_end(self, trainer, module) -> None:
        if trainer.sanity_checking:
            return
        # Reading callback_metrics syncs them across DDP ranks (a collective): every rank must
        # take part, or the ranks' later collectives (the resume checkpoint) pair up wrongly.
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
        if not trainer.is_global_zero:
            return
        opt = trainer.optimizers[0]
        lrs = {g.get("name", str(i)): g["lr"] for i, g in enumerate(opt.param_groups)}
        row = {
            "epoch": trainer.current_epoch,
            "step": trainer.global_step,
            "seconds": round(self._elapsed(), 3),
            "val_seconds": round(self._val_seconds, 3),
            **{k: round(v, 6) for k, v in sorted(metrics.items())},
            "lr_head": lrs.get("head"),
            "lr_backbone_top": next(
                (
                    v
                    for k, v in reversed(list(lrs.items()))
                    if k not in ("head", "head/no_decay", "method")
                ),
                None,
            ),
        }
        self._val_seconds = 0.0
        self.history.append(row)
        write_text(self.dir / "history.csv", rows_to_csv(self.history))
        ckpt = self.dir / "checkpoints"
        weights = module.export_weights()
        meta = {"epoch": str(trainer.current_epoch)}
        save_tensors(ckpt / "last.safetensors", weights, meta)
        score = metrics.get(self.monitor) if self.monitor else None
        better = self.best is None or (
            score is not None and (score > self.best if self.mode == "max" else score < self.best)
        )
        if score is None or better:
            self.best = score
            self.best_epoch = trainer.current_epoch
            save_tensors(ckpt / "best.safetensors", weights, meta)
