"""The downstream segmenter: an smp encoder-decoder predicting the 3-class target.

The paper evaluates synthetic data by what a segmenter trained on it scores on real annotated
micrographs; the boundary class lets instances be split by connected components afterwards.
Weights start random by default (``encoder_weights=None``): no downloads, and the comparison
between training sets is not confounded by ImageNet features.
"""

from __future__ import annotations

import numpy as np
import pytorch_lightning as pl
import segmentation_models_pytorch as smp
import torch
import torch.nn.functional as F

from diffrendergan.errors import ConfigError
from diffrendergan.evaluation.tiling import tiled_predict

N_CLASSES = 3
MULTIPLE = 32  # smp encoders downsample 5 times


def _pad_to_multiple(x: torch.Tensor, multiple: int = MULTIPLE) -> torch.Tensor:
    """Reflect-pad the bottom/right of (N, C, H, W) to multiples of ``multiple`` (replicate for
    sides too short to reflect)."""
    h, w = x.shape[-2:]
    ph, pw = -h % multiple, -w % multiple
    if ph == 0 and pw == 0:
        return x
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)


def foreground_dice(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Dice of the particle foreground (class >= 1), the paper's DSC. logits (N, 3, H, W),
    target (N, H, W) -> scalar (1 when both are empty)."""
    pred = logits.argmax(1) >= 1
    gt = target >= 1
    den = pred.sum() + gt.sum()
    if den == 0:
        return torch.ones((), device=logits.device)
    return 2.0 * (pred & gt).sum() / den


class SegModule(pl.LightningModule):
    """3-class segmenter. forward(x (N, 1, H, W), H and W multiples of 32) -> logits (N, 3, H, W).

    Args:
        arch: smp architecture name ("unet", "unetplusplus", "fpn", ...).
        encoder: smp encoder name ("resnet18", ...). encoder_weights: None (random) or a name
            of pretrained weights (needs them in the local torch cache).
        lr: Adam learning rate.
        boundary_weight: cross-entropy weight of the boundary class. The 1-px separating lines are
            a tiny fraction of the pixels, yet they are what splits touching particles into
            instances; without extra weight a short training run never predicts them.
    """

    def __init__(
        self,
        arch: str = "unet",
        encoder: str = "resnet18",
        encoder_weights: str | None = None,
        lr: float = 1e-3,
        boundary_weight: float = 5.0,
    ):
        super().__init__()
        self.save_hyperparameters()
        try:
            self.net = smp.create_model(
                arch,
                encoder_name=encoder,
                encoder_weights=encoder_weights,
                in_channels=1,
                classes=N_CLASSES,
            )
        except (KeyError, ValueError) as exc:
            raise ConfigError("model", f"cannot build {arch}/{encoder}: {exc}") from exc
        self.dice_loss = smp.losses.DiceLoss(mode="multiclass", from_logits=True)
        self.register_buffer(
            "class_weights", torch.tensor([1.0, 1.0, float(boundary_weight)]), persistent=False
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Dice (class balance: particles can be a small area) + cross-entropy (stable pixels)."""
        return self.dice_loss(logits, target) + F.cross_entropy(logits, target, weight=self.class_weights)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int):
        x, y = batch
        loss = self.loss(self(x), y)
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=len(x))
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch  # whole images: pad for the encoder, crop the logits back
        h, w = x.shape[-2:]
        logits = self(_pad_to_multiple(x))[..., :h, :w]
        self.log("val/loss", self.loss(logits, y), batch_size=len(x))
        self.log("val/dice", foreground_dice(logits, y), prog_bar=True, batch_size=len(x))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)

    @torch.no_grad()
    def predict_full(
        self, image: np.ndarray, tile: int = 256, overlap: int = 32, batch_size: int = 8
    ) -> np.ndarray:
        """Class probabilities of a whole image of any size. (H, W) float -> (3, H, W) float32."""
        was_training = self.training
        self.eval()
        try:
            probs = tiled_predict(
                self,
                np.asarray(image, dtype=np.float32),
                tile=tile,
                overlap=overlap,
                multiple=MULTIPLE,
                batch_size=batch_size,
                device=self.device,
            )
        finally:
            self.train(was_training)
        return probs.cpu().numpy()
