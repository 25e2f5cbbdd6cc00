"""Typed schemas of the entry points' config groups, checked once before any work starts.

Hydra composes untyped values, so ``data.stride=abc`` or ``trainer.max_epochs=lots`` used to
surface as a traceback deep inside the run (after the data were prepared, or after Lightning's
first validation pass). Each ``check_*`` function here types the keys an entry point reads
(through :func:`diffrendergan.config.typed_config`) and checks their ranges, raising one
:class:`ConfigError` naming the dotted key and what was expected. The composed config itself is
left as it is: the schemas validate, they do not rewrite what the library receives.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from diffrendergan.config import typed_config
from diffrendergan.errors import ConfigError, DataError
from diffrendergan.utils.io import existing_folder, writable_folder

# Choices checked here at the boundary and again by the modules built directly from Python.
D_NORMS = ("instance", "spectral", "none")
LR_DECAYS = ("constant", "linear")

# ------------------------------------------------------------------------------ the schemas


@dataclass
class PatchingSchema:
    """How micrographs are cut into the discriminator's real patches: the keys that ``data``
    (experiments.run) and ``prepare`` (experiments.prepare) share, declared once; both become a
    :class:`~diffrendergan.data.patches.PatchOptions` (``PatchOptions.from_config``)."""

    patch_size: int = 256
    stride: int = 256
    pixel_size_nm: float | None = None
    target_pixel_size_nm: float | None = None
    crop_bottom_px: int | None = None
    page: int = 0
    strict: bool = True


@dataclass
class DataSchema(PatchingSchema):
    """``configs/data/default.yaml`` (experiments.run)."""

    real_dir: str | None = None
    labeled_dir: str | None = None
    batch_size: int = 1
    num_workers: int = 0
    scene_workers: int = 0
    augment: bool = True
    brightness_contrast: float = 0.0
    val_fraction: float = 0.2
    split_seed: int = 0
    demo_images: int = 8


@dataclass
class PrepareDataSchema(PatchingSchema):
    """The ``data`` node of ``configs/prepare.yaml`` (experiments.prepare)."""

    raw_dir: str | None = None
    out_dir: str | None = None


@dataclass
class NeuralShaderSchema:
    """``model.generator.neural_shader``: a CNN on the G-buffer that multiplies the physics signal
    by a learned per-pixel gain (:mod:`diffrendergan.models.neural_shader`); ``channels`` 0 = off."""

    _target_: str = "diffrendergan.models.neural_shader.build_neural_shader"
    channels: int = 0
    layers: int = 3
    max_log_gain: float = 1.0


@dataclass
class GeneratorSchema:
    """``model.generator``: the parameter network, built by ``instantiate`` as a partial that
    receives the material and renderer (see :mod:`diffrendergan.training.parts`)."""

    _target_: str = "diffrendergan.models.generator.Generator"
    _partial_: bool = True
    net: str = "mlp"
    hidden: int = 128
    layers: int = 4
    dropout: float = 0.2
    max_particles: int | None = None
    neural_shader: NeuralShaderSchema = field(default_factory=NeuralShaderSchema)


@dataclass
class DiscriminatorSchema:
    """``model.discriminator`` (PatchGAN)."""

    _target_: str = "diffrendergan.models.discriminator.PatchDiscriminator"
    in_channels: int = 1
    base_filters: int = 64
    n_layers: int = 3
    norm: str = "instance"
    scales: int = 1


@dataclass
class LossSchema:
    """``model.loss``: a callable returning (d_loss, g_loss)."""

    _target_: str = "diffrendergan.models.gan_losses.get_losses"
    name: str = "lsgan"


@dataclass
class OptimizerSchema:
    """``model.optimizer_g`` / ``model.optimizer_d``: an optimizer factory (``_partial_``) that
    receives the parameters."""

    _target_: str = "torch.optim.Adam"
    _partial_: bool = True
    lr: float = 2e-4
    betas: list[float] = field(default_factory=lambda: [0.5, 0.999])


@dataclass
class TopographySchema:
    """``model.topography``: learning the size law (and count) end to end."""

    enabled: bool = False
    learn_count: bool = False
    lr: float = 1e-2
    init: dict[str, Any] | None = None
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    warmup_epochs: int = 0
    centre_noise: bool = True
    average_from: float = 0.5
    report_images: int = 32
    signal: str = "adversarial"
    decay_lr: bool = False


TOPOGRAPHY_SIGNALS = ("adversarial", "quantiles", "granulometry")


@dataclass
class GrainDiscriminatorSchema:
    """``model.grain_discriminator``: a second PatchGAN, like ``discriminator``, on grain-centred
    windows (:mod:`diffrendergan.models.grain_windows`); ``weight`` 0 = off."""

    weight: float = 0.0
    window: int = 48
    min_area_px: int = 150
    per_image: int = 8
    threshold: float | None = None


@dataclass
class ProfileMatchingSchema:
    """``model.profile_matching``: the generator matches the real grains' intensity by distance to
    their outline (:mod:`diffrendergan.models.grain_profile`); ``weight`` 0 = off."""

    weight: float = 0.0
    min_area_px: int = 150
    warmup_epochs: int = 0
    ramp_epochs: int = 0


@dataclass
class QuantileMatchingSchema:
    """``model.quantile_matching``: the renders' grey-level and band-pass quantiles against the real
    training patches' (:mod:`diffrendergan.models.quantile_matching`): ``start_steps`` fit the
    parameter network's output bias before the first GAN step (0 = start at the range midpoints),
    ``weight`` adds the gap to the generator's loss (0 = off)."""

    start_steps: int = 0
    lr: float = 0.05
    batch: int = 8
    weight: float = 0.0


