"""Callbacks, loggers and the Trainer of experiments.run, built from their config groups.

``callbacks`` and ``logger`` are maps of named entries with ``_target_`` (``configs/callbacks``,
``configs/logger``); :func:`~diffrendergan.schemas.check_instantiable` checks them before any work
starts. Values only known at run time (the labeled images' appearance, the run's name and config)
are passed here as keyword arguments of ``instantiate``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from diffrendergan.schemas import locate
from diffrendergan.training.callbacks import AtomicCheckpointIO


def _entries(node: DictConfig, out_dir: Path) -> dict[str, DictConfig]:
    """The group's named entries with ``${paths.output_dir}`` bound to ``out_dir`` (so that the
    library works outside a Hydra run, where the run folder is not Hydra's)."""
    bound = OmegaConf.create({"paths": {"output_dir": str(out_dir)}, "group": node})
    return {str(name): bound.group[name] for name in node if bound.group[name] is not None}


def build_callbacks(node: DictConfig, out_dir: Path, runtime: dict[str, dict[str, Any]]) -> list[pl.Callback]:
    """Instantiate every entry of ``callbacks``; ``runtime[name]`` adds keyword arguments."""
    return [instantiate(spec, **runtime.get(name, {})) for name, spec in _entries(node, out_dir).items()]


def build_loggers(node: DictConfig, out_dir: Path, name: str, config: dict[str, Any]) -> list:
    """Instantiate every entry of ``logger``. A W&B logger gets the run's ``name`` and resolved
    ``config``; an offline one sets ``WANDB_MODE=offline`` unless the environment chose a mode."""
    from pytorch_lightning.loggers import WandbLogger

    loggers = []
    for spec in _entries(node, out_dir).values():
        if issubclass(locate(spec._target_), WandbLogger):
            if os.environ.get("WANDB_MODE") is None and spec.get("offline", False):
                os.environ["WANDB_MODE"] = "offline"
            os.environ.setdefault("WANDB_SILENT", "true")
            # (instantiate's own first parameter is called `config`: pass the run's config later)
            loggers.append(instantiate(spec, name=name, _partial_=True)(config=config))
        else:
            loggers.append(instantiate(spec))
    return loggers


def build_trainer(trainer: DictConfig, out_dir: Path, callbacks: list, loggers: list) -> pl.Trainer:
    """The Lightning Trainer of the ``trainer`` group, writing checkpoints atomically."""
    t = OmegaConf.to_container(trainer, resolve=True)
    assert isinstance(t, dict)
    return pl.Trainer(
        default_root_dir=str(out_dir),
        callbacks=callbacks,
        logger=loggers or False,
        plugins=[AtomicCheckpointIO()],
        **t,
    )
