"""ParamSpace: the named rendering parameters and their physical ranges.

The paper's parameter network ends in a sigmoid; each output u in (0, 1) becomes
``low + (high - low) * u``. Parameters with ``learn=False`` are held at their ``value``
(or the range midpoint) and are not produced by the network.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch

from diffrendergan.errors import ConfigError


@dataclass(frozen=True)
class ParamRange:
    """A physical parameter range. ``value`` is used when ``learn`` is False."""

    low: float
    high: float
    learn: bool = True
    value: float | None = None

    @property
    def fixed_value(self) -> float:
        return 0.5 * (self.low + self.high) if self.value is None else float(self.value)


def held_entries(
    values: Mapping[str, float], ranges: Mapping[str, tuple[float, float]]
) -> dict[str, dict[str, float | bool]]:
    """``material.params`` entries that hold each named parameter fixed at its value (in order)."""
    return {
        name: {"low": ranges[name][0], "high": ranges[name][1], "learn": False, "value": value}
        for name, value in values.items()
    }


@dataclass(frozen=True)
class Domain:
    """Physically meaningful values of a parameter: ``low <= x <= high`` (``low < x`` when
    ``open_low``); ``None`` = unbounded. A configured range must lie inside it."""

    low: float | None = None
    high: float | None = None
    open_low: bool = False
    meaning: str = ""

    def contains(self, x: float) -> bool:
        if self.low is not None and (x < self.low or (self.open_low and x == self.low)):
            return False
        return self.high is None or x <= self.high

    def __str__(self) -> str:
        if self.low is not None and self.high is not None:
            return f"{'(' if self.open_low else '['}{self.low:g}, {self.high:g}]"
        if self.low is not None:
            return f"{'>' if self.open_low else '>='} {self.low:g}"
        return "any value" if self.high is None else f"<= {self.high:g}"


NON_NEGATIVE = Domain(0.0)
POSITIVE = Domain(0.0, open_low=True)
FRACTION = Domain(0.0, 1.0)


def check_domain(key: str, r: ParamRange, domain: Domain) -> None:
    """A :class:`ConfigError` naming ``key`` when the range (or fixed value) leaves ``domain``."""
    values = [r.low, r.high] + ([] if r.value is None else [r.value])
    if all(domain.contains(v) for v in values):
        return
    what = f" of the {domain.meaning}" if domain.meaning else ""
    shown = f"{{low: {r.low:g}, high: {r.high:g}" + ("}" if r.value is None else f", value: {r.value:g}}}")
    bound = f"in {domain}" if domain.low is not None and domain.high is not None else str(domain)
    raise ConfigError(key, f"got {shown}; expected low and high {bound} (the physical domain{what})")


class ParamSpace:
    """Ordered parameters; maps unit vectors (B, K_learned) to named physical tensors (B,)."""

    def __init__(self, ranges: Mapping[str, ParamRange], key_prefix: str = "material.params"):
        for name, r in ranges.items():
            key = f"{key_prefix}.{name}"
            if not (r.low == r.low and r.high == r.high):
                raise ConfigError(key, "low/high must be numbers")
            if r.low > r.high:
                raise ConfigError(key, f"low ({r.low}) must be <= high ({r.high})")
            if not r.learn and r.value is not None and not r.low <= r.value <= r.high:
                raise ConfigError(key, f"value {r.value} outside [{r.low}, {r.high}]")
        self.ranges: dict[str, ParamRange] = dict(ranges)
        self.learned: list[str] = [n for n, r in self.ranges.items() if r.learn]
        self.fixed: list[str] = [n for n, r in self.ranges.items() if not r.learn]

    @property
    def dim(self) -> int:
        """Number of learned parameters (the parameter network's output size)."""
        return len(self.learned)

    def bounds(self) -> tuple[torch.Tensor, torch.Tensor]:
        low = torch.tensor([self.ranges[n].low for n in self.learned], dtype=torch.float32)
        high = torch.tensor([self.ranges[n].high for n in self.learned], dtype=torch.float32)
        return low, high

    def to_physical(self, u: torch.Tensor) -> dict[str, torch.Tensor]:
        """u: (B, dim) in [0, 1] -> {name: (B,)} physical values, fixed ones broadcast."""
        if u.ndim != 2 or u.shape[1] != self.dim:
            raise ValueError(f"expected unit parameters of shape (B, {self.dim}), got {tuple(u.shape)}")
        low, high = (t.to(u) for t in self.bounds())
        phys = low + (high - low) * u
        out = {n: phys[:, i] for i, n in enumerate(self.learned)}
        for n in self.fixed:
            out[n] = torch.full((u.shape[0],), self.ranges[n].fixed_value, dtype=u.dtype, device=u.device)
        return out

    def to_unit(self, values: Mapping[str, float | torch.Tensor]) -> torch.Tensor:
        """Inverse of :meth:`to_physical` for the learned parameters -> (B, dim)."""
        cols = []
        for n in self.learned:
            r = self.ranges[n]
            v = torch.as_tensor(values[n], dtype=torch.float32).reshape(-1)
            span = r.high - r.low
            cols.append((v - r.low) / span if span > 0 else torch.zeros_like(v))
        return torch.stack(cols, 1) if cols else torch.zeros(1, 0)

    def sample_uniform(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Unit vectors drawn uniformly: the paper's "no GAN" baseline. -> (n, dim)."""
        return torch.rand(n, self.dim, generator=generator)