@dataclass
class ModelSchema:
    """``configs/model/gan.yaml``."""

    generator: GeneratorSchema = field(default_factory=GeneratorSchema)
    discriminator: DiscriminatorSchema = field(default_factory=DiscriminatorSchema)
    loss: LossSchema = field(default_factory=LossSchema)
    optimizer_g: OptimizerSchema = field(default_factory=OptimizerSchema)
    optimizer_d: OptimizerSchema = field(default_factory=lambda: OptimizerSchema(lr=1e-4))
    layout_pool: int = 64
    n_eval: int = 16
    ema_decay: float = 0.0
    lr_decay: str = "constant"
    lr_end_factor: float = 0.1
    particle_weight: float = 0.0
    grain_discriminator: GrainDiscriminatorSchema = field(default_factory=GrainDiscriminatorSchema)
    profile_matching: ProfileMatchingSchema = field(default_factory=ProfileMatchingSchema)
    topography: TopographySchema = field(default_factory=TopographySchema)
    quantile_matching: QuantileMatchingSchema = field(default_factory=QuantileMatchingSchema)


# Keys of the model group before it was split into built parts (old name -> new name): a command
# line or config with an old key gets one line naming the new one.
RENAMED_MODEL_KEYS: dict[str, tuple[str, ...]] = {
    "param_net": ("generator.net",),
    "hidden": ("generator.hidden",),
    "layers": ("generator.layers",),
    "dropout": ("generator.dropout",),
    "max_particles": ("generator.max_particles",),
    "loss": ("loss.name",),
    "lr_g": ("optimizer_g.lr",),
    "lr_d": ("optimizer_d.lr",),
    "betas": ("optimizer_g.betas", "optimizer_d.betas"),
    "d_base_filters": ("discriminator.base_filters",),
    "d_layers": ("discriminator.n_layers",),
    "d_norm": ("discriminator.norm",),
    "learn_topography": ("topography.enabled",),
    "learn_count": ("topography.learn_count",),
    "lr_topo": ("topography.lr",),
    "topo_init": ("topography.init",),
    "topo_betas": ("topography.betas",),
    "topo_warmup_epochs": ("topography.warmup_epochs",),
    "topo_centre_noise": ("topography.centre_noise",),
    "topo_average_from": ("topography.average_from",),
    "topo_report_images": ("topography.report_images",),
}


