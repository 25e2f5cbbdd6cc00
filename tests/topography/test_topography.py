"""Topography learning mechanics: reparameterised sizes, gradients through soft coverage."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import pytorch_lightning as pl
import torch
from shipped_configs import material_raw

from diffrendergan.config import RendererConfig, material_from_dict
from diffrendergan.data.scenes import SceneBatch
from diffrendergan.errors import ConfigError
from diffrendergan.models.generator import Generator
from diffrendergan.models.quantile_matching import CALIBRATION_SEED_BASE, band_quantiles
from diffrendergan.models.topography import Topography, law_summary
from diffrendergan.scene.layout import field_material
from diffrendergan.training.gan_module import GANModule


def _raw(size: int = 64) -> dict:
    raw = material_raw("sio2", image_size=size, count={"kind": "uniform", "low": 2, "high": 4})
    raw["size"] = {"kind": "lognormal", "median_nm": 20.0, "sigma": 0.2, "min_nm": 5.0}
    raw["shape"]["ico_level"] = 1
    return raw


def _model(**topography) -> dict:
    """A small model config that learns the size law with ``topography`` settings."""
    return {"layout_pool": 0, "n_eval": 2, "topography": {"enabled": True, **topography}}


def test_reparameterised_sizes_equal_layout_sizes() -> None:
    mat = material_from_dict(_raw())
    topo = Topography(mat, init_size=replace(mat.size, median_nm=26.0), learn_count=False)
    lay = topo.layouts([3])[0]
    sizes = topo.sizes(lay)
    assert torch.allclose(sizes.detach(), lay.xyzs[:, 3], rtol=1e-5)
    sizes.sum().backward()
    assert topo.loc.grad is not None and float(topo.loc.grad) > 0


def test_gradients_reach_size_law_and_count() -> None:
    mat = material_from_dict(_raw())
    g = Generator(mat, RendererConfig(faces_per_pixel=8, geometry_grad=True))
    topo = Topography(mat, learn_count=True)
    gen = torch.Generator().manual_seed(0)
    scenes = topo.sample(SceneBatch([1, 2]), learn=True, generator=gen)
    assert scenes.differentiable and [len(p) for p in scenes.presence] == [lay.n for lay in scenes.layouts]
    out = g.render(scenes, gen)
    assert out.image.shape == (2, 1, 64, 64)
    out.image.mean().backward()
    for p in (topo.loc, topo.log_scale, topo.count_logit):
        assert p.grad is not None and torch.isfinite(p.grad) and float(p.grad.abs()) > 0


def test_bigger_particles_brighten_image_consistently_with_gradient() -> None:
    """d(mean image)/d(log median) from autograd agrees in sign and rough size with a finite
    difference (same layouts, same noise)."""
    raw = _raw()
    mat = material_from_dict(raw)
    g = Generator(mat, RendererConfig(faces_per_pixel=8, geometry_grad=True))
    g.eval()
    topo = Topography(mat, learn_count=False)
    lays = topo.layouts([5, 6])

    def mean_image(delta: float) -> torch.Tensor:
        with torch.no_grad():
            topo.loc += delta
        try:
            gen = torch.Generator().manual_seed(1)
            return g.render(topo.scenes(lays, gen), gen).image.mean()
        finally:
            with torch.no_grad():
                topo.loc -= delta

    value = mean_image(0.0)
    value.backward()
    grad = float(topo.loc.grad)
    h = 0.02
    fd = float((mean_image(h) - mean_image(-h)) / (2 * h))
    assert grad > 0 and fd > 0  # particles are brighter than the substrate
    assert abs(grad - fd) / abs(fd) < 0.35


def test_gan_module_with_topography_trains_and_reports() -> None:
    module = GANModule(_raw(), {"faces_per_pixel": 8}, _model(lr=0.05, init={"median_nm": 30.0}))
    start = module.topography.summary(averaged=False)["median_nm"]
    trainer = pl.Trainer(max_steps=4, logger=False, enable_checkpointing=False, enable_progress_bar=False)
    trainer.fit(module, torch.utils.data.DataLoader(torch.rand(4, 1, 64, 64), batch_size=2))
    after = module.topography.summary(averaged=False)
    assert after["median_nm"] != start
    truth = law_summary(module.generator.material.size, module.generator.material.count)
    assert set(after) == set(truth)  # same keys, comparable in summary.json


def test_export_generator_samples_the_learned_law() -> None:
    """After training, datasets must be drawn from the learned size/count law, not the configured one."""
    raw = _raw()
    module = GANModule(raw, {"faces_per_pixel": 8}, _model(learn_count=True, init={"median_nm": 30.0}))
    topo = module.topography
    with torch.no_grad():  # pretend training moved the law: median 12 nm, sigma 0.1, 1 of 4 slots
        topo.loc.fill_(math.log(12.0))
        topo.log_scale.fill_(math.log(0.1))
        topo.count_logit.fill_(math.log(1 / 3))
        topo.ema.copy_(topo._flat())
    learned = topo.learned_material()
    assert learned.size.median_nm == pytest.approx(12.0) and learned.size.sigma == pytest.approx(0.1)
    assert learned.count.kind == "binomial" and learned.count.n == 4
    assert learned.count.mean == pytest.approx(1.0)
    gen = module.export_generator()
    sizes = torch.cat([lay.xyzs[:, 3] for lay in gen.layouts(list(range(200)))])
    counts = [lay.n_requested for lay in gen.layouts(list(range(200)))]
    assert float(sizes.log().mean().exp()) == pytest.approx(12.0, rel=0.05)
    field = field_material(gen.layout_material).count  # 1 of 4 per image area, over the guarded field
    assert field.mean == pytest.approx(1.0 * (field.n / 4), rel=0.05)
    assert sum(counts) / len(counts) == pytest.approx(field.mean, rel=0.2)
    assert max(counts) <= field.n


def test_binomial_count_law_is_validated() -> None:
    raw = _raw()
    raw["count"] = {"kind": "binomial", "n": 4, "mean": 5.0}
    with pytest.raises(ConfigError, match=r"count\.mean"):
        material_from_dict(raw)


def test_warmup_epochs_freeze_the_law_then_release_it() -> None:
    module = GANModule(
        _raw(), {"faces_per_pixel": 8}, _model(lr=0.05, init={"median_nm": 30.0}, warmup_epochs=1)
    )
    data = torch.utils.data.DataLoader(torch.rand(4, 1, 64, 64), batch_size=2)
    start = module.topography.summary(averaged=False)["median_nm"]
    pl.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False).fit(
        module, data
    )
    assert module.topography.summary(averaged=False)["median_nm"] == pytest.approx(start)
    assert int(module.topography.ema_steps) == 0
    pl.Trainer(max_epochs=2, logger=False, enable_checkpointing=False, enable_progress_bar=False).fit(
        module, data
    )
    assert module.topography.summary(averaged=False)["median_nm"] != pytest.approx(start)


def _lognormal_topography(**kw) -> tuple[Topography, list]:
    mat = material_from_dict(_raw())
    topo = Topography(mat, learn_count=False, **kw)
    return topo, topo.layouts([11, 12, 13])


def test_centred_noise_removes_a_shared_vote_from_the_spread_gradient() -> None:
    """A vote shared by every particle (d loss / d log s_i = 1) gives the spread a zero gradient
    with centred noise, and sum(eps_i) without; the location's gradient is the same."""
    grads = {}
    for centre in (False, True):
        topo, lays = _lognormal_topography(centre_noise=centre)
        sizes = topo.batch_sizes(lays)
        for lay, s in zip(lays, sizes):
            assert torch.allclose(s.detach(), lay.xyzs[:, 3], rtol=1e-5)
        torch.cat(sizes).log().sum().backward()
        grads[centre] = (float(topo.loc.grad), float(topo.log_scale.grad))
    eps = torch.cat([lay.size_eps for lay in lays])
    n = eps.numel()
    sigma = float(topo.log_scale.exp())
    assert grads[False][0] == pytest.approx(n) and grads[True][0] == pytest.approx(n)
    assert grads[False][1] == pytest.approx(sigma * float(eps.sum()), rel=1e-4)
    assert abs(grads[True][1]) < 1e-4


