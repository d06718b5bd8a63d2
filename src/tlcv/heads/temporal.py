"""Temporal heads over per-frame features (B, T, D) with true lengths (B,): LSTM / GRU /
bidirectional (packed sequences, so padding never leaks in), temporal mean pooling, and a
single-frame baseline."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from ..tasks.clips.options import FRAME_PICKS, TEMPORAL_HEADS  # declared with the options


class TemporalHead(nn.Module):
    def __init__(
        self,
        kind: str,
        in_features: int,
        num_classes: int,
        *,
        hidden: int = 256,
        layers: int = 1,
        dropout: float = 0.2,
        frame_pick: str = "middle",
    ):
        super().__init__()
        if kind not in TEMPORAL_HEADS:
            raise ValueError(f"unknown temporal head {kind!r}; choose one of {TEMPORAL_HEADS}")
        if frame_pick not in FRAME_PICKS:
            raise ValueError(f"frame_pick must be one of {FRAME_PICKS}")
        self.kind, self.frame_pick = kind, frame_pick
        self.config = {
            "kind": kind,
            "in_features": in_features,
            "num_classes": num_classes,
            "hidden": hidden,
            "layers": layers,
            "dropout": dropout,
            "frame_pick": frame_pick,
        }
        self.dropout = nn.Dropout(dropout)
        if kind in ("mean", "frame"):
            self.rnn = None
            width = in_features
        else:
            cell = nn.LSTM if kind.endswith("lstm") else nn.GRU
            self.bidirectional = kind.startswith("bi")
            self.rnn = cell(
                in_features,
                hidden,
                num_layers=layers,
                batch_first=True,
                bidirectional=self.bidirectional,
                dropout=dropout if layers > 1 else 0.0,
            )
            width = hidden * (2 if self.bidirectional else 1)
        self.classifier = nn.Linear(width, num_classes)

    @classmethod
    def from_config(cls, cfg, in_features: int, num_classes: int) -> TemporalHead:
        """The head `tlcv train` options ask for (--temporal, --hidden, ...), seeded by --seed."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            options = dict(hidden=cfg.hidden, layers=cfg.rnn_layers, dropout=cfg.dropout)
            return cls(cfg.temporal, in_features, num_classes, frame_pick=cfg.frame_pick, **options)

    def _run_rnn(self, feats: torch.Tensor, lengths: torch.Tensor):
        packed = pack_padded_sequence(feats, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, state = self.rnn(packed)
        steps, _ = pad_packed_sequence(out, batch_first=True, total_length=feats.shape[1])
        return self._final(state), steps

    def _final(self, state) -> torch.Tensor:
        h_n = state[0] if isinstance(state, tuple) else state  # (layers*dirs, B, H)
        if self.bidirectional:
            # Last layer: forward direction's state after the last real frame, and the backward
            # direction's state after reading the clip back to frame 0.
            return torch.cat([h_n[-2], h_n[-1]], dim=1)
        return h_n[-1]

    def whole_clips(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(clip logits (B, C), step logits (B, T, C)) of clips whose T frames are all real:
        what forward and step_logits give, without packing (which an exported graph cannot
        hold), for one clip at a time."""
        if self.kind == "mean":
            return self.classifier(self.dropout(feats.mean(1))), self.classifier(feats)
        if self.kind == "frame":  # the length as a tensor: a traced graph keeps it dynamic
            length = torch._shape_as_tensor(feats)[1]
            idx = (length - 1) // 2 if self.frame_pick == "middle" else length * 0
            picked = feats.index_select(1, idx.view(1))[:, 0]
            return self.classifier(self.dropout(picked)), self.classifier(feats)
        out, state = self.rnn(feats)
        return self.classifier(self.dropout(self._final(state))), self.classifier(out)

    def _picked(self, lengths: torch.Tensor) -> torch.Tensor:
        return (lengths - 1) // 2 if self.frame_pick == "middle" else torch.zeros_like(lengths)

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Clip logits (B, C)."""
        if self.kind == "mean":
            mask = (
                torch.arange(feats.shape[1], device=feats.device)[None, :]
                < lengths.to(feats.device)[:, None]
            ).unsqueeze(-1)
            pooled = (feats * mask).sum(1) / mask.sum(1).clamp(min=1)
            return self.classifier(self.dropout(pooled))
        if self.kind == "frame":
            idx = self._picked(lengths.to(feats.device))
            return self.classifier(self.dropout(feats[torch.arange(len(feats)), idx]))
        final, _ = self._run_rnn(feats, lengths)
        return self.classifier(self.dropout(final))

    def step_logits(self, feats: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Per-frame (per-step) logits (B, T, C): what the head says after each frame.

        For uni-directional RNNs step t has seen frames 0..t; bidirectional steps see the whole
        clip; frame and mean heads score each frame on its own.
        """
        if self.rnn is None:
            return self.classifier(feats)
        _, steps = self._run_rnn(feats, lengths)
        return self.classifier(steps)

    def frame_loss_inputs(self, feats: torch.Tensor, lengths: torch.Tensor):
        """The single-frame baseline learns from every real frame (one example each)."""
        mask = (
            torch.arange(feats.shape[1], device=feats.device)[None, :]
            < lengths.to(feats.device)[:, None]
        )
        return self.classifier(self.dropout(feats[mask])), mask
