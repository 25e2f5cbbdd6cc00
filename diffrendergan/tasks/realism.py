"""Realism of a synthetic set against real micrographs, from two folders of images.

Both sides are cut into equal square patches (the SWD compares equal-sized images): real
micrographs lose their data bar first, then every image gives its non-overlapping
``patch_size`` tiles. Pixel values keep their absolute brightness ("full" normalisation), since
a brightness/contrast mismatch is exactly what the histogram distance should see.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from diffrendergan.data.databar import crop_data_bar
from diffrendergan.data.readers import list_images, read_micrograph
from diffrendergan.errors import ConfigError, DataError
from diffrendergan.evaluation.tiling import tiles
from diffrendergan.metrics.appearance import (
    Appearance,
    appearance_difference,
    appearance_stats,
    profile_figure,
)
from diffrendergan.metrics.realism import realism_report
from diffrendergan.utils.io import atomic_write_json


def image_folder(folder: str | Path) -> Path:
    """The image folder inside an export (``images/``) or a prepare output (``patches/``)."""
    folder = Path(folder)
    for sub in ("images", "patches"):
        if (folder / sub).is_dir():
            return folder / sub
    return folder


MIN_PATCH = 16  # px: the smallest patch the multi-scale SWD compares


def load_named_images(
    folder: str | Path, crop_bar: bool, crop_bottom_px: int | None
) -> list[tuple[Path, np.ndarray]]:
    """(file, (H, W) float32 image in [0, 1]) per image, data bar removed when ``crop_bar``."""
    out = []
    for f in list_images(image_folder(folder)):
        img = read_micrograph(f, normalize="full")
        if crop_bar:
            try:
                img = crop_data_bar(img, crop_bottom_px)
            except DataError as exc:
                raise DataError(f, str(exc).split(": ", 1)[-1]) from None
        out.append((f, np.asarray(img)))
    return out


def load_images(folder: str | Path, crop_bar: bool, crop_bottom_px: int | None) -> list[np.ndarray]:
    """(H, W) float32 images in [0, 1], data bar removed when ``crop_bar``."""
    return [img for _, img in load_named_images(folder, crop_bar, crop_bottom_px)]


def _shape(img: np.ndarray) -> str:
    return f"{img.shape[0]}x{img.shape[1]} px"


def to_patches(
    images: list[np.ndarray] | list[tuple[Path, np.ndarray]],
    size: int,
    max_patches: int | None,
    folder: str | Path = "<images>",
) -> torch.Tensor:
    """Non-overlapping ``size`` tiles of every image -> (N, 1, size, size). Images smaller than
    ``size`` give none; when no image gives one, the DataError names ``folder`` and its largest
    image."""
    named = [x if isinstance(x, tuple) else (Path("<image>"), x) for x in images]
    cut = [t for _, img in named for t in tiles(img, size)]
    if max_patches is not None:
        cut = cut[:max_patches]
    if not cut:
        largest = ""
        if named:
            name, img = max(named, key=lambda n: min(n[1].shape))
            largest = f" (largest: {name.name}, {_shape(img)})"
        raise DataError(folder, f"no image is at least {size}x{size} px{largest}; lower patch_size")
    return torch.from_numpy(np.stack(cut)).float()[:, None]


def realism_from_folders(
    real_dir: str | Path,
    fake_dir: str | Path,
    out_path: str | Path | None = None,
    patch_size: int | None = None,
    crop_bottom_px: int | None = None,
    max_patches: int | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """SWD (x1e3, mean and per level) and grey-level histogram W1 between two image folders.

    ``patch_size`` None = the smallest image side (capped at 256). ``crop_bottom_px`` applies to
    the real images (None = detect the data bar). Writes ``out_path`` (JSON) when given.
    """
    if patch_size is not None and int(patch_size) < MIN_PATCH:
        raise ConfigError("patch_size", f"expected >= {MIN_PATCH} px (or null), got {patch_size}")
    if max_patches is not None and int(max_patches) < 1:
        raise ConfigError(
            "max_patches", f"expected an integer >= 1 (or null = all patches), got {max_patches}"
        )
    if crop_bottom_px is not None and int(crop_bottom_px) < 0:
        raise ConfigError("crop_bottom_px", f"expected >= 0 rows (or null = detect), got {crop_bottom_px}")
    real = load_named_images(real_dir, crop_bar=True, crop_bottom_px=crop_bottom_px)
    fake = load_named_images(fake_dir, crop_bar=False, crop_bottom_px=None)
    if patch_size is None:  # the smallest image decides: name it when it is too small
        path, img = min(real + fake, key=lambda n: min(n[1].shape))
        if min(img.shape) < MIN_PATCH:
            cropped = " after cropping the data bar" if any(p == path for p, _ in real) else ""
            raise DataError(
                path,
                f"image is {_shape(img)}{cropped}, smaller than the {MIN_PATCH}x{MIN_PATCH} px the "
                "realism metric needs; remove it, or set patch_size to skip smaller images",
            )
        size = min(min(img.shape), 256)
    else:
        size = int(patch_size)
    r = to_patches(real, size, max_patches, image_folder(real_dir))
    f = to_patches(fake, size, max_patches, image_folder(fake_dir))
    report = realism_report(r, f, seed=seed)
    result = {
        "swd": float(report["swd"]),
        "swd_levels": [float(v) for v in report["swd_levels"]],
        "hist_w1": float(report["hist_w1"]),
        "n_real_patches": int(r.shape[0]),
        "n_fake_patches": int(f.shape[0]),
        "patch_size": size,
        "real_dir": str(real_dir),
        "fake_dir": str(fake_dir),
    }
    stats = {
        k: appearance_of_folder(d, c)
        for k, d, c in (("real", real_dir, crop_bottom_px), ("fake", fake_dir, None))
    }
    result["appearance"] = appearance_report(stats)
    if out_path is not None:
        atomic_write_json(out_path, result)
        annotated = {k: v for k, v in stats.items() if v is not None}
        if annotated:
            profile_figure(annotated, str(Path(out_path).with_name("appearance.png")))
    return result


def is_annotated(folder: str | Path) -> bool:
    """A folder with images/ and masks/ (real annotations or a synthetic export)."""
    return (Path(folder) / "images").is_dir() and (Path(folder) / "masks").is_dir()


def appearance_of_folder(folder: str | Path, crop_bottom_px: int | None = None) -> Appearance | None:
    """Appearance statistics of an annotated folder (None for a folder without masks): every
    image percentile-stretched, data bar removed, instances from its masks."""
    if not is_annotated(folder):
        return None
    from diffrendergan.segmentation.data import load_samples

    samples = load_samples(folder, "percentile", crop_bottom_px)
    return appearance_stats((s.image, s.instances) for s in samples)


def appearance_report(stats: dict[str, Appearance | None]) -> dict[str, Any]:
    """{name: statistics} of the annotated sides, and fake - real when both are."""
    out: dict[str, Any] = {k: v.as_dict() for k, v in stats.items() if v is not None}
    real, fake = stats.get("real"), stats.get("fake")
    if real is not None and fake is not None:
        out["difference"] = appearance_difference(real, fake)
    return out
