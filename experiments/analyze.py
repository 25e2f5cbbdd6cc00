"""Particle size distribution in nm of new micrographs, with a trained segmenter.

python -m experiments.analyze segmenter=outputs/run/<date> input_dir=<micrographs> out_dir=<report>
python -m experiments.analyze segmenter=seg/segmenter.ckpt input_dir=tiffs pixel_size_nm=7.34
python -m experiments.analyze segmenter=seg/segmenter.ckpt labels_dir=<images/ + masks/>
python -m experiments.analyze segmenter=... input_dir=... +material=tio2   # + the size law to render them
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from diffrendergan.errors import ConfigError
from diffrendergan.schemas import check_analyze
from diffrendergan.utils.device import resolve_device
from experiments._common import (
    check_command_line,
    one_line_errors,
    optional_folder,
    require_material,
    required,
    writable_folder,
)

SEGMENTER_KEY = "segmenter_path"


def segmenter_alias(argv: list[str]) -> list[str]:
    """``segmenter=<path>`` -> ``segmenter_path=<path>``: Hydra takes ``segmenter=`` for a choice
    in the ``segmenter`` recipe group (configs/segmenter/), which analyze does not use: the
    recipe is the one stored in the checkpoint."""
    return [f"{SEGMENTER_KEY}={a.partition('=')[2]}" if a.startswith("segmenter=") else a for a in argv]


def _segmenter(cfg: DictConfig) -> Path:
    try:
        return required(cfg, SEGMENTER_KEY)
    except ConfigError:
        raise ConfigError(
            "segmenter",
            "is required: segmenter=<segmenter.ckpt, or an experiments.run/segment output folder>",
        ) from None


def _separate_output(out_dir: Path, folders: list[Path | None]) -> None:
    """Outputs go next to each other in ``out_dir``, never into a folder of originals."""
    for folder in folders:
        if folder is not None and out_dir.resolve() == folder.resolve():
            raise ConfigError("out_dir", f"is the input folder {folder}; expected a folder of its own")


@hydra.main(version_base="1.3", config_path="../configs", config_name="analyze")
@one_line_errors
def main(cfg: DictConfig) -> dict[str, Any]:
    segmenter = _segmenter(cfg)
    opts = check_analyze(cfg)  # types and ranges, before any file is read
    input_dir = optional_folder("input_dir", opts.input_dir, "a folder of micrographs")
    labels_dir = optional_folder("labels_dir", opts.labels_dir, "a folder with images/ and masks/")
    out_dir = Path(str(opts.out_dir)).expanduser()
    label_dirs = [labels_dir / "images", labels_dir / "masks"] if labels_dir else []
    _separate_output(out_dir, [input_dir, labels_dir, *label_dirs])
    writable_folder("out_dir", out_dir)
    resolve_device(opts.device)  # device=cuda without a GPU fails now, not after reading every file

    from diffrendergan.analysis.inputs import plan, segmenter_file

    ckpt = segmenter_file(segmenter)
    checked = plan(input_dir, labels_dir, opts.pixel_size_nm, opts.crop_bottom_px, opts.strict)
    law_material = _law_material(cfg)

    from diffrendergan.analysis.pipeline import Options, analyze  # the network stack: after the checks

    options = Options(
        crop_bottom_px=opts.crop_bottom_px,
        include_border=opts.include_border,
        device=opts.device,
        tta=opts.tta,
        decoding=dict(opts.decoding),
        n_boot=opts.n_boot,
        seed=opts.seed,
        law_images=opts.law_images,
    )
    summary = analyze(ckpt, checked, out_dir, options, law_material)
    _print(summary, out_dir)
    return summary


def _law_material(cfg: DictConfig):
    """``+material=<name>``: the material whose size law is fitted to the measured particles."""
    if cfg.get("material") is None:
        return None
    from diffrendergan.analysis.law_fit import check_fittable

    return check_fittable(require_material(cfg))


def _print(summary: dict[str, Any], out_dir: Path) -> None:
    from diffrendergan.analysis.report import headline

    for line in headline(summary):
        print(line)
    print(f"report: {out_dir / 'report.md'}")


if __name__ == "__main__":
    sys.argv = segmenter_alias(sys.argv)
    check_command_line("analyze")
    main()
