"""Segmentation evaluation task: train on an export, test on annotated images with a data bar."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from shipped_configs import material_raw

from diffrendergan.config import material_from_dict, renderer_from_dict
from diffrendergan.evaluation.protocol import Row, compare_to, run_rows
from diffrendergan.export.writer import ExportOptions, export_dataset
from diffrendergan.models.generator import Generator
from diffrendergan.segmentation.data import is_synthetic_folder
from diffrendergan.segmentation.recipe import segmenter_from_dict
from diffrendergan.tasks.compare import ComparisonSpec, run_comparison
from diffrendergan.tasks.realism import realism_from_folders
from diffrendergan.tasks.segment import ImageSet, TrainOptions, classical_baseline, run_segmentation

H, W, BAR = 88, 96, 14
KEYS = ("dsc", "ap50", "pq", "miou", "particle_iou")


def write_labeled(root: Path, n: int = 2, seed: int = 0) -> Path:
    """Bright noisy discs on a dark substrate, masks 0/255, and a data bar (flat rows with a
    text-like stripe) in the bottom BAR rows of each image only."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir(parents=True)
    yy, xx = np.mgrid[:H, :W]
    for k in range(n):
        mask = np.zeros((H, W), np.uint8)
        for cy, cx in ((18, 18), (18, 58), (46, 30), (50, 74), (20 + 4 * k, 84)):
            mask[(yy - cy) ** 2 + (xx - cx) ** 2 <= 8**2] = 255
        mask[H - BAR :] = 0
        img = np.where(mask > 0, 190.0, 60.0) + rng.normal(0, 8, (H, W))
        img = np.clip(img, 0, 255).astype(np.uint8)
        img[H - BAR :] = 0
        img[H - BAR + 4 : H - BAR + 7, 8:40] = 255
        Image.fromarray(img).save(root / "images" / f"img{k}.png")
        Image.fromarray(mask).save(root / "masks" / f"img{k}.png")
    return root


def small_generator() -> Generator:
    """sio2 at 64 px with 2-4 particles."""
    raw = material_raw("sio2", image_size=64, count={"kind": "uniform", "low": 2, "high": 4})
    return Generator(material_from_dict(raw), renderer_from_dict({}))


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("export")
    export_dataset(
        small_generator(), out, 8, ExportOptions(seed=0, batch_size=8, baseline=True, progress=False)
    )
    return out


TINY = {"steps": 3, "batch_size": 2, "crop_size": 64, "precision": "32", "accelerator": "cpu"}


def test_classical_baseline_on_discs(tmp_path: Path) -> None:
    lab = write_labeled(tmp_path / "lab")
    m = classical_baseline(ImageSet(lab), tmp_path / "out", pixel_size_nm=2.0)
    assert m["ap50"] > 0.8 and m["dsc"] > 0.8
    assert [r["bar_rows"] for r in m["per_image"]] == [BAR, BAR]  # detected, not given
    assert abs(m["gt_mean_diameter_nm"] - 2.0 * 17) < 4  # r=8 discs: ~17 px across
    assert m["size_unit"] == "nm" and m["per_image"][0]["pixel_size_source"] == "pixel_size_nm"
    pred = np.asarray(Image.open(tmp_path / "out" / "predictions" / "img0.png"))
    assert pred.shape == (H, W) and not pred[H - BAR :].any() and pred.max() >= 4
    saved = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert saved["method"] == "otsu_watershed" and "AP50" in saved["definitions"]
    unknown = classical_baseline(ImageSet(lab), tmp_path / "px")  # PNGs carry no scale: sizes in px
    assert unknown["size_unit"] == "px" and "mean_error_nm" not in unknown


