"""Render a preview grid of a material (synthetic images + mask overlays).

python -m experiments.preview +material=tio2 [params=random] [real_dir=...]
"""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from diffrendergan.config import renderer_from_dict
from experiments._common import check_command_line, one_line_errors, require_material


@hydra.main(version_base="1.3", config_path="../configs", config_name="preview")
@one_line_errors
def main(cfg: DictConfig) -> None:
    from diffrendergan.tasks.preview import render_preview

    material = require_material(cfg)
    renderer = renderer_from_dict(OmegaConf.to_container(cfg.renderer, resolve=True))  # type: ignore[arg-type]
    out = render_preview(
        material,
        renderer,
        Path(cfg.out),
        n_images=int(cfg.n_images),
        seed=int(cfg.seed),
        params=str(cfg.params),
        real_dir=Path(cfg.real_dir) if cfg.real_dir else None,
    )
    print(f"preview written to {out}")


if __name__ == "__main__":
    check_command_line("preview")
    main()