def test_reported_law_is_the_tail_average_once_it_starts() -> None:
    topo, _ = _lognormal_topography()
    values = [math.log(30.0), math.log(20.0), math.log(10.0)]
    for i, v in enumerate(values):
        with torch.no_grad():
            topo.loc.fill_(v)
        topo.update_averages(tail=i > 0)
    assert topo.summary()["median_nm"] == pytest.approx(math.sqrt(20.0 * 10.0))  # mean of the logs
    state = {k: v for k, v in topo.state_dict().items() if not k.startswith("tail")}
    older, _ = _lognormal_topography()
    older.load_state_dict(state)  # checkpoints from before the tail average still load
    assert int(older.tail_steps) == 0


def test_averaging_tail_starts_at_the_configured_fraction_of_law_epochs() -> None:
    module = GANModule(_raw(), {"faces_per_pixel": 8}, _model(warmup_epochs=2, average_from=0.5))
    data = torch.utils.data.DataLoader(torch.rand(2, 1, 64, 64), batch_size=2)
    seen: list[tuple[int, bool]] = []

    class Record(pl.Callback):
        def on_train_epoch_end(self, trainer, pl_module) -> None:
            seen.append((trainer.current_epoch, pl_module._in_averaging_tail()))

    trainer = pl.Trainer(max_epochs=6, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         callbacks=[Record()], limit_val_batches=0)  # fmt: skip
    trainer.fit(module, data)
    assert seen == [(0, False), (1, False), (2, False), (3, False), (4, True), (5, True)]
    assert int(module.topography.tail_steps) == 2


def test_averaging_fraction_is_validated() -> None:
    with pytest.raises(ConfigError, match=r"model\.topography\.average_from"):
        GANModule(_raw(), model=_model(average_from=1.5))


