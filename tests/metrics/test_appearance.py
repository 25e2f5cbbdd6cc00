"""Appearance statistics on hand-made images with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from diffrendergan.metrics.appearance import (
    N_BINS,
    OUTLINE_REACH,
    appearance_difference,
    appearance_stats,
    outline_items,
    particle_profiles,
    radial_bins,
    whole_particles,
)


def _disc(shape: tuple[int, int], centre: tuple[int, int], radius: float) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return np.hypot(yy - centre[0], xx - centre[1]) <= radius


def _scene(rim: float, core: float, substrate: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Two discs of radius 12 whose intensity goes linearly from ``rim`` to ``core``."""
    shape = (96, 96)
    inst = np.zeros(shape, np.int32)
    image = np.full(shape, substrate)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    for k, c in enumerate(((30, 30), (62, 64)), start=1):
        disc = _disc(shape, c, 12)
        inst[disc] = k
        r = np.hypot(yy - c[0], xx - c[1]) / 12.0
        image[disc] = (core + (rim - core) * r)[disc]
    return image, inst


def test_radial_bins_run_from_rim_to_core() -> None:
    _, inst = _scene(1.0, 0.0)
    bins = radial_bins(inst)
    assert (bins[inst == 0] == -1).all()
    assert bins[30, 30] == N_BINS - 1  # centre of disc 1
    assert bins[30, 18] == 0  # on its outline
    assert set(np.unique(bins[inst == 1])) == set(range(N_BINS))


@pytest.mark.parametrize(("rim", "core"), [(0.9, 0.3), (0.5, 0.6)])
def test_profile_follows_the_shading(rim: float, core: float) -> None:
    image, inst = _scene(rim, core)
    stats = appearance_stats([(image, inst)])
    assert stats.n_particles == 2
    assert stats.profile[0] == pytest.approx(rim, abs=0.1)
    assert stats.profile[-1] == pytest.approx(core, abs=0.1)
    assert np.sign(np.diff(stats.profile)).tolist() == [np.sign(core - rim)] * (N_BINS - 1)
    assert stats.substrate == pytest.approx(0.1)
    assert stats.core_rim == pytest.approx(stats.profile[-1] / stats.profile[0])


def test_border_particles_and_specks_are_not_whole() -> None:
    inst = np.zeros((40, 40), np.int32)
    inst[0:10, 5:15] = 1  # touches the top border
    inst[20:30, 20:30] = 2  # whole
    inst[35, 35] = 3  # a 1-px speck
    kept = whole_particles(inst)
    assert set(np.unique(kept)) == {0, 2}
    assert particle_profiles(np.ones((40, 40)), inst).shape == (1, N_BINS)


def test_rim_gradient_sees_hard_edges_core_gradient_sees_shading() -> None:
    flat, inst = _scene(0.6, 0.6)
    shaded, _ = _scene(0.9, 0.1)
    a, b = appearance_stats([(flat, inst)]), appearance_stats([(shaded, inst)])
    assert a.core_gradient == pytest.approx(0.0, abs=1e-9)
    assert b.core_gradient > 0.01
    assert a.rim_gradient > 0.05


def test_substrate_spectrum_of_white_noise_is_flat_and_blur_removes_high_frequencies() -> None:
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(0)
    noise = rng.normal(0.5, 0.05, (256, 256))
    empty = np.zeros((256, 256), np.int32)
    white = appearance_stats([(noise, empty)]).substrate_psd
    blurred = appearance_stats([(gaussian_filter(noise, 1.5), empty)]).substrate_psd
    assert max(white) - min(white) < 0.3  # flat within a factor 2
    assert blurred[-1] < white[-1] - 1.0  # high band at least 10x weaker
    assert appearance_stats([(noise, empty)]).n_particles == 0


def test_difference_of_identical_sets_is_zero() -> None:
    image, inst = _scene(0.8, 0.4)
    s = appearance_stats([(image, inst)])
    diff = appearance_difference(s, s)
    assert diff["profile_max_abs"] == 0.0
    assert diff["substrate"] == 0.0


