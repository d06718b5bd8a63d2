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
    try:
        trainer.fit(module, train_loader, val_loader, ckpt_path=ckpt, weights_only=True)
    except SystemExit as exc:  # Lightning turns Ctrl-C into SystemExit after a clean shutdown
        raise KeyboardInterrupt(f"resume with: tlcv train --resume {run_dir}") from exc
    if trainer.world_size > 1:
        check_ranks_agree(module, trainer)


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
