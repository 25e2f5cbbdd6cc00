"""Downstream evaluation: train a segmenter on a training set, score it on annotated micrographs.

Training sets are either a synthetic export (``images/`` + 3-class ``masks/`` + ``metadata.jsonl``)
or a real annotated folder (``images/`` + binary or label ``masks/``, data bar in the images).
Testing always runs on whole annotated images: the data bar is cropped, the rest is segmented by
tiled inference, instances are split with the boundary class and scored with
:func:`diffrendergan.metrics.segmentation.evaluate_image`. Predictions are written back at the
input's full size (zeros in the bar rows) so they line up with the original file.

Images are percentile-normalised on both sides (synthetic and real) so the segmenter sees the
same intensity convention in training and testing.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import albumentations as A
import numpy as np
import pytorch_lightning as pl
import torch
from PIL import Image
from skimage.segmentation import find_boundaries
from torch.utils.data import DataLoader, Dataset

from diffrendergan.data.datasets import (
    LabeledDataModule,
    LabeledDataset,
    SyntheticFolderDataset,
    _seed_worker_transform,
)
from diffrendergan.data.labeled import LabeledPair, find_labeled_pairs, load_labeled
from diffrendergan.data.readers import normalize_image, read_mask, read_micrograph
from diffrendergan.errors import ConfigError, DataError
from diffrendergan.evaluation.instances import instances_from_prediction, otsu_watershed
from diffrendergan.metrics import segmentation as segmetrics
from diffrendergan.training.seg_module import MULTIPLE, SegModule
from diffrendergan.utils.device import accelerator_uses_cuda
from diffrendergan.utils.io import atomic_write, atomic_write_json

log = logging.getLogger(__name__)

OUTLINE_RGB = (255, 220, 0)
INSTANCE_METHODS = ("watershed", "boundary", "hybrid")

# (H, W) cropped image -> (instances (H, W), predicted classes (H, W) or None)
Predictor = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray | None]]


def is_synthetic_folder(folder: str | Path) -> bool:
    """Exports carry ``metadata.jsonl``; real annotated folders do not."""
    return (Path(folder) / "metadata.jsonl").is_file()


def _percentile(img: np.ndarray, **_: Any) -> np.ndarray:
    return normalize_image(img, "percentile")


# -------------------------------------------------------------------------------- training data
def _crop_side(min_side: int, crop_size: int) -> int:
    """Largest multiple of 32 <= min(crop_size, image side): smp needs sides divisible by 32."""
    side = min(crop_size, min_side) // MULTIPLE * MULTIPLE
    if side < MULTIPLE:
        raise DataError("<training images>", f"images are {min_side} px, need >= {MULTIPLE} px")
    return side


def _synthetic_dataset(folder: Path, crop: int | None, seed: int) -> SyntheticFolderDataset:
    """Synthetic export, percentile-normalised; with ``crop``: random crops + dihedral flips."""
    ops: list[A.BasicTransform] = [A.Lambda(image=_percentile, name="percentile")]
    if crop is not None:
        ops += [
            A.RandomCrop(crop, crop),
            A.HorizontalFlip(p=0.5),
            A.VerticalFlip(p=0.5),
            A.RandomRotate90(p=0.5),
            A.Transpose(p=0.5),
        ]
    return SyntheticFolderDataset(folder, transform=A.Compose(ops, seed=seed))


def _first_image_side(folder: Path) -> int:
    ds = SyntheticFolderDataset(folder)
    return min(read_micrograph(ds.pairs[0].image_path, normalize="none").shape)


def _labeled_min_side(folder: Path, crop_bottom_px: int | None) -> int:
    return min(min(load_labeled(p, crop_bottom_px)[0].shape) for p in find_labeled_pairs(folder))


def _eval_dataset(folder: Path, crop_bottom_px: int | None) -> Dataset:
    if is_synthetic_folder(folder):
        return _synthetic_dataset(folder, None, 0)
    return LabeledDataset(find_labeled_pairs(folder), train=False, crop_bottom_px=crop_bottom_px)


def make_loaders(
    train_dir: Path,
    val_dir: Path | None,
    batch_size: int,
    crop_size: int,
    crop_bottom_px: int | None,
    samples_per_image: int,
    num_workers: int,
    seed: int,
) -> tuple[DataLoader, DataLoader | None, str]:
    """(train loader of random crops, whole-image val loader or None, "synthetic" | "real")."""
    val = None
    if val_dir is not None:
        val = DataLoader(_eval_dataset(val_dir, crop_bottom_px), batch_size=1, shuffle=False)
    if is_synthetic_folder(train_dir):
        crop = _crop_side(_first_image_side(train_dir), crop_size)
        ds = _synthetic_dataset(train_dir, crop, seed)
        train = DataLoader(
            ds,
            batch_size=batch_size,
            shuffle=True,
            num_workers=num_workers,
            worker_init_fn=_seed_worker_transform,
            generator=torch.Generator().manual_seed(seed),
        )
        return train, val, "synthetic"
    crop = _crop_side(_labeled_min_side(train_dir, crop_bottom_px), crop_size)
    dm = LabeledDataModule(
        train_dir=train_dir,
        size=crop,
        batch_size=batch_size,
        num_workers=num_workers,
        crop_bottom_px=crop_bottom_px,
        samples_per_image=samples_per_image,
        seed=seed,
    )
    return dm.train_dataloader(), val, "real"


# ----------------------------------------------------------------------------------- evaluation
@dataclass
class EvalImage:
    """A test micrograph: cropped image/classes, the full-size raw image and cropped row count."""

    stem: str
    image: np.ndarray  # (h, W) float32 in [0, 1], percentile-normalised, data bar removed
    classes: np.ndarray  # (h, W) uint8 in {0, 1, 2}
    full: np.ndarray  # (H, W) float32 in [0, 1], the whole file as stored
    bar_rows: int


def _load_test_image(pair: LabeledPair, synthetic: bool, crop_bottom_px: int | None) -> EvalImage:
    full = read_micrograph(pair.image_path, normalize="full")
    if synthetic:
        classes = read_mask(pair.mask_path).astype(np.uint8)
        return EvalImage(pair.image_path.stem, _percentile(full), classes, full, 0)
    image, _, classes = load_labeled(pair, crop_bottom_px)
    return EvalImage(pair.image_path.stem, image, classes, full, full.shape[0] - image.shape[0])


def eval_pairs(test_dir: Path) -> tuple[list[LabeledPair], bool]:
    if is_synthetic_folder(test_dir):
        return SyntheticFolderDataset(test_dir).pairs, True
    return find_labeled_pairs(test_dir), False


def overlay(full: np.ndarray, instances: np.ndarray) -> np.ndarray:
    """Grey image with instance outlines. full (H, W) in [0, 1], instances (H, W) -> (H, W, 3) u8."""
    grey = (np.clip(full, 0, 1) * 255).round().astype(np.uint8)
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    rgb[find_boundaries(instances, mode="inner")] = OUTLINE_RGB
    return rgb


def _save_png(path: Path, arr: np.ndarray) -> None:
    """uint16 (H, W) -> 16-bit PNG, uint8 (H, W, 3) -> RGB PNG; atomic."""
    atomic_write(path, lambda p: Image.fromarray(arr).save(p, format="PNG"))


def _json_safe(obj: Any) -> Any:
    """NaN/inf -> None (strict JSON), numpy scalars -> Python."""
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def evaluate_folder(
    test_dir: str | Path,
    out_dir: str | Path,
    predict: Predictor,
    pixel_size_nm: float = 1.0,
    crop_bottom_px: int | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Score ``predict`` on every annotated test image; write metrics.json, predictions/, overlays/.

    Returns the summary written to ``out_dir/metrics.json`` (means, pooled counts, size errors,
    ``per_image``, ``definitions``).
    """
    test_dir, out = Path(test_dir), Path(out_dir)
    pairs, synthetic = eval_pairs(test_dir)
    t0 = time.perf_counter()
    per_image = []
    for pair in pairs:
        t = _load_test_image(pair, synthetic, crop_bottom_px)
        instances, pred_classes = predict(t.image)
        rec = segmetrics.evaluate_image(t.classes, instances, pred_classes, pixel_size_nm)
        full_inst = np.zeros(t.full.shape, dtype=np.uint16)
        full_inst[: t.image.shape[0]] = instances.astype(np.uint16)
        _save_png(out / "predictions" / f"{t.stem}.png", full_inst)
        _save_png(out / "overlays" / f"{t.stem}.png", overlay(t.full, full_inst))
        size = {"height": t.full.shape[0], "width": t.full.shape[1], "bar_rows": t.bar_rows}
        per_image.append({"stem": t.stem, **size, **rec})
    summary: dict[str, Any] = {
        **segmetrics.aggregate(per_image),
        "pixel_size_nm": pixel_size_nm,
        "test_dir": str(test_dir),
        "eval_time_s": round(time.perf_counter() - t0, 2),
        **(extra or {}),
        "per_image": per_image,
        "definitions": segmetrics.__doc__,
    }
    summary = _json_safe(summary)
    atomic_write_json(out / "metrics.json", summary)
    return summary


