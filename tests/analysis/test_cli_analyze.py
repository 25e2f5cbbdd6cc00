"""`python -m experiments.analyze` in a subprocess, as a microscopist runs it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from cli import run_cli
from PIL import Image
from specimens import specimen


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    """The single ``error:`` line of a failed run (exit status 2, no traceback)."""
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


@pytest.mark.slow
def test_analyze_end_to_end_skips_a_corrupt_file(
    micrographs: Path, segmenter_ckpt: Path, tmp_path: Path
) -> None:
    (micrographs / "corrupt.tif").write_bytes(b"II*\x00 this is no image")
    out = tmp_path / "report"
    proc = run_cli(
        "experiments.analyze",
        f"segmenter={segmenter_ckpt}",
        f"input_dir={micrographs}",
        f"out_dir={out}",
        "n_boot=50",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "skipping" in proc.stdout + proc.stderr and "corrupt.tif" in proc.stdout + proc.stderr
    assert "2 images (1 skipped)" in proc.stdout and str(out / "report.md") in proc.stdout
    for name in (
        "particles.csv",
        "summary.json",
        "report.md",
        "histogram.png",
        "overlays/a.png",
        "overlays/b.png",
    ):
        assert (out / name).is_file(), name
    summary = json.loads((out / "summary.json").read_text())
    assert [i["pixel_size_source"] for i in summary["images"]] == ["CZ_SEM", "resolution tags"]
    assert list(summary["skipped"]) == [str(micrographs / "corrupt.tif")]
    assert not list(micrographs.glob("*.png")) and sorted(p.name for p in micrographs.iterdir()) == [
        "a.tif",
        "b.tif",
        "corrupt.tif",
    ]  # nothing written beside the originals

    strict = run_cli(
        "experiments.analyze",
        f"segmenter={segmenter_ckpt}",
        f"input_dir={micrographs}",
        "strict=true",
        cwd=tmp_path,
    )
    assert "corrupt.tif" in one_line_error(strict)


@pytest.mark.slow
def test_analyze_refuses_a_gan_checkpoint(micrographs: Path, gan_ckpt: Path, tmp_path: Path) -> None:
    proc = run_cli("experiments.analyze", f"segmenter={gan_ckpt}", f"input_dir={micrographs}", cwd=tmp_path)
    line = one_line_error(proc)
    assert "gan.ckpt" in line and "wrong checkpoint kind" in line and "segmenter checkpoint" in line


def unchecked_ckpt(folder: Path) -> Path:
    """A segmenter.ckpt that is never loaded: the inputs are checked first."""
    path = folder / "segmenter.ckpt"
    path.write_bytes(b"not a checkpoint")
    return path


@pytest.mark.slow  # the command line in a subprocess: integration, full suite only
def test_empty_folder_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    ckpt = unchecked_ckpt(tmp_path)
    proc = run_cli(
        "experiments.analyze", f"segmenter={ckpt}", f"input_dir={tmp_path / 'empty'}", cwd=tmp_path
    )
    assert "empty" in one_line_error(proc)


@pytest.mark.slow  # the command line in a subprocess: integration, full suite only
def test_missing_pixel_size_is_one_line_naming_the_file(tmp_path: Path) -> None:
    ckpt = unchecked_ckpt(tmp_path)
    Image.fromarray(specimen()[0]).save(tmp_path / "no_scale.png")
    line = one_line_error(
        run_cli("experiments.analyze", f"segmenter={ckpt}", f"input_dir={tmp_path}", cwd=tmp_path)
    )
    assert "no_scale.png" in line and "pixel_size_nm=<nm per px>" in line


@pytest.mark.slow  # the command line in a subprocess: integration, full suite only
def test_missing_segmenter_is_one_line(tmp_path: Path) -> None:
    line = one_line_error(run_cli("experiments.analyze", f"input_dir={tmp_path}", cwd=tmp_path))
    assert line.startswith("error: segmenter: is required")


@pytest.mark.slow  # the command line in a subprocess: integration, full suite only
def test_output_into_the_input_folder_is_refused(micrographs: Path, tmp_path: Path) -> None:
    proc = run_cli(
        "experiments.analyze",
        "segmenter=x.ckpt",
        f"input_dir={micrographs}",
        f"out_dir={micrographs}",
        cwd=tmp_path,
    )
    assert one_line_error(proc).startswith("error: out_dir: is the input folder")


@pytest.mark.slow  # the command line in a subprocess: integration, full suite only
def test_a_material_whose_law_cannot_be_fitted_is_one_line(micrographs: Path, tmp_path: Path) -> None:
    ckpt = unchecked_ckpt(tmp_path)  # never loaded: the material is checked before
    proc = run_cli(
        "experiments.analyze", f"segmenter={ckpt}", f"input_dir={micrographs}", "+material=agnw", cwd=tmp_path
    )
    line = one_line_error(proc)
    assert "material.size.kind" in line and "lognormal" in line
