"""Small GAN inputs shared by the training and scene tests: a 64 px SiO2 material and a folder of
synthetic real patches (a bright square on noise)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from shipped_configs import material_raw


def small_material(size: int = 64) -> dict:
    return material_raw("sio2", image_size=size, count={"kind": "uniform", "low": 2, "high": 5})


def write_patches(folder: Path, n: int = 8, size: int = 64) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        img = (rng.random((size, size)) * 60 + 20).astype(np.uint8)
        img[20:40, 20:40] = 200
        Image.fromarray(img).save(folder / f"p{i}.png")
    return folder
