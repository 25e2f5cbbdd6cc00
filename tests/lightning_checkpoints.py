"""Checkpoints written the way training writes them, without training (for loading, export and
error-path tests)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def save_module_checkpoint(module, path: Path) -> Path:
    """A LightningModule written the way training writes it (a Lightning checkpoint with its
    hyperparameters), without a training step."""
    import pytorch_lightning as pl

    trainer = pl.Trainer(
        accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False
    )
    trainer.strategy.connect(module)
    trainer.save_checkpoint(path)
    return path


def save_gan_checkpoint(path: Path, material: str = "sio2", image_size: int = 64, **material_over) -> Path:
    """An untrained GAN checkpoint: enough to load, export and fingerprint without a training run."""
    import torch
    from shipped_configs import material_raw, renderer_raw

    from diffrendergan.training.gan_module import GANModule

    count = {"kind": "uniform", "low": 2, "high": 4}
    raw = material_raw(material, image_size=image_size, count=count, **material_over)
    torch.manual_seed(0)
    return save_module_checkpoint(GANModule(raw, renderer_raw(), {"layout_pool": 2, "n_eval": 2}), path)
