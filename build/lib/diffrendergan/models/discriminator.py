"""PatchGAN discriminator (pix2pix "basic" D, 70x70 receptive field): 3 strided conv layers with
64 base filters, leaky ReLU, one logit per overlapping patch.

Normalisation (``norm``): ``instance`` (CycleGAN's choice) removes every feature map's mean and
variance per image after the first layer, so wherever the first layer acts linearly a global gain
and offset of the image (substrate level, particle brightness: what a microscopy renderer must
match) are normalised away. ``spectral`` (Miyato et al. 2018) bounds each layer's Lipschitz
constant instead and keeps the levels visible; ``none`` uses neither.

Scales (``scales``): a PatchGAN whose verdicts see about one grain cannot judge what varies over
larger distances, such as the support film's undulations. Each further scale adds a PatchGAN of the
same depth on the image average-pooled by 2, 4, ..., whose verdicts span 2x, 4x the window
(pix2pixHD's multi-scale discriminator, Wang et al. 2018).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.parametrizations import spectral_norm

from diffrendergan.errors import ConfigError
from diffrendergan.schemas import D_NORMS


def _patch_net(in_channels: int, base_filters: int, n_layers: int, norm: str) -> nn.Sequential:
    """One PatchGAN: (B, C, H, W) in [-1, 1] -> (B, 1, h, w) logits."""
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
    return nn.Sequential(*layers)


class PatchDiscriminator(nn.Module):
    """forward(x (B, C, H, W)) -> logits (B, S, h, w), one channel per scale (S = ``scales``).

    Coarser scales' verdicts are repeated (nearest) onto the finest grid, so every loss and the
    per-patch weights apply unchanged and each scale counts equally in a mean.
    """

    def __init__(
        self,
        in_channels: int = 1,
        base_filters: int = 64,
        n_layers: int = 3,
        norm: str = "instance",
        scales: int = 1,
    ):
        super().__init__()
        if norm not in D_NORMS:
            raise ConfigError("model.discriminator.norm", f"expected one of {D_NORMS}, got {norm!r}")
        if scales < 1:
            raise ConfigError("model.discriminator.scales", f"must be >= 1, got {scales}")
        self.net = _patch_net(in_channels, base_filters, n_layers, norm)
        self.coarse = nn.ModuleList(
            _patch_net(in_channels, base_filters, n_layers, norm) for _ in range(scales - 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x * 2.0 - 1.0
        verdicts = [self.net(x)]
        for net in self.coarse:
            x = F.avg_pool2d(x, 2)
            verdicts.append(F.interpolate(net(x), size=verdicts[0].shape[-2:], mode="nearest"))
        return torch.cat(verdicts, 1)