def renamed_key_message(key: str) -> str | None:
    """``model.lr_g`` -> 'renamed to model.optimizer_g.lr ...'; None for keys never renamed."""
    head, _, name = key.lstrip("~+").partition("=")[0].partition(".")
    if head != "model" or name not in RENAMED_MODEL_KEYS:
        return None
    new = " and ".join(f"model.{k}" for k in RENAMED_MODEL_KEYS[name])
    return f"renamed to {new} (README: renamed model keys)"


@dataclass
class TrainerSchema:
    """The Lightning Trainer keys of ``configs/trainer/*.yaml`` that take numbers or flags. The
    trainer group may carry any other Trainer argument (``+trainer.precision=bf16``): only these
    are typed here."""

    accelerator: str | None = None
    max_epochs: int | None = None
    limit_train_batches: int | float | None = None
    limit_val_batches: int | float | None = None
    check_val_every_n_epoch: int | None = None
    log_every_n_steps: int | None = None
    num_sanity_val_steps: int | None = None
    enable_progress_bar: bool | None = None


@dataclass
class ExportSchema:
    """The ``export`` node of ``configs/run.yaml``."""

    enabled: bool = True
    n_images: int = 32
    batch_size: int = 8
    widen: float = 0.0
    checkpoint: str = "best"


EXPORT_CHECKPOINTS = ("best", "last")


@dataclass
class RunSchema:
    """Top-level keys of ``configs/run.yaml``."""

    seed: int = 0
    resume: bool = False


@dataclass
class GenerateSchema:
    """Top-level keys of ``configs/generate.yaml``."""

    checkpoint: str | None = None
    n_images: int = 1000
    seed: int = 0
    batch_size: int = 8
    device: str = "auto"
    baseline: bool | None = None
    widen: float = 0.0
    progress: bool = True
    out_dir: str | None = None


@dataclass
class RealismSchema:
    """Top-level keys of ``configs/realism.yaml``."""

    real_dir: str | None = None
    fake_dir: str | None = None
    patch_size: int | None = None
    crop_bottom_px: int | None = None
    max_patches: int | None = None
    seed: int = 0
    out_dir: str | None = None


@dataclass
class SegmentSchema:
    """Top-level keys of ``configs/segment.yaml`` (the recipe is the ``segmenter`` group's)."""

    train_dir: str | None = None
    test_dir: str | None = None
    val_dir: str | None = None
    init_from: str | None = None
    seed: int = 0
    classical: bool = False
    pixel_size_nm: float | None = None
    crop_bottom_px: int | None = None
    progress: bool = True
    out_dir: str | None = None


@dataclass
class CompareSchema:
    """Top-level keys of ``configs/compare.yaml`` that hold one value (rows, extra_rows and
    recipes are checked by experiments.compare, the recipe by the ``segmenter`` group)."""

    checkpoint: str | None = None
    test_dir: str | None = None
    real_train_dir: str | None = None
    reference: str = "gan"
    seeds: int = 3
    n_images: int = 500
    seed: int = 0
    export_batch_size: int = 8
    pixel_size_nm: float | None = None
    crop_bottom_px: int | None = None
    widen: list[float] = field(default_factory=list)
    progress: bool = True
    out_dir: str | None = None


@dataclass
class AnalyzeSchema:
    """Top-level keys of ``configs/analyze.yaml`` (``segmenter=`` arrives as ``segmenter_path``)."""

    segmenter_path: str | None = None
    input_dir: str | None = None
    labels_dir: str | None = None
    pixel_size_nm: float | None = None
    crop_bottom_px: int | None = None
    include_border: bool = False
    strict: bool = False
    device: str = "auto"
    tta: bool | None = None
    decoding: dict[str, Any] = field(default_factory=dict)
    n_boot: int = 2000
    seed: int = 0
    law_images: int = 256
    out_dir: str | None = None


# ---------------------------------------------------------------------------- typing helper


