"""Maps for image files of a run, drawn: image | overlay with the top-k classes in the title,
and one grid for many images. Used by `tlcv explain`, `tlcv evaluate --explain N` and the
served page's POST /explain."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import TlcvError
from ..io import write_bytes
from . import EXPLAINERS, normalise

GRID_MAX = 32


@dataclass
class Explanation:
    path: str
    image: np.ndarray  # (H, W, 3) uint8: what the model saw (resized, centre-cropped)
    heat: np.ndarray  # (H, W) in [0, 1]
    target: str
    top: list[tuple[str, float]]


def target_layer(model) -> torch.nn.Module:
    """The registry's cam_layer of the run's backbone (no per-call guessing)."""
    spec = model.backbone.spec
    if not spec.cam_layer:
        raise TlcvError(
            f"{spec.name} has no convolutional layer to explain",
            hint="class-activation maps need a CNN backbone (hand-crafted features have none)",
        )
    return dict(model.backbone.net.named_modules())[spec.cam_layer]


def explain_tensors(
    run,
    images: list[torch.Tensor],
    *,
    method: str = "gradcam",
    target: str | None = None,
    top_k: int = 3,
    clip: bool = False,
) -> list[tuple]:
    """(heat, target name, top-k) per uint8 (3, H, W) image already at the model's input size;
    ``clip``: the images are one clip's frames, each explaining the clip's class."""
    from ..data import normalize

    explainer = EXPLAINERS.get(method)
    if target is not None and target not in run.classes:
        raise TlcvError(
            f"--target {target!r} is not one of the run's classes",
            hint="the run knows: " + ", ".join(run.classes[:20]),
        )
    model = run.model()
    layer = target_layer(model)
    x = normalize(torch.stack(images), model.backbone.preprocessing, torch.device("cpu"), False)
    if clip:  # the images are one clip's frames: every frame explains the clip's class
        model = _ClipPerFrame(model)
    with torch.inference_mode():
        probs = model(x).softmax(1)
    k = max(1, min(top_k, len(run.classes)))
    top = probs.topk(k, dim=1)
    wanted = torch.full((len(images),), run.classes.index(target)) if target else top.indices[:, 0]
    with torch.enable_grad():
        heat = normalise(explainer(model, layer, x.clone().requires_grad_(True), wanted).detach())
    return [
        (
            heat[i].numpy(),
            run.classes[int(wanted[i])],
            [
                (run.classes[int(c)], float(p))
                for c, p in zip(top.indices[i], top.values[i], strict=True)
            ],
        )
        for i in range(len(images))
    ]


class _ClipPerFrame(torch.nn.Module):
    """Frames (T, 3, H, W) of one clip -> the clip's logits, repeated for each frame, so a map
    per frame answers: where in this frame is the evidence for the clip's class."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        feats = self.model.backbone(frames)[None]
        logits = self.model.head(feats, torch.tensor([len(frames)]))
        return logits.expand(len(frames), -1)


def explain_clip(run, path: str, **options) -> list[Explanation]:
    """One explanation per sampled frame of a clip (the frames the run's head reads)."""
    from ..data import eval_transform
    from ..video import sample_indices
    from ..video.decode import read_frames

    frames = read_frames(path, run.preprocessing.resize_size)
    chosen = sample_indices(len(frames), int(run.info["frames"]), "uniform")
    transform = eval_transform(run.preprocessing)
    images = [transform(frames[i]) for i in chosen]
    out = []
    for i, image, (heat, name, top) in zip(
        chosen, images, explain_tensors(run, images, clip=True, **options), strict=True
    ):
        out.append(
            Explanation(f"{path}#frame{i:04d}", image.permute(1, 2, 0).numpy(), heat, name, top)
        )
    return out


