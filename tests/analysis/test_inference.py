"""Inference at the segmenter's training scale, mapped back onto the file's pixel grid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from diffrendergan.analysis.inference import predict_instances, resample, scale_factor, to_grid
from diffrendergan.segmentation.checkpoint import load_segmenter


def test_scale_factor() -> None:
    assert scale_factor(4.0, 2.0) == 2.0 and scale_factor(1.0, 2.0) == 0.5
    assert scale_factor(7.344, 7.34) == 1.0  # within 1 %: no resampling
    assert scale_factor(None, 2.0) == 1.0 and scale_factor(2.0, None) == 1.0


def test_nearest_map_back_is_exact_for_integer_factors() -> None:
    inst = np.random.default_rng(0).integers(0, 5, size=(7, 9)).astype(np.int32)
    big = np.kron(inst, np.ones((3, 3), np.int32))  # the map at 3x the file's resolution
    np.testing.assert_array_equal(to_grid(big, inst.shape), inst)
    assert resample(np.zeros((10, 20), np.float32), 1.5).shape == (15, 30)


@pytest.mark.parametrize("factor", [1.0, 2.0, 0.5])
def test_predicted_instances_lie_on_the_file_grid(segmenter_ckpt: Path, factor: float) -> None:
    module = load_segmenter(segmenter_ckpt)
    image = np.random.default_rng(0).random((40, 56)).astype(np.float32)
    inst = predict_instances(module, image, factor)
    assert inst.shape == image.shape and inst.dtype == np.int32
    ids = np.unique(inst[inst > 0])
    np.testing.assert_array_equal(ids, np.arange(1, len(ids) + 1))  # consecutive after the map back
