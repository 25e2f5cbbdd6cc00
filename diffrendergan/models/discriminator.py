"""PatchGAN discriminator (pix2pix "basic" D, 70x70 receptive field): 3 strided conv layers with
64 base filters, leaky ReLU, one logit per overlapping patch.

Normalisation (``norm``): ``instance`` (CycleGAN's choice) removes every feature map's mean and
variance per image after the first layer, so wherever the first layer acts linearly a global gain
and offset of the image (substrate level, particle brightness: what a microscopy renderer must
match) are normalised away. ``spectral`` (Miyato et al. 2018) bounds each layer's Lipschitz
constant instead and keeps the levels visible; ``none`` uses neither.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from diffrendergan.errors import ConfigError
from diffrendergan.schemas import D_NORMS


class PatchDiscriminator(nn.Module):
    """forward(x (B, C, H, W)) -> logits (B, 1, H', W')."""

    def __init__(
        self, in_channels: int = 1, base_filters: int = 64, n_layers: int = 3, norm: str = "instance"
    ):
        super().__init__()
        if norm not in D_NORMS:
            raise ConfigError("model.discriminator.norm", f"expected one of {D_NORMS}, got {norm!r}")
        convs = [nn.Conv2d(in_channels, base_filters, 4, 2, 1)]
        layers: list[nn.Module] = [convs[0], nn.LeakyReLU(0.2, True)]
        ch = base_filters
        for i in range(1, n_layers + 1):
            out = base_filters * min(2**i, 8)
            stride = 2 if i < n_layers else 1
            convs.append(nn.Conv2d(ch, out, 4, stride, 1, bias=norm != "instance"))
            layers.append(convs[-1])
            if norm == "instance":
                layers.append(nn.InstanceNorm2d(out, affine=True))
            layers.append(nn.LeakyReLU(0.2, True))
            ch = out
        convs.append(nn.Conv2d(ch, 1, 4, 1, 1))
        layers.append(convs[-1])
        for conv in convs:
            nn.init.xavier_uniform_(conv.weight)
            if conv.bias is not None:
                nn.init.zeros_(conv.bias)
        if norm == "spectral":
            layers = [spectral_norm(m) if isinstance(m, nn.Conv2d) else m for m in layers]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x * 2.0 - 1.0)
