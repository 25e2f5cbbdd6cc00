"""Packing statistics (contacts, lone grains, agglomerates) of masks and of a layout law's renders."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from diffrendergan.config import MaterialConfig
from diffrendergan.evaluation.packing import (
    Packing,
    image_packing,
    labeled_packing,
    law_packing,
    packing,
)


def _chain_and_a_loner() -> np.ndarray:
    """Three grains in a row split by 1-px background lines, and one grain far away."""
    inst = np.zeros((20, 40), np.int64)
    inst[2:8, 2:8] = 1
    inst[2:8, 9:15] = 2
    inst[2:8, 16:22] = 3
    inst[12:18, 30:36] = 4
    return inst


def test_a_chain_and_a_lone_grain() -> None:
    p = image_packing(_chain_and_a_loner())
    assert p == Packing(images=1, particles=4, pairs=2, isolated=1, agglomerates=2)
    s = p.summary()
    assert s["contacts_per_particle"] == 0.5 and s["isolated_share"] == 0.25
    assert s["agglomerates_per_image"] == 2.0 and s["particles_per_image"] == 4.0


def test_sums_over_images_and_an_empty_image_counts_as_an_image() -> None:
    total = packing([_chain_and_a_loner(), np.zeros((20, 40), np.int64)])
    assert total == Packing(images=2, particles=4, pairs=2, isolated=1, agglomerates=2)
    assert total.summary()["agglomerates_per_image"] == 1.0
    assert np.isnan(Packing(images=1).summary()["contacts_per_particle"])


def test_the_tio2_layouts_pack_like_the_real_masks(
    real_tio2: Path, shipped_material: Callable[..., MaterialConfig]
) -> None:
    """material=tio2's placement is calibrated on the Ruehle masks cut into render-sized tiles:
    its renders touch about as often per particle, and few grains lie alone (README, "Packing
    like the specimen"; 1-4 agglomerates per image gave 1.10 contacts per particle and 9 % alone
    against the masks' 1.32 and 6 %)."""
    material = shipped_material("tio2")
    masks = labeled_packing(real_tio2 / "labeled", material.image_size).summary()
    rendered = law_packing(material, n_images=48, seed=0).summary()
    assert rendered["contacts_per_particle"] == pytest.approx(masks["contacts_per_particle"], abs=0.15)
    assert rendered["isolated_share"] < 0.08
