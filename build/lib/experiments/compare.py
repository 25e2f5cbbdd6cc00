"""Compare segmenters trained on DiffRenderGAN data, no-GAN data and real data (+ Otsu), with
N seeds per row and paired 95 % intervals against the DiffRenderGAN row.

    python -m experiments.compare +material=tio2 checkpoint=<gan.ckpt> test_dir=<labeled> out_dir=...
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import hydra
from omegaconf import DictConfig, OmegaConf

from diffrendergan.config import material_from_dict, renderer_from_dict
from diffrendergan.errors import ConfigError
from diffrendergan.schemas import CompareSchema, check_compare
from diffrendergan.segmentation.recipe import segmenter_from_dict
from experiments._common import (
    check_command_line,
    checkpoint_path,
    existing_folder,
    one_line_errors,
    optional_folder,
    require_material,
    required,
    warn_ignored_with_checkpoint,
    writable_folder,
)

if TYPE_CHECKING:
    from diffrendergan.models.generator import Generator
    from diffrendergan.tasks.compare import ComparisonSpec

LABELED = "a labeled folder (images/ + masks/)"


def _generators(cfg: DictConfig, rows: tuple[str, ...]) -> tuple[Generator | None, Generator | None]:
    """(trained, baseline): the checkpoint's generator renders both when given (same layouts and
    renderer); without one the baseline is built from +material and the renderer group."""
    from diffrendergan.models.generator import Generator
    from diffrendergan.training.load import load_generator

    ckpt = checkpoint_path(cfg.checkpoint)
    name = str(cfg.material.name) if cfg.get("material") is not None else None
    if ckpt is not None:
        gen = load_generator(ckpt, name)
        warn_ignored_with_checkpoint(ckpt)
        return gen, gen
    if not {"uniform", "gan"} & set(rows):
        return None, None
    if cfg.get("material") is None:
        require_material(cfg)  # raises the one-line "+material=<...>" error
    material = material_from_dict(OmegaConf.to_container(cfg.material, resolve=True))  # type: ignore[arg-type]
    return None, Generator(material, renderer_from_dict(OmegaConf.to_container(cfg.renderer, resolve=True)))


def checked_options(cfg: DictConfig) -> tuple[CompareSchema, dict[str, Path]]:
    """The cheap checks (folders, types, ranges, the recipe), before the network stack is even
    imported: (options, extra row folders)."""
    existing_folder("test_dir", required(cfg, "test_dir"), LABELED)
    opts = check_compare(cfg)
    optional_folder("real_train_dir", opts.real_train_dir, LABELED)
    extra = {
        str(k): existing_folder(f"extra_rows.{k}", v, f"a synthetic export or {LABELED}")
        for k, v in (cfg.extra_rows or {}).items()
    }
    segmenter_from_dict(cfg.segmenter)
    return opts, extra


def spec_from_cfg(cfg: DictConfig) -> ComparisonSpec:
    """Everything validated before the first export or training starts."""
    opts, extra = checked_options(cfg)
    from diffrendergan.tasks.compare import ROW_NAMES, ComparisonSpec, recipes_from_overrides
    from diffrendergan.tasks.segment import ImageSet

    rows = tuple(str(r) for r in cfg.rows)
    unknown = [r for r in rows if r not in ROW_NAMES]
    if unknown:
        raise ConfigError(
            "rows", f"unknown row {unknown[0]!r}; expected some of {ROW_NAMES} (folders: extra_rows)"
        )
    if opts.reference not in (*ROW_NAMES, *extra):
        raise ConfigError(
            "reference", f"expected a row name ({', '.join((*ROW_NAMES, *extra))}), got {opts.reference!r}"
        )
    recipes = recipes_from_overrides(cfg.segmenter, OmegaConf.to_container(cfg.recipes) or None)  # type: ignore[arg-type]
    gen, baseline = _generators(cfg, rows)
    return ComparisonSpec(
        rows=rows,
        test=ImageSet(required(cfg, "test_dir"), crop_bottom_px=opts.crop_bottom_px),
        recipes=recipes,
        seeds=tuple(range(opts.seeds)),
        generator=gen,
        baseline_generator=baseline,
        real_train_dir=optional_folder("real_train_dir", opts.real_train_dir),
        extra_rows=extra,
        n_images=opts.n_images,
        export_seed=opts.seed,
        reference=opts.reference,
        pixel_size_nm=opts.pixel_size_nm,
        widen=tuple(float(w) for w in opts.widen),
        export_batch_size=opts.export_batch_size,
    )


@hydra.main(version_base="1.3", config_path="../configs", config_name="compare")
@one_line_errors
def main(cfg: DictConfig) -> dict[str, Any]:
    out = writable_folder("out_dir", cfg.out_dir)  # a file or read-only place: now, not after the exports
    spec = spec_from_cfg(cfg)
    from diffrendergan.tasks.compare import comparison_markdown, run_comparison

    result = run_comparison(spec, out, progress=bool(cfg.progress))
    print(comparison_markdown(result), end="")
    print(f"outputs: {out / 'comparison.json'}, {out / 'comparison.md'}, {out / 'comparison.png'}")
    return result


if __name__ == "__main__":
    check_command_line("compare")
    main()
