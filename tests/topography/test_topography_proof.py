"""Topography learning on data with a known size law (one training run shared: 400 GAN steps
through the soft rasterizer, 3.2 min on 2 CPU cores on a fresh clone, 2026-12-04, 8.9 min on a
slow machine; the slowest test of the suite).

Demo spheres drawn from a lognormal law (median 40 nm, sigma 0.25: mean 41.3 nm); training starts
33 % too large (mean 58 nm, median 55 nm) and 40 % too wide (sigma 0.35). The issue's criterion:
learned mean and sigma within 10 % of the truth. The demo micrographs are windows of a larger
specimen and the patches crops of them, so the generator renders windows too (``placement.guard``);
without it the border-cut particles it cannot draw bias the law (mean +27 %, sigma +13 % in one run).
Measured with the guard for five seeds (tail average over epochs 20-39): mean +0.9 / -2.0 / -0.2 /
+1.9 / -3.1 %, sigma +4.0 / -8.4 / -0.5 / +6.6 / +0.2 %.
"""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
from shipped_configs import material_raw

from diffrendergan.config import material_from_dict
from diffrendergan.data.datasets import RealPatchDataModule
from diffrendergan.data.demo import ensure_demo
from diffrendergan.data.patches import PatchOptions, prepare_patches
from diffrendergan.models.topography import law_summary
from diffrendergan.rendering.renderer import introduced_held
from diffrendergan.training.gan_module import GANModule

START = {"median_nm": 55.0, "sigma": 0.35}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, dict]:
    """(learned, truth) summaries after 40 epochs x 10 batches of 4 (128-px demo patches)."""
    tmp = tmp_path_factory.mktemp("topography_proof")
    size = 128
    raw = material_raw("sio2", image_size=size, count={"kind": "uniform", "low": 3, "high": 8})
    raw["size"] = {"kind": "lognormal", "median_nm": 40.0, "sigma": 0.25, "min_nm": 10.0}
    raw["shape"]["ico_level"] = 1
    # The demo renders without the SE and noise terms added on 2026-12-04 (its truth holds them at
    # the values that switch them off): held there, this measures the law, not 400 steps of learning three
    # more nuisance parameters (left free, sigma came out +10.2 % in one run).
    raw["params"] = {**raw.get("params", {}), **introduced_held(raw["shader"])}
    mat = material_from_dict(raw)
    demo = ensure_demo(mat, tmp / "cache", n_unlabeled=16, size=2 * size)
    raw["placement"]["guard"] = 0.25  # the patches are crops: render windows of a larger specimen
    patches = tmp / "patches"
    opts = PatchOptions(size=size, stride=size // 2, pixel_size_nm=mat.pixel_size_nm)
    prepare_patches(demo.unlabeled_dir, patches, opts)
    pl.seed_everything(0)
    dm = RealPatchDataModule(patches, batch_size=4, val_fraction=0.2, seed=0)
    module = GANModule(raw, {"faces_per_pixel": 8}, {"layout_pool": 0, "n_eval": 8,
                       "topography": {"enabled": True, "lr": 0.01, "init": START}})  # fmt: skip
    trainer = pl.Trainer(max_epochs=40, limit_train_batches=10, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, num_sanity_val_steps=0)  # fmt: skip
    trainer.fit(module, datamodule=dm)
    return module.topography.summary(), law_summary(mat.size, mat.count)


def test_learned_mean_size_and_sigma_within_10_percent_of_the_truth(fitted) -> None:
    learned, truth = fitted
    assert abs(learned["mean_size_nm"] / truth["mean_size_nm"] - 1) <= 0.10
    assert abs(learned["sigma"] / truth["sigma"] - 1) <= 0.10
