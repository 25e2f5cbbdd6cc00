"""Compare segmenters trained on DiffRenderGAN data, no-GAN data and real data (+ Otsu).

    python -m experiments.compare +material=tio2 checkpoint=<gan.ckpt> test_dir=... \
        real_train_dir=... out_dir=...
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from diffrendergan.tasks.compare import comparison_markdown, run_comparison
from experiments._common import one_line_errors
from experiments.generate import checkpoint_path
from experiments.segment import required


@hydra.main(version_base="1.3", config_path="../configs", config_name="compare")
@one_line_errors
def main(cfg: DictConfig) -> dict[str, Any]:
    test_dir = required(cfg, "test_dir")
    ckpt = checkpoint_path(cfg.checkpoint)
    material = cfg.get("material")
    if material is None and ckpt is None:
        from experiments._common import require_material

        require_material(cfg)  # raises the one-line "+material=<...>" error
    seg = OmegaConf.to_container(cfg.seg, resolve=True)
    assert isinstance(seg, dict)
    seg = {k: v for k, v in seg.items() if not (k == "pixel_size_nm" and v is None)}
    out = Path(str(cfg.out_dir))
    result = run_comparison(
        None if material is None else OmegaConf.to_container(material, resolve=True),
        ckpt,
        test_dir,
        out,
        real_train_dir=cfg.real_train_dir,
        n_images=int(cfg.n_images),
        seg_kwargs=seg,
        finetune=bool(cfg.finetune),
        renderer_cfg_dict=OmegaConf.to_container(cfg.renderer, resolve=True),
        seed=int(cfg.seed),
        export_batch_size=int(cfg.export_batch_size),
        progress=bool(cfg.progress),
    )
    print(comparison_markdown(result["rows"]), end="")
    print(f"outputs: {out / 'comparison.json'}, {out / 'comparison.md'}, {out / 'comparison.png'}")
    return result


if __name__ == "__main__":
    main()
