"""Seeds derived from (seed, epoch, index, ...): random draws that depend only on what is being
drawn for, not on which process draws it or whether the run was resumed."""

from __future__ import annotations

import hashlib
from contextlib import contextmanager

import torch


def seed_of(*parts: int) -> int:
    """A 64-bit seed from the parts (stable across processes and Python versions)."""
    return int.from_bytes(hashlib.blake2b(repr(parts).encode(), digest_size=8).digest(), "little")


@contextmanager
def seeded(*parts: int):
    """Random draws inside depend only on ``parts`` (seed, epoch, index): augmentation is the
    same whichever worker decodes the image and whether the run was resumed."""
    with torch.random.fork_rng(devices=[]):
        # CPU generator only: torch.manual_seed also queues a CUDA reseed that records a
        # stack trace, 1 ms per image on CUDA builds of torch.
        torch.default_generator.manual_seed(seed_of(*parts) % (2**63))
        yield
