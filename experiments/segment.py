"""Train a 3-class segmenter on a synthetic export or real annotations; score it on real ones.

    python -m experiments.segment train_dir=... test_dir=... [val_dir=...] out_dir=... \
        model.encoder=resnet18 trainer.max_epochs=5
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, MissingMandatoryValue

from diffrendergan.errors import ConfigError
from diffrendergan.tasks.segment import classical_baseline, run_segmentation
from experiments._common import one_line_errors


def required(cfg: DictConfig, key: str) -> str:
    try:
        value = cfg[key]
    except MissingMandatoryValue:
        value = None
    if value in (None, ""):
        raise ConfigError(key, f"is required (e.g. {key}=path/to/folder)")
    return str(value)


@hydra.main(version_base="1.3", config_path="../configs", config_name="segment")
@one_line_errors
def main(cfg: DictConfig) -> dict[str, Any]:
    train_dir, test_dir = required(cfg, "train_dir"), required(cfg, "test_dir")
    out = Path(str(cfg.out_dir))
    m, t, d, e = cfg.model, cfg.trainer, cfg.data, cfg.eval
    metrics = run_segmentation(
        train_dir,
        test_dir,
        out,
        val_dir=cfg.val_dir,
        arch=m.arch,
        encoder=m.encoder,
        encoder_weights=m.encoder_weights,
        lr=float(m.lr),
        max_epochs=int(t.max_epochs),
        accelerator=t.accelerator,
        limit_train_batches=t.limit_train_batches,
        batch_size=int(d.batch_size),
        crop_size=int(d.crop_size),
        samples_per_image=int(d.samples_per_image),
        crop_bottom_px=d.crop_bottom_px,
        num_workers=int(d.num_workers),
        pixel_size_nm=float(e.pixel_size_nm),
        instance_method=e.instance_method,
        tile=int(e.tile),
        overlap=int(e.overlap),
        init_from=cfg.init_from,
        seed=int(cfg.seed),
        progress=bool(cfg.progress),
    )
    print(_line("segmenter", metrics))
    if cfg.classical:
        cls = classical_baseline(test_dir, out / "classical", float(e.pixel_size_nm), d.crop_bottom_px)
        print(_line("otsu+watershed", cls))
    print(f"metrics: {out / 'metrics.json'}")
    return metrics


def _line(name: str, m: dict[str, Any]) -> str:
    return f"{name}: " + ", ".join(f"{k}={m[k]:.3f}" for k in ("dsc", "ap50", "pq", "miou"))


if __name__ == "__main__":
    main()
