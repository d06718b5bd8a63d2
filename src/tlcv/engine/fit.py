"""Running the engine for a strategy: fit (or resume), check DDP ranks, restore the best epoch."""

from __future__ import annotations

from pathlib import Path

import lightning as L
from safetensors.torch import load_file

from ..errors import TlcvError
from .module import TransferModule


def fit(
    trainer: L.Trainer,
    module: TransferModule,
    train_loader,
    val_loader,
    run_dir: Path,
    resume: bool,
) -> None:
    """``trainer.fit``, resuming from the run's last checkpoint (loaded weights_only)."""
    ckpt = None
    if resume:
        ckpt = run_dir / "checkpoints" / "last.ckpt"
        if not ckpt.is_file():
            raise TlcvError(
                f"{run_dir} has no checkpoint to resume from",
                path=str(run_dir),
                hint="it stopped before finishing one epoch: start it again without --resume "
                "(add --overwrite)",
            )
    if ckpt is not None:
        _check_checkpoint(ckpt)
    try:
        trainer.fit(module, train_loader, val_loader, ckpt_path=ckpt, weights_only=True)
    except SystemExit as exc:  # Lightning turns Ctrl-C into SystemExit after a clean shutdown
        raise KeyboardInterrupt(f"resume with: tlcv train --resume {run_dir}") from exc
    if trainer.world_size > 1:
        check_ranks_agree(module, trainer)


def _check_checkpoint(ckpt: Path) -> None:
    """A damaged last.ckpt is named before Lightning fails deep inside its loader."""
    import torch

    try:
        torch.load(ckpt, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # noqa: BLE001 - truncated zip, foreign pickle, ...
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:120]
        raise TlcvError(
            f"{ckpt} is damaged and cannot be resumed from ({first})",
            path=str(ckpt),
            hint="start the run again without --resume (add --overwrite); finished epochs in "
            "it cannot be recovered",
        ) from exc


def check_ranks_agree(module: TransferModule, trainer: L.Trainer) -> None:
    """DDP must leave every rank with the same weights; a silent divergence is a bug."""
    from ..backbones import state_fingerprint
    from ..distributed import DistInfo, gather_objects

    prints = gather_objects(
        state_fingerprint(module.model), DistInfo(trainer.global_rank, trainer.world_size)
    )
    if len(set(prints)) != 1:
        raise TlcvError(
            "DDP ranks ended training with different weights",
            hint="please report this with the run's config.yaml",
        )


def restore_best(module: TransferModule, run_dir: Path) -> bool:
    """Load checkpoints/best.safetensors (the epoch chosen on validation) into the model."""
    best = Path(run_dir) / "checkpoints" / "best.safetensors"
    if not best.is_file():
        return False
    module.import_weights(load_file(str(best)))
    return True
