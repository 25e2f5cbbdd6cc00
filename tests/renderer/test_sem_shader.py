"""The SE shader's grazing limit, recapture and edge-over-grain terms: each does what its
docstring claims, and a checkpoint written before they existed loads with them held at the values
that render as before."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from diffrendergan.noise.detector import DETECTOR_INTRODUCED
from diffrendergan.rendering.gbuffer import GBuffer, build_gbuffer
from diffrendergan.rendering.rasterize import rasterize_windowed
from diffrendergan.rendering.renderer import introduced_held
from diffrendergan.scene.layout import build_particles
from diffrendergan.shading import SHADERS
from diffrendergan.shading.sem import SE_INTRODUCED, SEM_RANGES

TOUCHING = [[17.0, 24.0, 0.0, 16.0], [31.0, 24.0, 0.0, 16.0]]
STACKED = [[17.0, 24.0, 0.0, 16.0], [27.0, 24.0, 10.0, 12.0]]  # the second rests on the first


def _gbuffer(make_material, make_layout, rows: list[list[float]] = TOUCHING) -> GBuffer:
    """Spheres on film (by default two touching ones), 48 x 48 px at 1 nm/px."""
    m = make_material(image_size=48)
    layout = make_layout(rows)
    maps = rasterize_windowed([build_particles(layout, m)], 48, 1.0, thickness=True)
    return build_gbuffer(maps, 1.0, azimuth_deg=90.0, texture_seeds=[0])


def _params(**values: float) -> dict[str, torch.Tensor]:
    """Mid-range SE parameters (B = 1) with a flat-signal baseline: no edge, asymmetry, shadow,
    texture, residue, volume, recapture or grain spread unless given."""
    p = {k: 0.5 * (lo + hi) for k, (lo, hi) in SEM_RANGES.items()}
    p.update(edge_gain=0.0, detector_asymmetry=0.0, shadow_strength=0.0, substrate_texture=0.0)
    p.update(residue_gain=0.0, volume_yield=0.0, occlusion_strength=0.0, grain_spread=0.0)
    p.update(values)
    return {k: torch.tensor([v]) for k, v in p.items()}


def test_grazing_limit_caps_the_secant_law(make_material, make_layout) -> None:
    gb = _gbuffer(make_material, make_layout)
    particle = gb.particle[0, 0] > 0
    tilt = {"particle_yield": 0.4, "tilt_exponent": 1.0}
    steep = SHADERS["sem"](gb, _params(grazing_cos=0.15, **tilt))[0, 0][particle]
    capped = SHADERS["sem"](gb, _params(grazing_cos=0.5, **tilt))[0, 0][particle]
    flat = SHADERS["sem"](gb, _params(grazing_cos=1.0, **tilt))[0, 0][particle]
    assert steep.max() / steep.min() > 5.0  # the old floor: silhouettes ~ (1 / 0.15) x the summit
    assert torch.allclose(capped.max(), torch.tensor(0.4 / 0.5), rtol=1e-5)  # at most 1 / floor
    assert torch.allclose(flat, torch.full_like(flat, 0.4))  # no tilt contrast left


def test_recapture_darkens_by_the_hidden_sky(make_material, make_layout) -> None:
    gb = _gbuffer(make_material, make_layout)
    assert gb.occlusion.max() > 0.2  # the crease and the grains' feet
    open_sky = SHADERS["sem"](gb, _params())
    lost = SHADERS["sem"](gb, _params(occlusion_strength=0.6))
    assert torch.allclose(lost, open_sky * (1.0 - 0.6 * gb.occlusion))
    no_occlusion = replace(gb, occlusion=torch.zeros_like(gb.occlusion))
    assert torch.equal(SHADERS["sem"](no_occlusion, _params(occlusion_strength=0.6)), open_sky)


def test_grain_spread_scales_each_grain_by_its_own_seeded_factor(make_material, make_layout) -> None:
    gb = _gbuffer(make_material, make_layout)
    base = SHADERS["sem"](gb, _params())[0, 0]
    spread = SHADERS["sem"](gb, _params(grain_spread=0.4))[0, 0]
    ratio = spread / base
    factors = []
    for k in (1, 2):
        own = gb.instance[0] == k
        assert torch.allclose(ratio[own], ratio[own][0])  # one factor over the whole grain
        z = gb.grain[0, 0][own][0]
        assert torch.allclose(ratio[own][0], torch.exp(0.4 * z - 0.08))
        factors.append(float(ratio[own][0]))
    assert abs(factors[0] - factors[1]) > 1e-3  # the two grains differ
    assert torch.equal(spread[gb.instance[0] == 0], base[gb.instance[0] == 0])  # film untouched
    again = _gbuffer(make_material, make_layout)
    assert torch.equal(again.grain, gb.grain)  # seeded by the layout


def test_edge_over_grains_keeps_that_share_of_the_edge_effect_over_a_grain(
    make_material, make_layout
) -> None:
    gb = _gbuffer(make_material, make_layout, STACKED)
    over_grain = gb.film_edge_dist > gb.edge_dist
    assert over_grain.sum() > 5
    edge = {"edge_gain": 0.5, "edge_length_nm": 3.0}
    shade = {k: SHADERS["sem"](gb, _params(edge_over_grains=k, **edge)) for k in (0.0, 0.3, 1.0)}
    assert torch.allclose(shade[0.3] - shade[0.0], 0.3 * (shade[1.0] - shade[0.0]), atol=1e-6)
    assert (shade[1.0] - shade[0.0])[over_grain].min() > 0  # the seam loses its edge brightening
    assert torch.equal(shade[1.0][~over_grain], shade[0.0][~over_grain])  # elsewhere nothing changes
    flat = SHADERS["sem"](gb, _params(edge_over_grains=1.0))  # the old edge term, whole
    old_edge = 0.5 * torch.exp(-gb.edge_dist / 3.0) * gb.particle
    assert torch.allclose(shade[1.0] - flat, old_edge, atol=1e-6)


def test_introduced_values_render_as_the_old_shader(make_material, make_layout) -> None:
    """The held values must reproduce the shader as it was: secant floor 0.15, no recapture."""
    gb = _gbuffer(make_material, make_layout)
    p = _params(edge_gain=0.3, volume_yield=0.3, shadow_strength=0.3, **SE_INTRODUCED)
    nz = gb.normal[:, 2:3].clamp(0.15, 1.0)
    old_tilt = nz.reciprocal().pow(p["tilt_exponent"])
    new = SHADERS["sem"](gb, p)
    flat = SHADERS["sem"](gb, {**p, "tilt_exponent": torch.tensor([0.0])})
    yield_ = p["particle_yield"]
    assert torch.allclose(new - flat, gb.particle * yield_ * (old_tilt - 1.0) * _shadow(gb, p), atol=1e-6)


def _shadow(gb: GBuffer, p: dict[str, torch.Tensor]) -> torch.Tensor:
    return 1.0 - p["shadow_strength"] * (1.0 - torch.exp(-gb.shadow / 20.0))


def test_every_introduced_parameter_has_its_place_in_the_arrival_order() -> None:
    for shader in ("sem", "him"):
        arrived = [*SHADERS[shader].introduced, *DETECTOR_INTRODUCED]
        assert sorted(introduced_held(shader)) == sorted(arrived)


@pytest.mark.parametrize(
    "missing",
    [
        ("edge_over_grains",),
        ("residue_coarseness", "edge_over_grains"),
        ("residue_level", "noise_corr_px", "residue_coarseness", "edge_over_grains"),
    ],
    ids=["before-edge-over-grains", "before-residue-coarseness", "before-residue-level"],
)
def test_a_checkpoint_from_before_new_parameters_loads_with_them_held(
    tmp_path: Path, missing: tuple[str, ...]
) -> None:
    """Strip the newest parameters from a checkpoint's network and hyperparameters, as one written
    before they existed: it loads, holds exactly them at the old values and predicts the same."""
    from lightning_checkpoints import save_module_checkpoint

    from diffrendergan.training.gan_module import GANModule
    from diffrendergan.training.load import load_gan_module

    held = dict(list(introduced_held("sem").items())[-len(missing) :])
    assert tuple(held) == missing  # the shader's and the detector's, in the order they arrived
    # A material written before the parameters existed cannot configure them (today's TiO2 sets
    # its own recapture range).
    material = _tio2_small()
    material["params"] = {k: v for k, v in material["params"].items() if k not in held}
    torch.manual_seed(0)
    module = GANModule(
        {**material, "params": {**material["params"], **held}}, {}, {"layout_pool": 2, "n_eval": 2}
    )
    path = save_module_checkpoint(module, tmp_path / "old.ckpt")
    ckpt = torch.load(path, weights_only=True)
    ckpt["hyper_parameters"]["material"] = material  # no mention of the new parameters
    torch.save(ckpt, path)
    loaded = load_gan_module(path).eval()
    space = loaded.generator.space
    assert {n: space.ranges[n].fixed_value for n in held} == {n: e["value"] for n, e in held.items()}
    assert not any(space.ranges[n].learn for n in held)
    assert all(space.ranges[n].learn for n in introduced_held("sem") if n not in held)
    layouts = module.generator.layouts([1, 2])
    module.eval()
    with torch.no_grad():
        a = module.generator(layouts, torch.Generator().manual_seed(0)).image
        b = loaded.generator(layouts, torch.Generator().manual_seed(0)).image
    assert torch.equal(a, b)


def _tio2_small() -> dict:
    from shipped_configs import material_raw

    return material_raw("tio2", image_size=64, count={"kind": "uniform", "low": 2, "high": 3})