def test_run_segmentation_on_export(export_dir: Path, tmp_path: Path) -> None:
    lab = write_labeled(tmp_path / "lab")
    assert is_synthetic_folder(export_dir) and not is_synthetic_folder(lab)
    torch.set_num_threads(2)
    out = tmp_path / "seg"
    recipe = segmenter_from_dict(TINY)
    m = run_segmentation(recipe, ImageSet(export_dir), ImageSet(lab), out, TrainOptions(val=ImageSet(lab)))
    saved = json.loads((out / "metrics.json").read_text())
    for k in KEYS:
        assert 0.0 <= saved[k] <= 1.0, k
        assert saved[k] == m[k]
    assert len(saved["per_image"]) == 2 and saved["train"]["steps"] == 3
    assert saved["recipe"]["target"] == "bordercore" and saved["decoder"] == "core_watershed"
    assert "val_dice" in saved["train"]
    for stem in ("img0", "img1"):
        pred = Image.open(out / "predictions" / f"{stem}.png")
        assert pred.size == (W, H) and pred.mode == "I;16"
        assert not np.asarray(pred)[H - BAR :].any()
        ov = Image.open(out / "overlays" / f"{stem}.png")
        assert ov.mode == "RGB" and ov.size == (W, H)
    assert (out / "segmenter.ckpt").is_file()
    assert not [p for p in out.rglob(".*") if p.is_file()]


def test_segmenter_checkpoint_reloads_and_predicts_the_same(export_dir: Path, tmp_path: Path) -> None:
    from diffrendergan.segmentation.checkpoint import load_segmenter
    from diffrendergan.segmentation.train import train_segmenter
    from diffrendergan.tasks.segment import segmenter_predictor

    samples = ImageSet(export_dir).load("matched")
    module, _ = train_segmenter(segmenter_from_dict(TINY), samples, tmp_path, seed=0)
    again = load_segmenter(tmp_path / "segmenter.ckpt")
    assert again.recipe == module.recipe  # the checkpoint carries its recipe
    # ... and the export's pixel size, the scale analyze resamples new micrographs to
    assert samples[0].pixel_size_nm == small_generator().material.pixel_size_nm
    assert again.train_pixel_size_nm == pytest.approx(samples[0].pixel_size_nm)
    a, _ = segmenter_predictor(module)(samples[0].image)
    b, _ = segmenter_predictor(again)(samples[0].image)
    np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_real_folder_training_and_finetune(export_dir: Path, tmp_path: Path) -> None:
    lab = write_labeled(tmp_path / "lab")
    recipe = segmenter_from_dict(TINY)
    pre = run_segmentation(recipe, ImageSet(export_dir), ImageSet(lab), tmp_path / "pre")
    init = tmp_path / "pre" / "segmenter.ckpt"
    m = run_segmentation(recipe, ImageSet(lab), ImageSet(lab), tmp_path / "ft", TrainOptions(init_from=init))
    assert pre["train"]["init_from"] is None and m["train"]["init_from"] == str(init)
    assert all(0.0 <= m[k] <= 1.0 for k in KEYS)


def test_realism_from_folders(export_dir: Path, tmp_path: Path) -> None:
    same = realism_from_folders(export_dir, export_dir, out_path=tmp_path / "r.json")
    assert same["swd"] == pytest.approx(0.0, abs=1e-6) and same["hist_w1"] == pytest.approx(0.0)
    lab = write_labeled(tmp_path / "lab")
    diff = realism_from_folders(lab / "images", export_dir, patch_size=64)
    assert diff["swd"] > 0 and diff["hist_w1"] > 0 and diff["n_real_patches"] == 2
    assert set(json.loads((tmp_path / "r.json").read_text())) >= {"swd", "swd_levels", "hist_w1"}


