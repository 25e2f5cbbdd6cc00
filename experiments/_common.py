"""Shared plumbing for the Hydra entry points: config checks, one-line errors, where outputs are."""

from __future__ import annotations

import functools
import logging
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, MissingMandatoryValue, OmegaConf

from diffrendergan.config import MaterialConfig, material_from_dict
from diffrendergan.errors import ConfigError, DataError

MATERIALS_DIR = Path(__file__).resolve().parents[1] / "configs" / "material"

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")


def available_materials() -> list[str]:
    return sorted(p.stem for p in MATERIALS_DIR.glob("*.yaml"))


def require_material(cfg: DictConfig) -> MaterialConfig:
    """The composed material, validated; a missing one is a one-line error with the fix."""
    if "material" not in cfg or cfg.material is None:
        raise ConfigError(
            "material", f"no material selected: add +material=<{'|'.join(available_materials())}>"
        )
    return material_from_dict(OmegaConf.to_container(cfg.material, resolve=True))  # type: ignore[arg-type]


def output_dir() -> Path:
    from hydra.core.hydra_config import HydraConfig

    return Path(HydraConfig.get().runtime.output_dir)


def one_line_errors(fn: Callable[[DictConfig], Any]) -> Callable[[DictConfig], Any]:
    """Turn configuration and data errors into one clear line on stderr and exit status 2."""

    @functools.wraps(fn)
    def wrapper(cfg: DictConfig) -> Any:
        try:
            return fn(cfg)
        except (ConfigError, DataError) as exc:
            logging.getLogger(__name__).debug("failed", exc_info=True)
            print(f"error: {exc}", file=sys.stderr)
            sys.exit(2)

    return wrapper


def required(cfg: DictConfig, key: str) -> Path:
    """A mandatory path key (``???`` in the YAML), with the fix in the message when missing."""
    try:
        value = OmegaConf.select(cfg, key, throw_on_missing=True)
    except MissingMandatoryValue:
        value = None
    if value in (None, ""):
        raise ConfigError(key, f"is required (e.g. {key}=path/to/folder)")
    return Path(str(value)).expanduser()


def optional_folder(key: str, value: object) -> Path | None:
    """An optional folder key: None, or an existing folder (checked now, not after training)."""
    if value in (None, ""):
        return None
    path = Path(str(value)).expanduser()
    if not path.is_dir():
        raise ConfigError(key, f"not a folder: {path}")
    return path


def positive_int(cfg: DictConfig, key: str) -> int:
    """An integer key >= 1 (``n_images=many`` or ``0`` are one-line errors)."""
    value = OmegaConf.select(cfg, key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(key, f"expected an integer >= 1, got {value!r}")
    return value


def checkpoint_path(value: object) -> Path | None:
    """``none``/``null``/empty mean no checkpoint."""
    if value is None or str(value).strip().lower() in ("", "none", "null"):
        return None
    return Path(str(value)).expanduser()


def writable_folder(key: str, value: object) -> Path:
    """The output folder of ``key``, created now and checked writable (a file in its place, a
    read-only or impossible location is one line naming the key before any work starts)."""
    path = Path(str(value)).expanduser()
    if path.exists() and not path.is_dir():
        raise ConfigError(key, f"{path} is a file; expected a folder to write into (new or existing)")
    parent = next((p for p in (path, *path.parents) if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise ConfigError(key, f"cannot create {path}: {parent} is a file, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test.", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(key, f"cannot write to {path} ({reason}); expected a writable folder") from None
    return path


OUTPUT_OVERRIDES = ("hydra.run.dir", "hydra.sweep.dir")


def check_output_overrides(argv: list[str]) -> None:
    """Check ``hydra.run.dir=`` / ``hydra.sweep.dir=`` command-line overrides before Hydra creates
    them (Hydra's own failure is a traceback): one ``error:`` line and exit status 2."""
    given: dict[str, str] = {}
    for arg in argv:
        key, sep, value = arg.lstrip("+").partition("=")
        if sep and key in OUTPUT_OVERRIDES and "${" not in value:
            given[key] = value  # the last one wins, as in Hydra
    multirun = "-m" in argv or "--multirun" in argv
    given.pop("hydra.run.dir" if multirun else "hydra.sweep.dir", None)  # the one Hydra will not use
    try:
        for key, value in given.items():
            writable_folder(key, value)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