# ------------------------------------------------------------------------------------ entry API
def train_segmenter(
    train_dir: str | Path,
    out_dir: str | Path,
    val_dir: str | Path | None = None,
    arch: str = "unet",
    encoder: str = "resnet18",
    encoder_weights: str | None = None,
    max_epochs: int = 5,
    batch_size: int = 4,
    lr: float = 1e-3,
    limit_train_batches: int | float | None = None,
    crop_size: int = 256,
    crop_bottom_px: int | None = None,
    samples_per_image: int = 8,
    num_workers: int = 0,
    init_from: str | Path | None = None,
    seed: int = 0,
    accelerator: str = "cpu",
    progress: bool = True,
) -> tuple[SegModule, dict[str, Any]]:
    """Train a :class:`SegModule`; saves ``out_dir/segmenter.ckpt``. Returns (module, info)."""
    if max_epochs < 1:
        raise ConfigError("trainer.max_epochs", f"must be >= 1, got {max_epochs}")
    out = Path(out_dir)
    pl.seed_everything(seed, workers=True, verbose=False)
    train, val, kind = make_loaders(
        Path(train_dir),
        None if val_dir is None else Path(val_dir),
        batch_size,
        crop_size,
        crop_bottom_px,
        samples_per_image,
        num_workers,
        seed,
    )
    module = SegModule(arch, encoder, encoder_weights, lr)
    if init_from is not None:
        state = torch.load(init_from, map_location="cpu", weights_only=False)["state_dict"]
        module.load_state_dict(state)
    trainer = pl.Trainer(
        max_epochs=max_epochs,
        accelerator=accelerator,
        devices=1,
        logger=pl.loggers.CSVLogger(str(out), name="logs", version=""),
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=progress,
        num_sanity_val_steps=0,
        limit_train_batches=limit_train_batches,
        log_every_n_steps=1,
    )
    t0 = time.perf_counter()
    trainer.fit(module, train, val)
    train_time = time.perf_counter() - t0
    atomic_write(out / "segmenter.ckpt", lambda p: trainer.save_checkpoint(p))
    info = {
        "train_dir": str(train_dir),
        "train_kind": kind,
        "arch": arch,
        "encoder": encoder,
        "epochs": max_epochs,
        "train_time_s": round(train_time, 2),
        "init_from": None if init_from is None else str(init_from),
    }
    val_dice = trainer.callback_metrics.get("val/dice")
    if val_dice is not None:
        info["val_dice"] = float(val_dice)
    return module, info


