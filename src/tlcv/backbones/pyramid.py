"""A registry backbone's feature pyramid (strides 2-32), for dense tasks (segmentation,
detection): the module that ends each stride is found once by probing the network with a dummy
image, and forward hooks read its output, so any CNN in the registry works without a
per-architecture table."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import TlcvError

STRIDES = (2, 4, 8, 16, 32)
PROBE = 256


def find_taps(net: nn.Module) -> tuple[list[str], list[int]]:
    """Names and channel counts of the module that ends each stride of STRIDES: the shallowest
    module (a stage, not a layer inside a block) with that output stride, the last one run."""
    best: dict[int, tuple[tuple[int, int], str, int]] = {}  # stride -> (rank, name, channels)
    order = [0]

    def record(name):
        def hook(_module, _inputs, output):
            order[0] += 1
            if isinstance(output, torch.Tensor) and output.ndim == 4:
                h, w = output.shape[-2:]
                stride = PROBE // h if h == w and PROBE % h == 0 else 0
                rank = (-name.count("."), order[0])
                if stride in STRIDES and (stride not in best or rank > best[stride][0]):
                    best[stride] = (rank, name, int(output.shape[1]))

        return hook

    handles = [m.register_forward_hook(record(n)) for n, m in net.named_modules() if n]
    was_training = net.training
    try:
        net.eval()
        with torch.no_grad():
            device = next((p.device for p in net.parameters()), torch.device("cpu"))
            net(torch.zeros(1, 3, PROBE, PROBE, device=device))  # "meta": shapes only
    finally:
        for handle in handles:
            handle.remove()
        net.train(was_training)
    absent = [s for s in STRIDES if s not in best]
    if absent:
        raise TlcvError(
            f"the backbone gives no feature map at stride {', '.join(map(str, absent))}",
            hint="segmentation and detection need a CNN whose stages halve the resolution "
            "five times (MobileNet, EfficientNet, ResNet, VGG, most timm CNNs)",
        )
    return [best[s][1] for s in STRIDES], [best[s][2] for s in STRIDES]


class PyramidTap:
    """Reads the tapped modules' outputs during one forward pass of ``net``. A plain object, not
    a module: the network stays registered once, under its own owner."""

    def __init__(self, net: nn.Module, taps: list[str]):
        self.net, self.taps = net, list(taps)
        self._captured: dict[str, torch.Tensor] = {}
        modules = dict(net.named_modules())
        for name in self.taps:
            modules[name].register_forward_hook(self._keep(name))

    def _keep(self, name: str):
        def hook(_module, _inputs, output):
            self._captured[name] = output

        return hook

    def __call__(self, images: torch.Tensor) -> list[torch.Tensor]:
        """The feature maps at strides 2, 4, 8, 16, 32."""
        self._captured = {}
        self.net(images)
        feats = [self._captured[name] for name in self.taps]
        self._captured = {}
        return feats