def _quantile_law_module(signal: str = "quantiles") -> GANModule:
    model = _model(lr=0.05, signal=signal)
    model["quantile_matching"] = {"weight": 1.0}
    return GANModule(_raw(), {"faces_per_pixel": 8}, model)


def _law_gradient(module: GANModule, image: torch.Tensor) -> torch.Tensor | None:
    (grad,) = torch.autograd.grad(image.mean(), [module.topography.loc], retain_graph=True, allow_unused=True)
    return grad


def test_a_law_learning_from_quantiles_takes_no_gradient_from_the_critics() -> None:
    torch.manual_seed(0)
    module = _quantile_law_module()
    noise = torch.Generator().manual_seed(0)
    scenes = module.topography.sample(SceneBatch([1, 2]), learn=True, generator=noise)
    judged, measured = module._renders(scenes)
    assert measured is not None and judged.shape == measured.shape == (2, 1, 64, 64)
    assert judged.requires_grad  # the critics still shape the appearance
    assert _law_gradient(module, judged) is None
    grad = _law_gradient(module, measured)
    assert grad is not None and float(grad.abs()) > 0
    adversarial = _quantile_law_module("adversarial")
    judged, measured = adversarial._renders(adversarial.topography.sample(SceneBatch([1, 2]), learn=True))
    assert measured is None and _law_gradient(adversarial, judged) is not None


def test_a_law_learning_from_quantiles_trains() -> None:
    pl.seed_everything(0, verbose=False)
    module = _quantile_law_module()
    start = module.topography.summary(averaged=False)["median_nm"]
    data = torch.utils.data.DataLoader(torch.rand(4, 1, 64, 64), batch_size=2)
    quiet = {"logger": False, "enable_checkpointing": False, "enable_progress_bar": False}
    pl.Trainer(max_epochs=1, **quiet).fit(module, data)
    assert module.quantile_target.isfinite().all()
    assert module.topography.summary(averaged=False)["median_nm"] != pytest.approx(start)


def test_a_law_learning_from_granulometry_moves_the_law_alone() -> None:
    """The critics shape the appearance; the granulometry gap reaches the law and nothing else."""
    torch.manual_seed(0)
    model = {**_model(lr=0.05, signal="granulometry"), "generator": {"neural_shader": {"channels": 4}}}
    module = GANModule(_raw(), {"faces_per_pixel": 8}, model)
    assert module.generator.neural_shader is not None
    scenes = module.topography.sample(
        SceneBatch([1, 2]), learn=True, generator=torch.Generator().manual_seed(0)
    )
    judged, measured = module._renders(scenes)
    assert measured is not None and judged.requires_grad and _law_gradient(module, judged) is None
    grad = _law_gradient(module, measured)
    assert grad is not None and float(grad.abs()) > 0
    networks = [p for p in module.generator.parameters() if p.requires_grad]
    assert all(g is None for g in torch.autograd.grad(measured.sum(), networks, allow_unused=True))


def test_a_law_learning_from_granulometry_trains() -> None:
    pl.seed_everything(0, verbose=False)
    module = GANModule(_raw(), {"faces_per_pixel": 8}, _model(lr=0.05, signal="granulometry"))
    start = module.topography.summary(averaged=False)["median_nm"]
    data = torch.utils.data.DataLoader(torch.rand(4, 1, 64, 64), batch_size=2)
    quiet = {"logger": False, "enable_checkpointing": False, "enable_progress_bar": False}
    pl.Trainer(max_epochs=1, **quiet).fit(module, data)
    assert module.granulometry_target.isfinite().all()  # measured from the first real batch
    assert module.topography.summary(averaged=False)["median_nm"] != pytest.approx(start)


def test_the_law_signal_is_checked_once() -> None:
    with pytest.raises(ConfigError, match=r"model\.topography\.signal: expected one of"):
        GANModule(_raw(), {}, _model(signal="critics"))
    with pytest.raises(ConfigError, match=r"model\.topography\.signal: .*quantile_matching\.weight > 0"):
        GANModule(_raw(), {}, _model(signal="quantiles"))


def test_the_calibrated_start_renders_the_law_training_starts_from(monkeypatch) -> None:
    pl.seed_everything(0, verbose=False)
    model = _model(init={"median_nm": 30.0}, warmup_epochs=1)
    model["quantile_matching"] = {"start_steps": 2, "batch": 2}
    module = GANModule(_raw(), {"faces_per_pixel": 8}, model)
    drawn: list[int] = []
    learned_law = module.topography.layouts

    def spy(seeds: list[int]):
        drawn.extend(seeds)
        return learned_law(seeds)

    monkeypatch.setattr(module.topography, "layouts", spy)
    module.quantile_target.copy_(band_quantiles(torch.rand(2, 1, 64, 64)))
    module.trainer = pl.Trainer(logger=False, enable_progress_bar=False)  # its strategy broadcasts
    module._calibrate_start()
    assert module.start_calibrated
    assert any(s >= CALIBRATION_SEED_BASE for s in drawn)  # the topography's start, not the material's law
