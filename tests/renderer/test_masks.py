"""Ground-truth masks: agreement with the rasterizer, boundary lines, small-instance removal."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
from skimage.measure import label

from diffrendergan.config import MaterialConfig, RendererConfig
from diffrendergan.rendering.masks import (
    BACKGROUND,
    BOUNDARY,
    PARTICLE,
    background_fraction,
    classes_from_annotation,
    classes_from_rendered,
)
from diffrendergan.rendering.rasterize import rasterize_windowed
from diffrendergan.rendering.renderer import MicroscopyRenderer
from diffrendergan.scene.layout import Layout, build_particles, sample_layout


def _renderer(m: MaterialConfig, **cfg) -> MicroscopyRenderer:
    return MicroscopyRenderer(m, RendererConfig(**cfg))


@pytest.mark.parametrize("supersample", [1, 2])
def test_masks_agree_with_rasterizer(
    supersample: int, shipped_material: Callable[..., MaterialConfig]
) -> None:
    m = shipped_material("sio2", image_size=64)
    layouts = [sample_layout(m, s) for s in (1, 2)]
    r = _renderer(m, min_instance_px=0, supersample=supersample)
    classes, instance = r.masks(layouts)
    assert classes.shape == instance.shape == (2, 64, 64)
    assert classes.dtype == torch.uint8 and instance.dtype == torch.long
    assert set(classes.unique().tolist()) == {BACKGROUND, PARTICLE, BOUNDARY}
    gb = r.gbuffer(layouts, scale=1)
    particle = (classes == PARTICLE) | (classes == BOUNDARY)
    assert torch.equal(particle, gb.instance > 0)
    assert torch.equal(instance, gb.instance)
    # ... and with a direct rasterization of the same layouts.
    maps = rasterize_windowed([build_particles(lay, m) for lay in layouts], 64, m.pixel_size_nm)
    assert torch.equal(particle, maps.instance > 0)


def _two_spheres(make_material, make_layout, min_instance_px: int = 0):
    m = make_material(shape={"family": "sphere", "ico_level": 3}, image_size=64)
    # A big sphere (r 12) partly hiding a small one (r 6) resting beside it: wherever their discs
    # overlap, the big sphere's surface (>= 12 nm) is above the small one's (<= 10 nm).
    layout = make_layout([[24.3, 31.7, 12.0, 24.0], [40.8, 32.4, 6.0, 12.0]])
    return m, layout, _renderer(m, min_instance_px=min_instance_px)


def test_overlap_gives_boundary_line(make_material, make_layout) -> None:
    _, layout, r = _two_spheres(make_material, make_layout)
    classes, instance = r.masks([layout])
    c, inst = classes[0].numpy(), instance[0].numpy()
    boundary = c == BOUNDARY
    assert boundary.sum() >= 5  # a line, not a speck
    # The boundary is drawn on the occluded (lower) particle, next to the front one.
    assert (inst[boundary] == 2).all()
    front = inst == 1
    near_front = np.zeros_like(front)
    near_front[1:] |= front[:-1]
    near_front[:-1] |= front[1:]
    near_front[:, 1:] |= front[:, :-1]
    near_front[:, :-1] |= front[:, 1:]
    assert near_front[boundary].all()
    # The line separates the two particles: the particle class splits into exactly two 4-connected
    # components, each a single instance.
    labels, n = label(c == PARTICLE, connectivity=1, return_num=True)
    assert n == 2
    for k in (1, 2):
        assert len(np.unique(inst[labels == k])) == 1
    # Without the boundary the two particles would form one component.
    assert label(c > 0, connectivity=1, return_num=True)[1] == 1


def test_min_instance_px_removes_tiny_particle(make_material, make_layout) -> None:
    m = make_material(shape={"family": "sphere", "ico_level": 2}, image_size=64)
    layout = make_layout([[20.3, 20.6, 8.0, 16.0], [50.2, 45.7, 1.25, 2.5]])
    r_keep = _renderer(m, min_instance_px=0)
    r_drop = _renderer(m, min_instance_px=8)
    _, inst_keep = r_keep.masks([layout])
    tiny = int((inst_keep == 2).sum())
    assert 1 <= tiny < 8
    classes, inst_drop = r_drop.masks([layout])
    assert not (inst_drop == 2).any()
    assert torch.equal(inst_drop == 1, inst_keep == 1)  # the big one is untouched
    assert torch.equal(classes > 0, inst_drop > 0)
    assert (classes[inst_keep == 2] == BACKGROUND).all()


def test_classes_from_rendered_ties_and_cleanup() -> None:
    # Equal heights: the higher instance id counts as in front, so exactly one side gets the line.
    instance = torch.tensor([[[1, 1, 2, 2], [1, 1, 2, 2], [0, 0, 0, 3]]])
    height = torch.ones(1, 3, 4)
    classes, cleaned = classes_from_rendered(instance, height, min_instance_px=2)
    expected = torch.tensor([[[1, 2, 1, 1], [1, 2, 1, 1], [0, 0, 0, 0]]], dtype=torch.uint8)
    assert torch.equal(classes, expected)
    assert cleaned[0, 2, 3] == 0  # the 1-px instance 3 was removed


def test_background_fraction() -> None:
    classes = torch.zeros(3, 4, 5, dtype=torch.uint8)
    classes[1, :2] = PARTICLE  # 10 of 20 pixels
    classes[2] = BOUNDARY
    classes[2, 0, 0] = BACKGROUND  # 1 of 20 pixels
    frac = background_fraction(classes)
    assert frac.shape == (3,)
    assert torch.allclose(frac, torch.tensor([1.0, 0.5, 0.05]))


def test_background_fraction_of_rendered_masks(shipped_material) -> None:
    m = shipped_material("sio2", image_size=64)
    layout: Layout = sample_layout(m, 3)
    classes, _ = _renderer(m, min_instance_px=0).masks([layout])
    expected = (classes == BACKGROUND).float().mean()
    assert background_fraction(classes)[0] == pytest.approx(expected.item())
    assert 0.0 < expected < 1.0


def test_classes_from_annotation_marks_separating_line() -> None:
    inst = torch.zeros(1, 7, 9, dtype=torch.long)
    inst[0, 1:6, 1:4] = 1
    inst[0, 1:6, 5:8] = 2  # column 4 is the hand-drawn background line between the blobs
    classes = classes_from_annotation(inst)[0]
    assert classes.dtype == torch.uint8
    # Every line pixel 4-adjacent to the blobs (rows 1..5) is boundary; the line's ends (rows 0
    # and 6) only touch the blobs diagonally and stay background.
    assert (classes[1:6, 4] == BOUNDARY).all()
    assert classes[0, 4] == BACKGROUND and classes[6, 4] == BACKGROUND
    assert (classes[1:6, 1:4] == PARTICLE).all() and (classes[1:6, 5:8] == PARTICLE).all()
    # Background next to only one blob stays background.
    assert (classes[:, 0] == BACKGROUND).all() and (classes[:, 8] == BACKGROUND).all()
    assert (classes[0, 1:3] == BACKGROUND).all() and (classes[6, 6:8] == BACKGROUND).all()
    _, n = label(classes.numpy() == PARTICLE, connectivity=1, return_num=True)
    assert n == 2


def test_classes_from_annotation_separates_touching_ids_of_a_label_image() -> None:
    """Label images may let two ids touch with no background between them; class 1 must still
    hold them apart, or the scored truth (its components) joins the two particles."""
    inst = torch.zeros(1, 7, 9, dtype=torch.long)
    inst[0, 1:6, 1:4] = 3
    inst[0, 1:6, 4:8] = 5  # touches id 3 along column 3/4
    classes = classes_from_annotation(inst)[0]
    assert (classes[1:6, 3] == BOUNDARY).all()  # the lower id's rim on the higher
    assert (classes[1:6, 4:8] == PARTICLE).all() and (classes[1:6, 1:3] == PARTICLE).all()
    _, n = label(classes.numpy() == PARTICLE, connectivity=1, return_num=True)
    assert n == 2


def test_classes_from_annotation_single_blob_has_no_boundary() -> None:
    inst = torch.zeros(1, 6, 6, dtype=torch.long)
    inst[0, 1:5, 1:5] = 4
    classes = classes_from_annotation(inst)
    assert not (classes == BOUNDARY).any()
    assert torch.equal(classes > 0, inst > 0)
