"""Compare segmenters trained on DiffRenderGAN data, no-GAN data and real data (+ Otsu), with
N seeds per row and paired 95 % intervals against the DiffRenderGAN row.

    python -m experiments.compare +material=tio2 checkpoint=<gan.ckpt> test_dir=<labeled> out_dir=...
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from diffrendergan.config import material_from_dict, renderer_from_dict
from diffrendergan.errors import ConfigError
from diffrendergan.models.generator import Generator
from diffrendergan.tasks.compare import (
    ROW_NAMES,
    ComparisonSpec,
    comparison_markdown,
    recipes_from_overrides,
    run_comparison,
)
from diffrendergan.tasks.segment import ImageSet
from diffrendergan.training.load import load_generator
from experiments._common import (
    checkpoint_path,
    one_line_errors,
    optional_folder,
    positive_int,
    require_material,
    required,
)


def _generators(cfg: DictConfig, rows: tuple[str, ...]) -> tuple[Generator | None, Generator | None]:
    """(trained, baseline): the checkpoint's generator renders both when given (same layouts and
    renderer); without one the baseline is built from +material and the renderer group."""
    ckpt = checkpoint_path(cfg.checkpoint)
    name = str(cfg.material.name) if cfg.get("material") is not None else None
    if ckpt is not None:
        gen = load_generator(ckpt, name)
        return gen, gen
    if not {"uniform", "gan"} & set(rows):
        return None, None
    if cfg.get("material") is None:
        require_material(cfg)  # raises the one-line "+material=<...>" error
    material = material_from_dict(OmegaConf.to_container(cfg.material, resolve=True))  # type: ignore[arg-type]
    return None, Generator(material, renderer_from_dict(OmegaConf.to_container(cfg.renderer, resolve=True)))


def spec_from_cfg(cfg: DictConfig) -> ComparisonSpec:
    """Everything validated before the first export or training starts."""
    rows = tuple(str(r) for r in cfg.rows)
    unknown = [r for r in rows if r not in ROW_NAMES]
    if unknown:
        raise ConfigError(
            "rows", f"unknown row {unknown[0]!r}; expected some of {ROW_NAMES} (folders: extra_rows)"
        )
    test = ImageSet(required(cfg, "test_dir"), crop_bottom_px=cfg.crop_bottom_px)
    extra = {str(k): optional_folder(f"extra_rows.{k}", v) for k, v in (cfg.extra_rows or {}).items()}
    recipes = recipes_from_overrides(cfg.segmenter, OmegaConf.to_container(cfg.recipes) or None)  # type: ignore[arg-type]
    gen, baseline = _generators(cfg, rows)
    return ComparisonSpec(
        rows=rows,
        test=test,
        recipes=recipes,
        seeds=tuple(range(positive_int(cfg, "seeds"))),
        generator=gen,
        baseline_generator=baseline,
        real_train_dir=optional_folder("real_train_dir", cfg.real_train_dir),
        extra_rows=extra,
        n_images=positive_int(cfg, "n_images"),
        export_seed=int(cfg.seed),
        reference=str(cfg.reference),
        pixel_size_nm=cfg.pixel_size_nm,
    )


@hydra.main(version_base="1.3", config_path="../configs", config_name="compare")
@one_line_errors
def main(cfg: DictConfig) -> dict[str, Any]:
    spec = spec_from_cfg(cfg)
    out = Path(str(cfg.out_dir))
    result = run_comparison(spec, out, progress=bool(cfg.progress))
    print(comparison_markdown(result), end="")
    print(f"outputs: {out / 'comparison.json'}, {out / 'comparison.md'}, {out / 'comparison.png'}")
    return result


if __name__ == "__main__":
    main()
