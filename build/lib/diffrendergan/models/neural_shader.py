"""A G-buffer-conditioned neural shader: a small CNN that reshapes the physics shading per pixel.

The analytic SE shader draws every grain as a smooth solid with a handful of per-image parameters;
real TiO2 grains have facets, crisp outlines and a shaded side that no such parameter can draw, and
a critic on grain windows tells the two apart at once (README, "What the discriminator sees of the
grains"). In the spirit of deferred neural rendering (Thies et al. 2019), this network reads the
G-buffer beside the physics signal and multiplies the signal by a learned gain in
``[exp(-max_log_gain), exp(max_log_gain)]``:

    signal' = signal * exp(max_log_gain * tanh(cnn(features)))

* Masks stay exact: geometry is untouched, and the receptive field (``2 * layers + 1`` px, 7 px by
  default) is far smaller than a grain (~25 px on TiO2), so the network can shade a grain but cannot
  draw one where there is none or move an outline by more than a few pixels of brightness.
* It starts as the identity (last layer zero), so training begins from the physics shading and the
  adversarial loss moves it only where the critics see a difference.
* Seeded random fields of the G-buffer (``texture``, ``film``, ``grain``) are inputs too, so that
  it can draw per-grain structure (mottling, facet-like patches) that stays fixed for a layout.
"""

from __future__ import annotations

import torch
from torch import nn

from diffrendergan.rendering.gbuffer import GBuffer

EDGE_SCALE_NM = 20.0  # edge proximity exp(-d / 20 nm): ~3 px of rim at the TiO2 pixel size
DEPTH_SCALE_NM = 200.0  # heights and path lengths in units of a large grain
# signal, particle, normal (3), edge, thickness, height, occlusion, grain, facing, texture, film
FEATURES = 13


def shading_features(gb: GBuffer, signal: torch.Tensor) -> torch.Tensor:
    """(B, FEATURES, H, W): the physics signal and the G-buffer's per-pixel geometry, each of order 1."""
    thickness = torch.zeros_like(gb.height) if gb.thickness is None else gb.thickness
    return torch.cat(
        [
            signal,
            gb.particle,
            gb.normal,
            torch.exp(-gb.edge_dist / EDGE_SCALE_NM),
            thickness / DEPTH_SCALE_NM,
            gb.height / DEPTH_SCALE_NM,
            gb.occlusion,
            gb.grain,
            gb.facing,
            gb.texture,
            gb.film,
        ],
        dim=1,
    )


class NeuralShader(nn.Module):
    """forward(gbuffer, signal (B, 1, H, W)) -> signal (B, 1, H, W) times a learned per-pixel gain."""

    def __init__(self, channels: int = 16, layers: int = 3, max_log_gain: float = 1.0):
        super().__init__()
        body: list[nn.Module] = []
        width = FEATURES
        for _ in range(layers):
            body += [nn.Conv2d(width, channels, 3, padding=1, padding_mode="replicate"), nn.GELU()]
            width = channels
        self.body = nn.Sequential(*body)
        self.head = nn.Conv2d(width, 1, 1)
        nn.init.zeros_(self.head.weight)  # identity at start: the physics shading as it was
        nn.init.zeros_(self.head.bias)
        self.max_log_gain = max_log_gain

    @property
    def receptive_field_px(self) -> int:
        return 1 + 2 * sum(1 for m in self.body if isinstance(m, nn.Conv2d))

    def log_gain(self, gb: GBuffer, signal: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) natural-log gain, bounded by ``max_log_gain``."""
        return self.max_log_gain * torch.tanh(self.head(self.body(shading_features(gb, signal))))

    def forward(self, gb: GBuffer, signal: torch.Tensor) -> torch.Tensor:
        return signal * torch.exp(self.log_gain(gb, signal))


def build_neural_shader(channels: int = 0, layers: int = 3, max_log_gain: float = 1.0) -> NeuralShader | None:
    """The configured shader network, or None when ``channels`` is 0 (off: physics shading only)."""
    return NeuralShader(channels, layers, max_log_gain) if channels > 0 else None
