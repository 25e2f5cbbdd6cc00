"""Validate a W&B sweep definition against the Hydra configs and (optionally) register it.

    python -m experiments.sweep configs/sweep/tio2.yaml            # validation only, no network
    python -m experiments.sweep configs/sweep/tio2.yaml --create   # + wandb.sweep(...), prints the agent

Validation composes ``run.yaml`` + ``+material=<name>`` (the material is read from the sweep's
``command``) with every swept key set to each of its categorical values and to the min/max of its
distribution, checks that each composed value equals the swept one, and that the composed material
and renderer pass the library's own validation. Exit status 2 on an invalid sweep file.

Without W&B (WANDB_MODE=offline/disabled, no login, server unreachable) ``--create`` explains why
in one line, prints the manual commands and the offline alternative (Hydra multirun) and exits 0.
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import socket
import sys
import threading
import urllib.parse
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = ROOT / "configs"
MAX_PRODUCT = 16  # corner combinations composed exhaustively up to this many, else one key at a time
METHODS = ("bayes", "random", "grid")
MACROS = ("${env}", "${interpreter}", "${program}", "${args}", "${args_no_hyphens}", "${args_json}")
CREATE_TIMEOUT_S = 90.0


class SweepError(ValueError):
    """An invalid sweep file; the message names the key."""


@dataclass(frozen=True)
class SweepCheck:
    path: Path
    material: str
    keys: tuple[str, ...]
    combinations: int


def load_sweep(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise SweepError(f"{path}: no such sweep file")
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict):
        raise SweepError(f"{path}: expected a mapping (W&B sweep definition)")
    return data


def material_of(sweep: Mapping[str, Any]) -> str:
    """The material appended in ``command`` (``+material=<name>``)."""
    found = [a.split("=", 1)[1] for a in sweep.get("command") or [] if str(a).startswith("+material=")]
    if len(found) != 1:
        raise SweepError("command: expected exactly one '+material=<name>' entry")
    return found[0]


def agent_override(key: str, value: Any) -> str:
    """One ``key=value`` exactly as the W&B agent writes it for ``${args_no_hyphens}``."""
    return f"{key}={value}"


def candidate_values(key: str, spec: Any) -> list[Any]:
    """Categorical values, or the min and max of a distribution (in the value's own units)."""
    if not isinstance(spec, Mapping):
        raise SweepError(f"parameters.{key}: expected a mapping with values / value / min+max")
    if "values" in spec:
        values = list(spec["values"] or [])
        if not values:
            raise SweepError(f"parameters.{key}.values: empty")
        return values
    if "value" in spec:
        return [spec["value"]]
    dist = str(spec.get("distribution", "uniform"))
    if "min" in spec and "max" in spec:
        lo, hi = spec["min"], spec["max"]
        if not isinstance(lo, int | float) or not isinstance(hi, int | float) or lo > hi:
            raise SweepError(f"parameters.{key}: expected numbers with min <= max, got {lo!r}, {hi!r}")
        if dist in ("log_uniform", "q_log_uniform"):  # bounds are natural logs of the values
            return [math.exp(lo), math.exp(hi)]
        if dist.startswith("inv_log_uniform") and dist.endswith("_values"):
            return [lo, hi]
        if dist.startswith("inv_log_uniform"):
            return [math.exp(-hi), math.exp(-lo)]
        return [lo, hi]
    if "mu" in spec:  # normal / log_normal: unbounded; check the centre
        mu = spec["mu"]
        return [math.exp(mu) if dist in ("log_normal", "q_log_normal") else mu]
    raise SweepError(f"parameters.{key}: expected values, value or min/max")


def combinations(parameters: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Corner combinations: the full product of the candidate values when it is small, else each
    key's candidates in turn (the others at their first candidate) plus all-first and all-last."""
    cands = {k: candidate_values(k, v) for k, v in parameters.items()}
    keys = list(cands)
    if math.prod(len(v) for v in cands.values()) <= MAX_PRODUCT:
        return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*cands.values())]
    base = {k: v[0] for k, v in cands.items()}
    out = [base, {k: v[-1] for k, v in cands.items()}]
    for k, values in cands.items():
        out += [{**base, k: v} for v in values[1:]]
    return out