def run_segmentation(
    train_dir: str | Path,
    test_dir: str | Path,
    out_dir: str | Path,
    val_dir: str | Path | None = None,
    arch: str = "unet",
    encoder: str = "resnet18",
    encoder_weights: str | None = None,
    max_epochs: int = 5,
    batch_size: int = 4,
    lr: float = 1e-3,
    limit_train_batches: int | float | None = None,
    pixel_size_nm: float = 1.0,
    crop_bottom_px: int | None = None,
    instance_method: str = "watershed",
    seed: int = 0,
    accelerator: str = "cpu",
    crop_size: int = 256,
    samples_per_image: int = 8,
    num_workers: int = 0,
    init_from: str | Path | None = None,
    tile: int = 256,
    overlap: int = 32,
    progress: bool = True,
) -> dict[str, Any]:
    """Train on ``train_dir`` (synthetic export or real annotated folder), test on ``test_dir``.

    ``crop_bottom_px`` (None = detect) applies to real folders only; ``samples_per_image`` is the
    number of random crops per real training image and epoch; ``init_from`` starts from a saved
    ``segmenter.ckpt`` (fine-tuning). Writes ``out_dir/metrics.json``, ``predictions/``,
    ``overlays/`` and ``segmenter.ckpt``; returns the metrics summary.
    """
    if instance_method not in INSTANCE_METHODS:
        raise ConfigError("eval.instance_method", f"expected one of {INSTANCE_METHODS}")
    module, info = train_segmenter(
        train_dir,
        out_dir,
        val_dir=val_dir,
        arch=arch,
        encoder=encoder,
        encoder_weights=encoder_weights,
        max_epochs=max_epochs,
        batch_size=batch_size,
        lr=lr,
        limit_train_batches=limit_train_batches,
        crop_size=crop_size,
        crop_bottom_px=crop_bottom_px,
        samples_per_image=samples_per_image,
        num_workers=num_workers,
        init_from=init_from,
        seed=seed,
        accelerator=accelerator,
        progress=progress,
    )

    if accelerator_uses_cuda(accelerator):
        module.to("cuda")  # Lightning hands the module back on the CPU after fit
    module.eval()

    def predict(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        probs = module.predict_full(image, tile=tile, overlap=overlap)
        return instances_from_prediction(probs, method=instance_method), probs.argmax(0)

    extra = {"method": f"{arch}/{encoder}", "instance_method": instance_method, "train": info}
    return evaluate_folder(test_dir, out_dir, predict, pixel_size_nm, crop_bottom_px, extra)


def classical_baseline(
    test_dir: str | Path,
    out_dir: str | Path,
    pixel_size_nm: float = 1.0,
    crop_bottom_px: int | None = None,
    min_distance_px: int = 3,
    min_size_px: int = 8,
    smooth_sigma: float = 1.0,
) -> dict[str, Any]:
    """Otsu threshold + distance-transform watershed, scored like the segmenters (no training)."""

    def predict(image: np.ndarray) -> tuple[np.ndarray, None]:
        return otsu_watershed(image, min_distance_px, min_size_px, smooth_sigma), None

    extra = {"method": "otsu_watershed"}
    return evaluate_folder(test_dir, out_dir, predict, pixel_size_nm, crop_bottom_px, extra)
