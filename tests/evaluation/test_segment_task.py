"""Segmentation evaluation task: train on an export, test on annotated images with a data bar."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
import yaml
from PIL import Image

from diffrendergan.config import material_from_dict, renderer_from_dict
from diffrendergan.export.writer import export_dataset
from diffrendergan.models.generator import Generator
from diffrendergan.tasks.compare import run_comparison
from diffrendergan.tasks.realism import realism_from_folders
from diffrendergan.tasks.segment import classical_baseline, is_synthetic_folder, run_segmentation

ROOT = Path(__file__).resolve().parents[2]
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
    raw = yaml.safe_load((ROOT / "configs/material/sio2.yaml").read_text())
    raw.update(image_size=64, count={"kind": "uniform", "low": 2, "high": 4})
    return Generator(material_from_dict(raw), renderer_from_dict({}))


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("export")
    export_dataset(small_generator(), out, 8, seed=0, batch_size=8, baseline=True, progress=False)
    return out


def test_classical_baseline_on_discs(tmp_path: Path) -> None:
    lab = write_labeled(tmp_path / "lab")
    m = classical_baseline(lab, tmp_path / "out", pixel_size_nm=2.0)
    assert m["ap50"] > 0.8 and m["dsc"] > 0.8
    assert [r["bar_rows"] for r in m["per_image"]] == [BAR, BAR]  # detected, not given
    assert abs(m["gt_mean_diameter_nm"] - 2.0 * 17) < 4  # r=8 discs: ~17 px across
    pred = np.asarray(Image.open(tmp_path / "out" / "predictions" / "img0.png"))
    assert pred.shape == (H, W) and not pred[H - BAR :].any() and pred.max() >= 4
    saved = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert saved["method"] == "otsu_watershed" and "AP50" in saved["definitions"]


def test_run_segmentation_on_export(export_dir: Path, tmp_path: Path) -> None:
    lab = write_labeled(tmp_path / "lab")
    assert is_synthetic_folder(export_dir) and not is_synthetic_folder(lab)
    torch.set_num_threads(2)
    out = tmp_path / "seg"
    m = run_segmentation(export_dir, lab, out, val_dir=lab, max_epochs=1, batch_size=4, progress=False)
    saved = json.loads((out / "metrics.json").read_text())
    for k in KEYS:
        assert 0.0 <= saved[k] <= 1.0, k
        assert saved[k] == m[k]
    assert len(saved["per_image"]) == 2 and saved["train"]["train_kind"] == "synthetic"
    assert "val_dice" in saved["train"]
    for stem in ("img0", "img1"):
        pred = Image.open(out / "predictions" / f"{stem}.png")
        assert pred.size == (W, H) and pred.mode == "I;16"
        assert not np.asarray(pred)[H - BAR :].any()
        ov = Image.open(out / "overlays" / f"{stem}.png")
        assert ov.mode == "RGB" and ov.size == (W, H)
    assert (out / "segmenter.ckpt").is_file()
    assert not [p for p in out.rglob(".*") if p.is_file()]


@pytest.mark.slow
def test_run_segmentation_on_real_folder_and_finetune(export_dir: Path, tmp_path: Path) -> None:
    lab = write_labeled(tmp_path / "lab")
    pre = run_segmentation(export_dir, lab, tmp_path / "pre", max_epochs=1, progress=False)
    m = run_segmentation(
        lab,
        lab,
        tmp_path / "ft",
        max_epochs=1,
        batch_size=2,
        crop_size=64,
        samples_per_image=2,
        init_from=tmp_path / "pre" / "segmenter.ckpt",
        instance_method="watershed",
        progress=False,
    )
    assert pre["train"]["train_kind"] == "synthetic" and m["train"]["train_kind"] == "real"
    assert all(0.0 <= m[k] <= 1.0 for k in KEYS)


def test_realism_from_folders(export_dir: Path, tmp_path: Path) -> None:
    same = realism_from_folders(export_dir, export_dir, out_path=tmp_path / "r.json")
    assert same["swd"] == pytest.approx(0.0, abs=1e-6) and same["hist_w1"] == pytest.approx(0.0)
    lab = write_labeled(tmp_path / "lab")
    diff = realism_from_folders(lab / "images", export_dir, patch_size=64)
    assert diff["swd"] > 0 and diff["hist_w1"] > 0 and diff["n_real_patches"] == 2
    assert set(json.loads((tmp_path / "r.json").read_text())) >= {"swd", "swd_levels", "hist_w1"}


@pytest.mark.slow
def test_run_comparison_rows_and_outputs(tmp_path: Path) -> None:
    from diffrendergan.training.gan_module import GANModule

    raw = yaml.safe_load((ROOT / "configs/material/sio2.yaml").read_text())
    raw.update(image_size=64, count={"kind": "uniform", "low": 2, "high": 4})
    module = GANModule(raw, {})
    ckpt = tmp_path / "gan.ckpt"
    torch.save(
        {
            "state_dict": module.state_dict(),
            "hyper_parameters": dict(module.hparams),
            "pytorch-lightning_version": pl.__version__,
        },
        ckpt,
    )
    lab = write_labeled(tmp_path / "lab")
    seg = {"max_epochs": 1, "limit_train_batches": 1, "crop_size": 64, "samples_per_image": 1}
    res = run_comparison(
        raw, ckpt, lab, tmp_path / "cmp", real_train_dir=lab, n_images=4, seg_kwargs=seg,
        finetune=True, progress=False,
    )  # fmt: skip
    assert list(res["rows"]) == ["a", "b", "c", "d", "classical"]
    for row in res["rows"].values():
        assert all(row[k] is None or 0.0 <= row[k] <= 1.0 for k in ("dsc", "ap50", "pq", "miou"))
    md = (tmp_path / "cmp" / "comparison.md").read_text()
    assert "| DSC | AP50 | PQ | mIoU |" in md and md.count("\n") == 7
    assert (tmp_path / "cmp" / "comparison.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((tmp_path / "cmp" / "comparison.json").read_text())["material"] == "sio2"
    a = read_meta_params(tmp_path / "cmp" / "synthetic_a")
    b = read_meta_params(tmp_path / "cmp" / "synthetic_b")
    assert a != b  # network vs uniform parameters on the same layouts


def read_meta_params(folder: Path) -> list[dict]:
    lines = (folder / "metadata.jsonl").read_text().splitlines()
    return [json.loads(line)["params"] for line in lines]
