"""PatchCore (Roth et al., CVPR 2022): a memory bank of locally aware patch features of good
images, thinned by a greedy k-centre coreset; a patch's score is its distance to the nearest
bank entry, an image's the largest patch score re-weighted by how dense the bank is there."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..search import greedy_coreset, nearest, squared_norms
from . import METHODS, AnomalyMethod


@METHODS.register("patchcore")
class PatchCore(AnomalyMethod):
    strides = (8, 16)  # the paper's layer 2 + layer 3 of a ResNet: mid-level, not ImageNet-specific
    pool = 3  # 3x3 neighbourhood averaged around each patch

    def __init__(self, bank: torch.Tensor, neighbours: int):
        super().__init__()
        self.neighbours = int(neighbours)
        self.register_buffer("bank", bank.contiguous())
        self.register_buffer("bank_sq", squared_norms(bank))

    @classmethod
    def fit(cls, batches, options: dict, seed: int):
        patches = torch.cat([b.permute(0, 2, 3, 1).reshape(-1, b.shape[1]) for b in batches])
        share = float(options.get("coreset", 0.1))
        count = max(1, round(share * patches.shape[0]))
        notes = []
        if count < patches.shape[0]:
            notes.append(
                f"memory bank: {count} of {patches.shape[0]} patch features "
                f"(greedy coreset, {share:g})"
            )
            patches = patches[greedy_coreset(patches, count, seed=seed)]
        neighbours = min(int(options.get("neighbours", 9)), patches.shape[0])
        spec = {"bank_size": patches.shape[0], "dim": patches.shape[1], "neighbours": neighbours}
        return cls(patches, neighbours), spec, notes

    @classmethod
    def rebuild(cls, spec: dict):
        return cls(torch.zeros(int(spec["bank_size"]), int(spec["dim"])), spec["neighbours"])

    def forward(self, embedding: torch.Tensor):
        b, c, h, w = embedding.shape
        patches = embedding.permute(0, 2, 3, 1).reshape(-1, c)
        d2, index = nearest(patches, self.bank, self.bank_sq, k=1)
        scores = d2[:, 0].sqrt().reshape(b, h * w)
        index = index[:, 0].reshape(b, h * w)
        # the image's score: its worst patch, re-weighted (paper eq. 7) by the bank's density
        # around that patch's nearest entry: an outlier among sparse entries counts less
        worst = scores.argmax(1, keepdim=True)
        top = scores.gather(1, worst)[:, 0]
        if self.neighbours > 1:
            worst_patch = patches.reshape(b, h * w, c).gather(1, worst[..., None].expand(b, 1, c))
            anchor = self.bank[index.gather(1, worst)[:, 0]]
            _, support = nearest(anchor, self.bank, self.bank_sq, k=self.neighbours)
            spread = torch.linalg.vector_norm(worst_patch - self.bank[support], dim=2)
            top = top * (1.0 - F.softmax(spread, dim=1)[:, 0])
        return scores.reshape(b, h, w), top
