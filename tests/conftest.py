"""Shared test setup: offline, quiet, deterministic; paths to the optional real data."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from shipped_configs import material_raw

if TYPE_CHECKING:
    from diffrendergan.config import MaterialConfig

os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("HYDRA_FULL_ERROR", "0")

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data" / "ruehle2021_tio2_sem"


def load_material_yaml(name: str, **overrides: Any) -> MaterialConfig:
    """A shipped material config with top-level overrides (e.g. a small ``image_size``)."""
    from diffrendergan.config import material_from_dict  # after the environment above is set

    return material_from_dict(material_raw(name, **overrides))


@pytest.fixture
def make_material() -> Callable[..., MaterialConfig]:
    """Factory for a validated sphere material; keyword arguments override top-level keys and
    ``shape``/``size``/``count``/``placement`` entries (given as dicts)."""

    def _make(
        *,
        shape: dict[str, Any] | None = None,
        size: dict[str, Any] | None = None,
        count: dict[str, Any] | None = None,
        placement: dict[str, Any] | None = None,
        **top: Any,
    ) -> MaterialConfig:
        from diffrendergan.config import material_from_dict  # after the environment above is set

        raw: dict[str, Any] = {
            "name": "test",
            "shader": "sem",
            "params": {},
            "pixel_size_nm": 1.0,
            "image_size": 64,
            "shape": {"family": "sphere", "ico_level": 2, **(shape or {})},
            "size": {"kind": "lognormal", "median_nm": 10.0, "sigma": 0.1, **(size or {})},
            "count": {"kind": "fixed", "n": 5, **(count or {})},
            "placement": {"mode": "poisson", **(placement or {})},
        }
        raw.update(top)
        return material_from_dict(raw)

    return _make


@pytest.fixture
def shipped_material() -> Callable[..., MaterialConfig]:
    return load_material_yaml


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def real_tio2() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real TiO2 data not present at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One demo/patch cache for the whole session (demo sets are deterministic)."""
    return tmp_path_factory.mktemp("drg-cache")


@pytest.fixture(scope="session")
def gan_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained sio2 generator checkpoint at 64 px (see :func:`save_gan_checkpoint`)."""
    from lightning_checkpoints import save_gan_checkpoint

    return save_gan_checkpoint(tmp_path_factory.mktemp("gan") / "gan.ckpt")
