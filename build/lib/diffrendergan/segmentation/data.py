"""Annotated micrographs for the segmenter: loading, intensity convention, training crops.

Two kinds of folder hold ``images/`` + ``masks/`` with matching stems:

* a synthetic export (it has ``metadata.jsonl``): 8-bit renders, 3-class masks and exact,
  touching instance maps in ``instances/``;
* a real annotated folder: micrographs with a data bar, binary or label masks.

Both load as :class:`Sample` — the image in the recipe's intensity convention with the data bar
removed, the instance map and the 3-class ``line`` map that scoring uses as ground truth.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import albumentations as A
import numpy as np
import torch
from torch.utils.data import Dataset

from diffrendergan.data.databar import detect_data_bar
from diffrendergan.data.datasets import SyntheticFolderDataset
from diffrendergan.data.labeled import LabeledPair, find_labeled_pairs, mask_to_instances, read_pair
from diffrendergan.data.pixel_size import pixel_size_from_metadata
from diffrendergan.data.readers import normalize_image, read_mask, read_micrograph
from diffrendergan.errors import DataError
from diffrendergan.rendering.masks import classes_from_annotation
from diffrendergan.segmentation.representations import Representation, encode_rendered

MULTIPLE = 32  # smp encoders downsample 5 times: network inputs are multiples of 32


@dataclass
class Sample:
    """One annotated micrograph, ready for training or scoring.

    Attributes:
        stem: file stem (the image's name in reports).
        path: the image file.
        image: (h, W) float32 in [0, 1], recipe's intensity convention, data bar removed.
        instances: (h, W) int32 instance ids, 0 = background (touching for renders).
        classes: (h, W) uint8 3-class ``line`` map; its class-1 components are the scored truth.
        full: (H, W) float32 in [0, 1], the whole file as stored (for overlays).
        bar_rows: rows cropped from the bottom (H - h).
        rendered: a synthetic render (its mask's line is occlusion-aware, instances touch).
        pixel_size_nm: nm per pixel (export: the material's; real: the file's metadata), or None.
    """

    stem: str
    path: Path
    image: np.ndarray
    instances: np.ndarray
    classes: np.ndarray
    full: np.ndarray
    bar_rows: int
    rendered: bool
    pixel_size_nm: float | None = None


def is_synthetic_folder(folder: str | Path) -> bool:
    """Exports carry ``metadata.jsonl``; real annotated folders do not."""
    return (Path(folder) / "metadata.jsonl").is_file()


def folder_pairs(folder: str | Path) -> list[LabeledPair]:
    """Image/mask pairs of a synthetic export or a real annotated folder, sorted by stem."""
    if is_synthetic_folder(folder):
        return SyntheticFolderDataset(folder).pairs
    return find_labeled_pairs(folder)


def export_pixel_size(folder: str | Path) -> float | None:
    """nm/px of a synthetic export, from the material recorded in its ``fingerprint.json``."""
    path = Path(folder) / "fingerprint.json"
    try:
        value = json.loads(path.read_text())["material"]["pixel_size_nm"]
        return float(value) if value else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _synthetic_sample(pair: LabeledPair, normalize: str, pixel_size_nm: float | None) -> Sample:
    full = read_micrograph(pair.image_path, normalize="full")
    classes = read_mask(pair.mask_path).astype(np.uint8)
    if classes.shape != full.shape or classes.max(initial=0) > 2:
        raise DataError(pair.mask_path, f"expected a 3-class mask (0/1/2) of shape {full.shape}")
    inst_path = pair.mask_path.parent.parent / "instances" / pair.mask_path.name
    if inst_path.is_file():
        instances = read_mask(inst_path).astype(np.int32)
    else:  # exports of older versions: the line map's components are the instances
        from skimage.measure import label

        instances = label(classes == 1, connectivity=1).astype(np.int32)
    image = normalize_image(full, "percentile") if normalize == "percentile" else full
    return Sample(
        pair.image_path.stem,
        pair.image_path,
        image.astype(np.float32),
        instances,
        classes,
        full,
        0,
        True,
        pixel_size_nm,
    )


def micrograph_input(full: np.ndarray, normalize: str, crop_bottom_px: int | None, path: Path) -> np.ndarray:
    """A real micrograph as the segmenter sees it: data bar removed (detected, or
    ``crop_bottom_px`` rows), percentile-stretched unless ``normalize == "raw"``.
    full: (H, W) float in [0, 1] as stored -> (h, W) float32."""
    n = detect_data_bar(full) if crop_bottom_px is None else int(crop_bottom_px)
    if not 0 <= n < full.shape[0]:
        raise DataError(path, f"cannot crop {n} rows from height {full.shape[0]}")
    h = full.shape[0] - n
    image = full[:h] if normalize == "raw" else normalize_image(full[:h], "percentile")
    return image.astype(np.float32)


def _real_sample(pair: LabeledPair, normalize: str, crop_bottom_px: int | None) -> Sample:
    full, mask = read_pair(pair)
    image = micrograph_input(full, normalize, crop_bottom_px, pair.image_path)
    h = image.shape[0]
    try:
        instances = mask_to_instances(mask[:h]).astype(np.int32)
    except ValueError as exc:
        raise DataError(pair.mask_path, str(exc)) from exc
    classes = classes_from_annotation(torch.from_numpy(instances.astype(np.int64))[None])[0].numpy()
    pixel = pixel_size_from_metadata(pair.image_path).nm
    bar = full.shape[0] - h
    return Sample(pair.image_path.stem, pair.image_path, image, instances, classes, full, bar, False, pixel)


def load_samples(
    folder: str | Path,
    normalize: str = "matched",
    crop_bottom_px: int | None = None,
    stems: Sequence[str] | None = None,
) -> list[Sample]:
    """Every annotated image of ``folder`` (or only ``stems``), in the recipe's convention.

    ``normalize`` (see :class:`~diffrendergan.segmentation.recipe.SegmenterConfig`): ``matched``
    keeps renders as they are and percentile-stretches real micrographs (the GAN's convention for
    real patches), ``percentile`` stretches both, ``raw`` keeps both as stored.
    """
    synthetic = is_synthetic_folder(folder)
    pairs = folder_pairs(folder)
    if stems is not None:
        wanted = set(stems)
        pairs = [p for p in pairs if p.image_path.stem in wanted]
    if synthetic:
        pixel = export_pixel_size(folder)
        return [_synthetic_sample(p, normalize, pixel) for p in pairs]
    return [_real_sample(p, normalize, crop_bottom_px) for p in pairs]


def crop_side(samples: Sequence[Sample], crop_size: int) -> int:
    """Largest multiple of 32 <= min(crop_size, smallest image side); an image too small for
    any crop is an error naming its file."""
    for s in samples:
        if min(s.image.shape) < MULTIPLE:
            raise DataError(s.path, f"image is {s.image.shape[0]}x{s.image.shape[1]} px, need >= {MULTIPLE}")
    side = min([crop_size, *(min(s.image.shape) for s in samples)])
    return side // MULTIPLE * MULTIPLE


class TrainingCrops(Dataset):
    """Random crops of annotated images with their target: (1, c, c) float32, (c, c) int64.

    Every item is one crop from image ``i % n_images``: a random window, one of the 8 square
    symmetries (flips/rotations do not change SEM physics), and a per-crop intensity jitter
    (gain x U(1 -/+ g), offset U(-/+ o), clipped to [0, 1]). Targets are encoded once per image.
    Augmentation randomness is albumentations' own RNG, seeded by ``seed`` (and per worker).
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        representation: Representation,
        crop: int,
        n_items: int,
        gain_jitter: float = 0.0,
        offset_jitter: float = 0.0,
        seed: int = 0,
    ):
        if not samples:
            raise DataError("<training set>", "no annotated images to train on")
        self.images = [s.image for s in samples]
        self.targets = [
            encode_rendered(s.classes, s.instances, representation.target, representation.width_px)
            if s.rendered
            else representation.encode(s.instances)
            for s in samples
        ]
        self.n_items = int(n_items)
        ops: list[A.BasicTransform] = [A.RandomCrop(crop, crop), A.SquareSymmetry(p=1.0)]
        if gain_jitter > 0 or offset_jitter > 0:
            ops.append(
                A.RandomBrightnessContrast(
                    brightness_limit=offset_jitter, contrast_limit=gain_jitter, brightness_by_max=True, p=1.0
                )
            )
        self.transform = A.Compose(ops, seed=seed)

    def __len__(self) -> int:
        return self.n_items

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        k = i % len(self.images)
        out = self.transform(image=self.images[k], mask=self.targets[k])
        image = np.clip(out["image"], 0.0, 1.0).astype(np.float32)
        return torch.from_numpy(np.ascontiguousarray(image))[None], torch.from_numpy(
            np.ascontiguousarray(out["mask"])
        ).long()