def write_empty_export(root: Path, n: int = 4, side: int = 64) -> Path:
    """A "synthetic export" of substrate only: flat noisy images, all-background masks."""
    rng = np.random.default_rng(1)
    for sub in ("images", "masks", "instances"):
        (root / sub).mkdir(parents=True)
    for k in range(n):
        img = np.clip(rng.normal(60, 8, (side, side)), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(root / "images" / f"{k:06d}.png")
        Image.fromarray(np.zeros((side, side), np.uint8)).save(root / "masks" / f"{k:06d}.png")
        Image.fromarray(np.zeros((side, side), np.uint16)).save(root / "instances" / f"{k:06d}.png")
    (root / "metadata.jsonl").write_text("".join(json.dumps({"id": k}) + "\n" for k in range(n)))
    return root


@pytest.mark.slow
def test_paired_interval_covers_zero_for_identical_rows_and_not_for_empty_training(tmp_path: Path) -> None:
    lab = write_labeled(tmp_path / "lab", n=3)
    empty = write_empty_export(tmp_path / "empty")
    recipe = segmenter_from_dict({**TINY, "steps": 4})
    rows = [
        Row("classical", "Otsu", "classical"),
        Row("empty", "trained on substrate only", "train", recipe, empty),
        Row("empty_again", "the same row again", "train", recipe, empty),
    ]
    scores = run_rows(rows, ImageSet(lab), tmp_path / "rows", seeds=[0, 1])
    assert scores["empty"].shape == (2, 3, 3)  # seeds x images x metrics
    np.testing.assert_array_equal(scores["empty"], scores["empty_again"])  # same recipe, same seeds
    same = compare_to(scores, "empty")["empty_again"]["ap50"]
    assert same["ci_low"] <= 0.0 <= same["ci_high"] and not same["excludes_zero"]
    worse = compare_to(scores, "classical")["empty"]["ap50"]
    assert worse["excludes_zero"] and worse["ci_high"] < 0 and worse["diff"] < -0.5


@pytest.mark.slow
def test_run_comparison_rows_and_outputs(export_dir: Path, tmp_path: Path) -> None:
    lab = write_labeled(tmp_path / "lab", n=3)
    gen = small_generator()
    spec = ComparisonSpec(
        rows=("gan", "uniform", "real", "finetune", "classical"),
        test=ImageSet(lab),
        recipes={"default": segmenter_from_dict(TINY)},
        seeds=(0, 1),
        generator=gen,
        baseline_generator=gen,
        n_images=4,
    )
    res = run_comparison(spec, tmp_path / "cmp")
    assert list(res["rows"]) == ["gan", "uniform", "real", "finetune", "classical"]
    assert res["reference"] == "gan" and res["rows"]["gan"]["vs_gan"] is None
    for name, row in res["rows"].items():
        assert len(row["ap50"]["per_seed"]) == 2 and 0.0 <= row["ap50"]["mean"] <= 1.0
        if name != "gan":
            d = row["vs_gan"]["pq"]
            assert d["ci_low"] <= d["diff"] <= d["ci_high"]
    # the real row is cross-validated: each image is scored by a model that never saw it
    folds = sorted(p.name for p in (tmp_path / "cmp" / "real" / "seed0").iterdir())
    assert folds == ["fold_img0", "fold_img1", "fold_img2"]
    fold = json.loads((tmp_path / "cmp" / "real" / "seed0" / "fold_img0" / "metrics.json").read_text())
    assert [r["stem"] for r in fold["per_image"]] == ["img0"]
    md = (tmp_path / "cmp" / "comparison.md").read_text()
    assert "| DSC | AP50 | PQ | ΔAP50 vs gan [95 % CI] |" in md and " ± " in md
    assert (tmp_path / "cmp" / "comparison.png").read_bytes()[:4] == b"\x89PNG"
    a = read_meta_params(tmp_path / "cmp" / "synthetic_gan")
    b = read_meta_params(tmp_path / "cmp" / "synthetic_uniform")
    assert a != b  # network vs uniform parameters on the same layouts
    again = run_comparison(spec, tmp_path / "cmp")  # every run is reused: same numbers
    assert again["scores"] == res["scores"]


def read_meta_params(folder: Path) -> list[dict]:
    lines = (folder / "metadata.jsonl").read_text().splitlines()
    return [json.loads(line)["params"] for line in lines]
