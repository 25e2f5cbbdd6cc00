"""Shared plumbing for the Hydra entry points: config checks, one-line errors, where outputs are."""

from __future__ import annotations

import difflib
import functools
import logging
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, MissingMandatoryValue, OmegaConf

from diffrendergan.config import MaterialConfig, material_from_dict
from diffrendergan.errors import ConfigError, DataError
from diffrendergan.utils.io import existing_folder, writable_folder

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
MATERIALS_DIR = CONFIG_DIR / "material"

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


def optional_folder(key: str, value: object, expected: str = "a folder") -> Path | None:
    """An optional folder key: None, or an existing folder."""
    return None if value in (None, "") else existing_folder(key, value, expected)


def checkpoint_path(value: object) -> Path | None:
    """``none``/``null``/empty mean no checkpoint."""
    if value is None or str(value).strip().lower() in ("", "none", "null"):
        return None
    return Path(str(value)).expanduser()


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


# ------------------------------------------------------------------ command-line overrides
def check_command_line(config_name: str, argv: list[str] | None = None) -> None:
    """Before Hydra runs (call it in ``__main__``): the output-folder overrides, then every
    override composed once, so that a misspelt key (``seg.instance_method=magic``), an unknown
    group option (``+material=nope``) or an unparsable override is one ``error:`` line and exit
    status 2 (Hydra reports them on several lines with status 1). Command lines with flags
    (``--help``, ``--cfg``, ``-m`` ...) are left to Hydra."""
    argv = sys.argv[1:] if argv is None else argv
    check_output_overrides(argv)
    if any(arg.startswith("-") for arg in argv):
        return
    message = override_error(config_name, argv)
    if message is not None:
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)


def override_error(config_name: str, overrides: list[str]) -> str | None:
    """One line saying why Hydra cannot compose ``config_name`` with ``overrides`` (None if it can)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException, MissingConfigException, OverrideParseException
    from omegaconf.errors import OmegaConfBaseException

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR), job_name=config_name):
            compose(config_name=config_name, overrides=overrides, return_hydra_config=True)
    except MissingConfigException as exc:
        group, _, option = str(exc.missing_cfg_file).rpartition("/")
        if group and exc.options:
            return f"{group}: no option {option!r}; expected one of {', '.join(exc.options)}"
        return _one_line(str(exc).split("Config search path")[0])
    except OverrideParseException as exc:
        detail = str(exc.message).splitlines()[1:2] or [""]
        key = str(exc.override).lstrip("~+").partition("=")[0] or str(exc.override)
        reason = detail[0].split(" expecting ")[0]
        return f"{key}: cannot parse the override {exc.override!r} ({reason}); expected key=value"
    except (HydraException, OmegaConfBaseException) as exc:
        cause = exc.__cause__
        if "not in struct" in str(cause):
            return _unknown_key(config_name, str(exc), cause)
        text = _one_line(f"{exc} {_one_line(str(cause))}" if cause is not None else str(exc))
        quoted = re.search(r"'([^']+)'", text)  # Hydra quotes the override (or key) it refused
        return f"{quoted[1].lstrip('~+').partition('=')[0]}: {text}" if quoted else text
    finally:
        GlobalHydra.instance().clear()
    return None


def _one_line(text: str) -> str:
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def _unknown_key(config_name: str, message: str, cause: BaseException) -> str:
    """``seg.instance_method: unknown key ('seg' is not in the compare config; did you mean
    'segmenter'?) ...``: the override's key, the missing part and its likely intended spelling."""
    from diffrendergan.schemas import renamed_key_message

    m = re.match(r"Could not override '(?P<key>[^']+)'", message)
    full_key = str(getattr(cause, "full_key", "") or "")
    override = m["key"] if m else full_key
    if renamed := renamed_key_message(override):
        return f"{override}: {renamed}"
    missing = str(getattr(cause, "key", "") or override.rpartition(".")[2])
    parent = getattr(cause, "parent_node", None)
    head = full_key.rpartition(".")[0]  # where the missing key was looked up ("" = the top level)
    where = head or f"the {config_name} config"
    if missing == "material" and not head:
        return (
            f"{override}: no material selected; add +material=<{'|'.join(available_materials())}> "
            "before material.* overrides"
        )
    keys = [str(k) for k in parent.keys() if k != "hydra"] if isinstance(parent, DictConfig) else []
    close = [k for k in keys if k.startswith(missing) or missing.startswith(k)]
    close += [k for k in difflib.get_close_matches(missing, keys, n=3) if k not in close]
    if close:
        hint = f"; did you mean {' or '.join(repr(k) for k in close[:3])}?"
    elif 0 < len(keys) <= 8:
        hint = f"; expected one of {', '.join(keys)}"
    else:
        hint = ""
    return (
        f"{override}: unknown key ({missing!r} is not in {where}{hint}); check the spelling, or "
        f"add a new key with +{override}=<value>"
    )


# ---------------------------------------------------------------------- trained generators
def checkpoint_fixed_overrides(overrides: list[str]) -> list[str]:
    """Command-line keys a checkpoint overrules: the material and renderer are the ones it was
    trained with (``+material=<name>`` itself only names which one is expected)."""
    keys = [o.lstrip("~+").partition("=")[0] for o in overrides]
    return [k for k in keys if k.startswith(("material.", "renderer.")) or k == "renderer"]


def warn_ignored_with_checkpoint(checkpoint: Path) -> None:
    """One warning line naming the material/renderer overrides a trained generator ignores."""
    from hydra.core.hydra_config import HydraConfig

    overrides = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
    ignored = checkpoint_fixed_overrides(overrides)
    if ignored:
        print(
            f"warning: ignored with checkpoint={checkpoint}: {', '.join(ignored)} (the checkpoint fixes "
            "the material and renderer it was trained with; use checkpoint=none to change them)",
            file=sys.stderr,
        )
