"""Shared fixtures for the renderer tests: hand-made layouts (small materials: the root conftest)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from diffrendergan.scene.layout import Layout


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
