"""Seeds cut at necks: joined grains come apart, single grains (convex, elongated, textured) stay whole."""

from __future__ import annotations

import numpy as np
import pytest

from diffrendergan.segmentation.necks import fill_enclosed, highest_passes, merge_shallow, split_at_necks
from diffrendergan.segmentation.representations import Representation, decode

YY, XX = np.mgrid[:80, :120]


def _disc(r: float, c: float, radius: float) -> np.ndarray:
    return (YY - r) ** 2 + (XX - c) ** 2 < radius**2


def _ids(mask: np.ndarray) -> np.ndarray:
    return mask.astype(np.int64)


def test_two_grains_joined_by_a_neck_are_cut_at_the_neck() -> None:
    # Radius 15, centres 26 px apart: the neck's half-width is 7.5 px, half the lobes' 15.
    joined = _disc(40, 40, 15) | _disc(40, 66, 15)
    cut = split_at_necks(_ids(joined), 0.6)
    assert cut.max() == 2
    assert cut[40, 30] != cut[40, 76]  # one id per grain ...
    assert np.array_equal(cut > 0, joined)  # ... and no pixel gained or lost
    assert np.abs(np.argwhere(cut == cut[40, 30])[:, 1].max() - 53) <= 1  # the cut is at the neck
    assert split_at_necks(_ids(joined), 0.4).max() == 1  # a neck of 0.5 is not below 0.4
    assert split_at_necks(_ids(joined), 0.0).max() == 1  # 0 = never cut


@pytest.mark.parametrize(
    "shape",
    [
        ((YY - 40) / 10) ** 2 + ((XX - 60) / 40) ** 2 < 1,  # elongated 8:1
        _disc(40, 60, 25),  # convex
        _disc(40, 60, 25) & ~((np.abs(YY - 40) < 2) & (XX > 80)),  # a notch from the rim
    ],
    ids=["ellipse", "disc", "notched"],
)
def test_single_grains_stay_whole(shape: np.ndarray) -> None:
    assert split_at_necks(_ids(shape), 0.7).max() == 1


def test_holes_of_uncertain_pixels_do_not_cut_a_grain() -> None:
    textured = _disc(40, 60, 25)
    textured[36:40, 50:54] = False
    textured[44:46, 66:69] = False
    assert split_at_necks(_ids(textured), 0.7).max() == 1
    assert fill_enclosed(_ids(textured)).sum() == _disc(40, 60, 25).sum()


def test_a_grain_inside_another_ring_is_neither_filled_in_nor_merged() -> None:
    seeds = np.zeros(YY.shape, dtype=np.int64)
    seeds[_disc(40, 60, 30) & ~_disc(40, 60, 14)] = 1
    seeds[_disc(40, 60, 8)] = 2
    assert np.array_equal(fill_enclosed(seeds), seeds)
    cut = split_at_necks(seeds, 0.5)
    inner, ring = np.unique(cut[seeds == 2]), np.unique(cut[seeds == 1])
    assert inner.size == 1 and not set(inner) & set(ring)


def test_every_new_seed_lies_inside_one_old_seed() -> None:
    rng = np.random.default_rng(0)
    seeds = np.zeros(YY.shape, dtype=np.int64)
    for k in range(1, 8):
        seeds[_disc(*rng.uniform([10, 10, 5], [70, 110, 14])) & (seeds == 0)] = k
    cut = split_at_necks(seeds, 0.6)
    assert np.array_equal(cut > 0, seeds > 0)
    for new in np.unique(cut[cut > 0]):
        assert np.unique(seeds[cut == new]).size == 1


def test_passes_are_the_highest_step_between_basins_and_merge_from_the_top() -> None:
    basins = np.array([[1, 1, 2, 2, 3]])
    height = np.array([[5.0, 4.0, 3.0, 6.0, 1.0]])
    passes = highest_passes(basins, height)
    assert passes.tolist() == [[1, 2, 3.0], [2, 3, 1.0]]
    peaks = np.array([0.0, 5.0, 6.0, 2.5])
    assert merge_shallow(passes, peaks, 0.5).tolist() == [0, 1, 1, 3]  # 3 >= 0.5 * 5; 1 < 0.5 * 2.5
    assert merge_shallow(passes, peaks, 0.7).tolist() == [0, 1, 2, 3]


def test_decoder_separates_grains_whose_cores_a_network_joined_with_confidence() -> None:
    joined = _disc(40, 40, 15) | _disc(40, 68, 15)  # neck half-width 5.4 px: 0.36 of the lobes
    probs = np.zeros((3, *YY.shape), dtype=np.float32)
    probs[0] = ~joined
    probs[1] = joined  # the separator between the grains was missed entirely
    assert decode(probs, "core_watershed", erode_px=0, core_threshold=0.9, split_neck_ratio=0.5).max() == 2
    assert decode(probs, "core_watershed", erode_px=0, core_threshold=0.9).max() == 1
    assert Representation().split_neck_ratio == 0.5
    with pytest.raises(ValueError, match="split_neck_ratio"):
        Representation(split_neck_ratio=1.0)
