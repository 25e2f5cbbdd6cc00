"""The main job: real patches -> GAN training -> synthetic export -> segmentation evaluation.

Library code behind ``python -m experiments.run``; it takes the composed config (plain
``DictConfig``) and the output folder, and returns the summary it wrote to ``summary.json``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf

from diffrendergan.config import MaterialConfig, material_from_dict, renderer_from_dict
from diffrendergan.data.datasets import RealPatchDataModule
from diffrendergan.data.demo import ensure_demo
from diffrendergan.data.patches import PatchOptions, prepare_patches
from diffrendergan.data.readers import list_images
from diffrendergan.errors import ConfigError
from diffrendergan.evaluation.particle_sizes import labeled_diameters, law_diameters, size_stats
from diffrendergan.models.topography import law_summary
from diffrendergan.scene.laws import size_law_moments
from diffrendergan.schemas import check_labeled_dir, check_model, check_real_dir, check_run
from diffrendergan.tasks.builders import build_callbacks, build_loggers, build_trainer
from diffrendergan.training.gan_module import GANModule
from diffrendergan.training.load import load_gan_module
from diffrendergan.training.parts import build_parts
from diffrendergan.utils.checkpoints import resume_checkpoint
from diffrendergan.utils.device import accelerator_uses_cuda
from diffrendergan.utils.io import atomic_write_json, atomic_write_text

log = logging.getLogger(__name__)


@dataclass
class RealData:
    patch_dir: Path
    labeled_dir: Path | None
    demo_truth: dict | None


def _cache_key(*parts: Any) -> str:
    return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:12]


def input_files_key(folder: Path) -> list[tuple[str, int, int]]:
    """(name, size, mtime_ns) of every image in ``folder``: part of the patch cache key, so an
    added, removed, replaced or rewritten file gives a new cache entry instead of stale patches."""
    out = []
    for p in list_images(folder):
        st = p.stat()
        out.append((p.name, st.st_size, st.st_mtime_ns))
    return out


def prepare_real_data(data: DictConfig, material: MaterialConfig, cache_dir: Path) -> RealData:
    """Resolve the GAN's real patches: prepared patches as given, raw micrographs patched into the
    cache, or the simulated demo set when ``data.real_dir`` is null.

    The cache entry of raw micrographs is keyed on the folder, every file's name, size and
    mtime, and the patching settings."""
    target = data.target_pixel_size_nm or material.pixel_size_nm
    size, stride = int(data.patch_size), int(data.stride)
    if size != material.image_size:
        raise ConfigError(
            "data.patch_size", f"must equal material.image_size ({material.image_size}), got {size}"
        )
    labeled_given = check_labeled_dir(data.labeled_dir)
    if data.real_dir is None:
        demo = ensure_demo(
            material, cache_dir, n_unlabeled=int(data.demo_images), size=2 * material.image_size
        )
        raw, pixel, truth, labeled = (
            demo.unlabeled_dir,
            material.pixel_size_nm,
            demo.truth,
            demo.labeled_dir,
        )
    else:
        raw = check_real_dir(data.real_dir)
        if (raw / "manifest.jsonl").exists():
            return RealData(raw, labeled_given, None)
        pixel, truth, labeled = data.pixel_size_nm, None, labeled_given
    files = input_files_key(raw)
    key = _cache_key(
        str(raw.resolve()),
        files,
        size,
        stride,
        pixel,
        target,
        data.crop_bottom_px,
        data.page,
        bool(data.strict),
    )
    out = cache_dir / "patches" / f"{material.name}-{key}"
    if not (out / "manifest.jsonl").exists():
        opts = PatchOptions.from_config(
            data, pixel_size_nm=pixel, target_pixel_size_nm=target if pixel else None
        )
        prepare_patches(raw, out, opts)
    return RealData(out, labeled, truth)


def gan_module_from_cfg(cfg: DictConfig, material_raw: dict, n_train: int) -> GANModule:
    """The module with its parts built from ``cfg.model`` (layout_pool -1 = one per patch)."""
    spec = check_model(cfg.model)
    if spec.layout_pool < 0:
        spec = replace(spec, layout_pool=max(n_train, 1))
    renderer = OmegaConf.to_container(cfg.renderer, resolve=True)
    parts = build_parts(material_from_dict(material_raw), renderer_from_dict(renderer), spec)  # type: ignore[arg-type]
    return GANModule(material_raw, renderer, spec, seed=int(cfg.seed), parts=parts)  # type: ignore[arg-type]


def _param_stats(module: GANModule) -> dict[str, dict[str, float]]:
    params = module.eval_sample().params
    return {
        k: {"mean": float(v.mean()), "std": float(v.std()) if v.numel() > 1 else 0.0}
        for k, v in params.items()
    }


def train_gan(cfg: DictConfig, material: MaterialConfig, out_dir: Path) -> dict:
    """Run the whole main job; returns (and writes) the summary."""
    t0 = time.time()
    check_run(cfg)  # types, ranges and folders before any data are read or training starts
    resume_checkpoint(out_dir, bool(cfg.resume))  # a corrupt or foreign last.ckpt: one line now
    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
    if int(os.environ.get("LOCAL_RANK", "0")) == 0 and int(os.environ.get("NODE_RANK", "0")) == 0:
        atomic_write_text(out_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    real = prepare_real_data(cfg.data, material, Path(str(cfg.paths.cache_dir)).expanduser())
    dm = patch_data_module(cfg, real.patch_dir)
    material_raw = OmegaConf.to_container(cfg.material, resolve=True)
    module = gan_module_from_cfg(cfg, material_raw, len(dm.train_set))  # type: ignore[arg-type]
    dm.scenes = module.scene_stream(workers=int(cfg.data.scene_workers))  # layouts and G-buffers
    runtime = {
        "appearance": {"reference": labeled_appearance(real, cfg.data.crop_bottom_px)},
        "size_law": {"truth": material.size if real.demo_truth is not None else None},
    }
    callbacks = build_callbacks(cfg.callbacks, out_dir, runtime)
    config = OmegaConf.to_container(cfg, resolve=True)
    loggers = build_loggers(cfg.logger, out_dir, f"{material.name}-{out_dir.name}", config)  # type: ignore[arg-type]
    trainer = build_trainer(cfg.trainer, out_dir, callbacks, loggers)
    realism_start = fit(trainer, module, dm, out_dir, bool(cfg.resume))
    if not trainer.is_global_zero:
        return {}
    which = str(cfg.export.checkpoint)
    exported = exported_module(trainer, module, out_dir, which)
    summary: dict[str, Any] = {
        "material": material.name,
        "steps": int(module.batches_seen),
        "epochs": int(trainer.current_epoch),
        "realism": realism_summary(realism_start, module.last_realism, trainer.checkpoint_callback),
        "parameters": _param_stats(exported),
        "checkpoint": _checkpoint_path(trainer, out_dir, which),
        "output_dir": str(out_dir),
        "real_patches": str(real.patch_dir),
        "n_real_patches": {"train": len(dm.train_set), "val": len(dm.val_set)},  # type: ignore[arg-type]
        "hardware": _hardware(trainer),
    }
    if real.demo_truth is not None:
        summary["demo_truth"] = {
            "params": real.demo_truth["params"],
            "size_moments_nm": size_law_moments(material.size),
        }
    if exported.topography is not None:
        summary["topography"] = topography_report(exported, material, real, cfg)
    summary.update(export_and_evaluate(cfg, exported, real, out_dir))
    summary["wall_time_s"] = round(time.time() - t0, 1)
    atomic_write_json(out_dir / "summary.json", summary)
    return summary


def patch_data_module(cfg: DictConfig, patch_dir: Path) -> RealPatchDataModule:
    """The real patches split into training and validation (both must be non-empty)."""
    dm = RealPatchDataModule(
        patch_dir,
        batch_size=int(cfg.data.batch_size),
        num_workers=int(cfg.data.num_workers),
        augment=bool(cfg.data.augment),
        brightness_contrast=float(cfg.data.brightness_contrast),
        val_fraction=float(cfg.data.val_fraction),
        seed=int(cfg.seed),
        split_seed=int(cfg.data.split_seed),
    )
    dm.setup("fit")
    assert dm.train_set is not None
    if dm.val_set is None:
        raise ConfigError("data.val_fraction", "no validation patches: raise data.val_fraction or add data")
    return dm


def fit(trainer: pl.Trainer, module: GANModule, dm: RealPatchDataModule, out_dir: Path, resume: bool) -> dict:
    """Measure the realism before training (kept in ``realism_start.json``, so that a resumed run
    reports the true start), then train, from ``last.ckpt`` when resuming. Returns the start."""
    last = out_dir / "checkpoints" / "last.ckpt"
    if resume and not last.exists():
        log.warning("resume=true but %s does not exist: starting from scratch", last)
    resume = resume and last.exists()
    start_file = out_dir / "realism_start.json"
    if resume and start_file.exists():
        realism_start = json.loads(start_file.read_text())
    else:
        trainer.validate(module, datamodule=dm, verbose=False)
        realism_start = dict(module.last_realism)
        if trainer.is_global_zero:
            atomic_write_json(start_file, realism_start)
    trainer.fit(module, datamodule=dm, ckpt_path=str(last) if resume else None)
    return realism_start


def _checkpoint_path(trainer: pl.Trainer, out_dir: Path, which: str = "best") -> str:
    """The best-realism checkpoint (``last.ckpt`` when none was kept, or when ``which`` is
    ``last``)."""
    checkpoint = trainer.checkpoint_callback  # the first ModelCheckpoint (None when dropped)
    best = checkpoint.best_model_path if checkpoint is not None and which == "best" else ""
    return best or str(out_dir / "checkpoints" / "last.ckpt")


def exported_module(trainer: pl.Trainer, module: GANModule, out_dir: Path, which: str = "best") -> GANModule:
    """The module of the exported checkpoint (``export.checkpoint``: the best-realism one, or the
    last), in eval mode, with the size law (if learned) of the end of training: appearance comes
    from that checkpoint, but the realism metric is too noisy to pick a topography estimate, so
    the law is the Polyak average at the end."""
    path = Path(_checkpoint_path(trainer, out_dir, which))
    chosen = load_gan_module(path) if path.exists() else module
    chosen.eval()
    if module.topography is not None and chosen is not module:
        chosen.topography.load_state_dict(module.topography.state_dict())
    return chosen


def realism_summary(start: dict, end: dict, checkpoint: Any) -> dict[str, Any]:
    """``summary.json``'s realism block: val/swd (and val/hist_w1) before, after and at best."""
    score = checkpoint.best_model_score if checkpoint is not None else None
    return {
        "metric": "swd",
        "start": start.get("val/swd"),
        "end": end.get("val/swd"),
        "best": float(score) if score is not None else None,
        "hist_w1_start": start.get("val/hist_w1"),
        "hist_w1_end": end.get("val/hist_w1"),
    }


