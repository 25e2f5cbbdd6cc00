"""Typed configuration at the library boundary.

Hydra composes plain dicts; :func:`material_from_dict` and :func:`renderer_from_dict` turn them into
frozen dataclasses and validate every value once, raising :class:`ConfigError` with the dotted key.
All lengths are nanometres unless a name says ``_px``.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from diffrendergan.errors import ConfigError
from diffrendergan.params.space import ParamRange, check_domain

SHAPE_FAMILIES = ("sphere", "faceted", "wire", "mesh")
SIZE_LAWS = ("lognormal", "gaussian", "bimodal")
COUNT_LAWS = ("fixed", "uniform", "poisson", "binomial")
PLACEMENTS = ("random", "poisson")
SHADERS = ("sem", "him", "stem_haadf", "principled")


@dataclass(frozen=True)
class ShapeConfig:
    """Particle shape family and its controls.

    sphere: ``roughness`` (relative radial noise). faceted: ``n_facets`` random cutting planes,
    ``rounding`` in [0, 1] (0 = sharp polyhedron, 1 = sphere), ``elongation`` (max aspect ratio),
    ``roughness``. wire: ``aspect`` (length / diameter range max), ``bend`` (max bend angle, rad).
    mesh: ``mesh_paths`` (.obj/.ply), scaled so the equivalent diameter equals the sampled size.
    """

    family: str = "sphere"
    ico_level: int = 2
    roughness: float = 0.0
    n_facets: int = 10
    rounding: float = 0.5
    elongation: float = 1.3
    aspect_min: float = 8.0
    aspect_max: float = 30.0
    bend: float = 0.15
    wire_segments: int = 6
    mesh_paths: tuple[str, ...] = ()


@dataclass(frozen=True)
class SizeLaw:
    """Particle equivalent-diameter law (nm).

    lognormal: ln d ~ N(ln median_nm, sigma). gaussian: N(mean_nm, std_nm).
    bimodal: mixture of N(mean_nm, std_nm) and N(mean2_nm, std2_nm) with weight ``weight`` on the
    second mode. Sizes are clipped to [min_nm, max_nm].
    """

    kind: str = "lognormal"
    median_nm: float = 60.0
    sigma: float = 0.2
    mean_nm: float = 60.0
    std_nm: float = 10.0
    mean2_nm: float = 120.0
    std2_nm: float = 15.0
    weight: float = 0.3
    min_nm: float = 2.0
    max_nm: float = 1e6


@dataclass(frozen=True)
class CountLaw:
    """Particles per image: fixed ``n``, uniform in [low, high], Poisson(mean) clipped to [low, high],
    or binomial: ``n`` slots each occupied with probability ``mean / n`` (a learned count law)."""

    kind: str = "uniform"
    n: int = 20
    low: int = 10
    high: int = 30
    mean: float = 20.0


@dataclass(frozen=True)
class PlacementConfig:
    """Where particles go. ``poisson``: agglomerates grown by touching contact; ``random``: uniform.

    ``stacked`` allows 3-D agglomerates (particles resting on others); otherwise all rest on the
    substrate. ``overlap_tolerance`` is the allowed interpenetration as a fraction of the smaller
    bounding radius. ``margin`` (fraction of the field) lets particles straddle the image border.

    ``guard`` (fraction of the image side, 0 = off) lays the specimen out over a larger field, the
    image plus a band of that width on every side (counts and agglomerates scaled with the area,
    so the count law stays "particles per image area"), and shows the image window at its centre.
    Real patches are crops of larger micrographs, cut through particles at any depth; with the
    field equal to the image, only the ``margin`` lets particles overhang the border, so border
    slivers are rarer than in real crops. A guard at least as wide as the largest particle radius
    makes the window statistically a crop. The layout keeps every particle that reaches into it.
    """

    mode: str = "poisson"
    max_agglomerates: int = 5
    stacked: bool = False
    overlap_tolerance: float = 0.05
    margin: float = 0.05
    guard: float = 0.0
    candidates: int = 64
    max_tries: int = 8


@dataclass(frozen=True)
class MaterialConfig:
    """Everything specific to one specimen type (tio2, sio2, agnw, ...)."""

    name: str
    shader: str
    shape: ShapeConfig
    size: SizeLaw
    count: CountLaw
    placement: PlacementConfig
    params: Mapping[str, ParamRange]
    pixel_size_nm: float = 2.0
    image_size: int = 256
    detector_azimuth_deg: float = 90.0


@dataclass(frozen=True)
class RendererConfig:
    """Rasterization settings. ``windowed`` tests every face turned towards the camera against
    the pixels of its own bounding box only (cost ~ covered area; see
    :mod:`diffrendergan.rendering.rasterize`); false: PyTorch3D, every face against every pixel
    (the reference). ``supersample`` renders at k x resolution and average-pools.
    Soft settings (``blur_px``, ``faces_per_pixel``, ``sigma_px2``) apply in ``geometry_grad``
    mode only: with fixed geometry, hard fragments give exact shading gradients.
    ``raster_device``: ``auto`` rasterizes where the generator lives (or in the training scene
    workers, ``data.scene_workers``), ``cpu`` always on the CPU.
    """

    windowed: bool = True
    supersample: int = 1
    cache_fragments: bool = True
    geometry_grad: bool = False
    blur_px: float = 1.0
    faces_per_pixel: int = 24
    sigma_px2: float | None = None
    min_instance_px: int = 8
    min_background_fraction: float = 0.05
    raster_device: str = "auto"


def _build(cls: type, raw: Mapping[str, Any] | None, key: str) -> Any:
    raw = dict(raw or {})
    names = {f.name: f for f in fields(cls)}
    unknown = sorted(set(raw) - set(names))
    if unknown:
        raise ConfigError(f"{key}.{unknown[0]}", f"unknown key; expected one of {sorted(names)}")
    kwargs = {}
    for name, value in raw.items():
        f = names[name]
        default = f.default if f.default is not f.default_factory else None  # type: ignore[misc]
        if isinstance(default, tuple):
            value = tuple(value or ())
        elif isinstance(default, bool):
            if not isinstance(value, bool):
                raise ConfigError(f"{key}.{name}", f"expected true/false, got {value!r}")
        elif isinstance(default, int | float) and not isinstance(default, bool):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"{key}.{name}", f"expected a number, got {value!r}")
            value = type(default)(value) if isinstance(default, float) else value
        kwargs[name] = value
    return cls(**kwargs)


def _positive(key: str, value: float, allow_zero: bool = False) -> None:
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(
            key, f"expected a {'non-negative' if allow_zero else 'positive'} value, got {value}"
        )


def validate_material(m: MaterialConfig, key: str = "material") -> MaterialConfig:
    if m.shape.family not in SHAPE_FAMILIES:
        raise ConfigError(
            f"{key}.shape.family",
            f"unknown shape family {m.shape.family!r}; expected one of {SHAPE_FAMILIES}",
        )
    if m.shape.family == "mesh" and not m.shape.mesh_paths:
        raise ConfigError(f"{key}.shape.mesh_paths", "shape family 'mesh' needs at least one .obj/.ply path")
    if not 0 <= m.shape.ico_level <= 4:
        raise ConfigError(f"{key}.shape.ico_level", f"expected 0..4, got {m.shape.ico_level}")
    if m.size.kind not in SIZE_LAWS:
        raise ConfigError(
            f"{key}.size.kind", f"unknown size law {m.size.kind!r}; expected one of {SIZE_LAWS}"
        )
    for name in ("median_nm", "mean_nm", "mean2_nm", "min_nm", "max_nm"):
        _positive(f"{key}.size.{name}", getattr(m.size, name))
    for name in ("sigma", "std_nm", "std2_nm"):
        _positive(f"{key}.size.{name}", getattr(m.size, name), allow_zero=True)
    if not 0 <= m.size.weight <= 1:
        raise ConfigError(f"{key}.size.weight", f"expected a fraction in [0, 1], got {m.size.weight}")
    if m.size.min_nm > m.size.max_nm:
        raise ConfigError(f"{key}.size.min_nm", f"min_nm ({m.size.min_nm}) > max_nm ({m.size.max_nm})")
    if m.count.kind not in COUNT_LAWS:
        raise ConfigError(
            f"{key}.count.kind", f"unknown count law {m.count.kind!r}; expected one of {COUNT_LAWS}"
        )
    if m.count.low < 0 or m.count.low > m.count.high:
        raise ConfigError(
            f"{key}.count.low",
            f"expected 0 <= low <= high, got low={m.count.low}, high={m.count.high}",
        )
    _positive(f"{key}.count.n", m.count.n, allow_zero=True)
    if m.count.kind == "binomial" and not 0 <= m.count.mean <= m.count.n:
        raise ConfigError(
            f"{key}.count.mean",
            f"binomial count: expected 0 <= mean <= n, got mean={m.count.mean}, n={m.count.n}",
        )
    if m.placement.mode not in PLACEMENTS:
        raise ConfigError(
            f"{key}.placement.mode",
            f"unknown placement {m.placement.mode!r}; expected one of {PLACEMENTS}",
        )
    if m.placement.max_agglomerates < 1:
        raise ConfigError(f"{key}.placement.max_agglomerates", "expected >= 1")
    _positive(f"{key}.placement.overlap_tolerance", m.placement.overlap_tolerance, allow_zero=True)
    if not 0.0 <= m.placement.guard <= 2.0:
        raise ConfigError(
            f"{key}.placement.guard",
            f"expected 0 <= guard <= 2 (fraction of the image side), got {m.placement.guard}",
        )
    if m.shader not in SHADERS:
        raise ConfigError(f"{key}.shader", f"unknown shader {m.shader!r}; expected one of {SHADERS}")
    _positive(f"{key}.pixel_size_nm", m.pixel_size_nm)
    if m.image_size < 16:
        raise ConfigError(f"{key}.image_size", f"expected >= 16 px, got {m.image_size}")
    _check_param_domains(m, key)
    return m


def _check_param_domains(m: MaterialConfig, key: str) -> None:
    """Every configured range inside its parameter's physical domain (negative blur or noise,
    fractions above 1, ... are refused here, not written to the metadata of an export). Unknown
    names are left to :func:`~diffrendergan.rendering.renderer.param_space_for`, which lists the
    valid ones."""
    from diffrendergan.noise.detector import DETECTOR_DOMAINS
    from diffrendergan.shading import get_shader

    domains = {**get_shader(m.shader).domains, **DETECTOR_DOMAINS}
    for name, r in m.params.items():
        if name in domains:
            check_domain(f"{key}.params.{name}", r, domains[name])


def material_from_dict(raw: Mapping[str, Any], key: str = "material") -> MaterialConfig:
    """Build and validate a :class:`MaterialConfig` from a composed config node."""
    raw = dict(raw)
    for required in ("name", "shader", "params"):
        if required not in raw:
            raise ConfigError(f"{key}.{required}", "missing")
    params: dict[str, ParamRange] = {}
    for pname, spec in dict(raw.pop("params")).items():
        spec = dict(spec)
        try:
            params[pname] = ParamRange(
                low=float(spec["low"]),
                high=float(spec["high"]),
                learn=bool(spec.get("learn", True)),
                value=None if spec.get("value") is None else float(spec["value"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(
                f"{key}.params.{pname}", f"expected {{low, high[, learn, value]}}: {exc}"
            ) from exc
        if params[pname].low > params[pname].high:
            raise ConfigError(
                f"{key}.params.{pname}",
                f"low ({params[pname].low}) must be <= high ({params[pname].high})",
            )
    m = MaterialConfig(
        name=str(raw.pop("name")),
        shader=str(raw.pop("shader")),
        shape=_build(ShapeConfig, raw.pop("shape", None), f"{key}.shape"),
        size=_build(SizeLaw, raw.pop("size", None), f"{key}.size"),
        count=_build(CountLaw, raw.pop("count", None), f"{key}.count"),
        placement=_build(PlacementConfig, raw.pop("placement", None), f"{key}.placement"),
        params=params,
        **{k: raw.pop(k) for k in ("pixel_size_nm", "image_size", "detector_azimuth_deg") if k in raw},
    )
    if raw:
        raise ConfigError(f"{key}.{sorted(raw)[0]}", "unknown key")
    return validate_material(m, key)


# Renderer keys of earlier versions, still found in old checkpoints: ignored with a warning.
_RETIRED_RENDERER_KEYS = {"sigma": "use sigma_px2", "gamma": "colours come from the hard front surface"}


RASTER_DEVICES = ("auto", "cpu")


def renderer_from_dict(raw: Mapping[str, Any] | None, key: str = "renderer") -> RendererConfig:
    raw = dict(raw or {})
    for old, why in _RETIRED_RENDERER_KEYS.items():
        if old in raw:
            raw.pop(old)
            warnings.warn(f"{key}.{old} is no longer used ({why}); ignored", UserWarning, stacklevel=2)
    r = _build(RendererConfig, raw, key)
    if r.supersample < 1:
        raise ConfigError(f"{key}.supersample", f"expected >= 1, got {r.supersample}")
    if not 1 <= r.faces_per_pixel <= 150:
        raise ConfigError(f"{key}.faces_per_pixel", "expected 1..150 (PyTorch3D compile-time cap)")
    _positive(f"{key}.blur_px", r.blur_px, allow_zero=True)
    if r.sigma_px2 is not None:
        _positive(f"{key}.sigma_px2", r.sigma_px2)
    if not 0 <= r.min_background_fraction < 1:
        raise ConfigError(f"{key}.min_background_fraction", "expected a fraction in [0, 1)")
    if r.raster_device not in RASTER_DEVICES:
        raise ConfigError(
            f"{key}.raster_device", f"expected one of {RASTER_DEVICES}, got {r.raster_device!r}"
        )
    return r


__all__ = [
    "CountLaw",
    "MaterialConfig",
    "ParamRange",
    "PlacementConfig",
    "RendererConfig",
    "ShapeConfig",
    "SizeLaw",
    "field",
    "material_from_dict",
    "renderer_from_dict",
]


_ARTICLE = {"Integer": "an integer", "Float": "a number", "Boolean": "true/false", "String": "a string"}
_ARTICLE.update({"int": "an integer", "float": "a number", "bool": "true/false", "str": "a string"})
_CONVERT = re.compile(r"^Value '(?P<v>.*)' of type '\w+' could not be converted to (?P<t>\w+)")
_BOOL = re.compile(r"^Value '(?P<v>.*)' is not a valid bool")
_HINT = re.compile(r"^Value '(?P<v>.*)' of type '\w+' is incompatible with type hint '(?P<t>.*)'")
_NONE = re.compile(r"^Incompatible value 'None' for field of type '(?P<t>\w+)'")
_UNKNOWN = re.compile(r"^Key '(?P<k>[^']+)' not in '\w+'")
_HINT_WORDS = {
    "Optional[Union[int, float]]": "an integer (a number of batches) or a fraction in [0, 1], or null",
    "Union[int, float, NoneType]": "an integer (a number of batches) or a fraction in [0, 1], or null",
}


def _friendly(message: str) -> str:
    """OmegaConf's validation message -> 'expected <type>, got <value>'."""
    if m := _CONVERT.match(message):
        return f"expected {_ARTICLE.get(m['t'], m['t'].lower())}, got {m['v']!r}"
    if m := _BOOL.match(message):
        return f"expected true/false, got {m['v']!r}"
    if m := _HINT.match(message):
        return f"expected {_HINT_WORDS.get(m['t'], m['t'])}, got {m['v']!r}"
    if m := _NONE.match(message):
        return f"expected {_ARTICLE.get(m['t'], m['t'])}, got null"
    if _UNKNOWN.match(message):
        return "unknown key; check the spelling (docs/configuration.md lists the keys)"
    return message


def typed_config(cls: type, raw: Any, key: str) -> Any:
    """Instance of the dataclass ``cls`` from a config node, type-checked by OmegaConf.

    Unknown keys and values of the wrong type (``steps=abc``) become one :class:`ConfigError`
    naming the dotted key and the expected type; range checks are the caller's.
    """
    from omegaconf import DictConfig, OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    node = raw if isinstance(raw, DictConfig) else OmegaConf.create(dict(raw or {}))
    try:
        merged = OmegaConf.merge(OmegaConf.structured(cls), node)
        return OmegaConf.to_object(merged)
    except OmegaConfBaseException as exc:
        sub = getattr(exc, "full_key", None) or getattr(exc, "key", None) or ""
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"{key}.{sub}" if sub else key, _friendly(first)) from None
