"""Train a segmenter with a recipe: a fixed number of optimizer steps on random crops.

The budget is counted in steps (not epochs), so a comparison gives every training set — 500
renders or 4 real micrographs — the same number of updates on the same crop size.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from diffrendergan.data.datasets import _seed_worker_transform
from diffrendergan.segmentation.checkpoint import load_segmenter_state
from diffrendergan.segmentation.data import Sample, TrainingCrops, crop_side
from diffrendergan.segmentation.module import SegModule
from diffrendergan.segmentation.recipe import SegmenterConfig
from diffrendergan.utils.device import accelerator_uses_cuda
from diffrendergan.utils.io import atomic_write

log = logging.getLogger(__name__)


def _loader(samples: list[Sample], recipe: SegmenterConfig, seed: int) -> DataLoader:
    s = recipe.schedule()
    crops = TrainingCrops(
        samples,
        recipe.representation,
        crop_side(samples, recipe.crop_size),
        n_items=s.steps * s.batch_size,
        gain_jitter=recipe.gain_jitter,
        offset_jitter=recipe.offset_jitter,
        seed=seed,
    )
    return DataLoader(
        crops,
        batch_size=s.batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=recipe.num_workers,
        worker_init_fn=_seed_worker_transform,
        generator=torch.Generator().manual_seed(seed),
        persistent_workers=False,
    )


def _val_loader(samples: list[Sample] | None) -> DataLoader | None:
    if not samples:
        return None
    items = [(torch.from_numpy(s.image)[None], torch.from_numpy(s.classes.astype("int64"))) for s in samples]
    return DataLoader(items, batch_size=1, shuffle=False)


def common_pixel_size(samples: list[Sample]) -> float | None:
    """The pixel size all samples share (nm), or None when any is unknown or they differ > 1 %."""
    sizes = [s.pixel_size_nm for s in samples]
    if not sizes or any(p is None for p in sizes):
        return None
    lo, hi = min(sizes), max(sizes)  # type: ignore[type-var]
    return float(sum(sizes) / len(sizes)) if hi <= lo * 1.01 else None  # type: ignore[arg-type]


def accelerator(recipe: SegmenterConfig) -> str:
    if recipe.accelerator == "auto":
        return "gpu" if torch.cuda.is_available() else "cpu"
    return recipe.accelerator


def train_segmenter(
    recipe: SegmenterConfig,
    train: list[Sample],
    out_dir: str | Path,
    seed: int = 0,
    val: list[Sample] | None = None,
    init_from: str | Path | None = None,
    progress: bool = False,
) -> tuple[SegModule, dict[str, Any]]:
    """Train on ``train`` for ``recipe.steps`` steps; save ``out_dir/segmenter.ckpt`` (atomic).

    The checkpoint records the training images' pixel size (their common value; None when
    unknown or mixed), the scale new micrographs are resampled to before inference.
    Returns the trained module (on the training device, in eval mode) and a summary dict.
    """
    recipe = recipe.resolved()
    out = Path(out_dir)
    pl.seed_everything(seed, workers=True, verbose=False)
    loader = _loader(train, recipe, seed)
    module = SegModule(recipe.as_dict(), common_pixel_size(train))
    if init_from is not None:
        module.net.load_state_dict(load_segmenter_state(init_from))
    trainer = pl.Trainer(
        max_steps=recipe.steps,
        max_epochs=1,
        accelerator=accelerator(recipe),
        devices=1,
        precision=recipe.precision,
        logger=pl.loggers.CSVLogger(str(out), name="logs", version=""),
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=progress,
        num_sanity_val_steps=0,
        log_every_n_steps=min(10, recipe.steps),
        limit_val_batches=1.0 if val else 0,
    )
    t0 = time.perf_counter()
    trainer.fit(module, loader, _val_loader(val))
    seconds = time.perf_counter() - t0
    atomic_write(out / "segmenter.ckpt", lambda p: trainer.save_checkpoint(p))
    if accelerator_uses_cuda(accelerator(recipe)):
        module.to("cuda")  # Lightning hands the module back on the CPU after fit
    module.eval()
    info: dict[str, Any] = {
        "n_train_images": len(train),
        "steps": recipe.steps,
        "train_time_s": round(seconds, 2),
        "seconds_per_step": round(seconds / max(recipe.steps, 1), 4),
        "init_from": None if init_from is None else str(init_from),
        "train_pixel_size_nm": module.train_pixel_size_nm,
        "checkpoint": str(out / "segmenter.ckpt"),
    }
    if (dice := trainer.callback_metrics.get("val/dice")) is not None:
        info["val_dice"] = float(dice)
    return module, info
