"""Test-time augmentation: the averaged predictor is equivariant to the 8 symmetries."""

import pytest
import torch

from diffrendergan.segmentation.tta import dihedral_mean, dihedral_views


def _lopsided_net() -> torch.nn.Module:
    """A conv net with asymmetric kernels: its output changes with the image's orientation."""
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 5, padding=2), torch.nn.Tanh(), torch.nn.Conv2d(4, 3, 3, padding=1)
    ).eval()


@pytest.mark.parametrize(("k", "flip"), dihedral_views())
def test_averaged_prediction_is_equivariant(k: int, flip: bool) -> None:
    net = _lopsided_net()
    x = torch.rand(2, 1, 32, 48)  # non-square: turns swap height and width
    transform = lambda t: torch.rot90(t.flip(-1) if flip else t, k, dims=(-2, -1))  # noqa: E731
    with torch.no_grad():
        averaged = dihedral_mean(net)
        expected = transform(torch.softmax(averaged(x), 1))
        got = torch.softmax(averaged(transform(x)), 1)
        plain = torch.softmax(net(transform(x)), 1)
    assert got.shape == (2, 3, *transform(x).shape[-2:])
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    if (k, flip) != (0, False):  # the network alone is not equivariant, so the test can fail
        assert (plain - transform(torch.softmax(net(x), 1))).abs().max() > 1e-3


def test_softmax_of_the_output_is_the_mean_probability() -> None:
    net = _lopsided_net()
    x = torch.rand(1, 1, 32, 32)
    with torch.no_grad():
        probs = torch.softmax(dihedral_mean(net)(x), 1)
        mean = torch.stack([
            torch.softmax(net(torch.rot90(x, k, dims=(-2, -1))), 1).rot90(-k, dims=(-2, -1)) for k in range(4)
        ] + [
            torch.softmax(net(torch.rot90(x.flip(-1), k, dims=(-2, -1))), 1).rot90(-k, dims=(-2, -1)).flip(-1)
            for k in range(4)
        ]).mean(0)  # fmt: skip
    torch.testing.assert_close(probs, mean, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(probs.sum(1), torch.ones(1, 32, 32))
