"""Downstream evaluation: train a segmenter on a training set, score it on annotated micrographs.

Training sets are a synthetic export or a real annotated folder (see
:mod:`diffrendergan.segmentation.data`). Testing runs on whole annotated images with the data
bar removed; instances are decoded with the recipe's representation and scored with
:func:`diffrendergan.metrics.segmentation.evaluate_image`. Predictions are written back at the
input's full size (zeros in the bar rows) so they line up with the original file.

Every input is loaded before training starts, so a wrong test folder costs seconds, not a run.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from skimage.segmentation import find_boundaries

from diffrendergan.data.pixel_size import resolve_pixel_size
from diffrendergan.errors import DataError
from diffrendergan.evaluation.classical import otsu_watershed
from diffrendergan.metrics import segmentation as segmetrics
from diffrendergan.segmentation.data import Sample, load_samples
from diffrendergan.segmentation.module import SegModule
from diffrendergan.segmentation.recipe import SegmenterConfig
from diffrendergan.segmentation.train import train_segmenter
from diffrendergan.utils.io import atomic_write, atomic_write_json

log = logging.getLogger(__name__)

OUTLINE_RGB = (255, 220, 0)

# (H, W) cropped image -> (instances (H, W), predicted classes (H, W) or None)
Predictor = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray | None]]


@dataclass(frozen=True)
class ImageSet:
    """Annotated images: a folder (synthetic export or real images/ + masks/), optionally only
    some stems (a cross-validation fold), and the data-bar rows (None = detect)."""

    folder: Path
    stems: tuple[str, ...] | None = None
    crop_bottom_px: int | None = None

    def load(self, normalize: str) -> list[Sample]:
        if not self.folder.is_dir():
            raise DataError(
                self.folder, "folder not found; expected images/ + masks/ (or a synthetic export)"
            )
        samples = load_samples(self.folder, normalize, self.crop_bottom_px, self.stems)
        if not samples:
            raise DataError(
                self.folder, f"no annotated images{' with stems ' + str(self.stems) if self.stems else ''}"
            )
        return samples


def overlay(full: np.ndarray, instances: np.ndarray) -> np.ndarray:
    """Grey image with instance outlines. full (H, W) in [0, 1], instances (H, W) -> (H, W, 3) u8."""
    grey = (np.clip(full, 0, 1) * 255).round().astype(np.uint8)
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    rgb[find_boundaries(instances, mode="inner")] = OUTLINE_RGB
    return rgb


def _save_png(path: Path, arr: np.ndarray) -> None:
    """uint16 (H, W) -> 16-bit PNG, uint8 (H, W, 3) -> RGB PNG; atomic."""
    atomic_write(path, lambda p: Image.fromarray(arr).save(p, format="PNG"))


def json_safe(obj: Any) -> Any:
    """NaN/inf -> None (strict JSON), numpy scalars -> Python."""
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def score(
    samples: Sequence[Sample],
    predict: Predictor,
    out_dir: str | Path,
    pixel_size_nm: float | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Score ``predict`` on every test sample; write metrics.json, predictions/, overlays/.

    Pixel sizes come from ``pixel_size_nm`` or each file's metadata (sizes in nm only when every
    image has one). Returns the summary written to ``out_dir/metrics.json`` (means, pooled counts,
    size errors, ``per_image``, ``definitions``).
    """
    out = Path(out_dir)
    t0 = time.perf_counter()
    per_image, sizes = [], []
    for s in samples:
        instances, pred_classes = predict(s.image)
        rec = segmetrics.evaluate_image(s.classes, instances, pred_classes)
        full_inst = np.zeros(s.full.shape, dtype=np.uint16)
        full_inst[: s.image.shape[0]] = instances.astype(np.uint16)
        _save_png(out / "predictions" / f"{s.stem}.png", full_inst)
        _save_png(out / "overlays" / f"{s.stem}.png", overlay(s.full, full_inst))
        px = resolve_pixel_size(pixel_size_nm, s.path)
        sizes.append(px.nm)
        shape = {"height": s.full.shape[0], "width": s.full.shape[1], "bar_rows": s.bar_rows}
        per_image.append(
            {"stem": s.stem, **shape, "pixel_size_nm": px.nm, "pixel_size_source": px.source, **rec}
        )
    summary: dict[str, Any] = {
        **segmetrics.aggregate(per_image, sizes),
        "eval_time_s": round(time.perf_counter() - t0, 2),
        **(extra or {}),
        "per_image": per_image,
        "definitions": segmetrics.__doc__,
    }
    summary = json_safe(summary)
    atomic_write_json(out / "metrics.json", summary)
    return summary


def segmenter_predictor(module: SegModule) -> Predictor:
    """Whole-image probabilities -> instances with the module's own representation."""
    rep = module.recipe.representation

    def predict(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        probs = module.predict_probs(image)
        return rep.decode(probs), probs.argmax(0)

    return predict


@dataclass(frozen=True)
class TrainOptions:
    """How one segmenter is trained besides its recipe: seed, fine-tuning start, a validation set
    scored during training (``val/dice``), a progress bar."""

    seed: int = 0
    init_from: Path | None = None
    val: ImageSet | None = None
    progress: bool = False


def run_segmentation(
    recipe: SegmenterConfig,
    train: ImageSet,
    test: ImageSet,
    out_dir: str | Path,
    options: TrainOptions = TrainOptions(),
    pixel_size_nm: float | None = None,
) -> dict[str, Any]:
    """Train on ``train`` with ``recipe``, score on ``test``; returns the metrics summary.

    Every set is loaded (and so checked) before training. Writes ``out_dir/segmenter.ckpt``,
    ``metrics.json``, ``predictions/`` and ``overlays/``.
    """
    test_samples = test.load(recipe.normalize)
    val_samples = None if options.val is None else options.val.load(recipe.normalize)
    train_samples = train.load(recipe.normalize)
    seed = options.seed
    module, info = train_segmenter(
        recipe, train_samples, out_dir, seed, val_samples, options.init_from, options.progress
    )
    info["train_dir"] = str(train.folder)
    resolved = recipe.resolved()
    extra = {
        "method": f"{resolved.arch}/{resolved.encoder}",
        "representation": resolved.target,
        "decoder": resolved.representation.decoder_name,
        "seed": seed,
        "test_dir": str(test.folder),
        "recipe": resolved.as_dict(),
        "train": info,
    }
    return score(test_samples, segmenter_predictor(module), out_dir, pixel_size_nm, extra)


def classical_baseline(
    test: ImageSet,
    out_dir: str | Path,
    pixel_size_nm: float | None = None,
    min_distance_px: int = 3,
    min_size_px: int = 8,
    smooth_sigma: float = 1.0,
) -> dict[str, Any]:
    """Otsu threshold + distance-transform watershed, scored like the segmenters (no training)."""

    def predict(image: np.ndarray) -> tuple[np.ndarray, None]:
        return otsu_watershed(image, min_distance_px, min_size_px, smooth_sigma), None

    samples = test.load("percentile")
    return score(
        samples, predict, out_dir, pixel_size_nm, {"method": "otsu_watershed", "test_dir": str(test.folder)}
    )
