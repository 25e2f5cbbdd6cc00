"""Pixel sizes read from the metadata microscopes write, and the explicit key winning over them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image
from specimens import specimen, write_resolution, write_zeiss

from diffrendergan.data.pixel_size import pixel_size_from_metadata, resolve_pixel_size


def test_zeiss_cz_sem_tag(tmp_path: Path) -> None:
    px = pixel_size_from_metadata(write_zeiss(tmp_path / "z.tif", specimen()[0], nm=7.344))
    assert px.source == "CZ_SEM" and px.nm == pytest.approx(7.344)


@pytest.mark.parametrize("unit", ["CENTIMETER", "INCH"])
def test_resolution_tags(tmp_path: Path, unit: str) -> None:
    if unit == "CENTIMETER":
        path = write_resolution(tmp_path / "r.tif", specimen()[0], nm=3.5)
    else:  # 2.5 nm/px = 2.54e7 nm per inch / 1.016e7 px per inch
        path = tmp_path / "r.tif"
        tifffile.imwrite(path, specimen()[0], resolution=(1.016e7, 1.016e7), resolutionunit="INCH")
    px = pixel_size_from_metadata(path)
    assert px.source == "resolution tags"
    assert px.nm == pytest.approx(3.5 if unit == "CENTIMETER" else 2.5)


def test_explicit_key_wins_and_plain_files_are_unknown(tmp_path: Path) -> None:
    zeiss = write_zeiss(tmp_path / "z.tif", specimen()[0], nm=7.344)
    px = resolve_pixel_size(1.25, zeiss)
    assert (px.nm, px.source) == (1.25, "pixel_size_nm")
    png = tmp_path / "p.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(png)
    assert not resolve_pixel_size(None, png).known
    screen = tmp_path / "s.tif"  # 72 dpi: a screen default, not a micrograph scale
    tifffile.imwrite(screen, np.zeros((8, 8), np.uint8), resolution=(72, 72), resolutionunit="INCH")
    assert not pixel_size_from_metadata(screen).known


def test_demo_micrographs_carry_their_pixel_size(tmp_path: Path) -> None:
    """The demo set reads like a real micrograph folder: ``analyze`` needs no pixel-size key."""
    from shipped_configs import material_raw

    from diffrendergan.config import material_from_dict
    from diffrendergan.data.demo import ensure_demo

    material = material_from_dict(material_raw("tio2"))
    demo = ensure_demo(material, tmp_path, n_unlabeled=1, n_labeled=1, size=64)
    for path in (demo.unlabeled_dir / "demo_000.tif", demo.labeled_dir / "images" / "demo_001.tif"):
        px = pixel_size_from_metadata(path)
        assert px.source == "resolution tags"
        assert px.nm == pytest.approx(material.pixel_size_nm, rel=1e-6)
