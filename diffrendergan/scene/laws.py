"""Size and count laws (sizes in nm), sampled with a seeded ``torch.Generator``.

Size draws are written as ``transform(eps)`` of standard normals so that the same code path can
later carry reparameterised gradients (topography learning).
"""

from __future__ import annotations

import math

import torch

from diffrendergan.config import CountLaw, SizeLaw


def sample_sizes(law: SizeLaw, n: int, gen: torch.Generator) -> torch.Tensor:
    """Equivalent diameters (n,) in nm."""
    eps = torch.randn(n, generator=gen)
    if law.kind == "lognormal":
        d = math.exp(math.log(law.median_nm)) * torch.exp(law.sigma * eps)
    elif law.kind == "gaussian":
        d = law.mean_nm + law.std_nm * eps
    elif law.kind == "bimodal":
        second = torch.rand(n, generator=gen) < law.weight
        d = torch.where(second, law.mean2_nm + law.std2_nm * eps, law.mean_nm + law.std_nm * eps)
    else:  # validated in config; kept for direct callers
        raise ValueError(f"unknown size law {law.kind!r}")
    return d.clamp(law.min_nm, law.max_nm)


def size_law_moments(law: SizeLaw) -> dict[str, float]:
    """Mean and std (nm) of the law before clipping; used as ground truth for topography fits."""
    if law.kind == "lognormal":
        mean = law.median_nm * math.exp(0.5 * law.sigma**2)
        std = mean * math.sqrt(math.exp(law.sigma**2) - 1.0)
    elif law.kind == "gaussian":
        mean, std = law.mean_nm, law.std_nm
    else:
        w = law.weight
        mean = (1 - w) * law.mean_nm + w * law.mean2_nm
        second = (1 - w) * (law.std_nm**2 + law.mean_nm**2) + w * (law.std2_nm**2 + law.mean2_nm**2)
        std = math.sqrt(max(second - mean**2, 0.0))
    return {"mean_size_nm": mean, "std_size_nm": std}


def sample_count(law: CountLaw, gen: torch.Generator) -> int:
    """Number of particles in one image."""
    if law.kind == "fixed":
        return int(law.n)
    if law.kind == "uniform":
        return int(torch.randint(law.low, law.high + 1, (1,), generator=gen).item())
    lam = torch.tensor([float(law.mean)])
    return int(torch.poisson(lam, generator=gen).clamp(law.low, law.high).item())
