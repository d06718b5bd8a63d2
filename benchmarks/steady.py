"""Steady-state training throughput, timed the same way for a plain PyTorch loop and for
tlcv's engine: images/s over the second epoch, its first ``skip`` batches (worker warm-up)
left out. Shared by bench_finetune.py and bench_segmentation.py."""

from __future__ import annotations

import time
from collections.abc import Callable

import lightning as L


def plain_images_per_s(loader, step: Callable, skip: int = 2) -> float:
    """Two epochs of ``step(x, y)`` over ``loader``; images/s of the second one."""
    for epoch in range(2):
        loader.sampler.set_epoch(epoch)
        for i, (x, y, _) in enumerate(loader):
            if epoch == 1 and i == skip:
                start, n = time.perf_counter(), 0
            step(x, y)
            if epoch == 1 and i >= skip:
                n += len(y)
    return n / (time.perf_counter() - start)


class StepTimer(L.Callback):
    """The same measurement inside a Lightning fit (read ``images_per_s`` afterwards)."""

    def __init__(self, skip: int = 2):
        self.skip = skip

    def on_train_batch_start(self, trainer, module, batch, i):
        if trainer.current_epoch == 1 and i == self.skip:
            self.start, self.n = time.perf_counter(), 0

    def on_train_batch_end(self, trainer, module, outputs, batch, i):
        if trainer.current_epoch == 1 and i >= self.skip:
            self.n += len(batch[1])
            self.end = time.perf_counter()

    @property
    def images_per_s(self) -> float:
        return self.n / (self.end - self.start)
