"""Weight-free realism metrics (SWD, grey-level histogram W1) between real and synthetic images,
and the particles' appearance statistics of every side that has masks (images/ + masks/).

python -m experiments.realism real_dir=... fake_dir=... [out_dir=...]
"""

from __future__ import annotations

import json
from typing import Any

import hydra
from omegaconf import DictConfig

from diffrendergan.schemas import check_realism
from experiments._common import (
    check_command_line,
    existing_folder,
    one_line_errors,
    required,
    writable_folder,
)


@hydra.main(version_base="1.3", config_path="../configs", config_name="realism")
@one_line_errors
def main(cfg: DictConfig) -> dict[str, Any]:
    real_dir = existing_folder("real_dir", required(cfg, "real_dir"), "a folder of micrographs or patches")
    fake_dir = existing_folder("fake_dir", required(cfg, "fake_dir"), "an export or a folder of images")
    opts = check_realism(cfg)  # types and ranges, before any image is read
    out = writable_folder("out_dir", opts.out_dir) / "realism.json"
    from diffrendergan.tasks.realism import realism_from_folders  # torchmetrics: after the checks

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
    for side, stats in result["appearance"].items():
        if side != "difference":
            profile = " ".join(f"{v:.2f}" for v in stats["profile"])
            core_rim, substrate, spread = stats["core_rim"], stats["substrate"], stats["grain_cv"]
            print(
                f"{side} rim -> core: {profile} (core/rim {core_rim:.2f}), substrate {substrate:.3f}, "
                f"grain-to-grain CV {spread:.2f}; seams {stats['seam_core']:.2f} of the core, "
                f"{stats['contacts_per_particle']:.2f} contacts per particle, "
                f"{stats['pairs_merged']:.0%} of touching pairs in one bright blob"
            )
    print(f"realism: {out}")
    return result


if __name__ == "__main__":
    check_command_line("realism")
    main()