def topography_report(module: GANModule, material: MaterialConfig, real: RealData, cfg: DictConfig) -> dict:
    """Learned size law next to the truth (demo) and, measured the same way, next to the labeled
    masks: projected equal-area diameters of whole particles, the laws rendered in fields of the
    masks' image size (a smaller field's border cuts large particles more often; see
    evaluation.particle_sizes)."""
    topo = module.topography
    assert topo is not None
    n, seed = int(cfg.model.topography.report_images), int(cfg.seed)
    report: dict[str, Any] = {"units": "nm", "learned": topo.summary()}
    projected, field = {}, None
    if real.labeled_dir is not None:  # the laws are measured in fields of the masks' size
        pixel = float(cfg.data.pixel_size_nm or material.pixel_size_nm)
        labeled, side = labeled_diameters(real.labeled_dir, pixel, cfg.data.crop_bottom_px)
        projected["labeled"] = size_stats(labeled)
        field = round(side * pixel / material.pixel_size_nm)  # in the renders' pixels
    projected["learned"] = size_stats(law_diameters(topo.learned_material(), n, seed, field_px=field))
    if real.demo_truth is not None:  # the demo's hidden law is the configured one
        report["truth"] = law_summary(material.size, material.count)
        projected["truth"] = size_stats(law_diameters(material, n, seed, field_px=field))
    report["projected_diameter_nm"] = projected
    report["measured_field_px"] = field or material.image_size
    return report


