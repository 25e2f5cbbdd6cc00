"""`python -m experiments.generate` end to end in a subprocess (as a user runs it)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from cli import run_cli
from PIL import Image


@pytest.mark.slow  # the command line in a subprocess: integration, full suite only
def test_generate_baseline_cli(tmp_path: Path) -> None:
    out = tmp_path / "synthetic"
    overrides = ("+material=sio2", "checkpoint=none", "n_images=3", f"out_dir={out}")
    proc = run_cli("experiments.generate", *overrides, "material.image_size=64", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "images/s" in proc.stdout and str(out) in proc.stdout
    for sub in ("images", "masks", "instances"):
        files = sorted(p.name for p in (out / sub).iterdir())
        assert files == ["000000.png", "000001.png", "000002.png"], sub
    assert Image.open(out / "images" / "000000.png").size == (64, 64)
    assert set(np.unique(np.asarray(Image.open(out / "masks" / "000001.png")))) <= {0, 1, 2}
    meta = [json.loads(x) for x in (out / "metadata.jsonl").read_text().splitlines()]
    assert [m["id"] for m in meta] == [0, 1, 2] and all(m["baseline"] for m in meta)


@pytest.mark.slow  # the command line in a subprocess: integration, full suite only
def test_generate_without_material_is_one_line_error(tmp_path: Path) -> None:
    proc = run_cli("experiments.generate", "checkpoint=none", "n_images=1", cwd=tmp_path)
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(errors) == 1, proc.stderr
    assert errors[0].startswith("error:") and "+material" in errors[0]
    assert "Traceback" not in proc.stderr + proc.stdout


def _error_line(proc) -> str:
    """The one ``error:`` line of a refused command (exit status 2, no traceback)."""
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ") and "Traceback" not in proc.stderr + proc.stdout
    return lines[0]


@pytest.mark.slow  # the command line in a subprocess: integration, full suite only
def test_resume_into_another_export_is_refused(tmp_path: Path) -> None:
    """One folder never mixes two exports: another material or seed, or fewer images than the
    folder holds, is refused with one line saying what differs, and the folder is left alone."""
    out = tmp_path / "synthetic"
    common = ("checkpoint=none", "material.image_size=64", f"out_dir={out}")
    first = run_cli("experiments.generate", "+material=sio2", "n_images=2", *common, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    fingerprint = json.loads((out / "fingerprint.json").read_text())
    assert fingerprint["material"]["name"] == "sio2" and fingerprint["checkpoint"] == "none"
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}

    tio2 = run_cli("experiments.generate", "+material=tio2", "n_images=3", *common, cwd=tmp_path)
    line = _error_line(tio2)
    assert line.startswith(f"error: out_dir: {out} holds an export with a different material (sio2 vs tio2)")
    seed = run_cli("experiments.generate", "+material=sio2", "n_images=3", "seed=5", *common, cwd=tmp_path)
    assert "export seed (0 vs 5)" in _error_line(seed)
    fewer = run_cli("experiments.generate", "+material=sio2", "n_images=1", *common, cwd=tmp_path)
    assert _error_line(fewer).startswith("error: n_images: 1 requested") and "n_images=2" in fewer.stderr
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


@pytest.mark.slow  # the command line in a subprocess: integration, full suite only
def test_material_override_with_a_checkpoint_is_said(tmp_path: Path, gan_checkpoint: Path) -> None:
    """The checkpoint fixes the material: a material.* override is not applied, and one warning
    line says so (the export itself runs)."""
    out = tmp_path / "synthetic"
    proc = run_cli(
        "experiments.generate",
        "+material=sio2",
        f"checkpoint={gan_checkpoint}",
        "material.count.high=40",
        "n_images=1",
        "progress=false",
        f"out_dir={out}",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "material.count.high" in warnings[0], proc.stderr
    assert "trained generator" in proc.stdout and len(list((out / "images").iterdir())) == 1


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_generate_on_cuda(tmp_path: Path) -> None:
    out = tmp_path / "synthetic"
    overrides = ("+material=tio2", "checkpoint=none", "n_images=4", "device=cuda", f"out_dir={out}")
    proc = run_cli("experiments.generate", *overrides, "material.image_size=128", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    masks = [np.asarray(Image.open(p)) for p in sorted((out / "masks").iterdir())]
    assert len(masks) == 4 and all(set(np.unique(m)) == {0, 1, 2} for m in masks)


@pytest.mark.slow  # the command line in a subprocess: integration, full suite only
def test_generate_device_cuda_without_gpu_is_one_line_error(tmp_path: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    overrides = (
        "+material=sio2",
        "checkpoint=none",
        "n_images=1",
        "device=cuda",
        f"out_dir={tmp_path / 'o'}",
    )
    proc = run_cli("experiments.generate", *overrides, cwd=tmp_path)
    assert proc.returncode == 2
    assert "device" in proc.stderr and "no CUDA device" in proc.stderr and "Traceback" not in proc.stderr
