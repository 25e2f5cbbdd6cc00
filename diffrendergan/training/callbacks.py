"""Side effects of GAN training, kept out of the LightningModule: image grids, parameter
histograms, learned size laws, atomic checkpoint files. All run on global rank 0 only."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pytorch_lightning as pl
import torch
from PIL import Image
from pytorch_lightning.plugins.io import TorchCheckpointIO
from torchvision.utils import draw_segmentation_masks, make_grid

from diffrendergan.config import SizeLaw
from diffrendergan.data.readers import normalize_image
from diffrendergan.metrics.appearance import (
    CONTACT_KEYS,
    Appearance,
    appearance_difference,
    appearance_stats,
    outline_items,
)
from diffrendergan.scene.laws import sample_sizes
from diffrendergan.utils.io import atomic_write

MASK_COLOURS = [(40, 200, 90), (255, 60, 60)]  # particle (green), boundary (red)


def _grey_rgb(image: np.ndarray) -> torch.Tensor:
    """(H, W) float in [0, 1] -> (3, H, W) uint8."""
    grey = torch.from_numpy(np.clip(image, 0.0, 1.0) * 255.0).to(torch.uint8)
    return grey[None].expand(3, -1, -1).contiguous()


def image_grid(real: np.ndarray, fake: np.ndarray, classes: np.ndarray, pad: int = 4) -> np.ndarray:
    """Rows: real | synthetic | synthetic with mask overlay (particle green, boundary red), as an
    RGB uint8 (3H + 4 pad, nW + (n+1) pad, 3) array on white. real/fake (N, H, W) in [0, 1],
    classes (N, H, W) in {0, 1, 2}. torchvision's make_grid / draw_segmentation_masks."""
    n = min(len(real), len(fake))
    h, w = fake.shape[-2:]
    reals = [_grey_rgb(real[i, :h, :w]) for i in range(n)]
    fakes = [_grey_rgb(fake[i]) for i in range(n)]
    overlays = [
        draw_segmentation_masks(
            f, torch.from_numpy(np.stack([classes[i] == 1, classes[i] == 2])), 0.45, MASK_COLOURS
        )
        for i, f in enumerate(fakes)
    ]
    grid = make_grid(reals + fakes + overlays, nrow=n, padding=pad, pad_value=255)
    return grid.permute(1, 2, 0).numpy()


def _epoch_name(trainer: pl.Trainer) -> str:
    """``initial.png`` for the validation before training, else ``epoch_XXX.png``."""
    if trainer.state.fn == "validate":
        return "initial.png"
    return f"epoch_{trainer.current_epoch:03d}.png"


def save_png(path: Path, array: np.ndarray) -> None:
    atomic_write(path, lambda p: Image.fromarray(array).save(p, format="PNG"))


class ImageGridCallback(pl.Callback):
    """After each validation: ``grids/epoch_XXX.png`` (real | synthetic | mask overlay)."""

    def __init__(self, out_dir: str | Path, n: int = 6):
        self.out_dir = Path(out_dir)
        self.n = n

    @pl.utilities.rank_zero_only
    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: Any) -> None:
        real = pl_module.val_real
        if trainer.sanity_checking or real is None:
            return
        sample = pl_module.eval_sample()
        n = self.n
        grid = image_grid(real[:n, 0].numpy(), sample.fake[:n, 0].numpy(), sample.classes[:n].numpy())
        save_png(self.out_dir / _epoch_name(trainer), grid)
        for logger in trainer.loggers:
            if hasattr(logger, "log_image"):
                logger.log_image(key="samples", images=[grid], step=trainer.global_step)


class ParamHistogramCallback(pl.Callback):
    """After each validation: ``histograms/epoch_XXX.png`` of the learned parameter distributions
    over the evaluation layouts (the paper logs these to see what the generator settled on)."""

    def __init__(self, out_dir: str | Path):
        self.out_dir = Path(out_dir)

    @pl.utilities.rank_zero_only
    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: Any) -> None:
        if trainer.sanity_checking:
            return
        params = pl_module.eval_sample().params
        space = pl_module.generator.space
        names = space.learned
        if not names:
            return
        cols = 4
        rows = (len(names) + cols - 1) // cols
        fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 2.2 * rows), squeeze=False)
        for ax, name in zip(axes.flat, names):
            r = space.ranges[name]
            ax.hist(params[name].numpy(), bins=12, range=(r.low, r.high), color="#4477aa")
            ax.set_title(name, fontsize=8)
            ax.tick_params(labelsize=6)
        for ax in list(axes.flat)[len(names) :]:
            ax.axis("off")
        fig.suptitle(f"learned parameters, epoch {trainer.current_epoch}", fontsize=9)
        fig.tight_layout()
        atomic_write(self.out_dir / _epoch_name(trainer), lambda p: fig.savefig(p, dpi=80, format="png"))
        plt.close(fig)


