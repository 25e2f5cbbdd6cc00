"""Weight-free realism metrics (SWD, grey-level histogram W1) between real and synthetic images.

python -m experiments.realism real_dir=... fake_dir=... [out_dir=...]
"""

from __future__ import annotations

import json
import sys
from typing import Any

import hydra
from omegaconf import DictConfig

from diffrendergan.schemas import check_realism
from diffrendergan.tasks.realism import realism_from_folders
from experiments._common import check_output_overrides, one_line_errors, required, writable_folder


@hydra.main(version_base="1.3", config_path="../configs", config_name="realism")
@one_line_errors
def main(cfg: DictConfig) -> dict[str, Any]:
    real_dir, fake_dir = required(cfg, "real_dir"), required(cfg, "fake_dir")
    opts = check_realism(cfg)  # types and ranges, before any image is read
    out = writable_folder("out_dir", opts.out_dir) / "realism.json"
    result = realism_from_folders(
        real_dir,
        fake_dir,
        out_path=out,
        patch_size=opts.patch_size,
        crop_bottom_px=opts.crop_bottom_px,
        max_patches=opts.max_patches,
        seed=opts.seed,
    )
    keys = ("swd", "swd_levels", "hist_w1")
    print(json.dumps({k: result[k] for k in keys}))
    print(f"realism: {out}")
    return result


if __name__ == "__main__":
    check_output_overrides(sys.argv[1:])
    main()
