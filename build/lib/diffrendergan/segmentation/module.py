"""The segmenter network as a LightningModule: an smp encoder-decoder predicting 3 classes.

The module stores its whole recipe in its hyperparameters, so a ``segmenter.ckpt`` knows its
intensity convention, instance representation and inference tiling: whoever loads it
(evaluation, ``experiments.analyze``) predicts exactly as it was trained to.
Weights start random by default (no downloads; comparisons between training sets are not
confounded by ImageNet features).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytorch_lightning as pl
import segmentation_models_pytorch as smp
import torch
import torch.nn.functional as F

from diffrendergan.errors import ConfigError
from diffrendergan.evaluation.tiling import pad_to_multiple, tiled_predict
from diffrendergan.metrics.segmentation import dice
from diffrendergan.segmentation.data import MULTIPLE
from diffrendergan.segmentation.recipe import SegmenterConfig, segmenter_from_dict
from diffrendergan.segmentation.tta import dihedral_mean

N_CLASSES = 3
POLY_EXPONENT = 0.9  # nnU-Net's learning-rate decay


def foreground_dice(logits: torch.Tensor, target: torch.Tensor) -> float:
    """Dice of the particle foreground (class >= 1), the paper's DSC. logits (N, 3, H, W),
    target (N, H, W) -> float (1 when both are empty)."""
    return dice(target >= 1, logits.argmax(1) >= 1)


class SegModule(pl.LightningModule):
    """3-class segmenter. forward(x (N, 1, H, W), sides multiples of 32) -> logits (N, 3, H, W).

    Args:
        recipe: the resolved :class:`SegmenterConfig` as a dict (every schedule key set).
        train_pixel_size_nm: nm per pixel of the training images (None = unknown): new
            micrographs are resampled to it before inference.
    """

    def __init__(self, recipe: dict[str, Any], train_pixel_size_nm: float | None = None):
        super().__init__()
        self.save_hyperparameters()
        self.recipe: SegmenterConfig = segmenter_from_dict(recipe)
        self.train_pixel_size_nm = train_pixel_size_nm
        r = self.recipe
        try:
            extra = {} if r.decoder_channels is None else {"decoder_channels": tuple(r.decoder_channels)}
            self.net = smp.create_model(
                r.arch,
                encoder_name=r.encoder,
                encoder_weights=r.encoder_weights,
                in_channels=1,
                classes=N_CLASSES,
                **extra,
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise ConfigError("segmenter.arch", f"cannot build {r.arch}/{r.encoder}: {exc}") from exc
        self.dice_loss = smp.losses.DiceLoss(mode="multiclass", from_logits=True)
        weights = torch.tensor([1.0, 1.0, float(r.separator_weight)])
        self.register_buffer("class_weights", weights, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Cross-entropy (stable per-pixel signal) + Dice (particles can be a small area)."""
        logits = logits.float()
        ce = F.cross_entropy(logits, target, weight=self.class_weights)
        if self.recipe.dice_weight == 0:
            return ce
        return ce + self.recipe.dice_weight * self.dice_loss(logits, target)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = self.loss(self(x), y)
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=False, batch_size=len(x))
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch  # whole images: pad for the encoder, crop the logits back
        h, w = x.shape[-2:]
        logits = self(pad_to_multiple(x, MULTIPLE))[..., :h, :w]
        self.log("val/loss", self.loss(logits, y), batch_size=len(x))
        self.log("val/dice", foreground_dice(logits, y), prog_bar=True, batch_size=len(x))

    def configure_optimizers(self) -> Any:
        opt = torch.optim.Adam(self.parameters(), lr=self.recipe.lr)
        if self.recipe.lr_schedule != "poly":
            return opt
        total = max(int(self.recipe.steps or 1), 1)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda step: max(1.0 - step / total, 0.0) ** POLY_EXPONENT
        )
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    @torch.no_grad()
    def predict_probs(self, image: np.ndarray, batch_size: int = 8) -> np.ndarray:
        """Class probabilities of a whole image of any size. (H, W) float -> (3, H, W) float32.

        ``recipe.tile`` null runs the whole (padded) image in one pass; otherwise overlapping
        tiles are blended. ``recipe.tta`` averages the 8 symmetries of each tile.
        """
        was_training = self.training
        self.eval()
        try:
            img = np.asarray(image, dtype=np.float32)
            tile = self.recipe.tile or -(-max(img.shape) // MULTIPLE) * MULTIPLE
            overlap = self.recipe.overlap if self.recipe.tile else 0
            predict = dihedral_mean(self) if self.recipe.tta else self
            probs = tiled_predict(
                predict,
                img,
                tile=tile,
                overlap=overlap,
                multiple=MULTIPLE,
                batch_size=batch_size,
                device=self.device,
            )
        finally:
            self.train(was_training)
        return probs.cpu().numpy()
