"""The segmenter recipe: one typed configuration shared by ``run``, ``segment``, ``compare`` and
``analyze`` (the ``segmenter`` config group), validated once at the boundary.

A *profile* sets the schedule for the hardware: ``cpu`` is short enough for a 3-seed comparison
on two cores, ``gpu`` is a long, nnU-Net-like schedule (poly decay, mixed precision).
``profile: auto`` takes ``gpu`` when CUDA is present. Keys left ``null`` come from the profile;
a value given on the command line wins over it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import torch

from diffrendergan.config import typed_config
from diffrendergan.errors import ConfigError
from diffrendergan.segmentation.representations import DECODERS, MIN_CORE_PX, TARGETS, Representation

PROFILES = ("auto", "cpu", "gpu")
NORMALIZATIONS = ("matched", "percentile", "raw")
LR_SCHEDULES = ("poly", "constant")
PRECISIONS = ("auto", "32", "bf16-mixed", "16-mixed")
# Keys that only change how predictions are decoded or tiled, not the trained network.
DECODE_KEYS = (
    "decoder",
    "min_size_px",
    "core_erode_px",
    "core_threshold",
    "split_neck_ratio",
    "min_seed_px",
    "tile",
    "overlap",
    "tta",
    "accelerator",
    "num_workers",
)


@dataclass
class Schedule:
    """What the hardware can afford: the network's size (encoder, U-Net decoder widths) and how
    long and how hard to train it (optimizer steps, crops per step and their side, learning-rate
    schedule, numeric precision)."""

    encoder: str = "resnet18"
    decoder_channels: list[int] | None = None
    steps: int = 600
    batch_size: int = 8
    crop_size: int = 128
    lr_schedule: str = "poly"
    precision: str = "auto"


# cpu: a 3-seed, 4-row comparison (21 trainings) in under an hour on 2 cores. 8 crops of 128 px
# carry the pixels of 4 crops of 256 px at 0.6x the step time and scored the same (README). A
# RegNetX-200MF encoder with a slim decoder steps in 0.19 s against 0.58 s for resnet18 with smp's
# default decoder; trained on the same GAN export (seed 0, 5 labeled TiO2) it scored AP50 0.51 in
# 144 s against 0.53 in 197 s for resnet18 + slim decoder at 400 steps.
# gpu: resnet18 U-Net, nnU-Net-like length (poly decay over 20k iterations, mixed precision).
PROFILE_SCHEDULES = {
    "cpu": Schedule(
        encoder="tu-regnetx_002",
        decoder_channels=[64, 32, 32, 16, 16],
        steps=600,
        batch_size=8,
        crop_size=128,
        lr_schedule="poly",
        precision="auto",
    ),
    "gpu": Schedule(
        encoder="resnet18",
        decoder_channels=None,
        steps=20_000,
        batch_size=16,
        crop_size=256,
        lr_schedule="poly",
        precision="auto",
    ),
}


def resolve_precision(precision: str, profile: str) -> str:
    """``auto``: 16-bit mixed precision on a GPU; bf16 autocast on a CPU with native bf16 (AMX /
    AVX512-BF16, ~1.8x faster there), else 32-bit (emulated bf16 would be slower)."""
    if precision != "auto":
        return precision
    if profile == "gpu":
        return "16-mixed"
    return "bf16-mixed" if torch.ops.mkldnn._is_mkldnn_bf16_supported() else "32"


@dataclass
class SegmenterConfig:
    """Everything that determines a trained segmenter and how its predictions are decoded.

    Attributes:
        profile: auto | cpu | gpu (see module docstring).
        arch, encoder, encoder_weights: smp model (encoder null = the profile's; weights null =
            random init, no downloads).
        decoder_channels: the U-Net decoder's widths, finest last (null = the profile's: cpu
            64/32/32/16/16, gpu smp's default 256/128/64/32/16); the decoder's high-resolution
            stages dominate a CPU step.
        target, target_width_px, decoder, min_size_px, core_erode_px, core_threshold,
            split_neck_ratio, min_seed_px: the instance representation
            (:class:`~diffrendergan.segmentation.representations.Representation`).
        normalize: intensity convention. ``matched``: synthetic images as rendered, real
            micrographs percentile-stretched (0.5/99.5 %, data bar removed) — the convention the
            GAN's real patches use, so rendered and real images agree. ``percentile``: both sides
            stretched per image. ``raw``: both sides as stored (``/255`` for 8 bit).
        gain_jitter, offset_jitter: per-crop intensity jitter, gain x U(1 -/+ g), offset U(-/+ o).
        separator_weight: cross-entropy weight of class 2 (1 = unweighted).
        dice_weight: weight of the multiclass Dice loss added to the cross-entropy.
        lr: Adam learning rate (peak of the poly schedule).
        steps, batch_size, crop_size, lr_schedule, precision: null = from the profile (crop side:
            a multiple of 32, capped by the image size; precision ``auto`` = by hardware).
        tile, overlap: inference tiles; tile null = the whole image in one pass.
        tta: average the class probabilities over the 8 rotations/flips at inference (8x the
            inference time; see :mod:`diffrendergan.segmentation.tta`).
        accelerator: auto | cpu | gpu.
        num_workers: DataLoader workers.
    """

    profile: str = "auto"
    arch: str = "unet"
    encoder: str | None = None
    encoder_weights: str | None = None
    decoder_channels: list[int] | None = None
    target: str = "bordercore"
    target_width_px: int = 2
    decoder: str | None = None
    min_size_px: int = 10
    core_erode_px: int = 0
    core_threshold: float | None = 0.9
    split_neck_ratio: float = 0.5
    min_seed_px: int = MIN_CORE_PX
    normalize: str = "matched"
    gain_jitter: float = 0.2
    offset_jitter: float = 0.05
    separator_weight: float = 1.0
    dice_weight: float = 1.0
    lr: float = 1e-3
    steps: int | None = None
    batch_size: int | None = None
    lr_schedule: str | None = None
    precision: str | None = None
    crop_size: int | None = None
    tile: int | None = None
    overlap: int = 64
    tta: bool = False
    accelerator: str = "auto"
    num_workers: int = 0

    @property
    def representation(self) -> Representation:
        return Representation(
            self.target,  # type: ignore[arg-type]
            self.target_width_px,
            self.decoder,  # type: ignore[arg-type]
            self.min_size_px,
            self.core_erode_px,
            self.core_threshold,
            self.split_neck_ratio,
            self.min_seed_px,
        )

    def schedule(self) -> Schedule:
        """The profile's schedule with this recipe's explicit values on top."""
        base = PROFILE_SCHEDULES[resolve_profile(self.profile)]
        given = {k: getattr(self, k) for k in asdict(base) if getattr(self, k) is not None}
        return replace(base, **given)

    def resolved(self) -> SegmenterConfig:
        """A copy with the profile applied (every schedule key set): what a checkpoint records."""
        s = self.schedule()
        profile = resolve_profile(self.profile)
        s.precision = resolve_precision(s.precision, profile)
        return replace(self, profile=profile, **asdict(s))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def training_dict(self) -> dict[str, Any]:
        """The resolved keys that determine the trained weights (not the decoding)."""
        return {k: v for k, v in self.resolved().as_dict().items() if k not in DECODE_KEYS}

    def decoding_of(self, other: SegmenterConfig) -> SegmenterConfig:
        """This recipe with ``other``'s decoding and tiling keys (same weights, other decoder)."""
        return replace(self, **{k: getattr(other, k) for k in DECODE_KEYS})


