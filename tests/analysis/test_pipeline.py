"""The whole analysis in-process: tables, summary, pictures, comparison with manual masks."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.measure import label
from specimens import BAR, DISCS, PIXEL_NM, H

from diffrendergan.analysis import pipeline
from diffrendergan.analysis.inputs import plan
from diffrendergan.analysis.pipeline import Options, analyze
from diffrendergan.analysis.tables import COLUMNS
from diffrendergan.config import MaterialConfig


def threshold_segmenter(module: object, image: np.ndarray, factor: float = 1.0) -> np.ndarray:
    """A perfect 'segmenter' for the bright test discs (they do not touch)."""
    return label(image > 0.5).astype(np.int32)


def test_labels_measured_like_predictions(
    labeled: Path, segmenter_ckpt: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pipeline, "predict_instances", threshold_segmenter)
    out = tmp_path / "out"
    s = analyze(segmenter_ckpt, plan(None, labeled), out, Options(n_boot=100))
    d = s["distribution"]
    assert d["count_all"] == 2 * len(DISCS) and d["count"] == 2 * (len(DISCS) - 1)  # one disc is cut
    eq = d["measures"]["equivalent_diameter_nm"]
    assert 14 * PIXEL_NM < eq["median"] < 21 * PIXEL_NM
    cmp = s["labels"]
    assert cmp["n_predicted"] == cmp["n_manual"] == d["count"]
    assert cmp["ks_distance"] == 0.0 and cmp["wasserstein_nm"] == pytest.approx(0.0, abs=1e-9)
    assert cmp["median_abs_rel_error_per_image"] == 0.0
    assert [r["bar_rows"] for r in s["images"]] == [BAR, BAR]
    assert {r["pixel_size_source"] for r in s["images"]} == {"CZ_SEM"}
    assert s["segmenter"]["recipe"]["normalize"] == "matched" and s["segmenter"]["path"] == str(
        segmenter_ckpt
    )
    for name in ("particles.csv", "summary.json", "report.md", "histogram.png", "histogram_vs_labels.png"):
        assert (out / name).is_file(), name
    assert (out / "labels" / "particles_manual.csv").is_file()
    assert not (out / "labels" / "particles_predicted.csv").exists()  # = particles.csv here
    overlay = Image.open(out / "overlays" / "m0.png")
    assert overlay.size[1] == H
    rows = list(csv.reader((out / "particles.csv").open()))
    assert tuple(rows[0]) == COLUMNS and len(rows) == 1 + d["count_all"]
    assert json.loads((out / "summary.json").read_text())["distribution"]["count"] == d["count"]
    assert "Against manual masks" in (out / "report.md").read_text()
    assert s["segmenter"]["recipe"]["tta"] is False  # as the checkpoint's recipe says
    options = Options(include_border=True, tta=True, n_boot=0)
    included = analyze(segmenter_ckpt, plan(None, labeled), tmp_path / "all", options)
    assert included["distribution"]["count"] == 2 * len(DISCS)
    assert included["segmenter"]["recipe"]["tta"] is True  # the analyze key overrides it


@pytest.mark.slow
def test_untrained_segmenter_on_micrographs_and_labels(
    micrographs: Path, labeled: Path, segmenter_ckpt: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    s = analyze(segmenter_ckpt, plan(micrographs, labeled), out, Options(n_boot=50))
    assert [r["image"] for r in s["images"]] == ["a.tif", "b.tif"]
    assert [r["inference_scale"] for r in s["images"]] == [1.0, 1.0]  # trained at 2 nm/px like them
    assert len(s["labels"]["images"]) == 2
    assert sorted(p.name for p in (out / "overlays").glob("*.png")) == ["a.png", "b.png"]
    assert sorted(p.name for p in (out / "overlays" / "labels").glob("*.png")) == ["m0.png", "m1.png"]
    assert (out / "labels" / "particles_predicted.csv").is_file()
    assert not [p for p in out.rglob(".*") if p.is_file()]  # no temporary files left


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_analysis_on_the_gpu_matches_the_cpu(micrographs: Path, segmenter_ckpt: Path, tmp_path: Path) -> None:
    cpu = analyze(segmenter_ckpt, plan(micrographs, None), tmp_path / "cpu", Options(device="cpu", n_boot=0))
    gpu = analyze(segmenter_ckpt, plan(micrographs, None), tmp_path / "gpu", Options(device="cuda", n_boot=0))
    assert gpu["segmenter"]["device"].startswith("cuda")
    counts = [(a["n_particles"], b["n_particles"]) for a, b in zip(cpu["images"], gpu["images"])]
    assert all(abs(a - b) <= max(2, 0.05 * a) for a, b in counts), counts  # float order may flip a pixel


def test_a_material_gets_its_size_law_fitted_to_the_whole_particles(
    labeled: Path,
    segmenter_ckpt: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    make_material: Callable[..., MaterialConfig],
) -> None:
    """With a material the summary and the report carry its size law refitted to the measured
    whole particles; with too few of them, none and a warning (the analysis itself stands)."""
    monkeypatch.setattr(pipeline, "predict_instances", threshold_segmenter)
    sparse = {"mode": "random", "overlap_tolerance": 0.0, "margin": 0.0}
    discs = make_material(
        name="discs", pixel_size_nm=PIXEL_NM, size={"median_nm": 20.0, "sigma": 0.2}, placement=sparse
    )
    few = analyze(segmenter_ckpt, plan(None, labeled), tmp_path / "few", Options(n_boot=0), discs)
    assert few["generator_law"] is None and "too few to fit discs's size law" in caplog.text
    monkeypatch.setattr(pipeline, "MIN_LAW_PARTICLES", 5)
    monkeypatch.setattr("diffrendergan.analysis.law_fit.MIN_LAW_PARTICLES", 5)
    out = tmp_path / "fit"
    s = analyze(segmenter_ckpt, plan(None, labeled), out, Options(n_boot=0, law_images=8), discs)
    law = s["generator_law"]
    measured = s["distribution"]["measures"]["equivalent_diameter_nm"]["median"]
    assert law["measured_whole_particles"]["median_nm"] == pytest.approx(measured)
    assert law["field_px"] == 128  # the micrographs' width, at the material's pixel size
    assert law["rendered_whole_particles"]["median_nm"] == pytest.approx(measured, rel=0.1)
    assert law["override"] in (out / "report.md").read_text()
