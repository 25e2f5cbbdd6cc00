"""Contacts between particles: seams, pairs and whether a bright-blob detector keeps them apart."""

from __future__ import annotations

import math

import numpy as np
import pytest

from diffrendergan.metrics.appearance import appearance_stats
from diffrendergan.metrics.contacts import blob_homes, contact_counts, seams_and_pairs


def _discs(centres: list[tuple[int, int]], radius: float = 12, shape: tuple[int, int] = (64, 128)):
    """Instance map (H, W) int64 of discs numbered from 1; a later disc covers an earlier one."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    inst = np.zeros(shape, np.int64)
    for k, (cy, cx) in enumerate(centres, start=1):
        inst[np.hypot(yy - cy, xx - cx) <= radius] = k
    return inst


def _image(inst: np.ndarray, seam_value: float | None) -> np.ndarray:
    """Grains at 0.7 on a film at 0.05; with ``seam_value``, the grains' pixels on their seams
    (a band ~4 px wide) take that value."""
    image = np.where(inst > 0, 0.7, 0.05)
    if seam_value is not None:
        seam, _ = seams_and_pairs(inst)
        image[seam & (inst > 0)] = seam_value
    return image


def test_touching_discs_make_one_pair_and_a_seam_along_their_contact() -> None:
    inst = _discs([(32, 30), (32, 50), (32, 100)])  # 2 covers 1 from x = 38; 3 stands alone
    seam, pairs = seams_and_pairs(inst)
    assert pairs.tolist() == [[1, 2]]
    xs = np.nonzero(seam)[1]
    assert xs.min() >= 37 - 2 and xs.max() <= 38 + 3  # a band as wide as the window around the contact
    assert seam[32, 38] and not seam[32, 30] and not seam[32, 100]
    assert (inst[seam] > 0).mean() > 0.8  # the line between them, hardly any film beside it


def test_a_chain_of_three_has_two_contacts() -> None:
    _, pairs = seams_and_pairs(_discs([(32, 20), (32, 44), (32, 68)]))
    assert pairs.tolist() == [[1, 2], [2, 3]]


@pytest.mark.parametrize(("seam_value", "merged"), [(None, 1), (0.05, 0)])
def test_a_dark_seam_keeps_touching_grains_apart(seam_value: float | None, merged: int) -> None:
    inst = _discs([(32, 30), (32, 50), (32, 100)])
    counts = contact_counts(_image(inst, seam_value), inst)
    assert (counts.particles, counts.pairs, counts.merged) == (3, 1, merged)
    if seam_value is None:
        assert counts.seam_sum / counts.seam_pixels > 0.6  # grain pixels, hardly any film


def test_blob_home_needs_half_of_the_particle() -> None:
    inst = np.zeros((4, 8), np.int64)
    inst[:, :4], inst[:, 4:] = 1, 2
    blobs = np.zeros_like(inst)
    blobs[:, :2] = 5  # half of particle 1
    blobs[:1, 4:] = 7  # a quarter of particle 2
    assert blob_homes(inst, blobs).tolist() == [0, 5, 0]


def test_set_statistics_count_contacts_per_particle_and_merged_share() -> None:
    inst = _discs([(32, 30), (32, 50), (32, 100)])
    bright = appearance_stats([(_image(inst, None), inst)])
    dark = appearance_stats([(_image(inst, 0.05), inst)])
    assert bright.contacts_per_particle == pytest.approx(1 / 3)
    assert (bright.pairs_merged, dark.pairs_merged) == (1.0, 0.0)
    assert dark.seam < bright.seam and dark.seam_core < bright.seam_core
    alone = appearance_stats([(_image(_discs([(32, 30)]), None), _discs([(32, 30)]))])
    assert alone.contacts_per_particle == 0.0 and math.isnan(alone.pairs_merged) and math.isnan(alone.seam)