def resolve_profile(profile: str) -> str:
    if profile == "auto":
        return "gpu" if torch.cuda.is_available() else "cpu"
    return profile


def _choice(key: str, value: Any, options: tuple, allow_none: bool = False) -> None:
    if (value is None and allow_none) or value in options:
        return
    raise ConfigError(key, f"expected one of {options}, got {value!r}")


def validate(cfg: SegmenterConfig, key: str = "segmenter") -> SegmenterConfig:
    """Range and choice checks, raising :class:`ConfigError` with the dotted key."""
    _choice(f"{key}.profile", cfg.profile, PROFILES)
    _choice(f"{key}.target", cfg.target, TARGETS)
    _choice(f"{key}.decoder", cfg.decoder, DECODERS, allow_none=True)
    _choice(f"{key}.normalize", cfg.normalize, NORMALIZATIONS)
    _choice(f"{key}.lr_schedule", cfg.lr_schedule, LR_SCHEDULES, allow_none=True)
    _choice(f"{key}.precision", cfg.precision, PRECISIONS, allow_none=True)
    _choice(f"{key}.accelerator", cfg.accelerator, ("auto", "cpu", "gpu"))
    for name, low in (
        ("target_width_px", 1),
        ("min_size_px", 0),
        ("core_erode_px", 0),
        ("num_workers", 0),
        ("overlap", 0),
    ):
        if getattr(cfg, name) < low:
            raise ConfigError(f"{key}.{name}", f"must be >= {low}, got {getattr(cfg, name)}")
    for name in ("steps", "batch_size"):
        value = getattr(cfg, name)
        if value is not None and value < 1:
            raise ConfigError(f"{key}.{name}", f"must be >= 1, got {value}")
    for name in ("gain_jitter", "offset_jitter", "separator_weight", "dice_weight"):
        if getattr(cfg, name) < 0:
            raise ConfigError(f"{key}.{name}", f"must be >= 0, got {getattr(cfg, name)}")
    if cfg.gain_jitter >= 1:
        raise ConfigError(f"{key}.gain_jitter", f"must be < 1 (gain 1 -/+ g), got {cfg.gain_jitter}")
    if not cfg.lr > 0:
        raise ConfigError(f"{key}.lr", f"must be > 0, got {cfg.lr}")
    try:  # the decoding ranges (core_threshold, split_neck_ratio, min_seed_px) are the representation's own
        _ = cfg.representation
    except ValueError as exc:
        name, _, message = str(exc).partition(": ")
        raise ConfigError(f"{key}.{name}", message) from exc
    if cfg.crop_size is not None and (cfg.crop_size < 32 or cfg.crop_size % 32):
        raise ConfigError(f"{key}.crop_size", f"must be a multiple of 32, >= 32, got {cfg.crop_size}")
    if cfg.tile is not None and (cfg.tile < 32 or cfg.tile % 32 or cfg.overlap >= cfg.tile):
        raise ConfigError(
            f"{key}.tile", f"must be a multiple of 32 above overlap ({cfg.overlap}), got {cfg.tile}"
        )
    if cfg.decoder_channels is not None and (
        len(cfg.decoder_channels) != 5 or any(c < 1 for c in cfg.decoder_channels)
    ):
        raise ConfigError(
            f"{key}.decoder_channels", f"expected 5 positive widths (or null), got {cfg.decoder_channels}"
        )
    if cfg.accelerator == "gpu" and not torch.cuda.is_available():
        raise ConfigError(f"{key}.accelerator", "gpu requested but CUDA is not available")
    return cfg


def segmenter_from_dict(raw: Any, key: str = "segmenter") -> SegmenterConfig:
    """Typed, validated recipe from a composed config node (or plain dict)."""
    return validate(typed_config(SegmenterConfig, raw, key), key)