def _hardware(trainer: pl.Trainer) -> dict[str, Any]:
    """What the run trained on, for the summary: accelerator kind, world size, GPU model."""
    kind = type(trainer.accelerator).__name__.removesuffix("Accelerator").lower()  # cpu | cuda | mps
    return {
        "accelerator": kind,
        "world_size": int(trainer.world_size),
        "gpu": torch.cuda.get_device_name() if kind == "cuda" else None,
    }


def export_and_evaluate(cfg: DictConfig, module: GANModule, real: RealData, out_dir: Path) -> dict:
    """Export a synthetic annotated set with the best generator; evaluate segmentation on the
    labeled real (or demo) data when there is any."""
    out: dict[str, Any] = {}
    if not cfg.export.enabled:
        return out
    from diffrendergan.export.writer import ExportOptions, export_dataset

    export_dir = out_dir / "synthetic"
    on_gpu = accelerator_uses_cuda(cfg.trainer.accelerator)
    res = export_dataset(
        module.export_generator().to("cuda" if on_gpu else "cpu"),  # fit hands the module back on the CPU
        export_dir,
        int(cfg.export.n_images),
        ExportOptions(
            seed=int(cfg.seed),
            batch_size=int(cfg.export.batch_size),
            widen=float(cfg.export.widen),
        ),
    )
    out["export"] = {"dir": str(export_dir), **{k: v for k, v in res.items() if k != "out_dir"}}
    if real.labeled_dir is not None:
        out["appearance"] = export_appearance(real, export_dir, cfg.data.crop_bottom_px, out_dir)
    if not cfg.evaluate.enabled or real.labeled_dir is None:
        return out
    from diffrendergan.segmentation.recipe import segmenter_from_dict
    from diffrendergan.tasks.segment import ImageSet, TrainOptions, run_segmentation

    seg_dir = out_dir / "segmentation"
    pixel = cfg.data.pixel_size_nm or real_pixel_size(cfg, real)
    metrics = run_segmentation(
        segmenter_from_dict(cfg.segmenter),
        ImageSet(export_dir),
        ImageSet(real.labeled_dir, crop_bottom_px=cfg.data.crop_bottom_px),
        seg_dir,
        TrainOptions(seed=int(cfg.seed)),
        pixel,
    )
    out["evaluation"] = {
        "metrics": str(seg_dir / "metrics.json"),
        "segmenter": str(seg_dir / "segmenter.ckpt"),
        **{k: metrics.get(k) for k in ("dsc", "ap50", "pq", "miou", "matched_median_rel_error")},
    }
    return out


