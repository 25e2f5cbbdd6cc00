"""The run's checkpoint callbacks, as configured: the best realism is kept, and ``last.ckpt`` is the
last epoch even when that epoch is not the best (what ``resume=true`` must continue from)."""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from lightning_checkpoints import ROOT
from omegaconf import OmegaConf
from torch.utils.data import DataLoader, TensorDataset


class _Worsening(pl.LightningModule):
    """A tiny model whose logged val/swd rises every epoch, so epoch 0 stays the best."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)

    def training_step(self, batch: list[torch.Tensor], _: int) -> torch.Tensor:
        return self.layer(batch[0]).pow(2).mean()

    def validation_step(self, batch: list[torch.Tensor], _: int) -> None:
        self.log("val/swd", float(self.current_epoch + 1))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.01)


def _checkpoint_callbacks(out_dir: Path) -> list[pl.Callback]:
    cfg = OmegaConf.load(ROOT / "configs" / "callbacks" / "default.yaml")
    cfg = OmegaConf.merge({"paths": {"output_dir": str(out_dir)}}, {"callbacks": cfg})
    return [instantiate(cfg.callbacks[name]) for name in ("checkpoint", "last_checkpoint")]


def test_last_ckpt_is_the_last_epoch_when_the_best_is_an_earlier_one(tmp_path: Path) -> None:
    data = DataLoader(TensorDataset(torch.randn(4, 2)), batch_size=2)
    trainer = pl.Trainer(
        max_epochs=3,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=_checkpoint_callbacks(tmp_path),
    )
    trainer.fit(_Worsening(), data, data)
    ckpts = tmp_path / "checkpoints"
    assert sorted(p.name for p in ckpts.iterdir()) == ["epoch000-swd1.0.ckpt", "last.ckpt"]
    assert torch.load(ckpts / "last.ckpt", weights_only=False)["epoch"] == 2
    assert trainer.checkpoint_callback.best_model_path.endswith("epoch000-swd1.0.ckpt")
