"""The anomaly model: a frozen registry backbone's patch features + a fitted method.

Images (B, 3, S, S), normalised -> (image scores (B,), anomaly maps (B, 1, S, S)). The maps are
the patch scores brought to the input's resolution and smoothed by a Gaussian (sigma 4, as
PatchCore and PaDiM do). The backbone runs only as far as its deepest tapped map, as a copy
with its batch norms folded into the convolutions (it is frozen: same features, a third less
time); the backbone itself stays as the run saves it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...backbones import Backbone
from ...backbones.fusion import fused_copy
from ...backbones.pyramid import STRIDES, find_taps
from ...models import register_model_kind
from .methods import METHODS, AnomalyMethod

SIGMA = 4.0


class _Enough(Exception):
    """Raised by the deepest tap's hook: the rest of the backbone is not needed."""


class GaussianSmoothing(nn.Module):
    """A separable Gaussian blur (two 1-D passes: 2k instead of k^2 products per pixel)."""

    def __init__(self, sigma: float = SIGMA):
        super().__init__()
        radius = int(4.0 * sigma + 0.5)
        x = torch.arange(-radius, radius + 1, dtype=torch.float32)
        kernel = torch.exp(-(x**2) / (2 * sigma**2))
        self.radius = radius
        self.register_buffer("kernel", (kernel / kernel.sum()).view(1, 1, 1, -1))

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        r = self.radius
        maps = F.conv2d(F.pad(maps, (r, r, 0, 0), mode="reflect"), self.kernel)
        return F.conv2d(F.pad(maps, (0, 0, r, r), mode="reflect"), self.kernel.transpose(2, 3))


class AnomalyModel(nn.Module):
    def __init__(
        self,
        backbone: Backbone,
        head: AnomalyMethod,
        taps: list[str],
        image_size: int,
        features: nn.Module | None = None,
    ):
        super().__init__()
        self.backbone = backbone
        if features is None:  # or the fused copy of a model that is done with it
            features = fused_copy(backbone.net).to(memory_format=torch.channels_last)
        self.features = features
        self.head = head
        self.taps = list(taps)
        self.image_size = int(image_size)
        self.smooth = GaussianSmoothing()
        self.early_exit = True  # off while exporting: a graph cannot raise
        self._captured: dict[str, torch.Tensor] = {}
        modules = dict(self.features.named_modules())
        self._hooks = [modules[name].register_forward_hook(self._keep(name)) for name in taps]

    def release(self) -> nn.Module:
        """Remove the hooks and hand over the fused copy (the probe that fitted the method is
        done with it; the fitted model reuses it)."""
        for handle in self._hooks:
            handle.remove()
        self._hooks = []
        features, self.features = self.features, None
        return features

    def _keep(self, name: str):
        def hook(_module, _inputs, output):
            self._captured[name] = output
            if self.early_exit and name == self.taps[-1]:
                raise _Enough

        return hook

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Patch features (B, C, h, w) on the shallowest tapped map's grid."""
        self._captured = {}
        try:
            self.features(images)
        except _Enough:
            pass
        maps = [self._captured[name] for name in self.taps]
        self._captured = {}
        if self.head.pool > 1:
            maps = [F.avg_pool2d(m, self.head.pool, 1, self.head.pool // 2) for m in maps]
        size = maps[0].shape[-2:]
        mode = self.head.upsample
        options = {"align_corners": False} if mode == "bilinear" else {}
        maps = [maps[0], *(F.interpolate(m, size=size, mode=mode, **options) for m in maps[1:])]
        return torch.cat(maps, 1)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        patch, image = self.head(self.embed(images))
        maps = F.interpolate(
            patch[:, None], size=images.shape[-2:], mode="bilinear", align_corners=False
        )
        maps = self.smooth(maps)
        if image is None:
            image = maps.flatten(1).amax(1)
        return image, maps


def tap_names(backbone: Backbone, strides: tuple[int, ...]) -> list[str]:
    """The backbone's modules that end the given strides (backbones/pyramid.py)."""
    names, _ = find_taps(backbone.net)
    return [names[STRIDES.index(s)] for s in strides]


def build_model(
    backbone: Backbone, method: str, strides, image_size: int, batches_of, options, seed: int
) -> tuple[AnomalyModel, dict, list[str]]:
    """Fit ``method`` on the embeddings of good images and return the model, its head spec
    (what model.json records to rebuild it) and the notes the method left.
    ``batches_of(model)`` yields normalised image batches of the good images."""
    cls = METHODS.get(method)
    taps = tap_names(backbone, strides)
    backbone.net.eval().requires_grad_(False)
    probe = AnomalyModel(backbone, _Placeholder(cls), taps, image_size)

    def embeddings():
        for batch in batches_of(probe):
            yield probe.embed(batch)

    # One inference-mode block around the whole fit (a `with` inside the generator would leak
    # its mode into the method between yields and end it before the method's last steps)
    with torch.inference_mode():
        head, method_spec, notes = cls.fit(embeddings(), options, seed)
    features = probe.release()
    spec = {
        "type": "anomaly",
        "method": method,
        "taps": taps,
        "strides": list(strides),
        "image_size": int(image_size),
        **method_spec,
    }
    return AnomalyModel(backbone, head, taps, image_size, features).eval(), spec, notes


class _Placeholder(AnomalyMethod):
    """Carries a method's pooling and upsampling before it is fitted."""

    def __init__(self, cls: type[AnomalyMethod]):
        super().__init__()
        self.pool, self.upsample = cls.pool, cls.upsample


@register_model_kind("anomaly")
def rebuild_model(backbone: Backbone, spec: dict, head_state: dict) -> AnomalyModel:
    head = METHODS.get(spec["method"]).rebuild(spec)
    head.load_state_dict(head_state, strict=True)
    return AnomalyModel(backbone, head, spec["taps"], spec["image_size"]).eval()
