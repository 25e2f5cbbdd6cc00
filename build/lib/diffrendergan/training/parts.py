"""The GAN's parts, built from the ``model`` config with Hydra's ``instantiate``.

The ``model`` group names its classes (``_target_``): a different discriminator, loss or
optimizer is a YAML change. :class:`GANParts` is what :class:`~diffrendergan.training.gan_module.
GANModule` receives; the module holds only the training loop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
from hydra.utils import instantiate
from torch import nn

from diffrendergan.config import MaterialConfig, RendererConfig
from diffrendergan.errors import ConfigError
from diffrendergan.models.generator import Generator
from diffrendergan.models.topography import Topography
from diffrendergan.schemas import ModelSchema

OptimizerFactory = Callable[..., torch.optim.Optimizer]  # params (or groups) -> optimizer


@dataclass
class GANParts:
    """Built networks, losses and optimizer factories.

    Attributes:
        generator: layout -> rendered image (parameter network + renderer).
        discriminator: (B, 1, H, W) image -> (B, 1, h, w) patch logits.
        d_loss: (real logits, fake logits) -> scalar; g_loss: (fake logits, weight=None) -> scalar.
        optimizer_g, optimizer_d: factories that receive parameters (or parameter groups).
        topography: the learnable size law, or None when the law is fixed.
        grain_discriminator: a second discriminator like ``discriminator`` for grain-centred
            windows, or None when ``model.grain_discriminator.weight`` is 0.
    """

    generator: Generator
    discriminator: nn.Module
    d_loss: Callable[..., torch.Tensor]
    g_loss: Callable[..., torch.Tensor]
    optimizer_g: OptimizerFactory
    optimizer_d: OptimizerFactory
    topography: Topography | None
    grain_discriminator: nn.Module | None = None


def build_parts(material: MaterialConfig, renderer: RendererConfig, model: ModelSchema) -> GANParts:
    """Instantiate every part of ``model`` for this material and renderer."""
    if model.topography.enabled:  # sizes learn through soft silhouettes
        renderer = replace(renderer, geometry_grad=True)
    generator = _build(model.generator)(material=material, renderer=renderer)
    if model.ema_decay > 0:
        generator.enable_ema(model.ema_decay)
    d_loss, g_loss = _build(model.loss)
    grain = model.grain_discriminator
    if grain.weight > 0 and grain.window > material.image_size:
        raise ConfigError(
            "model.grain_discriminator.window",
            f"must be at most the rendered image size ({material.image_size} px), got {grain.window}",
        )
    return GANParts(
        generator=generator,
        discriminator=_build(model.discriminator),
        d_loss=d_loss,
        g_loss=g_loss,
        optimizer_g=_build(model.optimizer_g),
        optimizer_d=_build(model.optimizer_d),
        topography=build_topography(material, model) if model.topography.enabled else None,
        grain_discriminator=_build(model.discriminator) if model.grain_discriminator.weight > 0 else None,
    )


def _build(node: Any) -> Any:
    """``instantiate`` with plain Python arguments (lists, not ListConfig: optimizer state holds
    them, and checkpoints must load with ``weights_only=True``)."""
    return instantiate(asdict(node), _convert_="all")


def build_topography(material: MaterialConfig, model: ModelSchema) -> Topography:
    """The learnable size law, starting from ``model.topography.init`` over the material's law."""
    t = model.topography
    try:
        init = replace(material.size, **(t.init or {}))
    except TypeError as exc:
        raise ConfigError("model.topography.init", f"unknown size-law field: {exc}") from None
    return Topography(material, init_size=init, learn_count=t.learn_count, centre_noise=t.centre_noise)
