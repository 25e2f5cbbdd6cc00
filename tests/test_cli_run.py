"""The main job through its command line, as users run it (subprocesses, offline)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SMALL = [
    "+material=sio2",
    "experiment=smoke",
    "material.image_size=128",
    "data.patch_size=128",
    "data.stride=128",
    "logger=csv",
]


def run_cli(
    args: list[str], timeout: int = 300, module: str = "experiments.run"
) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "WANDB_MODE": "disabled",
        "NO_ALBUMENTATIONS_UPDATE": "1",
        "OMP_NUM_THREADS": "1",
    }
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_ok(args: list[str], out: Path, cache_dir: Path) -> dict:
    """Run the main job into ``out`` (shared demo cache); it must succeed. Returns summary.json."""
    res = run_cli([*args, f"hydra.run.dir={out}", f"paths.cache_dir={cache_dir}"])
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads((out / "summary.json").read_text())


@pytest.mark.slow
def test_smoke_run_writes_summary(tmp_path: Path, cache_dir: Path) -> None:
    out = tmp_path / "run"
    res = run_cli([*SMALL, f"hydra.run.dir={out}", f"paths.cache_dir={cache_dir}"])
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    for key in ("material", "steps", "realism", "parameters", "wall_time_s", "checkpoint"):
        assert key in summary
    assert summary["material"] == "sio2"
    assert summary["steps"] == 8  # 2 epochs x 4 batches
    assert summary["realism"]["metric"] == "swd" and summary["realism"]["start"] > 0
    assert Path(summary["checkpoint"]).exists()
    assert (out / "checkpoints" / "last.ckpt").exists()
    assert (out / "csv" / "metrics.csv").exists()
    assert "material:" in (out / "config.yaml").read_text()
    assert (out / "grids" / "initial.png").exists() and (out / "grids" / "epoch_001.png").exists()
    assert (out / "histograms" / "epoch_001.png").exists()
    assert not list(out.rglob(".*.tmp*")), "temporary files left behind"
    assert "outputs" in res.stdout and str(out) in res.stdout


@pytest.mark.slow
def test_topography_run_reports_learned_law_and_exports_from_it(tmp_path: Path, cache_dir: Path) -> None:
    out = tmp_path / "run"
    args = [
        *SMALL,
        "model.topography.enabled=true",
        "model.topography.learn_count=true",
        "model.topography.init={median_nm:60}",
    ]
    topo = run_ok([*args, "model.topography.report_images=4"], out, cache_dir)["topography"]
    assert topo["units"] == "nm"
    assert (
        set(topo["learned"]) == set(topo["truth"]) >= {"mean_size_nm", "sigma", "median_nm", "expected_count"}
    )
    assert topo["learned"]["median_nm"] != pytest.approx(60.0, abs=1e-3)  # it started at 60 and learned
    projected = topo["projected_diameter_nm"]
    assert set(projected) == {"learned", "truth", "labeled"}
    assert all(projected[k]["n"] > 0 and projected[k]["median_nm"] > 0 for k in projected)
    assert topo["measured_field_px"] >= 256  # the laws are measured in fields of the labeled images' size
    assert (out / "topography" / "epoch_001.png").exists()
    # The exported dataset follows the learned law: its layouts' sizes centre on the learned median.
    records = [json.loads(line) for line in (out / "synthetic" / "metadata.jsonl").read_text().splitlines()]
    sizes = [row[3] for rec in records for row in rec["layout"]["xyzs_nm"]]
    geo_median = float(np.exp(np.median(np.log(sizes))))
    assert geo_median == pytest.approx(topo["learned"]["median_nm"], rel=0.35)


@pytest.mark.slow  # the command line in a subprocess: integration, full suite only
def test_missing_material_is_one_clear_line(tmp_path: Path) -> None:
    res = run_cli([f"hydra.run.dir={tmp_path}"], timeout=120)
    assert res.returncode == 2
    lines = [ln for ln in res.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and "+material=" in lines[0]


@pytest.mark.slow  # the command line in a subprocess: integration, full suite only
def test_bad_range_names_the_key(tmp_path: Path) -> None:
    res = run_cli(
        [
            "+material=sio2",
            "material.params.particle_yield.low=0.9",
            "material.params.particle_yield.high=0.1",
            f"hydra.run.dir={tmp_path}",
        ],
        timeout=120,
    )
    assert res.returncode == 2
    assert "material.params.particle_yield" in res.stderr and "Traceback" not in res.stderr


@pytest.mark.slow  # the command line in a subprocess: integration, full suite only
def test_missing_data_dir_names_the_key(tmp_path: Path) -> None:
    res = run_cli(
        ["+material=sio2", f"data.real_dir={tmp_path / 'nope'}", f"hydra.run.dir={tmp_path}"],
        timeout=120,
    )
    assert res.returncode == 2
    assert "data.real_dir" in res.stderr and "Traceback" not in res.stderr


@pytest.mark.slow
def test_resume_continues_from_last_checkpoint(tmp_path: Path, cache_dir: Path) -> None:
    out = tmp_path / "run"
    common = [
        *SMALL,
        f"hydra.run.dir={out}",
        f"paths.cache_dir={cache_dir}",
        "export.enabled=false",
    ]
    first = run_cli([*common, "trainer.max_epochs=1"])
    assert first.returncode == 0, first.stderr[-3000:]
    start = json.loads((out / "summary.json").read_text())["realism"]["start"]
    second = run_cli([*common, "trainer.max_epochs=2", "resume=true"])
    assert second.returncode == 0, second.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 8 and summary["epochs"] == 2
    assert summary["realism"]["start"] == start  # the start value survives the restart


@pytest.mark.ddp
def test_ddp_two_cpu_processes(tmp_path: Path, cache_dir: Path) -> None:
    out = tmp_path / "ddp"
    res = run_cli(
        [
            *SMALL,
            "trainer=ddp_cpu",
            f"hydra.run.dir={out}",
            f"paths.cache_dir={cache_dir}",
            "export.enabled=false",
            # the calibrated start (fitted on every rank, rank 0's kept) and the loss term
            "model.quantile_matching.start_steps=2",
            "model.quantile_matching.batch=2",
            "model.quantile_matching.weight=1.0",
        ]
    )
    assert res.returncode == 0, res.stderr[-3000:]
    check = json.loads((out / "ddp_consistency.json").read_text())
    assert check["world_size"] == 2 and check["identical"] is True
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 8
    # val/swd and val/hist_w1 of the initial generator (the validation before training) do not
    # depend on the number of processes: each rank holds half the real patches, the metrics
    # gather them by id.
    single = run_ok([*SMALL, "trainer.max_epochs=1", "export.enabled=false"], tmp_path / "one", cache_dir)
    for key in ("start", "hist_w1_start"):
        assert summary["realism"][key] == pytest.approx(single["realism"][key], rel=1e-5)


@pytest.mark.slow
def test_sigterm_mid_epoch_then_resume(tmp_path: Path, cache_dir: Path) -> None:
    out = tmp_path / "run"
    args = [
        *SMALL,
        f"hydra.run.dir={out}",
        f"paths.cache_dir={cache_dir}",
        "export.enabled=false",
        "trainer.max_epochs=6",
    ]
    env = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "experiments.run", *args], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.time() + 240
    while not (out / "checkpoints" / "last.ckpt").exists() and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)  # now inside a later epoch
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    assert not (out / "summary.json").exists()
    assert not list(out.rglob(".*.tmp*"))
    res = run_cli([*args, "resume=true"])
    assert res.returncode == 0, res.stderr[-3000:]
    assert json.loads((out / "summary.json").read_text())["epochs"] == 6


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.gpu
@needs_cuda
def test_gpu_run_learns_topography_exports_and_evaluates(tmp_path: Path, cache_dir: Path) -> None:
    args = [*SMALL, "trainer=gpu", "model.topography.enabled=true", "model.topography.learn_count=true"]
    summary = run_ok([*args, "model.topography.report_images=4"], tmp_path / "gpu", cache_dir)
    assert summary["hardware"]["accelerator"] == "cuda" and summary["hardware"]["gpu"]
    assert summary["steps"] == 8 and summary["realism"]["end"] > 0
    assert summary["topography"]["learned"]["median_nm"] > 0
    assert summary["export"]["n_written"] == 8
    metrics = json.loads(Path(summary["evaluation"]["metrics"]).read_text())
    assert summary["evaluation"]["dsc"] == metrics["dsc"] and metrics["n_images"] > 0


@pytest.mark.gpu
@needs_cuda
def test_ddp_strategy_on_one_gpu(tmp_path: Path, cache_dir: Path) -> None:
    """The multi-GPU configuration (NCCL process group, DDP wrappers) on the one GPU there is."""
    args = [*SMALL, "trainer=ddp", "trainer.devices=1", "export.enabled=false"]
    summary = run_ok(args, tmp_path / "ddp_gpu", cache_dir)
    gpu = torch.cuda.get_device_name()
    assert summary["hardware"] == {"accelerator": "cuda", "world_size": 1, "gpu": gpu}
    assert summary["steps"] == 8
