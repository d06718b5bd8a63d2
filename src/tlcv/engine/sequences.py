"""Sequence batches for the engine: cached per-frame features -> (B, T, D) + true lengths."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms.v2 import functional as TF

from ..backbones.registry import Preprocessing
from ..data.memory import DECODED, base_transform, memory_key
from ..errors import BadImageError
from ..video.decode import read_frames
from ..video.sampling import sample_indices
from .data import EpochSampler
from .module import Objective
from .seeding import seed_of


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
        rng = np.random.default_rng(seed_of(self.seed, epoch, index) % (2**63))
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


class ClipFrames(Dataset):
    """(index, epoch) -> (uint8 frames (t, 3, H, W), label), for end-to-end training.

    A clip's frames are decoded and resized once and held in memory while the store has room
    (``memory``; data/memory.py), so later epochs sample from them without decoding again.
    """

    def __init__(
        self,
        items,
        labels: list[int],
        prep: Preprocessing,
        *,
        frames: int,
        sampling: str,
        stride: int,
        seed: int,
        memory: bool = True,
    ):
        self.items, self.labels, self.prep = items, labels, prep
        self.frames, self.sampling, self.stride = frames, sampling, stride
        self.seed, self.memory = seed, memory
        self.resize = base_transform(prep)

    def __len__(self) -> int:
        return len(self.items)

    def _clip(self, index: int) -> torch.Tensor:
        """(T, 3, h, w) base frames of clip ``index``; BadImageError if unreadable."""
        item = self.items[index]
        key = (*memory_key(item, self.prep), "clip")
        held = DECODED.get(key)
        if isinstance(held, str):
            raise BadImageError(held, path=item.path)
        if held is not None:
            return held
        try:
            frames = torch.stack(
                [self.resize(f) for f in read_frames(item.path, self.prep.resize_size)]
            )
        except BadImageError as exc:
            if self.memory:
                DECODED.put(key, exc.message)
            raise
        if self.memory and DECODED.fits(frames.numel()):
            DECODED.put(key, frames)
        return frames

    def __getitem__(self, key):
        index, epoch = key if isinstance(key, tuple) else (key, 0)
        try:
            frames = self._clip(index)
        except BadImageError as exc:
            return None, self.items[index].path, exc.message
        rng = np.random.default_rng(seed_of(self.seed, epoch, index) % (2**63))
        idx = sample_indices(len(frames), self.frames, self.sampling, stride=self.stride, rng=rng)
        size = self.prep.input_size
        return TF.center_crop(frames[list(idx)], [size, size]), self.labels[index], None


def pad_frames(samples):
    good = [(x, y) for x, y, err in samples if err is None]
    bad = [(path, err) for _, path, err in samples if err is not None]
    if not good:
        return None, None, torch.empty(0, dtype=torch.long), bad
    lengths = torch.tensor([len(x) for x, _ in good], dtype=torch.long)
    x0 = good[0][0]
    clips = torch.zeros(len(good), int(lengths.max()), *x0.shape[1:], dtype=x0.dtype)
    for i, (x, _) in enumerate(good):
        clips[i, : len(x)] = x
    return clips, lengths, torch.tensor([y for _, y in good], dtype=torch.long), bad


class ClipObjective(SequenceObjective):
    """End to end: every real frame through the (trainable) backbone, then the temporal head."""

    def _features(self, module, clips, lengths):
        mask = (torch.arange(clips.shape[1])[None, :] < lengths[:, None]).to(clips.device)
        feats = module.model.backbone(module.normalize_images(clips[mask]))
        out = feats.new_zeros(*clips.shape[:2], feats.shape[-1])
        out[mask] = feats
        return out

    def forward(self, module, batch):
        clips, lengths, y, bad = batch
        module.skipped.extend(bad)
        if clips is None:
            return None, None
        return module.model.head(self._features(module, clips, lengths), lengths), y

    def loss(self, module, batch):
        clips, lengths, y, bad = batch
        module.skipped.extend(bad)
        if clips is None:
            return None, None, None, {}
        feats = self._features(module, clips, lengths)
        return super().loss(_HeadOnly(module), (feats, lengths, y))


class _HeadOnly:
    """Lets the feature-sequence loss run on features computed by the trainable backbone."""

    def __init__(self, module):
        self.model = module.model.head


@torch.no_grad()
def clip_logits(
    head: torch.nn.Module,
    sequences: list[np.ndarray],
    *,
    frames: int,
    prefix: int | None = None,
    batch_size: int = 256,
) -> np.ndarray:
    """Clip logits with uniform sampling (optionally from the first ``prefix`` frames only)."""
    head = head.eval()
    ds = FeatureSequences(
        sequences,
        [0] * len(sequences),
        frames=frames,
        sampling="uniform",
        stride=1,
        seed=0,
        prefix=prefix,
    )
    out = []
    for start in range(0, len(ds), batch_size):
        feats, lengths, _ = pad_batch(
            [ds[i] for i in range(start, min(len(ds), start + batch_size))]
        )
        out.append(head(feats, lengths))
    return torch.cat(out).numpy() if out else np.empty((0, 0))


def feature_loaders(cfg, part):
    """Batches of cached per-frame feature sequences (the frozen CNN never runs again)."""
    ds_args = dict(frames=cfg.frames, stride=cfg.stride, seed=cfg.seed)

    def make(items, sampling, shuffle):
        seqs, ys = part(items)
        ds = FeatureSequences(seqs, ys, sampling=sampling, **ds_args)
        return sequence_loader(ds, batch_size=cfg.batch_size, shuffle=shuffle, seed=cfg.seed)

    return make


def frame_loaders(cfg, backbone, readable: set[str], lookup: dict[str, int]):
    """Batches of decoded frames: the CNN trains, so clips are decoded every epoch."""

    def make(items, sampling, shuffle):
        kept = [it for it in items if it.identity in readable]
        ds = ClipFrames(
            kept,
            [lookup[it.label] for it in kept],
            backbone.preprocessing,
            frames=cfg.frames,
            sampling=sampling,
            stride=cfg.stride,
            seed=cfg.seed,
            memory=cfg.memory_cache,
        )
        return DataLoader(
            ds,
            batch_size=min(cfg.batch_size, max(1, len(ds))),
            sampler=EpochSampler(len(ds), cfg.seed, shuffle),
            collate_fn=pad_frames,
            num_workers=cfg.num_workers or 0,
        )

    return make
