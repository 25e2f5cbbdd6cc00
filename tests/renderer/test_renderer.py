"""MicroscopyRenderer end to end on the shipped materials, caching, gradients and config errors."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch
from shipped_configs import material_raw

from diffrendergan.config import RendererConfig, material_from_dict, renderer_from_dict
from diffrendergan.errors import ConfigError
from diffrendergan.rendering.renderer import MicroscopyRenderer
from diffrendergan.scene.layout import sample_layout

MATERIALS = ["tio2", "sio2", "agnw"]
SIZE = 64


def _raw(name: str) -> dict[str, Any]:
    return material_raw(name, image_size=SIZE)


def _setup(name: str, **renderer: Any):
    m = material_from_dict(_raw(name))
    r = MicroscopyRenderer(m, renderer_from_dict(renderer))
    layouts = [sample_layout(m, s) for s in (1, 2)]
    return m, r, layouts


def _unit(r: MicroscopyRenderer, batch: int = 2, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return 0.2 + 0.6 * torch.rand(batch, r.space.dim, generator=g)


@pytest.mark.parametrize("name", MATERIALS)
def test_render_shipped_material(name: str) -> None:
    m, r, layouts = _setup(name)
    assert m.image_size == SIZE
    out = r.render(layouts, _unit(r), torch.Generator().manual_seed(0))
    img = out.image
    assert img.shape == (2, 1, SIZE, SIZE)
    assert torch.isfinite(img).all()
    assert img.min() >= 0 and img.max() <= 1
    for b in range(2):
        assert img[b].std() > 1e-3, "image is constant"
    assert set(out.params) == set(r.space.ranges)
    assert all(v.shape == (2,) for v in out.params.values())
    # Particles and substrate are both visible in the exact masks of the same layouts.
    classes, _ = r.masks(layouts)
    assert classes.shape == (2, SIZE, SIZE)
    assert (classes > 0).any() and (classes == 0).any()


@pytest.mark.parametrize("name", MATERIALS)
def test_render_is_deterministic(name: str) -> None:
    _, r, layouts = _setup(name)
    u = _unit(r)
    a = r.render(layouts, u, torch.Generator().manual_seed(7)).image
    b = r.render(layouts, u, torch.Generator().manual_seed(7)).image
    assert torch.equal(a, b)
    # A fresh renderer (cold cache) renders the same image; another noise seed does not.
    _, r2, layouts2 = _setup(name)
    assert torch.equal(a, r2.render(layouts2, u, torch.Generator().manual_seed(7)).image)
    c = r.render(layouts, u, torch.Generator().manual_seed(8)).image
    assert not torch.equal(a, c)


def test_stem_haadf_renders_with_thickness() -> None:
    raw = _raw("sio2")
    raw["shader"] = "stem_haadf"
    raw["params"] = {"contrast": {"low": 0.4, "high": 0.8}}
    m = material_from_dict(raw)
    r = MicroscopyRenderer(m, RendererConfig())
    layouts = [sample_layout(m, 3)]
    gb = r.gbuffer(layouts)
    assert gb.thickness is not None and gb.thickness.max() > 0
    img = r.render(layouts, _unit(r, batch=1), torch.Generator().manual_seed(0)).image
    assert img.shape == (1, 1, SIZE, SIZE) and torch.isfinite(img).all()
    # Thicker projected mass is brighter.
    inside = gb.thickness[0, 0] > 0
    assert img[0, 0][inside].mean() > img[0, 0][~inside].mean()


def test_gbuffer_cache_is_hit(monkeypatch: pytest.MonkeyPatch) -> None:
    _, r, layouts = _setup("sio2")
    assert len(r._cache) == 0
    first = r.gbuffer(layouts)
    keys = [r.cache_key(lay, 1) for lay in layouts]
    assert list(r._cache) == keys
    cached = {k: r._cache[k] for k in keys}

    def no_rasterization(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("G-buffer was rebuilt instead of read from the cache")

    monkeypatch.setattr(r, "_surfaces", no_rasterization)
    second = r.gbuffer(layouts)
    assert list(r._cache) == keys
    assert all(r._cache[k] is cached[k] for k in keys)  # entries reused, not replaced
    assert torch.equal(first.instance, second.instance)
    assert torch.equal(first.height, second.height)
    # Reversed order is served from the cache too, and reorders the LRU.
    third = r.gbuffer(layouts[::-1])
    assert torch.equal(third.instance, first.instance.flip(0))
    assert list(r._cache) == keys[::-1]


def test_gbuffer_cache_partial_hit_and_bound() -> None:
    m, r, layouts = _setup("sio2")
    r.cache_size = 2
    r.gbuffer(layouts[:1])
    extra = sample_layout(m, 9)
    gb = r.gbuffer([layouts[0], extra, layouts[1]])  # one hit, two misses in one batch
    assert gb.instance.shape == (3, SIZE, SIZE)
    assert len(r._cache) == 2  # bounded: the least recently used entry was evicted
    fresh = MicroscopyRenderer(m, RendererConfig()).gbuffer([extra])
    assert torch.equal(gb.instance[1], fresh.instance[0])


def test_cache_disabled() -> None:
    _, r, layouts = _setup("sio2", cache_fragments=False)
    r.gbuffer(layouts)
    r.gbuffer(layouts)
    assert len(r._cache) == 0


def test_supersampled_render_shape() -> None:
    _, r, layouts = _setup("sio2", supersample=2)
    img = r.render(layouts, _unit(r), torch.Generator().manual_seed(0)).image
    assert img.shape == (2, 1, SIZE, SIZE)
    assert r.gbuffer(layouts).instance.shape == (2, 2 * SIZE, 2 * SIZE)


@pytest.mark.parametrize("name", MATERIALS)
def test_gradient_reaches_unit_parameters(name: str) -> None:
    _, r, layouts = _setup(name)
    u = _unit(r).requires_grad_(True)
    img = r.render(layouts, u, torch.Generator().manual_seed(0)).image
    img.mean().backward()
    assert u.grad is not None and torch.isfinite(u.grad).all()
    nonzero = (u.grad.abs().sum(0) > 0).float().mean().item()
    assert nonzero >= 0.8, dict(zip(r.space.learned, u.grad.abs().sum(0).tolist()))
    # Gain and particle yield brighten the image.
    for p in ("gain", "particle_yield"):
        assert u.grad[:, r.space.learned.index(p)].sum() > 0


# --- bad configuration -------------------------------------------------------------------------


def _expect_config_error(raw: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        m = material_from_dict(raw)
        # Parameter names are checked against the shader once the renderer is built.
        MicroscopyRenderer(m, RendererConfig())
    assert info.value.key == key
    assert str(info.value).startswith(f"{key}:")


def test_unknown_shape_family() -> None:
    raw = _raw("tio2")
    raw["shape"]["family"] = "dodecahedron"
    _expect_config_error(raw, "material.shape.family")


def test_negative_size() -> None:
    raw = _raw("tio2")
    raw["size"]["median_nm"] = -5.0
    _expect_config_error(raw, "material.size.median_nm")


def test_param_range_low_above_high() -> None:
    raw = _raw("tio2")
    raw["params"]["particle_yield"] = {"low": 0.6, "high": 0.1}
    _expect_config_error(raw, "material.params.particle_yield")


def test_unknown_param_name() -> None:
    raw = _raw("tio2")
    raw["params"]["particle_yeild"] = {"low": 0.1, "high": 0.2}
    _expect_config_error(raw, "material.params.particle_yeild")


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("count", "low", 50),  # low > high
        ("placement", "mode", "grid"),
        ("shape", "ico_level", 7),
        ("shape", "bogus_key", 1),
    ],
)
def test_other_bad_material_values(section: str, key: str, value: Any) -> None:
    raw = copy.deepcopy(_raw("tio2"))
    raw[section][key] = value
    _expect_config_error(raw, f"material.{section}.{key}")


def test_renderer_faces_per_pixel_cap() -> None:
    with pytest.raises(ConfigError, match=r"^renderer\.faces_per_pixel:"):
        renderer_from_dict({"faces_per_pixel": 500})
    with pytest.raises(ConfigError, match=r"^renderer\.supersample:"):
        renderer_from_dict({"supersample": 0})
    with pytest.raises(ConfigError, match=r"^renderer\.windowed:"):
        renderer_from_dict({"windowed": "yes"})
    assert renderer_from_dict({"faces_per_pixel": 150}).faces_per_pixel == 150
