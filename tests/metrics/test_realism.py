"""Realism metrics: SWD on Laplacian-pyramid patches and the grey-level histogram W1."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from diffrendergan.metrics.realism import (
    SlicedWasserstein,
    extract_descriptors,
    histogram_distance,
    laplacian_pyramid,
    num_levels,
    realism_report,
    swd,
)
from diffrendergan.metrics.realism import _blur as pyramid_blur
from diffrendergan.metrics.realism import _pyr_up as pyr_up


def _gauss_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Reflect-padded separable Gaussian blur of (N,1,H,W)."""
    r = max(1, int(3 * sigma))
    t = torch.arange(-r, r + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="reflect"), k.view(1, 1, 1, -1))
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="reflect"), k.view(1, 1, -1, 1))


def _texture(n: int, corr_sigma: float, seed: int, size: int = 64) -> torch.Tensor:
    """Random texture: white noise smoothed to correlation length ``corr_sigma``, in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    x = _gauss_blur(torch.randn(n, 1, size, size, generator=g), corr_sigma)
    x = x / x.flatten(1).std(dim=1).view(-1, 1, 1, 1)
    return (0.5 + 0.12 * x).clamp(0, 1)


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    """16 textured 64x64 'micrographs': smooth blobs plus fine grain."""
    return (0.7 * _texture(16, 3.0, seed=1) + 0.3 * _texture(16, 0.7, seed=2)).clamp(0, 1)


def test_num_levels_down_to_16px() -> None:
    assert num_levels(256, 256) == 5  # 256, 128, 64, 32, 16
    assert num_levels(64, 48) == 2  # 64x48, 32x24 (16x12 would be below 16 px)
    assert num_levels(8, 8) == 1


def test_pyramid_blur_is_the_binomial_kernel_with_reflected_borders() -> None:
    """The library blur (kornia) agrees with the definition: the 5x5 outer product of
    [1, 4, 6, 4, 1] / 16, borders mirrored (so the SWD values reported before it are unchanged)."""
    x = torch.rand(3, 1, 21, 34, generator=torch.Generator().manual_seed(1))
    b = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0
    reference = F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), torch.outer(b, b)[None, None])
    torch.testing.assert_close(pyramid_blur(x), reference, atol=1e-6, rtol=0)


def test_laplacian_pyramid_shapes_and_exact_reconstruction() -> None:
    x = torch.rand(2, 1, 64, 40, generator=torch.Generator().manual_seed(0))
    pyr = laplacian_pyramid(x, 3)
    assert [tuple(p.shape[-2:]) for p in pyr] == [(64, 40), (32, 20), (16, 10)]
    rec = pyr[-1]
    for lvl in reversed(pyr[:-1]):
        rec = lvl + pyr_up(rec, lvl.shape[-2:])
    torch.testing.assert_close(rec, x, atol=1e-5, rtol=0)
    # Band-pass levels of a constant image are zero.
    flat = laplacian_pyramid(torch.full((1, 1, 32, 32), 0.3), 2)
    assert flat[0].abs().max() < 1e-6


def test_descriptor_shape_and_seeded_positions(images: torch.Tensor) -> None:
    d1 = extract_descriptors(images, seed=3)
    d2 = extract_descriptors(images, seed=3)
    d3 = extract_descriptors(images, seed=4)
    assert d1.shape == (16, 3, 128, 49)
    assert torch.equal(d1, d2)
    assert not torch.equal(d1[:, 0], d3[:, 0])
    # Positions follow each image's id, not its place in the batch.
    ids = torch.arange(16)
    part = extract_descriptors(images[5:9], seed=3, ids=ids[5:9])
    assert torch.equal(part, d1[5:9])
    assert not torch.equal(extract_descriptors(images[5:9], seed=3), d1[5:9])


def test_identical_sets_give_zero(images: torch.Tensor) -> None:
    r = swd(images, images.clone(), seed=0)
    assert len(r["levels"]) == 3
    assert r["mean"] == pytest.approx(0.0, abs=1e-9)
    assert histogram_distance(images, images) == pytest.approx(0.0, abs=1e-12)


def test_deterministic_and_seeded(images: torch.Tensor) -> None:
    fake = _gauss_blur(images, 1.0)
    a = swd(images, fake, seed=5)
    assert a == swd(images, fake, seed=5)
    assert swd(images, fake, seed=6)["mean"] != a["mean"]  # the seed matters


def test_cached_real_reference_matches_fresh_metric(images: torch.Tensor) -> None:
    """``reset_fake`` keeps the real side: each later fake set scores as a fresh computation."""
    m = SlicedWasserstein(seed=0)
    m.update(images, real=True)
    for sigma in (0.4, 1.6):
        fake = _gauss_blur(images, sigma)
        m.update(fake, real=False)
        assert float(m.compute()["mean"]) == pytest.approx(swd(images, fake)["mean"], rel=1e-12)
        m.reset_fake()


def test_swd_monotonic_in_blur_strength(images: torch.Tensor) -> None:
    vals = [swd(images, _gauss_blur(images, s))["mean"] for s in (0.4, 0.8, 1.6)]
    assert vals[0] < vals[1] < vals[2], vals
    # Blur removes fine detail: the finest level reacts most.
    lv = swd(images, _gauss_blur(images, 1.6))["levels"]
    assert lv[0] == max(lv)


def test_swd_and_hist_monotonic_in_noise_strength(images: torch.Tensor) -> None:
    g = torch.Generator().manual_seed(11)
    noise = torch.randn(images.shape, generator=g)
    vals, hists = [], []
    for s in (0.01, 0.04, 0.12):
        fake = (images + s * noise).clamp(0, 1)
        vals.append(swd(images, fake)["mean"])
        hists.append(histogram_distance(images, fake))
    assert vals[0] < vals[1] < vals[2], vals
    assert hists[0] < hists[1] < hists[2], hists


def test_same_distribution_much_closer_than_different() -> None:
    real = _texture(16, 1.0, seed=10)
    same = _texture(16, 1.0, seed=20)  # independent draw, same distribution
    other = _texture(16, 2.5, seed=30)  # coarser texture, same grey-level statistics
    d_same = swd(real, same)["mean"]
    d_other = swd(real, other)["mean"]
    assert d_same > 0
    assert d_other > 5 * d_same, (d_same, d_other)


def test_unequal_set_sizes(images: torch.Tensor) -> None:
    r = swd(images, images[:5], seed=0)
    assert np.isfinite(r["mean"]) and r["mean"] >= 0
    # A subset of the same set is closer than a strongly blurred set of full size.
    assert r["mean"] < swd(images, _gauss_blur(images, 2.0))["mean"]
    with pytest.raises(ValueError):
        swd(images, images[..., :32, :32])


def test_histogram_distance_is_w1_in_grey_levels() -> None:
    a = torch.full((2, 1, 16, 16), 0.2)
    b = torch.full((2, 1, 16, 16), 0.5)
    assert histogram_distance(a, b) == pytest.approx(0.3, abs=2 / 256)
    assert histogram_distance(a.numpy(), b.numpy()) == histogram_distance(a, b)


def test_split_updates_and_repeated_ids_give_the_whole_set(images: torch.Tensor) -> None:
    """Shards in any order, with repeats (as DDP pads them), give the value of the whole set."""
    fake = _gauss_blur(images, 1.0)
    whole = swd(images, fake, seed=2)
    m = SlicedWasserstein(seed=2)
    ids = torch.arange(16)
    for shard in (ids[1::2], torch.cat([ids[0::2], ids[:1]])):  # rank 1, rank 0 padded with id 0
        m.update(images[shard], real=True, ids=shard)
    for chunk in fake.split(5):  # default ids run on across updates
        m.update(chunk, real=False)
    out = m.compute()  # equal up to float32 convolutions run on batches of another size
    assert out["levels"].tolist() == pytest.approx(whole["levels"], rel=1e-6)
    assert float(out["mean"]) == pytest.approx(whole["mean"], rel=1e-6)
    m.reset()
    m.update(images[:8], real=True)  # a different real set: the check above can fail
    m.update(fake, real=False)
    assert float(m.compute()["mean"]) != pytest.approx(whole["mean"], rel=1e-3)


def test_realism_report_keys(images: torch.Tensor) -> None:
    rep = realism_report(images, (images + 0.05).clamp(0, 1), seed=0)
    assert set(rep) == {"swd", "swd_levels", "hist_w1"}
    assert rep["swd"] == pytest.approx(float(np.mean(rep["swd_levels"])))
    assert rep["hist_w1"] == pytest.approx(0.05, abs=0.01)
