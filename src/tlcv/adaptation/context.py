"""What an adaptation run knows before it trains, built once: the domains and the source
split, the start model and its features of both domains, the methods. Training, the
negative-transfer guard and the run folder all read this one context (nothing is rebuilt or
re-parsed downstream)."""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace

import lightning as L
import numpy as np
import torch

from ..backbones import Backbone, create_backbone, get_backbone_spec
from ..config import AdaptConfig
from ..data.splits import stratified_split
from ..engine.data import hold_in_memory
from ..errors import TlcvError
from ..features import extract_features
from ..heads import BottleneckHead
from .domains import Domains, read_domains, select_files
from .methods import AdaptationMethod, build_methods, parse_methods


class Features:
    """Backbone features of item lists through the cache (frozen mode trains on these).

    Rows already computed for the same weights are served from memory: the final evaluation
    of a frozen run asks again for features that training already holds.
    """

    def __init__(self, cfg: AdaptConfig, progress: bool):
        self.cfg, self.progress = cfg, progress
        self.skipped: list[tuple[str, str]] = []
        self._rows: dict[tuple[str, str], tuple[np.ndarray, object]] = {}

    def __call__(self, backbone, items) -> tuple[np.ndarray, list]:
        keys = [(backbone.weights_id, it.identity) for it in items]
        if items and all(k in self._rows for k in keys):
            return np.stack([self._rows[k][0] for k in keys]), [self._rows[k][1] for k in keys]
        fs = extract_features(
            items,
            backbone,
            cache_dir=self.cfg.cache,
            batch_size=64,
            num_workers=self.cfg.num_workers,
            device=self.cfg.device,
            strict=self.cfg.strict,
            progress=self.progress,
        )
        self.skipped += fs.skipped
        for row, item in zip(fs.features, fs.items, strict=True):
            self._rows[(backbone.weights_id, item.identity)] = (row, item)
        return fs.features, fs.items


@dataclass
class AdaptContext:
    cfg: AdaptConfig
    domains: Domains
    train_items: list  # the labelled source split that trains
    val_items: list  # the held-out source split (selection, source scores)
    weights: str  # what --weights resolved to
    backbone: Backbone  # the one training adapts (full mode) or AdaBN recalibrates
    start: Backbone  # the start model's backbone, untouched (the guard's reference space)
    head: BottleneckHead
    methods: list[AdaptationMethod]
    features: Features
    before: tuple[np.ndarray, np.ndarray]  # start features (source, target)
    before_items: tuple[list, list]  # the items of those rows
    notes: list[str]

    @property
    def classes(self) -> list[str]:
        return self.domains.classes

    @property
    def lookup(self) -> dict[str, int]:
        return {c: i for i, c in enumerate(self.domains.classes)}

    @property
    def frozen(self) -> bool:
        return self.cfg.mode == "frozen"


def check_options(cfg: AdaptConfig) -> None:
    get_backbone_spec(cfg.backbone)
    parse_methods(cfg.method)
    cfg.validate()  # the choices declared on AdaptConfig's fields
    if cfg.epochs < 1 or cfg.lr <= 0 or cfg.batch_size < 2:
        raise TlcvError("--epochs and --lr must be positive and --batch-size at least 2")
    if not 0 < cfg.val_fraction < 1 and cfg.select in ("source-val", "dev"):
        raise TlcvError(
            f"--select {cfg.select} needs a held-out source share: 0 < --val-fraction < 1"
        )


def _weights_for(cfg: AdaptConfig, notes: list[str]) -> str:
    spec = get_backbone_spec(cfg.backbone)
    if cfg.weights == "imagenet" and not spec.weights:
        notes.append(f"{cfg.backbone} has no pretrained weights: trained from scratch")
        weights = "none"
    else:
        weights = cfg.weights
    if weights == "none" and cfg.mode == "frozen":
        raise TlcvError(
            f"--mode frozen with a randomly initialised {cfg.backbone} learns nothing useful",
            hint="use --mode full (e.g. lenet on digits), or pretrained --weights",
        )
    return weights


def prepare(cfg: AdaptConfig, progress: bool) -> tuple[AdaptConfig, AdaptContext]:
    """Read the domains, split the source, build the start model and its features."""
    domains = select_files(
        read_domains(cfg.source, cfg.target, strict=cfg.strict), cfg.source_include,
        cfg.target_include,
    )  # fmt: skip
    notes = list(domains.notes)
    weights = _weights_for(cfg, notes)
    train_items, val_items = stratified_split(domains.source, cfg.val_fraction, cfg.seed)
    notes.append(
        f"source: {len(train_items)} training and {len(val_items)} held-out images "
        f"(selection: {cfg.select}); target: {len(domains.target)} unlabelled images"
    )
    if weights == "none" and cfg.backbone_lr_ratio != 1.0:
        notes.append("random initialisation: every layer learns at --lr (nothing to preserve)")
        cfg = replace(cfg, backbone_lr_ratio=1.0)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    backbone = create_backbone(cfg.backbone, weights, cfg.image_size, seed=cfg.seed)
    frozen = cfg.mode == "frozen"
    if not frozen:  # decoded once for training, its validation and the features below
        everything = train_items + val_items + domains.target
        hold_in_memory(everything, backbone.preprocessing, cfg.memory_cache, cfg.num_workers)
    features = Features(cfg, progress)
    # Start features: the frozen mode's training data, and the "before" picture of both modes
    # (a capped sample in full mode, where they are only for analysis).
    cap = None if frozen else 600
    before_s, src_kept = features(
        backbone, train_items + val_items if frozen else train_items[:cap]
    )
    before_t, tgt_kept = features(backbone, domains.target if frozen else domains.target[:cap])
    classes = domains.classes
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        head = BottleneckHead(backbone.feature_dim, cfg.bottleneck, len(classes), cfg.dropout)
        methods = build_methods(cfg.method, cfg.bottleneck, len(classes), cfg.trade_off)
    changes_backbone = not frozen or any(m.recalibrates_bn for m in methods)
    start = copy.deepcopy(backbone) if changes_backbone else backbone
    context = AdaptContext(
        cfg, domains, train_items, val_items, weights, backbone, start, head, methods, features,
        (before_s, before_t), (src_kept, tgt_kept), notes,
    )  # fmt: skip
    return cfg, context
