"""Train a 3-class segmenter on a synthetic export or real annotations; score it on real ones.

    python -m experiments.segment train_dir=... test_dir=... [val_dir=...] out_dir=... \
        segmenter.steps=600 segmenter.target=contour
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from diffrendergan.segmentation.checkpoint import load_segmenter_state
from diffrendergan.segmentation.recipe import segmenter_from_dict
from diffrendergan.tasks.segment import ImageSet, TrainOptions, classical_baseline, run_segmentation
from experiments._common import checkpoint_path, one_line_errors, optional_folder, required


@hydra.main(version_base="1.3", config_path="../configs", config_name="segment")
@one_line_errors
def main(cfg: DictConfig) -> dict[str, Any]:
    recipe = segmenter_from_dict(cfg.segmenter)
    crop = cfg.crop_bottom_px
    if crop is not None and (not isinstance(crop, int) or crop < 0):
        from diffrendergan.errors import ConfigError

        raise ConfigError("crop_bottom_px", f"expected null (detect) or an integer >= 0, got {crop!r}")
    train = ImageSet(required(cfg, "train_dir"), crop_bottom_px=crop)
    test = ImageSet(required(cfg, "test_dir"), crop_bottom_px=crop)
    val_dir = optional_folder("val_dir", cfg.val_dir)
    init = checkpoint_path(cfg.init_from)
    if init is not None:
        load_segmenter_state(init)  # a wrong or corrupt file is reported now, not after training
    out = Path(str(cfg.out_dir))
    val = None if val_dir is None else ImageSet(val_dir, crop_bottom_px=crop)
    options = TrainOptions(int(cfg.seed), init, val, bool(cfg.progress))
    metrics = run_segmentation(recipe, train, test, out, options, cfg.pixel_size_nm)
    print(_line("segmenter", metrics))
    if cfg.classical:
        print(_line("otsu+watershed", classical_baseline(test, out / "classical", cfg.pixel_size_nm)))
    print(f"metrics: {out / 'metrics.json'}")
    print(f"segmenter: {out / 'segmenter.ckpt'}")
    return metrics


def _line(name: str, m: dict[str, Any]) -> str:
    scores = ", ".join(f"{k}={m[k]:.3f}" for k in ("dsc", "ap50", "pq", "miou"))
    unit = m.get("size_unit", "px")
    return f"{name}: {scores}, matched size error {m['matched_median_rel_error']:.3f}, mean size error " \
           f"{m.get(f'mean_error_{unit}', float('nan')):.2f} {unit}"  # fmt: skip


if __name__ == "__main__":
    main()