def check_structure(sweep: Mapping[str, Any]) -> None:
    for key in ("program", "method", "metric", "parameters", "command"):
        if key not in sweep:
            raise SweepError(f"{key}: missing")
    if sweep["method"] not in METHODS:
        raise SweepError(f"method: expected one of {METHODS}, got {sweep['method']!r}")
    metric = sweep["metric"]
    if (
        not isinstance(metric, Mapping)
        or "name" not in metric
        or metric.get("goal") not in ("minimize", "maximize")
    ):
        raise SweepError("metric: expected {name: ..., goal: minimize|maximize}")
    if not isinstance(sweep["parameters"], Mapping) or not sweep["parameters"]:
        raise SweepError("parameters: expected a non-empty mapping of Hydra override keys")
    for key in sweep["parameters"]:
        if str(key).startswith(("+", "~")) or "=" in str(key):
            raise SweepError(f"parameters.{key}: W&B can only sweep plain 'key=value' overrides")
    command = sweep["command"]
    if not isinstance(command, list) or "${args_no_hyphens}" not in command:
        raise SweepError("command: expected a list containing ${args_no_hyphens} (Hydra key=value form)")
    if not (ROOT / str(sweep["program"])).is_file():
        raise SweepError(f"program: {sweep['program']} does not exist (paths are relative to the repo root)")


@contextmanager
def hydra_compose_context() -> Iterator[None]:
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():
        GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR), job_name="sweep_check"):
        yield


def compose_run(material: str, overrides: list[str]):
    """The composed run config (call inside :func:`hydra_compose_context`)."""
    from hydra import compose

    return compose(config_name="run", overrides=[f"+material={material}", *overrides])


def values_equal(composed: Any, swept: Any) -> bool:
    if isinstance(swept, bool) or isinstance(composed, bool):
        return composed == swept
    if isinstance(swept, int | float) and isinstance(composed, int | float):
        return math.isclose(float(composed), float(swept), rel_tol=1e-9, abs_tol=0.0)
    return composed == swept


def check_composed(cfg: Any, combo: Mapping[str, Any]) -> None:
    """Swept values arrived unchanged, and the composed material/renderer/model are valid."""
    from omegaconf import OmegaConf

    from diffrendergan.config import material_from_dict, renderer_from_dict
    from diffrendergan.errors import ConfigError
    from diffrendergan.rendering.renderer import param_space_for
    from diffrendergan.schemas import check_model

    for key, value in combo.items():
        got = OmegaConf.select(cfg, key, throw_on_missing=False)
        if not values_equal(got, value):
            raise SweepError(f"parameters.{key}: composed value {got!r} != swept value {value!r}")
    try:
        material = material_from_dict(OmegaConf.to_container(cfg.material, resolve=True))  # type: ignore[arg-type]
        param_space_for(material)
        renderer_from_dict(OmegaConf.to_container(cfg.renderer, resolve=True))  # type: ignore[arg-type]
        check_model(cfg.model)
    except ConfigError as exc:
        raise SweepError(f"{exc} (with {_fmt_combo(combo)})") from exc


def _fmt_combo(combo: Mapping[str, Any]) -> str:
    return " ".join(agent_override(k, v) for k, v in combo.items())


def validate_sweep(path: str | Path) -> SweepCheck:
    """Check a sweep file; raises :class:`SweepError` naming the offending key."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    path = Path(path)
    sweep = load_sweep(path)
    try:
        check_structure(sweep)
        material = material_of(sweep)
        if not (CONFIG_DIR / "material" / f"{material}.yaml").is_file():
            raise SweepError(f"command: unknown material {material!r} (no configs/material/{material}.yaml)")
        combos = combinations(sweep["parameters"])
        with hydra_compose_context():
            for combo in combos:
                overrides = [agent_override(k, v) for k, v in combo.items()]
                try:
                    cfg = compose_run(material, overrides)
                except (HydraException, OmegaConfBaseException) as exc:
                    msg = str(exc).strip().splitlines()[0]
                    if msg.startswith("Could not override"):
                        msg += " It is not a key of the composed config"
                    raise SweepError(f"{msg} (with {_fmt_combo(combo)})") from exc
                check_composed(cfg, combo)
    except SweepError as exc:
        raise SweepError(f"{path}: {exc}") from exc
    return SweepCheck(path, material, tuple(sweep["parameters"]), len(combos))


def multirun_example(path: Path, material: str, parameters: Mapping[str, Any]) -> str:
    """A Hydra multirun over the first two swept keys' corner values (the offline alternative)."""
    categorical = [k for k, v in parameters.items() if isinstance(v, Mapping) and "values" in v]
    ranged = [k for k in parameters if k not in categorical]
    chosen = (ranged[:1] + categorical[:1]) or list(parameters)[:2]
    parts = [f"{k}=" + ",".join(str(v) for v in candidate_values(k, parameters[k])) for k in chosen]
    return f"python -m experiments.run -m +material={material} " + " ".join(parts)


