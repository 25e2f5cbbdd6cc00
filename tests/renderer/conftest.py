"""Shared fixtures for the renderer tests: small materials and hand-made layouts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

from diffrendergan.config import MaterialConfig, material_from_dict
from diffrendergan.scene.layout import Layout


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
def make_layout() -> Callable[..., Layout]:
    """Layout from explicit (P, 4) rows ``(x, y, z, size)`` in nm; identity rotations by default.

    All particles use unit shape 0 of ``shape_seed`` (for spheres without roughness every unit
    shape is the same icosphere anyway)."""

    def _make(rows: list[list[float]], rotation: torch.Tensor | None = None, seed: int = 0) -> Layout:
        xyzs = torch.tensor(rows, dtype=torch.float32).reshape(-1, 4)
        p = xyzs.shape[0]
        rot = torch.eye(3).expand(p, 3, 3).clone() if rotation is None else rotation
        return Layout(
            xyzs=xyzs,
            rotation=rot,
            shape_index=torch.zeros(p, dtype=torch.long),
            shape_seed=0,
            n_shapes=max(p, 1),
            n_requested=p,
            seed=seed,
        )

    return _make