def _plain(value: Any) -> Any:
    """Config nodes -> resolved plain containers; anything else as it is."""
    if OmegaConf.is_config(value):
        return OmegaConf.to_container(value, resolve=True)
    return dict(value) if isinstance(value, dict) else value


def _value(node: Any, k: str) -> Any:
    if isinstance(node, DictConfig) and OmegaConf.is_missing(node, k):
        return "???"  # typed_config reports it as a missing mandatory value
    return _plain(node[k])


def typed(cls: type, node: Any, key: str, subset: bool = False) -> Any:
    """``cls`` built from ``node`` (a config node or dict) with one friendly :class:`ConfigError`
    for a value of the wrong type. ``subset``: only the keys ``cls`` declares are read (for nodes
    that hold other keys as well, such as the top level of a config or the trainer group).
    ``key`` is the node's dotted path ("" for the top level)."""
    names = {f.name for f in fields(cls)}
    if subset:  # read only the declared keys: the rest may not even resolve outside a Hydra run
        raw = {k: _value(node, k) for k in names if k in node}
    else:
        raw = _plain(node) or {}
        unknown = sorted(set(raw) - names)
        if unknown:
            where = f"{key}.{unknown[0]}" if key else str(unknown[0])
            raise ConfigError(where, f"unknown key; expected one of {sorted(names)}")
    try:
        return typed_config(cls, raw, key or "_")
    except ConfigError as exc:
        sub = exc.key.removeprefix("_.").removeprefix("_") if not key else exc.key
        message = str(exc).split(": ", 1)[1] if ": " in str(exc) else str(exc)
        raise ConfigError(sub or key, message) from None


# --------------------------------------------------------------------------- range checks


