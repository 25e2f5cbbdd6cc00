"""Every config composes and validates: each material x experiment x renderer x trainer x logger
of the main job, and every other entry point's config."""

from __future__ import annotations

import itertools
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from diffrendergan.config import material_from_dict, renderer_from_dict
from diffrendergan.errors import ConfigError
from diffrendergan.schemas import check_run
from diffrendergan.segmentation.recipe import segmenter_from_dict
from diffrendergan.tasks.train import _checkpoint_path, gan_module_from_cfg

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIGS / group).glob("*.yaml"))


def _compose(name: str, overrides: list[str]):
    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIGS), job_name="test"):
        return compose(config_name=name, overrides=overrides)


# Every material x experiment x renderer x trainer; the logger does not interact with them, so
# each logger is tried once.
RUN_COMBINATIONS = [
    (*combo, "csv")
    for combo in itertools.product(
        _options("material"), _options("experiment"), _options("renderer"), _options("trainer")
    )
] + [("sio2", "smoke", "default", "cpu", logger) for logger in _options("logger")]


@pytest.mark.parametrize(("material", "experiment", "renderer", "trainer", "logger"), RUN_COMBINATIONS)
def test_every_run_combination_composes_and_validates(
    material: str, experiment: str, renderer: str, trainer: str, logger: str
) -> None:
    cfg = _compose(
        "run",
        [f"+material={material}", f"experiment={experiment}", f"renderer={renderer}", f"trainer={trainer}",
         f"logger={logger}", "paths.cache_dir=/tmp", "paths.output_dir=/tmp"],
    )  # fmt: skip
    if cfg.trainer.accelerator == "gpu" and not torch.cuda.is_available():
        with pytest.raises(ConfigError, match=r"trainer\.accelerator"):
            check_run(cfg)  # a GPU trainer without a GPU: one line, before anything starts
    else:
        check_run(cfg)
    m = material_from_dict(OmegaConf.to_container(cfg.material, resolve=True))
    renderer_from_dict(OmegaConf.to_container(cfg.renderer, resolve=True))
    segmenter_from_dict(cfg.segmenter)
    assert m.name == material
    chosen = OmegaConf.load(CONFIGS / "trainer" / f"{trainer}.yaml")
    assert cfg.trainer.accelerator == chosen.accelerator  # the command line's group choice wins


@pytest.mark.parametrize(
    ("material", "experiment", "renderer"),
    list(itertools.product(_options("material"), _options("experiment"), _options("renderer"))),
)
def test_every_material_experiment_and_renderer_instantiates_a_gan_module(
    material: str, experiment: str, renderer: str
) -> None:
    """Every combination builds its parts with instantiate (the trainer group does not reach the
    module; RUN_COMBINATIONS above validates it with the rest)."""
    cfg = _compose("run", [f"+material={material}", f"renderer={renderer}", f"experiment={experiment}"])
    module = gan_module_from_cfg(cfg, OmegaConf.to_container(cfg.material, resolve=True), n_train=3)
    assert type(module.discriminator).__name__ == cfg.model.discriminator._target_.rpartition(".")[2]
    assert module.spec.layout_pool == (3 if cfg.model.layout_pool < 0 else cfg.model.layout_pool)
    opt_g, opt_d = module.configure_optimizers()[0]
    assert (
        opt_d.defaults["lr"] == cfg.model.optimizer_d.lr and opt_g.defaults["lr"] == cfg.model.optimizer_g.lr
    )
    unit = module.generator.unit_params(module.generator.layouts([0]))
    assert unit.shape == (1, module.generator.space.dim) and torch.isfinite(unit).all()


ENTRY_POINTS = {
    "generate": ["+material=tio2"],
    "segment": ["train_dir=/x", "test_dir=/y"],
    "compare": ["+material=tio2", "test_dir=/y"],
    "realism": ["real_dir=/x", "fake_dir=/y"],
    "prepare": ["data.raw_dir=/x", "data.out_dir=/y"],
    "preview": ["+material=tio2"],
    "ceilings": ["labeled_dir=/x"],
    "analyze": ["segmenter_path=/x", "input_dir=/y"],
}


@pytest.mark.parametrize("name", sorted(ENTRY_POINTS))
def test_every_entry_point_config_composes(name: str) -> None:
    cfg = _compose(name, ENTRY_POINTS[name])
    resolved = OmegaConf.to_container(cfg, resolve=False)
    assert isinstance(resolved, dict) and resolved
    if "segmenter" in cfg:
        segmenter_from_dict(cfg.segmenter)


def test_entry_point_list_is_complete() -> None:
    groups = {p.parent.name for p in CONFIGS.glob("*/*.yaml")}
    tops = {p.stem for p in CONFIGS.glob("*.yaml")} - {"run"}
    assert tops == set(ENTRY_POINTS), "a new entry point config: add it to ENTRY_POINTS"
    assert {"material", "experiment", "renderer", "trainer", "logger"} <= groups


RUN_BASE = ["+material=tio2", "paths.cache_dir=/tmp", "paths.output_dir=/tmp"]


def test_the_real_profile_is_what_the_readme_measured() -> None:
    real = _compose("run", [*RUN_BASE, "experiment=real"])
    assert real.model.discriminator.n_layers == 2  # a ~34 px verdict
    assert real.model.grain_discriminator.weight == 1.0 and real.model.generator.neural_shader.channels == 16
    assert real.model.optimizer_d.lr == 8 * real.model.optimizer_g.lr  # critics that lead (README)
    assert real.trainer.max_epochs == 20  # the faster critics' runs settle by then (README)
    assert real.model.loss.name == "lsgan"  # hinge: same segmenters, renders further from real (README)
    assert real.model.loss._target_ == "diffrendergan.models.gan_losses.get_losses"
    assert real.model.quantile_matching.start_steps > 0 and real.model.quantile_matching.weight == 4.0
    assert real.export.checkpoint == "last"  # a calibrated run's best SWD can be its first epoch's


def test_export_widen_is_a_fraction_and_the_real_profile_widens() -> None:
    assert _compose("run", [*RUN_BASE, "experiment=real"]).export.widen == 0.5
    assert _compose("run", RUN_BASE).export.widen == 0.0
    with pytest.raises(ConfigError, match=r"export\.widen"):
        check_run(_compose("run", [*RUN_BASE, "export.widen=1.5"]))


def test_the_exported_checkpoint_is_best_or_last(tmp_path: Path) -> None:
    assert _compose("run", RUN_BASE).export.checkpoint == "best"
    with pytest.raises(ConfigError, match=r"export\.checkpoint"):
        check_run(_compose("run", [*RUN_BASE, "export.checkpoint=first"]))
    keeper = SimpleNamespace(best_model_path=str(tmp_path / "epoch003.ckpt"))
    trainer = SimpleNamespace(checkpoint_callback=keeper)
    assert _checkpoint_path(trainer, tmp_path) == keeper.best_model_path  # type: ignore[arg-type]
    last = str(tmp_path / "checkpoints" / "last.ckpt")
    assert _checkpoint_path(trainer, tmp_path, "last") == last  # type: ignore[arg-type]
    assert _checkpoint_path(SimpleNamespace(checkpoint_callback=None), tmp_path) == last  # type: ignore[arg-type]


def test_particle_weight_must_not_be_negative() -> None:
    check_run(_compose("run", [*RUN_BASE, "model.particle_weight=2.0"]))
    with pytest.raises(ConfigError, match=r"model\.particle_weight"):
        check_run(_compose("run", [*RUN_BASE, "model.particle_weight=-1"]))
