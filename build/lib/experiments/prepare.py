"""Cut raw micrographs into real-domain patches for GAN training.

    python -m experiments.prepare data.raw_dir=raw/ data.out_dir=prepared/ [data.stride=128 ...]

Errors in the inputs end the run with one line (``error: <path>: <what>``) and exit status 2,
not a traceback: they are the user's to fix, not bugs.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from diffrendergan.data.patches import MANIFEST_NAME, PATCH_SUBDIR, PatchOptions, prepare_patches
from diffrendergan.errors import ConfigError, DataError
from diffrendergan.schemas import check_prepare_data
from experiments._common import check_command_line, existing_folder, required, writable_folder


def run(cfg: DictConfig) -> Path:
    """Prepare patches as configured; returns the output folder."""
    raw_dir = required(cfg, "data.raw_dir")
    required(cfg, "data.out_dir")
    d = check_prepare_data(cfg.data)  # types and ranges, before any file is read
    existing_folder("data.raw_dir", raw_dir, "a folder of micrographs")
    out_dir = writable_folder("data.out_dir", d.out_dir)
    opts = PatchOptions.from_config(d)
    patches = prepare_patches(raw_dir, out_dir, opts)
    sources = len({p.source for p in patches})
    print(f"{len(patches)} patches from {sources} image(s) -> {out_dir / PATCH_SUBDIR}")
    print(f"manifest: {out_dir / MANIFEST_NAME}")
    return out_dir


@hydra.main(version_base="1.3", config_path="../configs", config_name="prepare")
def main(cfg: DictConfig) -> None:
    try:
        run(cfg)
    except (DataError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    check_command_line("prepare")
    main()
