"""Everything about the inputs is checked before inference: folders, files, pixel sizes, segmenter."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from specimens import specimen

from diffrendergan.analysis.inputs import plan, segmenter_file
from diffrendergan.errors import ConfigError, DataError


def test_corrupt_file_is_skipped_with_a_warning_or_stops_when_strict(
    micrographs: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (micrographs / "broken.tif").write_bytes(b"II*\x00garbage")
    with caplog.at_level(logging.WARNING):
        p = plan(micrographs, None)
    assert [m.name for m in p.inputs] == ["a.tif", "b.tif"]
    assert [(m.pixel.nm, m.pixel.source) for m in p.inputs] == [(2.0, "CZ_SEM"), (2.0, "resolution tags")]
    assert list(p.skipped) == [str(micrographs / "broken.tif")] and not p.labeled
    assert "broken.tif" in caplog.text
    with pytest.raises(DataError, match=r"broken\.tif"):
        plan(micrographs, None, strict=True)


def test_unknown_pixel_size_names_the_file_and_the_key(tmp_path: Path) -> None:
    Image.fromarray(specimen()[0]).save(tmp_path / "plain.png")
    with pytest.raises(ConfigError, match=r"plain\.png.*pixel_size_nm=<nm per px>"):
        plan(tmp_path, None)
    (m,) = plan(tmp_path, None, pixel_size_nm=1.5).inputs
    assert (m.pixel.nm, m.pixel.source) == (1.5, "pixel_size_nm")


def test_folders_empty_missing_or_unusable(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty"):
        plan(tmp_path / "empty", None)
    with pytest.raises(DataError, match="not found"):
        plan(tmp_path / "nowhere", None)
    with pytest.raises(ConfigError, match="input_dir"):
        plan(None, None)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="no readable micrograph"):
        plan(tmp_path / "bad", None)
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "small.png")
    with pytest.raises(DataError, match="crop_bottom_px=8"):
        plan(tmp_path, None, pixel_size_nm=1.0, crop_bottom_px=8, strict=True)


def test_labels_alone_are_the_inputs(labeled: Path) -> None:
    p = plan(None, labeled)
    assert p.inputs is p.labeled and [m.name for m in p.labeled] == ["m0.tif", "m1.tif"]
    assert [m.mask_path.name for m in p.labeled] == ["m0.png", "m1.png"]  # type: ignore[union-attr]


def test_segmenter_file_from_a_checkpoint_or_an_output_folder(tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "segmentation").mkdir(parents=True)
    (run / "segmentation" / "segmenter.ckpt").write_bytes(b"x")
    seg = tmp_path / "segment"
    seg.mkdir()
    (seg / "segmenter.ckpt").write_bytes(b"x")
    assert segmenter_file(run) == run / "segmentation" / "segmenter.ckpt"
    assert segmenter_file(seg) == seg / "segmenter.ckpt"
    assert segmenter_file(seg / "segmenter.ckpt") == seg / "segmenter.ckpt"
    gan_only = tmp_path / "gan_run"
    gan_only.mkdir()
    (gan_only / "summary.json").write_text("{}")
    with pytest.raises(DataError, match="trained no segmenter"):
        segmenter_file(gan_only)
    with pytest.raises(DataError, match="not found"):
        segmenter_file(tmp_path / "missing.ckpt")


def test_segmenters_saved_before_a_decoding_key_decode_as_they_were_scored(
    segmenter_ckpt: Path, tmp_path: Path
) -> None:
    """Argmax cores and no neck cuts for recipes without those keys; today's defaults otherwise."""
    from diffrendergan.segmentation.checkpoint import load_segmenter

    assert load_segmenter(segmenter_ckpt).recipe.split_neck_ratio == 0.5
    ckpt = torch.load(segmenter_ckpt, weights_only=False)
    for key in ("core_threshold", "split_neck_ratio"):
        del ckpt["hyper_parameters"]["recipe"][key]
    old = tmp_path / "old.ckpt"
    torch.save(ckpt, old)
    recipe = load_segmenter(old).recipe
    assert recipe.core_threshold is None and recipe.split_neck_ratio == 0.0
