"""Export a pixel-annotated synthetic dataset from a trained GAN or the no-GAN baseline.

python -m experiments.generate +material=tio2 checkpoint=<gan.ckpt|none> n_images=1000 out_dir=...
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from diffrendergan.config import renderer_from_dict
from diffrendergan.export.writer import ExportOptions, export_dataset
from diffrendergan.models.generator import Generator
from diffrendergan.schemas import check_generate
from diffrendergan.training.load import load_generator
from diffrendergan.utils.device import resolve_device
from diffrendergan.utils.io import file_sha256
from experiments._common import (
    check_command_line,
    checkpoint_path,
    one_line_errors,
    require_material,
    warn_ignored_with_checkpoint,
    writable_folder,
)


def build_generator(cfg: DictConfig) -> tuple[Generator, bool, str | None]:
    """(generator, baseline, checkpoint sha256): the checkpoint's generator, or a fresh one
    rendering uniform params."""
    from omegaconf import OmegaConf

    ckpt = checkpoint_path(cfg.checkpoint)
    if ckpt is None:
        material = require_material(cfg)
        renderer = renderer_from_dict(OmegaConf.to_container(cfg.renderer, resolve=True))  # type: ignore[arg-type]
        return Generator(material, renderer), True, None
    name = str(cfg.material.name) if cfg.get("material") is not None else None
    forced = cfg.get("baseline")
    gen = load_generator(ckpt, name)  # a missing, empty or foreign file is a one-line DataError
    warn_ignored_with_checkpoint(ckpt)  # the trained generator renders its own material and renderer
    return gen, bool(forced) if forced is not None else False, file_sha256(ckpt)


@hydra.main(version_base="1.3", config_path="../configs", config_name="generate")
@one_line_errors
def main(cfg: DictConfig) -> dict:
    opts = check_generate(cfg)  # types and ranges, before anything is loaded or written
    out_dir = writable_folder("out_dir", opts.out_dir)
    gen, baseline, ckpt_sha = build_generator(cfg)
    gen = gen.to(resolve_device(opts.device))
    res = export_dataset(
        gen,
        out_dir,
        opts.n_images,
        ExportOptions(
            seed=opts.seed,
            batch_size=opts.batch_size,
            baseline=baseline,
            progress=opts.progress,
            checkpoint_sha256=ckpt_sha,
            widen=opts.widen,
        ),
    )
    kind = "no-GAN baseline (uniform params)" if baseline else "trained generator"
    if opts.widen and not baseline:
        kind += f", widened {opts.widen:g} towards the ranges"
    print(
        f"{res['n_written']} written, {res['n_skipped']} already there "
        f"({res['images_per_s']:.2f} images/s, {gen.material.name}, {kind}) -> {res['out_dir']}"
    )
    return res


if __name__ == "__main__":
    check_command_line("generate")
    main()
