"""Ceilings: decoding the exact target of hand-made annotations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from diffrendergan.evaluation.ceilings import ceiling, ceilings_table
from diffrendergan.rendering.masks import classes_from_annotation
from diffrendergan.segmentation.data import Sample
from diffrendergan.segmentation.representations import Representation

H, W = 64, 112


def _sample(instances: np.ndarray) -> Sample:
    classes = classes_from_annotation(torch.from_numpy(instances.astype(np.int64))[None])[0].numpy()
    image = (instances > 0).astype(np.float32)
    return Sample("s", Path("s.png"), image, instances, classes, image, 0, False)


def _annotation(speck: bool) -> np.ndarray:
    """Three touching discs separated by background lines, a long grain, optionally a 2-px speck."""
    yy, xx = np.mgrid[:H, :W]
    inst = np.zeros((H, W), np.int32)
    for k, (cy, cx, r) in enumerate([(20, 20, 10), (20, 41, 10), (20, 62, 10)], start=1):
        inst[(yy - cy) ** 2 + (xx - cx) ** 2 <= r**2] = k
    inst[:, 30:32] = np.where(inst[:, 30:32] > 0, 0, inst[:, 30:32])  # separating lines
    inst[:, 51:53] = np.where(inst[:, 51:53] > 0, 0, inst[:, 51:53])
    inst[44:54, 10:100] = 4  # an elongated grain
    if speck:
        inst[58, 105:107] = 5
    return inst


def test_components_ceiling_is_perfect_on_whole_particles_and_counts_the_speck() -> None:
    rep = Representation("line", decoder="components", min_size_px=10)
    clean = ceiling([_sample(_annotation(speck=False))], rep)
    specked = ceiling([_sample(_annotation(speck=True))], rep)
    assert clean["ap50"] == 1.0 and clean["ap50_whole"] == 1.0
    assert specked["gt_below_min_size"] == 1
    assert specked["ap50"] == pytest.approx(4 / 5)  # the speck is a miss on all ground truth
    assert specked["ap50_whole"] == 1.0  # but not on the particles the decoder can keep


def test_distance_peaks_over_split_the_long_grain() -> None:
    rep = Representation("line", decoder="distance_watershed", min_size_px=10)
    c = ceiling([_sample(_annotation(speck=False))], rep)
    assert c["fp"] > 0 and c["ap50"] < 1.0


def test_neck_cuts_keep_the_long_grain_whole() -> None:
    """Unlike distance peaks, the neck criterion is relative: an elongated grain has no neck."""
    rep = Representation("bordercore", 2, core_erode_px=0, split_neck_ratio=0.5)
    c = ceiling([_sample(_annotation(speck=False))], rep)
    assert c["fp"] == 0 and c["ap50"] == 1.0


def test_table_lists_every_case_and_both_columns() -> None:
    cases = [Representation("line", decoder="components"), Representation("contour", 2, core_erode_px=0)]
    table = ceilings_table({"hand-made": [_sample(_annotation(speck=True))]}, cases)
    lines = table.strip().splitlines()
    assert len(lines) == 2 + len(cases)
    assert "hand-made AP50 / PQ (all)" in lines[0] and "hand-made AP50 / PQ (whole)" in lines[0]
    assert lines[2].startswith("| line | - | components | - | - | 0.800 /")
