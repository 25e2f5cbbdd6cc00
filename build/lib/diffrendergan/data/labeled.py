"""Annotated real micrographs: image/mask pairs -> image, instances and the 3-class target.

Hand-made masks come either binary (touching particles separated by background lines, so that
4-connected components are the instances) or as label images (one value per instance). Both are
turned into an instance map and then into the same 3-class target rendered data uses
(`classes_from_annotation`), so segmenters are scored consistently on real and synthetic data.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from skimage.measure import label

from diffrendergan.data.databar import detect_data_bar
from diffrendergan.data.readers import (
    SUPPORTED_EXTENSIONS,
    list_images,
    normalize_image,
    read_mask,
    read_micrograph,
)
from diffrendergan.errors import DataError
from diffrendergan.rendering.masks import classes_from_annotation

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LabeledPair:
    """A micrograph and its annotation mask (same file stem)."""

    image_path: Path
    mask_path: Path


def _by_stem(files: list[Path]) -> dict[str, Path]:
    """Stem -> file; two files with one stem (a.tif and a.png) are ambiguous."""
    out: dict[str, Path] = {}
    for f in files:
        if f.stem in out:
            raise DataError(f, f"two files share the stem {f.stem!r} (also {out[f.stem].name})")
        out[f.stem] = f
    return out


def match_by_stem(images_dir: Path, masks_dir: Path, strict: bool = True) -> list[LabeledPair]:
    """Pair images and masks by file stem, sorted by stem.

    An image without a mask or a mask without an image raises a DataError naming the file, or
    with ``strict=False`` is skipped with a logged warning.
    """
    images = _by_stem(list_images(images_dir))
    masks = _by_stem(list_images(masks_dir))
    for stem in sorted(images.keys() ^ masks.keys()):
        lonely, other = (images[stem], masks_dir) if stem in images else (masks[stem], images_dir)
        kind = "mask" if stem in images else "image"
        msg = f"no {kind} with stem {stem!r} in {other} (extensions {SUPPORTED_EXTENSIONS})"
        if strict:
            raise DataError(lonely, msg)
        log.warning("skipping %s: %s", lonely, msg)
    pairs = [LabeledPair(images[s], masks[s]) for s in sorted(images.keys() & masks.keys())]
    if not pairs:
        raise DataError(images_dir, f"no image has a matching mask in {masks_dir}")
    return pairs


def find_labeled_pairs(folder: str | Path, strict: bool = True) -> list[LabeledPair]:
    """Pairs from ``folder/images/`` and ``folder/masks/`` matched by file stem."""
    folder = Path(folder)
    for sub in ("images", "masks"):
        if not (folder / sub).is_dir():
            raise DataError(folder / sub, "folder not found; expected <folder>/images + /masks")
    return match_by_stem(folder / "images", folder / "masks", strict=strict)


def mask_to_instances(mask: np.ndarray) -> np.ndarray:
    """Instance ids from a binary or label mask. (H, W) int -> (H, W) int64, 0 = background.

    At most two distinct values (0/255, 0/1, or a single value) means binary: the non-zero pixels
    are foreground and its 4-connected components (connectivity=1) are the instances, because
    annotators separate touching particles by 4-connected background lines. More values means a
    label image whose values are the instance ids (0 = background).
    """
    values = np.unique(mask)
    if values.size <= 2:
        return label(mask > 0, connectivity=1).astype(np.int64)
    if values.min() < 0:
        raise ValueError("label masks must not contain negative values")
    return mask.astype(np.int64)


def read_pair(pair: LabeledPair) -> tuple[np.ndarray, np.ndarray]:
    """Image (full-range float32) and raw mask values of a pair, checked to have the same shape."""
    image = read_micrograph(pair.image_path, normalize="full")
    mask = read_mask(pair.mask_path)
    if mask.shape != image.shape:
        raise DataError(
            pair.mask_path,
            f"mask shape {mask.shape} differs from image {pair.image_path} shape {image.shape}",
        )
    return image, mask


def load_labeled(
    pair: LabeledPair, crop_bottom_px: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Load one annotated micrograph with its data bar removed.

    The bar is detected on the image (or ``crop_bottom_px`` rows are cut) and cropped from
    image and mask alike; the image is percentile-normalised after cropping.

    Returns:
        image (H, W) float32 in [0, 1], instance (H, W) int64, classes (H, W) uint8 in {0, 1, 2}.
    """
    raw, mask = read_pair(pair)
    n = detect_data_bar(raw) if crop_bottom_px is None else int(crop_bottom_px)
    if not 0 <= n < raw.shape[0]:
        raise DataError(pair.image_path, f"cannot crop {n} rows from height {raw.shape[0]}")
    h = raw.shape[0] - n
    image = normalize_image(raw[:h], "percentile")
    try:
        instance = mask_to_instances(mask[:h])
    except ValueError as exc:
        raise DataError(pair.mask_path, str(exc)) from exc
    classes = classes_from_annotation(torch.from_numpy(instance)[None])[0].numpy()
    return image, instance, classes
