"""Shader protocol and registry.

A shader maps a G-buffer and named physical parameters (each a (B,) tensor) to a noiseless
detector signal (B, 1, H, W). Shaders are pure tensor functions, so autograd reaches every
parameter; geometry enters only through the (cached, constant) G-buffer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch

from diffrendergan.errors import ConfigError
from diffrendergan.params.space import Domain
from diffrendergan.rendering.gbuffer import GBuffer

Params = Mapping[str, torch.Tensor]


@dataclass(frozen=True)
class Shader:
    """name; fn(gbuffer, params) -> (B, 1, H, W); default [low, high] range per parameter, the
    physical domain each parameter's configured range must stay in (what the formula allows), and
    the parameters added after checkpoints were written, each with the value that renders as
    before it existed (such checkpoints load with it held there)."""

    name: str
    fn: Callable[[GBuffer, Params], torch.Tensor]
    ranges: Mapping[str, tuple[float, float]]
    needs_thickness: bool = False
    domains: Mapping[str, Domain] = field(default_factory=dict)
    introduced: Mapping[str, float] = field(default_factory=dict)

    def __call__(self, gb: GBuffer, params: Params) -> torch.Tensor:
        missing = [k for k in self.ranges if k not in params]
        if missing:
            raise ConfigError(f"material.params.{missing[0]}", f"shader {self.name!r} needs this parameter")
        return self.fn(gb, params)


def per_image(x: torch.Tensor) -> torch.Tensor:
    """(B,) -> (B, 1, 1, 1) for broadcasting against image maps."""
    return x.reshape(-1, 1, 1, 1)
