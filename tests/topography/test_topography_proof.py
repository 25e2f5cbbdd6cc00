"""Acceptance check of topography learning on data with a known size law (opt-in: ~12 min CPU).

Demo spheres drawn from a lognormal law (median 40 nm, sigma 0.25: mean 41.3 nm); training starts
37 % too large (median 55 nm) and 40 % too wide (sigma 0.35). The issue's criterion: the learned
mean and sigma land within 10 % of the truth. Run with DIFFRENDERGAN_TOPOGRAPHY_PROOF=1.
Last measured (40 epochs): mean 41.05 nm (-0.5 %), sigma 0.278 (+11 %): sigma not yet within 10 %.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import pytorch_lightning as pl
import yaml

from diffrendergan.config import material_from_dict
from diffrendergan.data.datasets import RealPatchDataModule
from diffrendergan.data.demo import ensure_demo
from diffrendergan.data.patches import prepare_patches
from diffrendergan.models.topography import law_summary
from diffrendergan.training.gan_module import GANModule

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        os.environ.get("DIFFRENDERGAN_TOPOGRAPHY_PROOF") != "1",
        reason="opt-in (~12 min on 2 CPU cores): set DIFFRENDERGAN_TOPOGRAPHY_PROOF=1",
    ),
]


def test_learned_size_law_lands_within_10_percent(tmp_path: Path) -> None:
    size = 128
    raw = yaml.safe_load((ROOT / "configs/material/sio2.yaml").read_text())
    raw.update(image_size=size, count={"kind": "uniform", "low": 3, "high": 8})
    raw["size"] = {"kind": "lognormal", "median_nm": 40.0, "sigma": 0.25, "min_nm": 10.0}
    raw["shape"]["ico_level"] = 1
    mat = material_from_dict(raw)
    demo = ensure_demo(mat, tmp_path / "cache", n_unlabeled=16, size=2 * size)
    patches = tmp_path / "patches"
    prepare_patches(demo.unlabeled_dir, patches, size=size, stride=size // 2, pixel_size_nm=mat.pixel_size_nm)
    pl.seed_everything(0)
    dm = RealPatchDataModule(patches, batch_size=4, val_fraction=0.2, seed=0)
    module = GANModule(raw, {"faces_per_pixel": 8}, layout_pool=0, n_eval=8, learn_topography=True,
                       lr_topo=0.01, topo_init={"median_nm": 55.0, "sigma": 0.35})  # fmt: skip
    trainer = pl.Trainer(max_epochs=40, limit_train_batches=10, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, num_sanity_val_steps=0)  # fmt: skip
    trainer.fit(module, datamodule=dm)
    learned = module.topography.summary()
    truth = law_summary(mat.size, mat.count)
    assert abs(learned["mean_size_nm"] / truth["mean_size_nm"] - 1) <= 0.10
    assert abs(learned["sigma"] / truth["sigma"] - 1) <= 0.10
