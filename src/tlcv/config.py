"""Typed run configuration, declared once: each option's default, help and choices live on its
dataclass field; the CLI builds its flags from these fields (cli_options.py) and ``validate``
checks the choices, so no default or list of choices is written twice. YAML config files use
the same keys (``image-size`` or ``image_size``). Torch-free: the CLI imports it for --help.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from .catalog import DEFAULT_BACKBONE
from .errors import TlcvError
from .options import Validated, option

# Choices of the options that take one of a fixed set (the modules that act on them import
# these names from here).
AUGMENTS = ("none", "light", "strong")
UNFREEZE_MODES = ("all", "gradual")
BN_MODES = ("train", "frozen")
OPTIMIZERS = ("adamw", "sgd")
PRECISIONS = ("auto", "32", "bf16")  # engine/trainer.py resolves them
ADAPT_MODES = ("frozen", "full")
# the validators (adaptation/validators, one file each) + "last"
SELECTIONS = ("source-val", "entropy", "im", "bnm", "snd", "dev", "last")
FALLBACKS = ("none", "source-only")
EXPLAIN_METHODS = ("gradcam", "guided-gradcam", "integrated-gradients")  # interpret/EXPLAINERS


# Options `train` and `adapt` share mean one thing: declared here once, used by both.
_SHARED: dict[str, tuple] = {  # name: (default, help[, flag])
    "backbone": (DEFAULT_BACKBONE, "Registry name (see `tlcv models`) or timm:<model>."),
    "weights": (
        "imagenet",
        "'imagenet' (default source), 'none' (random) or a .pth/.pt/.safetensors file.",
    ),
    "image_size": (
        None,
        "The short side, in pixels, of what the network sees: an N x N centre crop for image "
        "and clip classification (default: the backbone's own), whole images scaled to it for "
        "segmentation and detection (default 256 and 800).",
    ),
    "seed": (0, "Seed for splits, subsets, training."),
    "num_workers": (None, "Decoding processes [default: by CPU count]."),
    "cache": (None, "Feature cache folder [default: $TLCV_CACHE or ~/.cache/tlcv/features]."),
    "device": ("auto", "auto, cpu, cuda or cuda:N."),
    "strict": (False, "Stop at the first unreadable image instead of skipping it."),
    "overwrite": (False, "Replace an existing run in --out."),
    "memory_cache": (
        True,
        "Decode images once and keep them in memory when the split fits (a quarter of RAM, "
        "or $TLCV_MEMORY_CACHE_MB).",
        "--memory-cache/--no-memory-cache",
    ),
}


def shared(name: str) -> Any:
    """The field of an option both commands take."""
    default, help_text, *flag = _SHARED[name]
    return option(default, help_text, flag=flag[0] if flag else None)


def _precision() -> Any:
    """`--precision`, one meaning in train and adapt (a field per class: choices differ from
    _SHARED's plain options)."""
    return option(
        "auto",
        "auto (mixed on a GPU, 32-bit on CPU), 32, or bf16 (bfloat16 autocast: about 2x on "
        "CPUs with native bfloat16, refused on those without).",
        choices=PRECISIONS,
    )


@dataclass
class SharedTrainOptions(Validated):
    """The options of `tlcv train` every task takes; each task adds its own dataclass
    (``Task.options``, in its package) and TrainConfig is all of them together."""

    data: str = option(
        help="Image folder (CLASS/*.jpg, optional train/ val/ test/), CSV manifest, .npz, or "
        "clips (video files / frame folders per class)."
    )
    out: str = option(help="Run folder to write.")
    backbone: str = shared("backbone")
    weights: str = shared("weights")
    # tasks (tlcv.tasks) are a registry above this layer: the CLI lists their names in the
    # help, and an unknown name is refused by the registry with the names it knows
    task: str | None = option(None, "What to predict [default: from the data: clips or images].")
    strategy: str = option(
        "features",
        "features (frozen backbone + new classifier), finetune (whole network, reduced lr for "
        "the pretrained part), scratch (random init, same recipe) or classical (HOG + colour "
        "histograms + linear SVM/logreg; --backbone hog, hog_color or hog_color_lbp).",
    )
    classifier: str = option("logreg", "For --strategy features: logreg, svm, knn or mlp.")
    image_size: int | None = shared("image_size")
    per_class: int | None = option(None, "Use at most K training images per class (few-shot).")
    seed: int = shared("seed")
    split_seed: int | None = option(
        None, "Seed of the train/val/test split only [default: --seed]."
    )
    val_fraction: float = option(0.15, "Validation share when the data has no val/ folder.")
    test_fraction: float = option(0.2, "Test share when the data has no split folders.")
    batch_size: int = option(64, "Images per batch.")
    num_workers: int | None = shared("num_workers")
    memory_cache: bool = shared("memory_cache")
    cache: str | None = shared("cache")
    device: str = shared("device")
    strict: bool = shared("strict")
    overwrite: bool = shared("overwrite")
    # --- training engine (finetune / scratch / clips; ignored by --strategy features) ---
    epochs: int = option(10, "Training epochs (finetune/scratch/clips).")
    lr: float = option(1e-3, "Learning rate of the new head.")
    backbone_lr_ratio: float = option(0.1, "Pretrained layers learn at this fraction of --lr.")
    layer_decay: float = option(1.0, "Extra lr factor per layer group below the top (1: none).")
    freeze_epochs: int = option(0, "Train only the head for N epochs first.")
    unfreeze: str = option(
        "all", "all (at once, fastai) or gradual (one group per epoch).", choices=UNFREEZE_MODES
    )
    bn: str = option("train", "Batch-norm statistics: train or frozen.", choices=BN_MODES)
    optimizer: str = option("adamw", "adamw or sgd (momentum 0.9).", choices=OPTIMIZERS)
    weight_decay: float = option(0.01, "Weight decay (not on norms and biases).")
    warmup_epochs: float = option(1.0, "Linear warm-up, then cosine decay.")
    label_smoothing: float = option(0.1, "Label smoothing of the cross-entropy.")
    augment: str = option(
        "light", "none, light (crop + flip), strong (+TrivialAugment).", choices=AUGMENTS
    )
    grad_clip: float | None = option(None, "Clip the gradient norm.")
    accumulate: int = option(1, "Accumulate gradients over N batches.")
    patience: int | None = option(5, "Early stopping on validation loss (epochs; 0: off).")
    lr_find: bool = option(False, "Pick --lr with the learning-rate finder first.")
    deterministic: bool = option(False, "Force torch's deterministic kernels (slower).")
    precision: str = _precision()
    resume: str | None = option(None, "Continue an interrupted run from its last finished epoch.")
    dropout: float = option(0.2, "Dropout before the new head's output layer.")
    max_images: int | None = option(
        None, "Use at most N training images (the few-shot budget of tasks that count images)."
    )

    def check(self) -> None:
        if self.max_images is not None and self.max_images < 1:
            raise TlcvError("--max-images must be at least 1")


def _task_options() -> tuple[type, ...]:
    """Each registered task's options dataclass (tasks are torch-free until trained)."""
    from .tasks import TASKS

    return tuple(cls.options for _, cls in reversed(TASKS.items()) if cls.options is not None)


@dataclass
class TrainConfig(*_task_options(), SharedTrainOptions):
    """Every option of `tlcv train`: the shared ones first, then each task's."""


def _adapt_task_options() -> tuple[type, ...]:
    """The options of each task that `tlcv adapt` adapts besides classification."""
    from .tasks import TASKS

    return tuple(
        cls.adapt_options for _, cls in reversed(TASKS.items()) if cls.adapt_options is not None
    )


@dataclass
class AdaptOptions(Validated):
    source: str = option(
        help="Labelled source data: CLASS/ folders, or a segmentation folder (images/ + masks/)."
    )
    target: str = option(
        help="Target images. Class folders (masks) optional; their labels are read only for the "
        "final evaluation."
    )
    out: str = option(help="Run folder to write.")
    task: str | None = option(
        None, "classification or segmentation [default: what the source data holds]."
    )
    source_include: str | None = option(
        None,
        "Keep only the source files whose name matches one of these patterns (comma-separated, "
        "e.g. '0006R0_*,0016E5_*': CamVid's daylight sequences).",
    )
    target_include: str | None = option(
        None, "Keep only the target files whose name matches (e.g. '0001TP_*': CamVid at dusk)."
    )
    init: str | None = option(
        None,
        "Segmentation: start from this trained run (same classes, e.g. a source-only run) "
        "instead of the pretrained encoder and a new decoder; the guard then checks the "
        "adapted model against it.",
    )
    method: str = option(
        "source-only",
        "Adaptation method (adaptation/methods/); combine with + (dann+mcc).",
    )
    backbone: str = shared("backbone")
    weights: str = shared("weights")
    mode: str = option(
        "frozen",
        "frozen (bottleneck + classifier on cached features, fast) or full (backbone trained "
        "too, at the reduced fine-tuning lr).",
        choices=ADAPT_MODES,
    )
    image_size: int | None = shared("image_size")
    seed: int = shared("seed")
    epochs: int = option(20, "Training epochs.")
    lr: float = option(1e-3, "Head and discriminator lr.")
    backbone_lr_ratio: float = option(0.1, "Full mode: backbone lr / --lr.")
    batch_size: int = option(32, "Images per domain per step.")
    bottleneck: int = option(256, "Bottleneck width.")
    dropout: float = option(0.5, "Dropout before the new head's output layer.")
    trade_off: float = option(1.0, "Weight of the adaptation terms.")
    trade_off_grid: str | None = option(
        None,
        "Choose --trade-off among these values (e.g. 0.1,0.3,1, or auto) by the --select "
        "validator, no target labels: one run per value under OUT/trade-off-search/, then the "
        "best value trained into OUT.",
    )
    select: str = option(
        "bnm",
        "Checkpoint choice without target labels: a validator (bnm: batch nuclear-norm of the "
        "target predictions, best measured on Office-31 and digits; im, entropy, snd: target "
        "predictions; source-val: held-out source accuracy; dev: importance-weighted source "
        "loss) or last. Every validator is logged per epoch in history.csv.",
        choices=SELECTIONS,
    )
    oracle: bool = option(
        False, "Also report the best epoch on target labels, labelled ORACLE (not honest)."
    )
    val_fraction: float = option(0.1, "Held-out source share for model selection.")
    label_smoothing: float = option(0.1, "Label smoothing of the source cross-entropy.")
    weight_decay: float = option(1e-3, "Weight decay (not on norms and biases).")
    optimizer: str = option(
        "adamw", "adamw, or sgd (momentum 0.9; digits: --lr 0.01).", choices=OPTIMIZERS
    )
    augment: str = option("light", "Full mode: none, light or strong.", choices=AUGMENTS)
    warmup_epochs: float = option(1.0, "Linear warm-up, then cosine decay.")
    fallback: str = option(
        "source-only",
        "When the label-free check says the adaptation probably hurt (target predictions "
        "collapsed, drifted, pulled to the source's class mix, or outvoted by their labelled "
        "neighbours where they differ from source-only's): source-only keeps the source-only "
        "model (it removed no gain of over 2 points in 276 measured runs, docs/benchmarks.md); "
        "none warns and keeps the adapted model.",
        choices=FALLBACKS,
    )
    plots: bool = option(True, "t-SNE picture.", flag="--plots/--no-plots")
    num_workers: int | None = shared("num_workers")
    memory_cache: bool = shared("memory_cache")
    cache: str | None = shared("cache")
    device: str = shared("device")
    precision: str = _precision()
    strict: bool = shared("strict")
    overwrite: bool = shared("overwrite")
    resume: str | None = option(None, "Continue an interrupted adapt run.")


@dataclass
class AdaptConfig(*_adapt_task_options(), AdaptOptions):
    """Every option of `tlcv adapt`: the shared ones, then those of the tasks it adapts."""


# --- inference commands: extract, evaluate, predict (the same option names, one meaning) ---
ENGINES = ("torch", "onnxruntime", "onnxruntime-int8")  # deploy/engine.py serves each
ENGINE_HELP = (
    "torch, onnxruntime (the run's exported ONNX graph; several times faster on a CPU) or "
    "onnxruntime-int8 (after `tlcv export RUN --int8`). Needs pip install 'tlcv[onnx]'."
)


def _engine() -> Any:
    return option("torch", ENGINE_HELP, choices=ENGINES)


def _batch() -> Any:
    return option(64, "Images per batch.")


def _prefix() -> Any:
    return option(None, "Clip runs: use only the first K frames.")


def _window() -> Any:
    return option(None, "Segmentation: predict large images in overlapping N-px squares.")


def _tta() -> Any:
    return option("none", "Segmentation: flip averages each image's scores with its mirror's; "
                  "hv also upside down (models trained with --flips hv).",
                  choices=("none", "flip", "hv"))  # fmt: skip


@dataclass
class ExtractConfig(Validated):
    data: str = option(
        help="Image folder (CLASS/*.jpg, optional train/ val/ test/), CSV manifest or .npz."
    )
    backbone: str = shared("backbone")
    weights: str = shared("weights")
    cache: str | None = shared("cache")
    image_size: int | None = shared("image_size")
    batch_size: int = _batch()
    num_workers: int | None = shared("num_workers")
    device: str = shared("device")
    strict: bool = shared("strict")
    engine: str = _engine()


@dataclass
class EvaluateConfig(Validated):
    data: str = option(
        help="Labelled data to score, in any layout `tlcv train` takes for the run's task."
    )
    out: str | None = option(None, "Where to write the report [default: RUN/eval/<data name>].")
    cache: str | None = shared("cache")
    batch_size: int = _batch()
    num_workers: int | None = shared("num_workers")
    device: str = shared("device")
    strict: bool = shared("strict")
    prefix: int | None = _prefix()
    engine: str = _engine()
    window: int | None = _window()
    tta: str = _tta()
    explain: int = option(0, "Class-activation maps of the N most confident errors.")
    bootstrap: int = option(
        1000, "Resamples of the scored items for each score's 95% confidence interval (0: none)."
    )

    def check(self) -> None:
        if self.bootstrap < 0:
            raise TlcvError("--bootstrap must be 0 (no intervals) or a number of resamples")

    def task_options(self) -> dict:
        """The options only some tasks take (window, tta, explain), passed when set."""
        given = {"window": self.window, "explain": self.explain or None,
                 "tta": None if self.tta == "none" else self.tta}  # fmt: skip
        return {k: v for k, v in given.items() if v is not None}


@dataclass
class PredictConfig(Validated):
    top_k: int = option(5, "Classes per image.")
    format: str = option("csv", "csv or json.", choices=("csv", "json"))
    output: str | None = option(None, "Write to a file instead of stdout.")
    cache: str | None = option(
        None, "Store and reuse features in this folder [default: memory only]."
    )
    batch_size: int = _batch()
    num_workers: int | None = shared("num_workers")
    device: str = shared("device")
    strict: bool = shared("strict")
    prefix: int | None = _prefix()
    engine: str = _engine()
    window: int | None = _window()
    tta: str = _tta()
    masks: str | None = option(
        None,
        "Segmentation / detection: folder for the mask, overlay or drawn-box PNGs "
        "[default: RUN/predictions].",
    )
    score_threshold: float = option(0.5, "Detection: report objects above it.")

    def task_options(self) -> dict:
        """The options only some tasks take, passed when they differ from the default."""
        given = {"window": self.window, "out": self.masks,
                 "tta": None if self.tta == "none" else self.tta}  # fmt: skip
        if self.score_threshold != PredictConfig.score_threshold:  # the field's default
            given["score_threshold"] = self.score_threshold
        return {k: v for k, v in given.items() if v is not None}


def read_config_file(path: str | Path, allowed: set[str]) -> dict:
    """Keys from a YAML file, normalised to parameter names and checked against ``allowed``."""
    path = Path(path)
    if not path.is_file():
        raise TlcvError(f"config file not found: {path}", path=str(path))
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise TlcvError(f"cannot parse {path}: {exc}", path=str(path)) from exc
    if not isinstance(raw, dict):
        raise TlcvError(f"{path} must hold a mapping of option: value", path=str(path))
    values = {str(k).replace("-", "_"): v for k, v in raw.items()}
    unknown = sorted(set(values) - allowed)
    if unknown:
        raise TlcvError(
            f"unknown keys in {path}: {', '.join(unknown)}",
            path=str(path),
            hint=f"valid keys: {', '.join(sorted(allowed))}",
        )
    return values


TRAIN_KEYS = {f.name for f in fields(TrainConfig)}
ADAPT_KEYS = {f.name for f in fields(AdaptConfig)}
