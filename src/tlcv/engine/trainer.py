"""The Lightning Trainer, configured once for every method: devices, DDP under torchrun,
mixed precision on CUDA (and bfloat16 on CPUs that have it, when asked), deterministic on
CPU, atomic checkpoints loaded without pickle code."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.strategies import DDPStrategy

from ..console import quiet_libraries
from ..errors import TlcvError
from ..io import write_error

quiet_libraries()  # Lightning's import set its loggers to INFO (banners, tips)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write to a temporary file and rename (a full disk keeps the previous checkpoint);
    load with ``weights_only=True`` so a checkpoint can never run code."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # pid: see remove_stale_temps
        try:
            torch.save(checkpoint, tmp)
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException as exc:
            tmp.unlink(missing_ok=True)
            if isinstance(exc, OSError):
                raise write_error(path, exc) from exc
            raise

    def load_checkpoint(self, path, map_location=None, weights_only=None) -> dict[str, Any]:
        return torch.load(path, map_location=map_location or "cpu", weights_only=True)


class ResumeCheckpoint(ModelCheckpoint):
    """checkpoints/last.ckpt written (atomically) at the end of every training epoch.

    Lightning writes ``save_last`` only in a step where a top-k checkpoint was also saved, so
    with ``save_top_k=0`` it appeared after the last epoch alone and a run killed midway had
    nothing to resume from. Subclassing ModelCheckpoint keeps Lightning's ordering: checkpoint
    callbacks run after every other callback, so the file holds their end-of-epoch state.
    """

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or trainer.fast_dev_run:
            return
        # the full training state (optimizer, loops) for resume; said explicitly, Lightning
        # otherwise logs "weights_only was not set" on every save
        trainer.save_checkpoint(Path(self.dirpath) / "last.ckpt", weights_only=False)


def cpu_has_bf16() -> bool:
    """Whether oneDNN runs bfloat16 natively here (AVX512-BF16 or AMX); elsewhere it emulates
    it, slower than 32-bit. torch exposes the check only as a private op: absent means no."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(precision: str, cuda: bool) -> str:
    """``--precision`` as Lightning names it. auto keeps CPU training in 32-bit: bfloat16 is
    about 2x faster on a CPU that has it (docs/benchmarks.md) but rounds activations to 8 bits
    of mantissa, so it is asked for, not assumed."""
    if precision == "32":
        return "32-true"
    if cuda:
        if precision == "bf16" and not torch.cuda.is_bf16_supported():
            raise TlcvError("--precision bf16: this GPU has no bfloat16; use --precision auto")
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    if precision == "bf16":
        if not cpu_has_bf16():
            raise TlcvError(
                "--precision bf16: this CPU has no native bfloat16 (AVX512-BF16 or AMX), "
                "so it would run slower than 32-bit; use --precision 32"
            )
        return "bf16-mixed"
    return "32-true"


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def build_trainer(
    run_dir: Path,
    *,
    epochs: int,
    callbacks: list[L.Callback],
    device: str = "auto",
    grad_clip: float | None = None,
    accumulate: int = 1,
    patience: int | None = None,
    stop_on: tuple[str, str] = ("val_loss", "min"),
    has_val: bool = True,
    progress: bool = False,
    deterministic: bool = False,
    precision: str = "auto",
) -> L.Trainer:
    """One Trainer for every method.

    ``deterministic`` forces torch's deterministic kernels. On CPU it cost 17% of training
    throughput here (docs/benchmarks.md) while the default kernels already reproduce runs bit
    for bit (the kill -9 / resume test compares weights exactly), so it is off by default.
    """
    cuda = torch.cuda.is_available() and device != "cpu"
    world = world_size()
    local = int(os.environ.get("LOCAL_WORLD_SIZE", world))
    if world > 1:
        # find_unused_parameters: frozen layer groups produce no gradients.
        strategy = DDPStrategy(
            find_unused_parameters=True, process_group_backend="nccl" if cuda else "gloo"
        )
    else:
        strategy = "auto"
    extra = list(callbacks)
    if has_val and patience:
        # ``stop_on``: the validation score early stopping watches (detectors give no val loss)
        extra.append(EarlyStopping(monitor=stop_on[0], patience=patience, mode=stop_on[1]))
    # Lightning's own checkpoint carries loop, optimiser and callback state for --resume.
    extra.append(
        ResumeCheckpoint(
            dirpath=run_dir / "checkpoints",
            save_last=False,
            save_top_k=0,
            save_on_train_epoch_end=True,
            enable_version_counter=False,
        )
    )
    precision = resolve_precision(precision, cuda)
    return L.Trainer(
        accelerator="gpu" if cuda else "cpu",
        devices=local if world > 1 else 1,
        num_nodes=max(1, world // max(1, local)),
        strategy=strategy,
        precision=precision,
        max_epochs=epochs,
        gradient_clip_val=grad_clip,
        accumulate_grad_batches=accumulate,
        deterministic=deterministic,
        benchmark=cuda,
        logger=False,
        callbacks=extra,
        plugins=[AtomicCheckpointIO()],
        use_distributed_sampler=False,  # EpochSampler shards by rank itself
        num_sanity_val_steps=0,
        enable_progress_bar=progress,
        enable_model_summary=False,
        limit_val_batches=1.0 if has_val else 0,
        default_root_dir=str(run_dir),
    )