def explain_not_created(reason: str, path: Path, sweep: Mapping[str, Any], material: str) -> None:
    project = sweep.get("project", "diffrendergan")
    print(f"W&B sweep not created: {reason}.")
    print("  with W&B access, run from the repository root:")
    print(f"    wandb sweep {path}")
    print(f"    wandb agent <entity>/{project}/<sweep id printed by 'wandb sweep'>")
    print("  offline alternative (Hydra multirun, outputs under multirun/):")
    print(f"    {multirun_example(path, material, sweep['parameters'])}")


def _server_reachable(timeout: float = 5.0) -> tuple[bool, str]:
    url = os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")
    parsed = urllib.parse.urlparse(url)
    host = parsed.hostname or "api.wandb.ai"
    port = parsed.port or (443 if parsed.scheme != "http" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True, url
    except OSError:
        return False, url


def create_sweep(check: SweepCheck, entity: str | None, project: str | None) -> int:
    """wandb.sweep(...) with guards against offline mode, login prompts and hanging retries."""
    sweep = load_sweep(check.path)
    mode = os.environ.get("WANDB_MODE", "").strip().lower()
    if mode in ("offline", "disabled", "dryrun"):
        explain_not_created(
            f"WANDB_MODE={mode} (sweeps need the W&B server)", check.path, sweep, check.material
        )
        return 0
    ok, url = _server_reachable()
    if not ok:
        explain_not_created(f"W&B server {url} is unreachable", check.path, sweep, check.material)
        return 0
    import wandb

    os.environ.setdefault("WANDB_SILENT", "true")
    try:
        logged_in = wandb.login(prompt=False, verify=False)
    except Exception as exc:
        logged_in, _ = False, exc
    if not logged_in:
        explain_not_created(
            "not logged in to W&B (set WANDB_API_KEY or run 'wandb login')", check.path, sweep, check.material
        )
        return 0
    project = project or sweep.get("project") or "diffrendergan"
    result: dict[str, Any] = {}

    def _create() -> None:
        try:
            result["id"] = wandb.sweep(dict(sweep), entity=entity, project=project)
            api = wandb.Api()
            result["entity"] = entity or api.settings.get("entity") or api.default_entity
        except Exception as exc:
            result["error"] = exc

    worker = threading.Thread(target=_create, daemon=True)
    worker.start()
    worker.join(CREATE_TIMEOUT_S)
    if worker.is_alive():
        explain_not_created(
            f"no answer from {url} within {CREATE_TIMEOUT_S:.0f} s", check.path, sweep, check.material
        )
        return 0
    if "error" in result:
        reason = (
            str(result["error"]).strip().splitlines()[0] if str(result["error"]).strip() else "unknown error"
        )
        explain_not_created(f"wandb.sweep failed: {reason}", check.path, sweep, check.material)
        return 0
    print(f"sweep created: {result['id']}")
    print("start agents (from the repository root, one per GPU/machine):")
    print(f"  wandb agent {result.get('entity') or '<entity>'}/{project}/{result['id']}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m experiments.sweep",
        description="Validate a W&B sweep file (configs/sweep/<material>.yaml) against the Hydra configs; "
        "with --create, register it with W&B and print the 'wandb agent' command.",
    )
    parser.add_argument("sweep_file", type=Path, help="e.g. configs/sweep/tio2.yaml")
    parser.add_argument("--create", action="store_true", help="register the sweep with W&B (needs network)")
    parser.add_argument("--entity", default=None, help="W&B entity (default: your default entity)")
    parser.add_argument("--project", default=None, help="W&B project (default: the file's 'project')")
    args = parser.parse_args(argv)
    try:
        check = validate_sweep(args.sweep_file)
    except SweepError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"{check.path}: OK - {check.combinations} combinations of {len(check.keys)} swept keys composed "
        f"against run.yaml + material/{check.material}.yaml"
    )
    if not args.create:
        print(f"register it with: python -m experiments.sweep {check.path} --create")
        return 0
    return create_sweep(check, args.entity, args.project)


if __name__ == "__main__":
    sys.exit(main())