def labeled_appearance(real: RealData, crop_bottom_px: int | None):  # -> Appearance | None
    """The labeled images' appearance, the reference the per-epoch statistics are compared to."""
    if real.labeled_dir is None:
        return None
    from diffrendergan.tasks.realism import appearance_of_folder

    return appearance_of_folder(real.labeled_dir, crop_bottom_px)


def export_appearance(real: RealData, export_dir: Path, crop_bottom_px: int | None, out_dir: Path) -> dict:
    """Particle appearance (rim -> core profile, substrate, gradients) of the labeled images and
    of the export, their difference, and ``appearance.png`` with both profiles."""
    from diffrendergan.metrics.appearance import profile_figure
    from diffrendergan.tasks.realism import appearance_of_folder, appearance_report

    stats = {
        "real": appearance_of_folder(real.labeled_dir, crop_bottom_px),
        "fake": appearance_of_folder(export_dir),
    }
    profile_figure({k: v for k, v in stats.items() if v is not None}, str(out_dir / "appearance.png"))
    return appearance_report(stats)


def real_pixel_size(cfg: DictConfig, real: RealData) -> float | None:
    """nm/px of the labeled images: the demo's are rendered at the material's scale; real files
    carry theirs in their metadata (None here = read it per file)."""
    return float(cfg.material.pixel_size_nm) if real.demo_truth is not None else None