def explain_files(run, paths: list[str], **options) -> tuple[list[Explanation], list[tuple]]:
    """Explanations of the readable files; the unreadable ones as (path, reason)."""
    from ..data import eval_transform, open_rgb
    from ..errors import BadImageError

    transform = eval_transform(run.preprocessing)
    images, kept, bad = [], [], []
    for path in paths:
        try:
            images.append(transform(open_rgb(path)))
            kept.append(path)
        except BadImageError as exc:
            bad.append((path, exc.message))
    out: list[Explanation] = []
    for start in range(0, len(images), 16):
        chunk = images[start : start + 16]
        for path, image, (heat, name, top) in zip(
            kept[start : start + 16], chunk, explain_tensors(run, chunk, **options), strict=True
        ):
            out.append(Explanation(path, image.permute(1, 2, 0).numpy(), heat, name, top))
    return out, bad


def explain_images(run, paths: list, out: str | Path, **options) -> list[dict]:
    """`tlcv explain` of an image classifier: a PNG per image (+ a grid) in ``out``."""
    from ..inference import collect_images

    items = collect_images(paths)
    if not items:
        raise TlcvError("no images found in the given paths")
    explanations, bad = explain_files(run, [it.path for it in items], **options)
    return _answers(explanations, bad, out)


def explain_clips(run, paths: list, out: str | Path, **options) -> list[dict]:
    """`tlcv explain` of a clip classifier: a PNG per sampled frame of each clip."""
    from ..inference import collect_clips

    items = collect_clips(paths)
    if not items:
        raise TlcvError("no clips found in the given paths")
    explanations, bad = [], []
    for item in items:
        try:
            explanations += explain_clip(run, item.path, **options)
        except TlcvError as exc:
            bad.append((item.path, exc.message))
    return _answers(explanations, bad, out)


def _answers(explanations: list[Explanation], bad: list[tuple], out: str | Path) -> list[dict]:
    """Per image its top classes, the class the map is for, and the file (or an ``error``)."""
    files = save(explanations, Path(out))
    answers = [
        {
            "path": e.path,
            "target": e.target,
            "file": file,
            "top": [{"label": name, "score": round(p, 6)} for name, p in e.top],
        }
        for e, file in zip(explanations, files, strict=False)
    ]
    if len(explanations) > 1:
        answers.append({"grid": files[-1]})
    return answers + [{"path": path, "error": reason} for path, reason in bad]


def blend(image: np.ndarray, heat: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    from matplotlib import colormaps

    colour = colormaps["jet"](heat)[..., :3] * 255
    return ((1 - alpha) * image + alpha * colour).round().clip(0, 255).astype(np.uint8)


def _title(e: Explanation) -> str:
    top = ", ".join(f"{name} {p:.2f}" for name, p in e.top)
    clip, _, frame = e.path.partition("#")
    return f"{Path(clip).name} {frame}\nmap for: {e.target}   top: {top}"


def picture(e: Explanation) -> bytes:
    """image | overlay, PNG bytes."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(6.4, 3.6))
    axes[0].imshow(e.image)
    axes[1].imshow(blend(e.image, e.heat))
    for ax in axes:
        ax.axis("off")
    fig.suptitle(_title(e), fontsize=8)
    return _png(fig)


def grid(explanations: list[Explanation], columns: int = 4) -> bytes:
    plt = _plt()
    columns = max(1, min(columns, len(explanations)))
    rows = -(-len(explanations) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 3.4 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, e in zip(axes.ravel(), explanations, strict=False):
        ax.imshow(blend(e.image, e.heat))
        ax.set_title(_title(e), fontsize=6)
    return _png(fig)


def save(explanations: list[Explanation], out: Path, prefix: str = "") -> list[str]:
    """One PNG per image (+ grid.png for more than one) in ``out``; the files written."""
    files, used = [], set()
    for i, e in enumerate(explanations):
        clip, _, frame = e.path.partition("#")
        stem = f"{prefix}{Path(clip).stem}{'_' + frame if frame else ''}"
        if stem in used:
            stem = f"{stem}-{i}"
        used.add(stem)
        files.append(str(write_bytes(out / f"{stem}.png", picture(e))))
    if len(explanations) > 1:  # the first GRID_MAX: a grid of thousands would be unreadable
        picture_grid = grid(explanations[:GRID_MAX])
        files.append(str(write_bytes(out / f"{prefix}grid.png", picture_grid)))
    return files


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    plt = _plt()
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()
