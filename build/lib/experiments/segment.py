"""Train a 3-class segmenter on a synthetic export or real annotations; score it on real ones.

    python -m experiments.segment train_dir=... test_dir=... [val_dir=...] out_dir=... \
        segmenter.steps=600 segmenter.target=contour
"""

from __future__ import annotations

from typing import Any

import hydra
from omegaconf import DictConfig

from diffrendergan.schemas import check_segment
from diffrendergan.segmentation.recipe import segmenter_from_dict
from experiments._common import (
    check_command_line,
    checkpoint_path,
    existing_folder,
    one_line_errors,
    optional_folder,
    required,
    writable_folder,
)

LABELED = "a labeled folder (images/ + masks/) or a synthetic export"


@hydra.main(version_base="1.3", config_path="../configs", config_name="segment")
@one_line_errors
def main(cfg: DictConfig) -> dict[str, Any]:
    train_dir = existing_folder("train_dir", required(cfg, "train_dir"), LABELED)
    test_dir = existing_folder("test_dir", required(cfg, "test_dir"), LABELED)
    opts = check_segment(cfg)  # types and ranges, before any image is read
    recipe = segmenter_from_dict(cfg.segmenter)
    val_dir = optional_folder("val_dir", opts.val_dir, LABELED)
    out = writable_folder("out_dir", opts.out_dir)

    # the network stack (seconds to import): only once the cheap checks passed
    from diffrendergan.segmentation.checkpoint import load_segmenter_state
    from diffrendergan.tasks.segment import ImageSet, TrainOptions, classical_baseline, run_segmentation

    init = checkpoint_path(opts.init_from)
    if init is not None:
        load_segmenter_state(init)  # a wrong or corrupt file is reported now, not after training
    crop = opts.crop_bottom_px
    train, test = ImageSet(train_dir, crop_bottom_px=crop), ImageSet(test_dir, crop_bottom_px=crop)
    val = None if val_dir is None else ImageSet(val_dir, crop_bottom_px=crop)
    options = TrainOptions(opts.seed, init, val, opts.progress)
    metrics = run_segmentation(recipe, train, test, out, options, opts.pixel_size_nm)
    print(_line("segmenter", metrics))
    if opts.classical:
        print(_line("otsu+watershed", classical_baseline(test, out / "classical", opts.pixel_size_nm)))
    print(f"metrics: {out / 'metrics.json'}")
    print(f"segmenter: {out / 'segmenter.ckpt'}")
    return metrics


def _num(value: Any, digits: int) -> str:
    """A metric for the summary line; ``n/a`` when it is undefined (None: no matched particle)."""
    return "n/a" if value is None else f"{value:.{digits}f}"


def _line(name: str, m: dict[str, Any]) -> str:
    scores = ", ".join(f"{k}={_num(m[k], 3)}" for k in ("dsc", "ap50", "pq", "miou"))
    unit = m.get("size_unit", "px")
    return (
        f"{name}: {scores}, matched size error {_num(m.get('matched_median_rel_error'), 3)}, "
        f"mean size error {_num(m.get(f'mean_error_{unit}'), 2)} {unit}"
    )


if __name__ == "__main__":
    check_command_line("segment")
    main()
