"""Export a pixel-annotated synthetic dataset from a trained GAN or the no-GAN baseline.

python -m experiments.generate +material=tio2 checkpoint=<gan.ckpt|none> n_images=1000 out_dir=...
"""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from diffrendergan.config import renderer_from_dict
from diffrendergan.export.writer import export_dataset
from diffrendergan.models.generator import Generator
from diffrendergan.training.load import load_generator
from diffrendergan.utils.device import resolve_device
from experiments._common import one_line_errors, require_material


def checkpoint_path(value: object) -> Path | None:
    """``none``/``null``/empty mean no checkpoint."""
    if value is None or str(value).strip().lower() in ("", "none", "null"):
        return None
    return Path(str(value))


def build_generator(cfg: DictConfig) -> tuple[Generator, bool]:
    """(generator, baseline): the checkpoint's generator, or a fresh one rendering uniform params."""
    from omegaconf import OmegaConf

    ckpt = checkpoint_path(cfg.checkpoint)
    if ckpt is None:
        material = require_material(cfg)
        renderer = renderer_from_dict(OmegaConf.to_container(cfg.renderer, resolve=True))
        return Generator(material, renderer), True
    name = str(cfg.material.name) if cfg.get("material") is not None else None
    forced = cfg.get("baseline")
    return load_generator(ckpt, name), bool(forced) if forced is not None else False


@hydra.main(version_base="1.3", config_path="../configs", config_name="generate")
@one_line_errors
def main(cfg: DictConfig) -> dict:
    gen, baseline = build_generator(cfg)
    gen = gen.to(resolve_device(cfg.get("device", "auto")))
    res = export_dataset(
        gen,
        Path(str(cfg.out_dir)),
        int(cfg.n_images),
        seed=int(cfg.seed),
        batch_size=int(cfg.batch_size),
        baseline=baseline,
        progress=bool(cfg.progress),
    )
    kind = "no-GAN baseline (uniform params)" if baseline else "trained generator"
    print(
        f"{res['n_written']} written, {res['n_skipped']} already there "
        f"({res['images_per_s']:.2f} images/s, {gen.material.name}, {kind}) -> {res['out_dir']}"
    )
    return res


if __name__ == "__main__":
    main()
