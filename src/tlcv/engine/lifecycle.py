"""The life of one run, written once for every strategy and task.

    life = RunLifecycle(cfg.out, overwrite=cfg.overwrite, resume=cfg.resume)   # rank, folder
    life.begin(cfg.to_dict(), resolved)           # config.yaml (rank 0), folder locked
    trained = life.train(module, train, val, ...) # engine fit / resume / best epoch (trained
                                                  # strategies only; None on ranks > 0)
    return life.finish(Outcome(...))              # skipped, notes, metrics, model -> Run

What differs between strategies (their data, head, objective, how they score) stays in the
strategy; everything a run folder promises (atomic files, a lock, resume from the last
finished epoch, the validation-chosen epoch, a fingerprint of trained weights, a reloadable
model) happens here, so a new task or strategy inherits it by using this class.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import lightning as L
from torch import nn

from ..distributed import DistInfo, init_from_env
from ..runs import Run, RunWriter, load_run
from .callbacks import RunArtifacts
from .fit import fit, restore_best
from .trainer import build_trainer


@dataclass
class Trained:
    """What the engine leaves: the callback that recorded the epochs, how many ran."""

    artifacts: RunArtifacts
    epochs_run: int
    restored_best: bool

    def selection(self) -> dict:
        return {
            "best_epoch": self.artifacts.best_epoch,
            "monitor": self.artifacts.monitor,
            "epochs_run": self.epochs_run,
        }


@dataclass
class Outcome:
    """Everything a finished run writes besides its config (rank 0 only)."""

    model: nn.Module  # .backbone (a registry Backbone) + .head
    classes: list[str]
    head_spec: dict
    info: dict  # strategy / task facts for model.json
    metrics: dict[str, dict]
    notes: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


class RunLifecycle:
    """One run folder from the free-folder check to the reloaded ``Run``."""

    def __init__(self, out: str | Path, *, overwrite: bool = False, resume: bool = False):
        self.run_dir = Path(out).expanduser()
        self.resume = bool(resume)
        # torchrun's environment names the rank before any process group exists (Lightning
        # creates its own for DDP); strategies that shard work themselves call join_group().
        self.rank = int(os.environ.get("RANK", "0"))
        self.writer: RunWriter | None = None
        self.task: str | None = None
        if self.is_main and not self.resume:
            RunWriter.check_free(self.run_dir, overwrite)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def join_group(self) -> DistInfo:
        """The torchrun process group, for work split across ranks outside Lightning."""
        return init_from_env()

    def begin(self, config: dict, resolved: dict) -> None:
        """Lock the folder and write the resolved configuration (rank 0)."""
        self.task = config.get("task")  # model.json records it: the run reloads as its task
        if self.is_main:
            self.writer = RunWriter(self.run_dir, overwrite=True)
            self.writer.config({**config, "resolved": resolved})

    def train(
        self,
        module,
        train_loader,
        val_loader,
        *,
        monitor: str | None,
        mode: str = "max",
        callbacks: list | None = None,
        before_fit: Callable[[L.Trainer], None] | None = None,
        **trainer_options,
    ) -> Trained | None:
        """Fit on the one engine (resuming when asked), then load the epoch ``monitor`` chose.

        ``before_fit(trainer)``: work on the configured trainer first (the lr finder).
        Returns None on ranks other than 0: they have nothing left to write.
        """
        artifacts = RunArtifacts(self.run_dir, monitor=monitor, mode=mode)
        trainer = build_trainer(
            self.run_dir,
            has_val=val_loader is not None,
            callbacks=[*(callbacks or []), artifacts],
            **trainer_options,
        )
        if before_fit is not None:
            before_fit(trainer)
        fit(trainer, module, train_loader, val_loader, self.run_dir, self.resume)
        if trainer.global_rank != 0:
            return None
        restored = monitor is not None and restore_best(module, self.run_dir)
        return Trained(artifacts, trainer.current_epoch, restored)

    def finish(self, outcome: Outcome) -> Run:
        """Write skipped files, notes, metrics and the model; return the reloaded run."""
        assert self.writer is not None, "finish() runs on rank 0 after begin()"
        self.writer.skipped(list(dict.fromkeys(outcome.skipped)))
        self.writer.notes(outcome.notes)
        self.writer.metrics(outcome.metrics)
        info = {"task": self.task, **outcome.info} if self.task else outcome.info
        self.writer.model(outcome.model.cpu(), outcome.classes, outcome.head_spec, info)
        run = load_run(self.run_dir)
        run.loaded.update(metrics=outcome.metrics, notes=list(outcome.notes))
        return run
