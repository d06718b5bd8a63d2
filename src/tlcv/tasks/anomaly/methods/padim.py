"""PaDiM (Defard et al., ICPR 2021): one multivariate Gaussian per patch position, fitted on
the good images' features there; a patch's score is its Mahalanobis distance."""

from __future__ import annotations

import torch

from . import METHODS, AnomalyMethod

REGULARISATION = 0.01  # added to each covariance's diagonal (the paper's epsilon)


@METHODS.register("padim")
class Padim(AnomalyMethod):
    strides = (4, 8, 16)  # the paper's layers 1-3: fine positions
    pool = 1
    upsample = "nearest"

    def __init__(self, channels: torch.Tensor, mean: torch.Tensor, inverse: torch.Tensor):
        super().__init__()
        self.register_buffer("channels", channels)  # (d,) the channels kept
        self.register_buffer("mean", mean)  # (positions, d)
        self.register_buffer("inverse", inverse)  # (positions, d, d) inverse covariances

    @classmethod
    def fit(cls, batches, options: dict, seed: int):
        total = outer = channels = shift = None
        n = 0
        for batch in batches:  # streamed: sums and sums of outer products per position
            if channels is None:
                generator = torch.Generator().manual_seed(seed)
                keep = min(int(options.get("padim_dims", 100)), batch.shape[1])
                channels = torch.randperm(batch.shape[1], generator=generator)[:keep].sort()[0]
            x = batch[:, channels].flatten(2).permute(2, 0, 1).float()  # (positions, B, d)
            if shift is None:  # sums of shifted values: float32 without the cancellation
                shift = x.mean(1, keepdim=True)  # E[xx'] - mm' suffers when means dominate
            x = x - shift
            total = x.sum(1) if total is None else total + x.sum(1)
            product = torch.bmm(x.transpose(1, 2), x)
            outer = product if outer is None else outer + product
            n += batch.shape[0]
        if n < 2:
            from ....errors import TlcvError

            raise TlcvError("PaDiM needs at least 2 good training images (a covariance each)")
        centred = (total / n).double()
        cov = (outer.double() - n * torch.einsum("pi,pj->pij", centred, centred)) / (n - 1)
        mean = centred + shift[:, 0].double()
        cov += REGULARISATION * torch.eye(cov.shape[-1], dtype=cov.dtype)
        inverse = torch.linalg.inv(cov).float()
        spec = {"positions": mean.shape[0], "dims": mean.shape[1]}
        notes = [
            f"PaDiM: {mean.shape[1]} channels, a Gaussian at each of {mean.shape[0]} positions"
        ]
        return cls(channels, mean.float(), inverse), spec, notes

    @classmethod
    def rebuild(cls, spec: dict):
        p, d = int(spec["positions"]), int(spec["dims"])
        return cls(torch.zeros(d, dtype=torch.long), torch.zeros(p, d), torch.zeros(p, d, d))

    def forward(self, embedding: torch.Tensor):
        b, _, h, w = embedding.shape
        x = embedding.index_select(1, self.channels).flatten(2).permute(0, 2, 1)  # (B, P, d)
        delta = x - self.mean
        distance = torch.einsum("bpi,pij,bpj->bp", delta, self.inverse, delta)
        return distance.clamp_min(0.0).sqrt().reshape(b, h, w), None
