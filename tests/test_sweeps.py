"""W&B sweep files: every swept key is a real override of the composed config, and an agent-style
command line runs a tiny job end to end offline."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from experiments.sweep import (
    agent_override,
    candidate_values,
    compose_run,
    hydra_compose_context,
    main,
    material_of,
    validate_sweep,
    values_equal,
)

ROOT = Path(__file__).resolve().parents[1]
SWEEPS = sorted((ROOT / "configs" / "sweep").glob("*.yaml"))


def test_there_is_a_sweep_per_material() -> None:
    assert {p.stem for p in SWEEPS} >= {"tio2", "sio2", "agnw"}


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.stem)
def test_sweep_file_structure(path: Path) -> None:
    sweep = yaml.safe_load(path.read_text())
    assert sweep["program"] == "experiments/run.py" and (ROOT / sweep["program"]).is_file()
    assert sweep["method"] in ("bayes", "random")
    assert sweep["metric"] == {"name": "val/swd", "goal": "minimize"}
    assert material_of(sweep) == path.stem
    assert sweep["command"] == [
        "${env}",
        "${interpreter}",
        "-m",
        "experiments.run",
        f"+material={path.stem}",
        "logger=wandb_online",
        "${args_no_hyphens}",
    ]
    if path.stem == "agnw":
        assert "material.shader" not in sweep["parameters"]


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.stem)
def test_every_swept_value_composes(path: Path) -> None:
    """Each categorical value and each distribution's min/max, one key at a time."""
    sweep = yaml.safe_load(path.read_text())
    material = material_of(sweep)
    with hydra_compose_context():
        for key, spec in sweep["parameters"].items():
            for value in candidate_values(key, spec):
                cfg = compose_run(material, [agent_override(key, value)])
                got = OmegaConf.select(cfg, key)
                assert values_equal(got, value), f"{key}: composed {got!r} != swept {value!r}"
                assert cfg.material.name == material
    if material == "agnw":
        assert cfg.material.shader == "sem"


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.stem)
def test_validate_sweep_accepts_the_shipped_files(path: Path) -> None:
    check = validate_sweep(path)
    assert check.material == path.stem and check.combinations >= len(check.keys)


def test_invalid_key_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = yaml.safe_load((ROOT / "configs" / "sweep" / "sio2.yaml").read_text())
    bad["parameters"] = {"material.params.edge_gain.high": {"min": 0.3, "max": 1.0}}  # not in sio2
    path = tmp_path / "sio2.yaml"
    path.write_text(yaml.safe_dump(bad))
    assert main([str(path)]) == 2
    assert "material.params.edge_gain.high" in capsys.readouterr().err


def test_create_offline_explains_and_exits_zero(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert main([str(ROOT / "configs" / "sweep" / "tio2.yaml"), "--create"]) == 0
    out = capsys.readouterr().out
    assert "W&B sweep not created" in out and "wandb sweep" in out and "wandb agent" in out
    assert "experiments.run -m +material=tio2" in out


def agent_argv(command: list[str], params: dict[str, object]) -> list[str]:
    """The argv a W&B agent builds from ``command`` (``${env}`` dropped)."""
    argv: list[str] = []
    for item in command:
        if item == "${env}":
            continue
        if item == "${interpreter}":
            argv.append(sys.executable)
        elif item == "${args_no_hyphens}":
            argv += [agent_override(k, v) for k, v in params.items()]
        else:
            argv.append(item)
    return argv


def sample_params(parameters: dict, rng: random.Random) -> dict[str, object]:
    out = {}
    for key, spec in parameters.items():
        values = candidate_values(key, spec)
        out[key] = rng.choice(values) if "values" in spec else rng.uniform(values[0], values[-1])
    return out


@pytest.mark.slow  # the command line in a subprocess: integration, full suite only
def test_agent_command_runs_a_tiny_job_offline(tmp_path: Path, cache_dir: Path) -> None:
    path = ROOT / "configs" / "sweep" / "sio2.yaml"
    sweep = yaml.safe_load(path.read_text())
    params = sample_params(sweep["parameters"], random.Random(0))
    params["renderer.supersample"] = 1  # keep the CPU job small
    out = tmp_path / "run"
    argv = [
        *agent_argv(sweep["command"], params),
        "experiment=smoke",
        "material.image_size=128",
        "data.patch_size=128",
        "data.stride=128",
        "export.enabled=false",
        f"hydra.run.dir={out}",
        f"paths.cache_dir={cache_dir}",
    ]
    env = {
        **os.environ,
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "NO_ALBUMENTATIONS_UPDATE": "1",
        "OMP_NUM_THREADS": "1",
    }
    res = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert (out / "summary.json").exists()
    composed = OmegaConf.load(out / ".hydra" / "config.yaml")
    for key, value in params.items():
        assert values_equal(OmegaConf.select(composed, key), value), key