def test_grain_cv_is_the_spread_of_large_grains_mean_brightness() -> None:
    shape = (120, 120)
    inst = np.zeros(shape, np.int32)
    image = np.full(shape, 0.05)
    means = [0.4, 0.6, 0.8]
    for k, (c, m) in enumerate(zip(((30, 30), (30, 85), (85, 60)), means), start=1):
        disc = _disc(shape, c, 12)  # 449 px: large enough
        inst[disc], image[disc] = k, m
    inst[100:110, 5:15], image[100:110, 5:15] = 4, 0.1  # 100 px: too small to count
    expected = np.std(means) / np.mean(means)
    assert appearance_stats([(image, inst)]).grain_cv == pytest.approx(expected)
    equal = np.where(inst > 0, 0.6, 0.05)
    assert appearance_stats([(equal, inst)]).grain_cv == pytest.approx(0.0, abs=1e-12)
    two_grains = np.where(inst == 3, 0, inst)
    assert np.isnan(appearance_stats([(image, two_grains)]).grain_cv)  # fewer than 3: undefined


def test_one_stretched_empty_render_does_not_set_the_substrate_statistics() -> None:
    """A render with no particle gets its film stretched over the whole range by the per-image
    percentiles; the substrate's level, std and spectrum are medians over images, so one such
    image among five does not move them (pooled over pixels, it would dominate: it is all film)."""
    rng = np.random.default_rng(1)
    typical = [_scene(0.8, 0.6) for _ in range(4)]
    typical = [(image + rng.normal(0.0, 0.02, image.shape), inst) for image, inst in typical]
    empty = np.zeros_like(typical[0][1])
    stretched = rng.uniform(0.0, 1.0, empty.shape)
    alone = appearance_stats(typical)
    with_outlier = appearance_stats([*typical, (stretched, empty)])
    assert alone.substrate_std == pytest.approx(0.02, rel=0.2)
    assert with_outlier.substrate_std == pytest.approx(alone.substrate_std, rel=0.2)
    assert with_outlier.substrate == pytest.approx(alone.substrate, abs=0.01)
    assert max(abs(a - b) for a, b in zip(with_outlier.substrate_psd, alone.substrate_psd)) < 0.3


def test_outline_profile_is_indexed_by_signed_distance_to_the_outline() -> None:
    """An image whose value is the signed distance itself (negative outside) returns the index
    -reach..-1, +1..+reach; a particle cut by the border and pixels far from any particle do not
    count, and a hard edge reads 0 outside and 1 inside."""
    from scipy import ndimage as ndi

    _, inst = _scene(1.0, 1.0)
    inst[0:6, 40:50] = 3  # touches the border: not whole; its surroundings must not count
    fg = inst > 0
    signed = np.where(fg, np.rint(ndi.distance_transform_edt(fg)), -np.rint(ndi.distance_transform_edt(~fg)))
    expected = [*range(-OUTLINE_REACH, 0), *range(1, OUTLINE_REACH + 1)]
    image = np.where(inst == 3, 99.0, signed)
    image[(~fg) & (np.abs(signed) > OUTLINE_REACH)] = -99.0
    profile = appearance_stats([(image, inst)]).outline_profile
    assert profile == pytest.approx(expected)
    assert [d for d, _ in outline_items(profile)] == expected  # the keys the per-epoch log uses
    hard = appearance_stats([(fg.astype(float), inst)]).outline_profile
    assert hard == pytest.approx([0.0] * OUTLINE_REACH + [1.0] * OUTLINE_REACH)
    assert np.isnan(appearance_stats([(image, np.zeros_like(inst))]).outline_profile).all()


def test_profile_figure_draws_every_set(tmp_path) -> None:
    from PIL import Image

    from diffrendergan.metrics.appearance import profile_figure

    image, inst = _scene(0.8, 0.4)
    stats = appearance_stats([(image, inst)])
    empty = appearance_stats([(image, np.zeros_like(inst))])  # no particle: empty profiles
    out = tmp_path / "appearance.png"
    profile_figure({"real": stats, "fake": stats, "none": empty}, str(out))
    with Image.open(out) as png:
        assert png.size[0] > 3 * png.size[1]  # three panels side by side
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind
