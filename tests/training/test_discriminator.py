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


def test_scales_add_coarser_verdicts_on_the_finest_grid() -> None:
    """Scale 2 judges the image pooled by 2 (verdict windows twice as wide), repeated onto the
    finest grid; one scale keeps the single-PatchGAN weights' names (old checkpoints load)."""
    one = PatchDiscriminator(1, 8, 2, "spectral")
    two = PatchDiscriminator(1, 8, 2, "spectral", scales=2)
    x = torch.rand(2, 1, 64, 64)
    assert one(x).shape == (2, 1, 14, 14) and two(x).shape == (2, 2, 14, 14)
    assert set(one.state_dict()) < set(two.state_dict())
    # The coarse channel sees only the pooled image: a checkerboard that pooling by 2 removes
    # changes the fine verdicts and not the coarse ones.
    checker = (torch.arange(64)[:, None] + torch.arange(64)[None, :]) % 2 * 0.2 - 0.1
    flat = torch.full((1, 1, 64, 64), 0.5)
    two.eval()  # no power-iteration update between the two calls
    a, b = two(flat), two(flat + checker)
    assert not torch.allclose(a[:, 0], b[:, 0])
    torch.testing.assert_close(a[:, 1], b[:, 1])
    with pytest.raises(ConfigError, match=r"discriminator\.scales"):
        PatchDiscriminator(1, 8, 2, "spectral", scales=0)
