"""Parameter networks: particle layout -> unit rendering parameters in (0, 1).

``mlp`` is the paper's regression MLP on the flattened, zero-padded layout. Particle order is
arbitrary, so ``deepsets`` (a per-particle encoder, masked mean/max pooling, then an MLP) is offered
as a permutation-invariant alternative.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import weight_norm


def _head(hidden: int, out_dim: int) -> nn.Linear:
    head = nn.Linear(hidden, out_dim)
    nn.init.xavier_uniform_(head.weight)
    nn.init.zeros_(head.bias)
    return head


def _mlp(d_in: int, hidden: int, layers: int, dropout: float, norm: bool) -> nn.Sequential:
    mods: list[nn.Module] = []
    d = d_in
    for _ in range(layers):
        lin = nn.Linear(d, hidden)
        nn.init.xavier_uniform_(lin.weight)
        nn.init.zeros_(lin.bias)
        mods += [weight_norm(lin) if norm else lin, nn.ReLU(), nn.Dropout(dropout)]
        d = hidden
    return nn.Sequential(*mods)


class MLPParamNet(nn.Module):
    """Paper: 4 weight-normalised hidden layers of 128, ReLU, dropout 0.2, sigmoid output.

    forward(layout (B, P, 4), mask (B, P)) -> (B, out_dim) in (0, 1).
    """

    def __init__(
        self,
        max_particles: int,
        out_dim: int,
        hidden: int = 128,
        layers: int = 4,
        dropout: float = 0.2,
    ):
        super().__init__()
        self.max_particles = max_particles
        self.body = _mlp(max_particles * 4, hidden, layers, dropout, norm=True)
        self.head = _head(hidden, out_dim)

    def forward(self, layout: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = (layout * mask[..., None]).flatten(1)
        return torch.sigmoid(self.head(self.body(x)))


class DeepSetsParamNet(nn.Module):
    """Permutation-invariant: phi per particle, masked mean and max pooling, rho -> sigmoid."""

    def __init__(
        self,
        max_particles: int,
        out_dim: int,
        hidden: int = 128,
        layers: int = 4,
        dropout: float = 0.2,
    ):
        super().__init__()
        self.max_particles = max_particles
        self.phi = _mlp(4, hidden, 2, 0.0, norm=True)
        self.rho = _mlp(2 * hidden + 1, hidden, max(layers - 2, 1), dropout, norm=True)
        self.head = _head(hidden, out_dim)

    def forward(self, layout: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.phi(layout)  # (B, P, H)
        m = mask[..., None].to(h.dtype)
        count = m.sum(1).clamp_min(1.0)
        mean = (h * m).sum(1) / count
        mx = torch.where(m > 0, h, torch.full_like(h, -1e4)).max(1).values * (count > 0)
        feats = torch.cat([mean, mx, count / self.max_particles], 1)
        return torch.sigmoid(self.head(self.rho(feats)))


PARAM_NETS = {"mlp": MLPParamNet, "deepsets": DeepSetsParamNet}
