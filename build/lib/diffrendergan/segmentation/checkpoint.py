"""Load a trained segmenter (``segmenter.ckpt``) safely, with the recipe it was trained with."""

from __future__ import annotations

from pathlib import Path

import torch

from diffrendergan.segmentation.module import SegModule
from diffrendergan.utils.checkpoints import read_checkpoint


def load_segmenter(path: str | Path, device: str | torch.device = "cpu") -> SegModule:
    """The module of a ``segmenter.ckpt`` in eval mode on ``device``; a file that is not a
    segmenter checkpoint is a one-line DataError."""
    ckpt = read_checkpoint(path, "segmenter")
    hp = ckpt["hyper_parameters"]
    # Recipes saved before a decoding key decode as they were trained and scored: argmax cores,
    # no neck cuts.
    recipe = {"core_threshold": None, "split_neck_ratio": 0.0, **hp["recipe"]}
    module = SegModule(recipe, hp.get("train_pixel_size_nm"))
    module.load_state_dict(ckpt["state_dict"])
    return module.to(device).eval()


def load_segmenter_state(path: str | Path) -> dict[str, torch.Tensor]:
    """The network weights of a ``segmenter.ckpt`` (for fine-tuning from it)."""
    ckpt = read_checkpoint(path, "segmenter")
    prefix = "net."
    return {k[len(prefix) :]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
