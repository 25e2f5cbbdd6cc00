"""Fixtures of the analysis tests: micrograph folders and checkpoints (helpers in specimens.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image
from specimens import save_segmenter, specimen, write_resolution, write_zeiss


@pytest.fixture
def micrographs(tmp_path: Path) -> Path:
    """Two TIFFs at 2 nm/px: one with a Zeiss tag, one with resolution tags."""
    folder = tmp_path / "micrographs"
    folder.mkdir()
    write_zeiss(folder / "a.tif", specimen(0)[0])
    write_resolution(folder / "b.tif", specimen(1)[0])
    return folder


@pytest.fixture
def labeled(tmp_path: Path) -> Path:
    """images/ (Zeiss TIFFs) + masks/ (0/255 PNGs) of two micrographs."""
    root = tmp_path / "labeled"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for k in range(2):
        img, mask = specimen(k)
        write_zeiss(root / "images" / f"m{k}.tif", img)
        Image.fromarray(mask).save(root / "masks" / f"m{k}.png")
    return root


@pytest.fixture(scope="session")
def segmenter_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_segmenter(tmp_path_factory.mktemp("segmenter") / "segmenter.ckpt")


@pytest.fixture(scope="session")
def gan_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A file shaped like a GAN checkpoint (its hyperparameters name a material)."""
    path = tmp_path_factory.mktemp("gan") / "gan.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"material": {"name": "tio2"}}}, path)
    return path
