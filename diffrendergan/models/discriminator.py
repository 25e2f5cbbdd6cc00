"""PatchGAN discriminator (pix2pix "basic" D, 70x70 receptive field): 3 strided conv layers with
64 base filters, instance norm, leaky ReLU, one logit per overlapping patch."""

from __future__ import annotations

import torch
from torch import nn


class PatchDiscriminator(nn.Module):
    """forward(x (B, C, H, W)) -> logits (B, 1, H', W')."""

    def __init__(self, in_channels: int = 1, base_filters: int = 64, n_layers: int = 3):
        super().__init__()
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, base_filters, 4, 2, 1),
            nn.LeakyReLU(0.2, True),
        ]
        ch = base_filters
        for i in range(1, n_layers + 1):
            out = base_filters * min(2**i, 8)
            stride = 2 if i < n_layers else 1
            layers += [
                nn.Conv2d(ch, out, 4, stride, 1, bias=False),
                nn.InstanceNorm2d(out, affine=True),
                nn.LeakyReLU(0.2, True),
            ]
            ch = out
        layers.append(nn.Conv2d(ch, 1, 4, 1, 1))
        self.net = nn.Sequential(*layers)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x * 2.0 - 1.0)
