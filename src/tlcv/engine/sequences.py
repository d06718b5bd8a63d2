"""Sequence batches for the engine: cached per-frame features -> (B, T, D) + true lengths."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from ..video.sampling import sample_indices
from .data import EpochSampler, _seed_of
from .module import Objective


class FeatureSequences(Dataset):
    """(index, epoch) -> (frames (t, D), label); random windows are seeded per clip and epoch."""

    def __init__(
        self,
        sequences: list[np.ndarray],
        labels: list[int],
        *,
        frames: int,
        sampling: str,
        stride: int,
        seed: int,
        prefix: int | None = None,
    ):
        self.sequences, self.labels = sequences, labels
        self.frames, self.sampling, self.stride = frames, sampling, stride
        self.seed, self.prefix = seed, prefix

    def __len__(self) -> int:
        return len(self.sequences)

    def __getitem__(self, key):
        index, epoch = key if isinstance(key, tuple) else (key, 0)
        seq = self.sequences[index]
        rng = np.random.default_rng(_seed_of(self.seed, epoch, index) % (2**63))
        idx = sample_indices(
            len(seq), self.frames, self.sampling, stride=self.stride, rng=rng, prefix=self.prefix
        )
        return torch.from_numpy(seq[idx]), self.labels[index]


def pad_batch(samples):
    """Pad to the longest clip in the batch; lengths let the RNN pack, so padding is unseen."""
    lengths = torch.tensor([len(x) for x, _ in samples], dtype=torch.long)
    feats = torch.zeros(len(samples), int(lengths.max()), samples[0][0].shape[-1])
    for i, (x, _) in enumerate(samples):
        feats[i, : len(x)] = x
    return feats, lengths, torch.tensor([y for _, y in samples], dtype=torch.long)


def sequence_loader(
    dataset: FeatureSequences, *, batch_size: int, shuffle: bool, seed: int
) -> DataLoader:
    return DataLoader(
        dataset,
        batch_size=min(batch_size, max(1, len(dataset))),
        sampler=EpochSampler(len(dataset), seed, shuffle),
        collate_fn=pad_batch,
    )


class SequenceObjective(Objective):
    """Cross-entropy on clip logits; the single-frame baseline learns from every frame."""

    def forward(self, module, batch):
        feats, lengths, y = batch
        return module.model(feats, lengths), y

    def loss(self, module, batch):
        feats, lengths, y = batch
        head = module.model
        logits = head(feats, lengths)
        if head.kind == "frame":
            frame_logits, mask = head.frame_loss_inputs(feats, lengths)
            targets = y[:, None].expand(mask.shape)[mask]
            loss = F.cross_entropy(frame_logits, targets, label_smoothing=self.label_smoothing)
        else:
            loss = F.cross_entropy(logits, y, label_smoothing=self.label_smoothing)
        return loss, logits, y, {}
