"""The demo set's masks are its exact truth: label images of the rendered instances."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from shipped_configs import material_raw
from skimage.segmentation import relabel_sequential

from diffrendergan.config import RendererConfig, material_from_dict
from diffrendergan.data.demo import DATA_BAR_ROWS, demo_specimen, ensure_demo
from diffrendergan.data.labeled import mask_to_instances
from diffrendergan.data.readers import read_mask
from diffrendergan.rendering.renderer import MicroscopyRenderer
from diffrendergan.scene.layout import sample_layout


def test_demo_masks_are_the_exact_touching_instances(tmp_path: Path) -> None:
    material = material_from_dict(material_raw("tio2"))
    size = 128
    demo = ensure_demo(material, tmp_path, n_unlabeled=0, n_labeled=1, size=size)
    mask = read_mask(demo.labeled_dir / "masks" / "demo_000.tif")
    assert mask.shape == (size + DATA_BAR_ROWS, size) and not mask[size:].any()

    big = demo_specimen(material, size)  # the layout and renderer the demo used
    _, instances = MicroscopyRenderer(big, RendererConfig()).masks([sample_layout(big, 900_000)])
    expected = relabel_sequential(instances[0].numpy())[0]
    np.testing.assert_array_equal(mask_to_instances(mask)[:size], expected)
    # Particles touch directly (no background line between them): a binary mask could not say so.
    right, down = (expected[:, :-1], expected[:, 1:]), (expected[:-1], expected[1:])
    touching = sum(((a > 0) & (b > 0) & (a != b)).sum() for a, b in (right, down))
    assert expected.max() > 2 and touching > 0
