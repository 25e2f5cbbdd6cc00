"""PatchGAN discriminator: normalisation variants."""

from __future__ import annotations

import pytest
import torch

from diffrendergan.errors import ConfigError
from diffrendergan.models.discriminator import D_NORMS, PatchDiscriminator


@pytest.mark.parametrize("norm", D_NORMS)
def test_every_norm_gives_a_patch_map(norm: str) -> None:
    d = PatchDiscriminator(1, 8, 3, norm)
    out = d(torch.rand(2, 1, 64, 64))
    assert out.shape == (2, 1, 6, 6)
    has_instance = any(isinstance(m, torch.nn.InstanceNorm2d) for m in d.modules())
    assert has_instance == (norm == "instance")


def test_spectral_norm_bounds_every_layer() -> None:
    d = PatchDiscriminator(1, 8, 3, "spectral")
    d(torch.rand(1, 1, 64, 64))  # a forward pass runs the power iteration
    for conv in (m for m in d.modules() if isinstance(m, torch.nn.Conv2d)):
        sigma = torch.linalg.matrix_norm(conv.weight.flatten(1), ord=2)
        assert float(sigma) <= 1.05


def test_unknown_norm_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"discriminator\.norm"):
        PatchDiscriminator(1, 8, 3, "batch")