def at_least(key: str, value: int | float | None, low: int | float, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if value is None or value < low:
        extra = " (or null)" if allow_none else ""
        raise ConfigError(key, f"expected >= {low}{extra}, got {value}")


def positive(key: str, value: float | None, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if value is None or not value > 0:
        raise ConfigError(key, f"expected a positive number{' (or null)' if allow_none else ''}, got {value}")


def fraction(key: str, value: float, upper_open: bool = False) -> None:
    if not (0.0 <= value < 1.0 if upper_open else 0.0 <= value <= 1.0):
        raise ConfigError(key, f"expected a fraction in [0, 1{')' if upper_open else ']'}, got {value}")


def _check_patching(d: Any, key: str) -> None:
    """Keys shared by the data groups of run and prepare."""
    at_least(f"{key}.patch_size", d.patch_size, 16)
    at_least(f"{key}.stride", d.stride, 1)
    positive(f"{key}.pixel_size_nm", d.pixel_size_nm, allow_none=True)
    positive(f"{key}.target_pixel_size_nm", d.target_pixel_size_nm, allow_none=True)
    at_least(f"{key}.crop_bottom_px", d.crop_bottom_px, 0, allow_none=True)


def check_data(node: Any, key: str = "data") -> DataSchema:
    d = typed(DataSchema, node, key)
    _check_patching(d, key)
    at_least(f"{key}.batch_size", d.batch_size, 1)
    at_least(f"{key}.num_workers", d.num_workers, 0)
    at_least(f"{key}.scene_workers", d.scene_workers, 0)
    at_least(f"{key}.brightness_contrast", d.brightness_contrast, 0.0)
    fraction(f"{key}.val_fraction", d.val_fraction, upper_open=True)
    at_least(f"{key}.split_seed", d.split_seed, 0)
    at_least(f"{key}.demo_images", d.demo_images, 1)
    return d


def check_prepare_data(node: Any, key: str = "data") -> PrepareDataSchema:
    d = typed(PrepareDataSchema, node, key)
    _check_patching(d, key)
    return d


def _betas(key: str, betas: list[float]) -> None:
    if len(betas) != 2 or not all(0.0 <= b < 1.0 for b in betas):
        raise ConfigError(key, f"expected two Adam betas in [0, 1), got {betas}")


def check_model(node: Any, key: str = "model") -> ModelSchema:
    from diffrendergan.models.gan_losses import GAN_LOSSES
    from diffrendergan.models.param_net import PARAM_NETS

    for old in node or {}:  # ("loss" is both an old key and a new node: a node is not old)
        message = renamed_key_message(f"{key}.{old}")
        if message and not isinstance(_plain(node[old]), dict):
            raise ConfigError(f"{key}.{old}", message)
    m = typed(ModelSchema, node, key)
    g, d, t = m.generator, m.discriminator, m.topography
    if g.net not in PARAM_NETS:
        raise ConfigError(f"{key}.generator.net", f"expected one of {sorted(PARAM_NETS)}, got {g.net!r}")
    if m.loss.name not in GAN_LOSSES:
        raise ConfigError(f"{key}.loss.name", f"expected one of {sorted(GAN_LOSSES)}, got {m.loss.name!r}")
    for name, value in (
        ("generator.hidden", g.hidden),
        ("generator.layers", g.layers),
        ("discriminator.base_filters", d.base_filters),
        ("discriminator.n_layers", d.n_layers),
        ("discriminator.scales", d.scales),
        ("n_eval", m.n_eval),
        ("topography.report_images", t.report_images),
    ):
        at_least(f"{key}.{name}", value, 1)
    at_least(f"{key}.generator.max_particles", g.max_particles, 1, allow_none=True)
    at_least(f"{key}.generator.neural_shader.channels", g.neural_shader.channels, 0)
    at_least(f"{key}.generator.neural_shader.layers", g.neural_shader.layers, 1)
    positive(f"{key}.generator.neural_shader.max_log_gain", g.neural_shader.max_log_gain)
    fraction(f"{key}.generator.dropout", g.dropout, upper_open=True)
    for name, opt in (("optimizer_g", m.optimizer_g), ("optimizer_d", m.optimizer_d)):
        positive(f"{key}.{name}.lr", opt.lr)
        _betas(f"{key}.{name}.betas", opt.betas)
    positive(f"{key}.topography.lr", t.lr)
    _betas(f"{key}.topography.betas", t.betas)
    at_least(f"{key}.layout_pool", m.layout_pool, -1)
    at_least(f"{key}.topography.warmup_epochs", t.warmup_epochs, 0)
    fraction(f"{key}.topography.average_from", t.average_from)
    fraction(f"{key}.ema_decay", m.ema_decay, upper_open=True)
    at_least(f"{key}.particle_weight", m.particle_weight, 0.0)
    grain = m.grain_discriminator
    at_least(f"{key}.grain_discriminator.weight", grain.weight, 0.0)
    for name in ("window", "min_area_px", "per_image"):
        at_least(f"{key}.grain_discriminator.{name}", getattr(grain, name), 1)
    if grain.threshold is not None:
        fraction(f"{key}.grain_discriminator.threshold", grain.threshold)
    at_least(f"{key}.profile_matching.weight", m.profile_matching.weight, 0.0)
    at_least(f"{key}.profile_matching.min_area_px", m.profile_matching.min_area_px, 1)
    at_least(f"{key}.profile_matching.warmup_epochs", m.profile_matching.warmup_epochs, 0)
    at_least(f"{key}.profile_matching.ramp_epochs", m.profile_matching.ramp_epochs, 0)
    q = m.quantile_matching
    at_least(f"{key}.quantile_matching.start_steps", q.start_steps, 0)
    at_least(f"{key}.quantile_matching.batch", q.batch, 1)
    positive(f"{key}.quantile_matching.lr", q.lr)
    at_least(f"{key}.quantile_matching.weight", q.weight, 0.0)
    if t.signal not in TOPOGRAPHY_SIGNALS:
        expected = f"expected one of {TOPOGRAPHY_SIGNALS}, got {t.signal!r}"
        raise ConfigError(f"{key}.topography.signal", expected)
    if t.enabled and t.signal == "quantiles" and q.weight == 0:
        raise ConfigError(
            f"{key}.topography.signal",
            "'quantiles' learns the law from the quantile gap: set model.quantile_matching.weight > 0",
        )
    if d.norm not in D_NORMS:
        raise ConfigError(f"{key}.discriminator.norm", f"expected one of {D_NORMS}, got {d.norm!r}")
    if m.lr_decay not in LR_DECAYS:
        raise ConfigError(f"{key}.lr_decay", f"expected one of {LR_DECAYS}, got {m.lr_decay!r}")
    if not 0.0 < m.lr_end_factor <= 1.0:
        raise ConfigError(f"{key}.lr_end_factor", f"expected a fraction in (0, 1], got {m.lr_end_factor}")
    return m


def _limit(key: str, value: int | float | None) -> None:
    if value is None:
        return
    if isinstance(value, float) and not 0.0 <= value <= 1.0:
        raise ConfigError(key, f"expected a fraction in [0, 1] or a whole number of batches, got {value}")
    if isinstance(value, int) and value < 0:
        raise ConfigError(key, f"expected >= 0 batches, got {value}")


ACCELERATORS = ("auto", "cpu", "gpu", "cuda")


def _accelerator(key: str, value: str | None) -> None:
    """A Lightning accelerator this machine has: an unknown one, or the GPU without CUDA, fails
    here in one line rather than as a traceback from the Trainer after the data were prepared."""
    if value is None:
        return
    if str(value).lower() not in ACCELERATORS:
        raise ConfigError(key, f"expected one of {ACCELERATORS}, got {value!r}")
    import torch

    if str(value).lower() in ("gpu", "cuda") and not torch.cuda.is_available():
        raise ConfigError(key, f"{value!r} asked for, but torch sees no CUDA device (use cpu or auto)")


def check_trainer(node: Any, key: str = "trainer") -> TrainerSchema:
    t = typed(TrainerSchema, node, key, subset=True)
    _accelerator(f"{key}.accelerator", t.accelerator)
    at_least(f"{key}.max_epochs", t.max_epochs, -1, allow_none=True)
    _limit(f"{key}.limit_train_batches", t.limit_train_batches)
    _limit(f"{key}.limit_val_batches", t.limit_val_batches)
    at_least(f"{key}.check_val_every_n_epoch", t.check_val_every_n_epoch, 1, allow_none=True)
    at_least(f"{key}.log_every_n_steps", t.log_every_n_steps, 1, allow_none=True)
    at_least(f"{key}.num_sanity_val_steps", t.num_sanity_val_steps, -1, allow_none=True)
    return t


def locate(target: str) -> Any:
    """The object a ``_target_`` names (``package.module.Name``). Hydra's ``get_object`` logs a
    multi-line error before raising; this one only raises."""
    module, _, name = target.rpartition(".")
    if not module:
        raise ValueError("expected a dotted path module.Name")
    return getattr(importlib.import_module(module), name)


def check_instantiable(node: Any, key: str) -> None:
    """A group of named ``_target_`` entries (``callbacks``, ``logger``): every entry is a mapping
    whose ``_target_`` imports, so a misspelt class fails now, not after the data are prepared."""
    for name in node or {}:
        entry = OmegaConf.select(node, str(name), throw_on_resolution_failure=False)
        if entry is None:  # dropped with `callbacks.<name>=null`
            continue
        target = entry.get("_target_") if isinstance(entry, DictConfig) else None
        if not isinstance(target, str):
            raise ConfigError(f"{key}.{name}", "expected a mapping with _target_: <module.Class>")
        try:
            locate(target)
        except (ImportError, AttributeError, ValueError) as exc:
            reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
            raise ConfigError(f"{key}.{name}._target_", f"cannot import {target!r} ({reason})") from None


def check_labeled_dir(value: object) -> Path | None:
    """``data.labeled_dir``: None, or an existing folder with images/ and masks/ (checked before
    any training, not when the evaluation starts after it)."""
    if value in (None, ""):
        return None
    path = existing_folder("data.labeled_dir", value, "a folder with images/ and masks/")
    missing = [sub for sub in ("images", "masks") if not (path / sub).is_dir()]
    if missing:
        raise DataError(
            path,
            f"no {' or '.join(s + '/' for s in missing)} subfolder; data.labeled_dir expects annotated "
            "micrographs in images/ and their masks in masks/",
        )
    return path


def check_real_dir(value: object) -> Path:
    """``data.real_dir``: an existing folder of micrographs or of prepared patches."""
    return existing_folder("data.real_dir", value, "a folder of micrographs or prepared patches")


def check_run(cfg: DictConfig) -> None:
    """Every typed group of experiments.run (data, model, trainer, export, top level) and its
    folders: data.real_dir and data.labeled_dir exist, paths.cache_dir can be written."""
    typed(RunSchema, cfg, "", subset=True)
    check_instantiable(cfg.get("callbacks"), "callbacks")
    check_instantiable(cfg.get("logger"), "logger")
    check_data(cfg.data)
    check_model(cfg.model)
    check_trainer(cfg.trainer)
    e = typed(ExportSchema, cfg.export, "export")
    at_least("export.n_images", e.n_images, 1)
    at_least("export.batch_size", e.batch_size, 1)
    fraction("export.widen", e.widen)
    if e.checkpoint not in EXPORT_CHECKPOINTS:
        raise ConfigError("export.checkpoint", f"expected one of {EXPORT_CHECKPOINTS}, got {e.checkpoint!r}")
    if cfg.data.real_dir not in (None, ""):
        check_real_dir(cfg.data.real_dir)
    check_labeled_dir(cfg.data.labeled_dir)
    writable_folder("paths.cache_dir", cfg.paths.cache_dir)


def check_generate(cfg: DictConfig) -> GenerateSchema:
    g = typed(GenerateSchema, cfg, "", subset=True)
    fraction("widen", g.widen)
    at_least("n_images", g.n_images, 1)
    at_least("batch_size", g.batch_size, 1)
    return g


def check_realism(cfg: DictConfig) -> RealismSchema:
    r = typed(RealismSchema, cfg, "", subset=True)
    at_least("patch_size", r.patch_size, 16, allow_none=True)
    at_least("crop_bottom_px", r.crop_bottom_px, 0, allow_none=True)
    at_least("max_patches", r.max_patches, 1, allow_none=True)
    return r


def _check_sizes(opts: Any) -> None:
    """pixel_size_nm and crop_bottom_px of an entry point that scores annotated images."""
    positive("pixel_size_nm", opts.pixel_size_nm, allow_none=True)
    at_least("crop_bottom_px", opts.crop_bottom_px, 0, allow_none=True)


def check_segment(cfg: DictConfig) -> SegmentSchema:
    s = typed(SegmentSchema, cfg, "", subset=True)
    _check_sizes(s)
    return s


def check_compare(cfg: DictConfig) -> CompareSchema:
    c = typed(CompareSchema, cfg, "", subset=True)
    _check_sizes(c)
    for name in ("seeds", "n_images", "export_batch_size"):
        at_least(name, getattr(c, name), 1)
    for k, w in enumerate(c.widen):
        fraction(f"widen[{k}]", w)
    return c


def check_analyze(cfg: DictConfig) -> AnalyzeSchema:
    from diffrendergan.segmentation.recipe import DECODE_KEYS, segmenter_from_dict

    a = typed(AnalyzeSchema, cfg, "", subset=True)
    _check_sizes(a)
    at_least("n_boot", a.n_boot, 0)
    at_least("law_images", a.law_images, 1)
    unknown = sorted(set(a.decoding) - set(DECODE_KEYS))
    if unknown:
        raise ConfigError(
            f"decoding.{unknown[0]}", f"not a decode-only segmenter key; expected one of {DECODE_KEYS}"
        )
    segmenter_from_dict(a.decoding, "decoding")  # types and ranges of the given keys
    return a