def render_appearance(images: torch.Tensor, instances: torch.Tensor) -> Appearance:
    """Appearance statistics of renders (N, 1, H, W) with their instance maps (N, H, W), each
    image percentile-stretched like a real micrograph."""
    pairs = (
        (normalize_image(img[0].numpy(), "percentile"), inst.numpy()) for img, inst in zip(images, instances)
    )
    return appearance_stats(pairs)


class AppearanceCallback(pl.Callback):
    """After each validation: the particles' appearance in the evaluation renders (rim -> core
    profile, core/rim, substrate level, edge and core gradients; see
    :mod:`diffrendergan.metrics.appearance`) logged as ``appearance/*``. With a ``reference`` (the
    labeled real images) also the differences ``appearance/diff_*``, which the global realism
    metric hides: particles cover a small part of a patch."""

    def __init__(self, reference: Appearance | None = None):
        self.reference = reference
        self.last: Appearance | None = None

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: Any) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        sample = pl_module.eval_sample()
        self.last = stats = render_appearance(sample.fake, sample.instances)
        metrics = {f"appearance/profile_bin{k}": v for k, v in enumerate(stats.profile)}
        metrics |= {f"appearance/outline{k:+d}": v for k, v in outline_items(stats.outline_profile)}
        keys = ("core_rim", "substrate", "contrast", "rim_gradient", "core_gradient", "grain_cv")
        for key in (*keys, *CONTACT_KEYS):
            metrics[f"appearance/{key}"] = getattr(stats, key)
        if self.reference is not None:
            diff = appearance_difference(self.reference, stats)
            for key in ("profile_max_abs", "outline_max_abs", "substrate", "core_rim", "seam_core"):
                metrics[f"appearance/diff_{key}"] = diff[key]
        finite = {k: float(v) for k, v in metrics.items() if np.isfinite(v)}
        pl_module.log_dict(finite, rank_zero_only=True)


class SizeLawCallback(pl.Callback):
    """With topography learning, after each validation: ``topography/epoch_XXX.png``, the learned
    size distribution (Polyak average) against the starting law and, when known, the true law."""

    def __init__(self, out_dir: str | Path, truth: SizeLaw | None = None):
        self.out_dir = Path(out_dir)
        self.truth = truth

    @pl.utilities.rank_zero_only
    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: Any) -> None:
        topo = pl_module.topography
        if trainer.sanity_checking or topo is None:
            return
        curves = {"start": topo.base_law, "learned": topo.current_law(averaged=True)}
        if self.truth is not None:
            curves["truth"] = self.truth
        samples = {
            k: sample_sizes(v, 4000, torch.Generator().manual_seed(0)).numpy() for k, v in curves.items()
        }
        hi = float(np.percentile(np.concatenate(list(samples.values())), 99.5))
        fig, ax = plt.subplots(figsize=(5, 3))
        colours = {"start": "#bbbbbb", "learned": "#4477aa", "truth": "#ee6677"}
        for k, d in samples.items():
            ax.hist(
                d, bins=60, range=(0, hi), density=True, histtype="step", lw=1.5, color=colours[k], label=k
            )
        ax.set_xlabel("particle size (nm)")
        ax.set_ylabel("density")
        ax.legend(fontsize=7)
        ax.set_title(f"size law, epoch {trainer.current_epoch}", fontsize=9)
        fig.tight_layout()
        atomic_write(self.out_dir / _epoch_name(trainer), lambda p: fig.savefig(p, dpi=80, format="png"))
        plt.close(fig)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints are written to a temporary name and renamed, so a run killed while saving
    never leaves a truncated ``.ckpt`` (Lightning writes in place)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        try:
            torch.save(checkpoint, tmp)
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()


class DDPConsistencyCallback(pl.Callback):
    """After every training epoch under DDP: all ranks must hold identical generator and
    discriminator weights (gradients are all-reduced); a mismatch is a bug and stops the run.
    Writes ``ddp_consistency.json`` with the per-rank checksums (rank 0)."""

    def __init__(self, out_dir: str | Path):
        self.out_dir = Path(out_dir)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: Any) -> None:
        if trainer.world_size < 2:
            return
        local = torch.stack(
            [
                torch.cat([p.detach().flatten().double() for p in m.parameters()]).sum()
                for m in (pl_module.generator, pl_module.discriminator)
            ]
        )
        gathered = pl_module.all_gather(local.to(pl_module.device)).cpu()  # (world, 2)
        same = bool(torch.allclose(gathered, gathered[0:1].expand_as(gathered), rtol=1e-10, atol=1e-8))
        if trainer.is_global_zero:
            from diffrendergan.utils.io import atomic_write_json

            atomic_write_json(
                self.out_dir / "ddp_consistency.json",
                {
                    "epoch": trainer.current_epoch,
                    "world_size": trainer.world_size,
                    "identical": same,
                    "checksums": gathered.tolist(),
                },
            )
        if not same:
            raise RuntimeError(f"DDP ranks diverged: parameter checksums {gathered.tolist()}")
