"""Cut raw micrographs into real-domain patches for GAN training.

    python -m experiments.prepare data.raw_dir=raw/ data.out_dir=prepared/ [data.stride=128 ...]

Errors in the inputs end the run with one line (``error: <path>: <what>``) and exit status 2,
not a traceback: they are the user's to fix, not bugs.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, MissingMandatoryValue

from diffrendergan.data.patches import MANIFEST_NAME, PATCH_SUBDIR, prepare_patches
from diffrendergan.errors import ConfigError, DataError


def _required(cfg: DictConfig, key: str) -> str:
    """The value of ``data.<key>``; a ConfigError naming the key when it is missing."""
    try:
        value = cfg.data[key]
    except MissingMandatoryValue as exc:
        raise ConfigError(f"data.{key}", f"is required (e.g. data.{key}=path/to/folder)") from exc
    if value in (None, ""):
        raise ConfigError(f"data.{key}", f"is required (e.g. data.{key}=path/to/folder)")
    return str(value)


def run(cfg: DictConfig) -> Path:
    """Prepare patches as configured; returns the output folder."""
    raw_dir = Path(_required(cfg, "raw_dir"))
    out_dir = Path(_required(cfg, "out_dir"))
    d = cfg.data
    patches = prepare_patches(
        raw_dir,
        out_dir,
        size=int(d.patch_size),
        stride=int(d.stride),
        pixel_size_nm=d.pixel_size_nm,
        target_pixel_size_nm=d.target_pixel_size_nm,
        crop_bottom_px=d.crop_bottom_px,
        page=int(d.page),
        strict=bool(d.strict),
    )
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
    main()
