"""Weight-free realism metrics (SWD, grey-level histogram W1) between real and synthetic images.

python -m experiments.realism real_dir=... fake_dir=... [out_dir=...]
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from diffrendergan.tasks.realism import realism_from_folders
from experiments._common import one_line_errors
from experiments.segment import required


@hydra.main(version_base="1.3", config_path="../configs", config_name="realism")
@one_line_errors
def main(cfg: DictConfig) -> dict[str, Any]:
    out = Path(str(cfg.out_dir)) / "realism.json"
    result = realism_from_folders(
        required(cfg, "real_dir"),
        required(cfg, "fake_dir"),
        out_path=out,
        patch_size=cfg.patch_size,
        crop_bottom_px=cfg.crop_bottom_px,
        max_patches=cfg.max_patches,
        seed=int(cfg.seed),
    )
    keys = ("swd", "swd_levels", "hist_w1")
    print(json.dumps({k: result[k] for k in keys}))
    print(f"realism: {out}")
    return result


if __name__ == "__main__":
    main()
