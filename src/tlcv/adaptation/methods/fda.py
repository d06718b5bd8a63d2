"""FDA (Yang and Soatto 2020): Fourier domain adaptation, no training of anything extra. The
low-frequency amplitude spectrum of an image holds its global style (lighting, colour cast,
sensor tone) and the phase its content; swapping the source's low-frequency amplitudes for a
target image's gives a daylight scene, same objects and labels, lit like dusk. The model then
trains on these restyled source images (combine with self-training or advent to also learn
from the target's own pixels)."""

from __future__ import annotations

import torch

from . import AdaptationMethod, register_method

BETA = 0.01  # the swapped window's half-size, as a share of the image side (the paper's L)


def swap_low_frequencies(source: torch.Tensor, target: torch.Tensor, beta: float = BETA):
    """Source images (B, 3, H, W, float) with the centred low-frequency amplitude window of
    the target images (same size; cycled when fewer) and their own phase."""
    if len(target) < len(source):
        target = target.repeat((len(source) + len(target) - 1) // len(target), 1, 1, 1)
    target = target[: len(source)]
    fft_s = torch.fft.fft2(source.float(), dim=(-2, -1))
    fft_t = torch.fft.fft2(target.float(), dim=(-2, -1))
    amp_s, phase_s = fft_s.abs(), fft_s.angle()
    amp_s = torch.fft.fftshift(amp_s, dim=(-2, -1))
    amp_t = torch.fft.fftshift(fft_t.abs(), dim=(-2, -1))
    h, w = source.shape[-2:]
    b = int(round(min(h, w) * beta))
    if b < 1:
        return source.float()
    ch, cw = h // 2, w // 2
    amp_s[..., ch - b : ch + b + 1, cw - b : cw + b + 1] = amp_t[
        ..., ch - b : ch + b + 1, cw - b : cw + b + 1
    ]
    amp_s = torch.fft.ifftshift(amp_s, dim=(-2, -1))
    mixed = torch.fft.ifft2(torch.polar(amp_s, phase_s), dim=(-2, -1))
    return mixed.real


@register_method("fda")
class FDA(AdaptationMethod):
    """``--trade-off`` scales the swapped window (1: the paper's 0.01 of the side)."""

    outputs = ("pixel",)  # the labels stay valid because only the style moves

    def source_images(self, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if source.shape[-2:] != target.shape[-2:] or len(target) == 0:
            return source
        mixed = swap_low_frequencies(source, target, BETA * self.trade_off)
        return mixed.round().clamp(0, 255).to(source.dtype)
