"""Engine helpers a trained strategy calls around the fit: the learning-rate finder before
it, logits of a labelled split after it."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..data import normalize


@torch.inference_mode()
def predict_logits(model: nn.Module, loader, device: torch.device) -> tuple[np.ndarray, np.ndarray]:
    model = model.to(device).eval()
    logits, labels = [], []
    for x, y, _ in loader:
        if len(x):
            x = normalize(x, model.backbone.preprocessing, device, channels_last=True)
            logits.append(model(x).float().cpu())
            labels.append(y)
    if not logits:
        return np.empty((0, 0)), np.empty(0, dtype=int)
    return torch.cat(logits).numpy(), torch.cat(labels).numpy()


def find_lr(trainer, module, train_loader, val_loader, recipe, run_dir, notes) -> None:
    """Lightning's learning-rate range test on the run's configured trainer; the suggestion
    replaces ``recipe.lr`` and its plot is kept as RUN/lr_find.png."""
    from lightning.pytorch.tuner import Tuner

    finder = Tuner(trainer).lr_find(
        module,
        train_loader,
        val_loader,
        min_lr=1e-6,
        max_lr=1.0,
        num_training=min(60, len(train_loader) * 3),
        update_attr=False,
    )
    suggestion = finder.suggestion() if finder is not None else None
    if finder is not None:
        import io

        from ..io import write_bytes

        fig = finder.plot(suggest=bool(suggestion))
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        write_bytes(run_dir / "lr_find.png", buf.getvalue())
    if suggestion:
        recipe.lr = float(suggestion)
        notes.append(f"learning-rate finder chose --lr {recipe.lr:.2e} (plot: lr_find.png)")
    else:  # too few steps or a flat curve: say so rather than silently keep --lr
        notes.append(
            f"learning-rate finder found no clear rate (plot: lr_find.png); --lr {recipe.lr:.2e} "
            "kept"
        )
