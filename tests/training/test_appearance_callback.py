"""The per-epoch appearance log: what AppearanceCallback hands to the logger."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch

from diffrendergan.metrics.appearance import OUTLINE_REACH
from diffrendergan.training.callbacks import AppearanceCallback, render_appearance


def _renders() -> tuple[torch.Tensor, torch.Tensor]:
    """Two 64-px renders (2, 1, H, W), each one bright disc on a dim film, with their instances."""
    yy, xx = np.mgrid[:64, :64]
    disc = np.hypot(yy - 32, xx - 32) <= 10
    rng = np.random.default_rng(0)
    images = [np.where(disc, 0.8, 0.1) + rng.normal(0, 0.01, disc.shape) for _ in range(2)]
    return torch.tensor(np.stack(images)[:, None], dtype=torch.float32), torch.tensor(
        np.stack([disc, disc])
    ).long()


class _Module:
    def __init__(self) -> None:
        self.fake, self.instances = _renders()
        self.logged: dict[str, float] = {}

    def eval_sample(self) -> Any:
        return SimpleNamespace(fake=self.fake, instances=self.instances)

    def log_dict(self, metrics: dict[str, float], rank_zero_only: bool) -> None:
        self.logged.update(metrics)


def test_profile_outline_and_differences_are_logged_each_epoch() -> None:
    module = _Module()
    reference = render_appearance(module.fake, module.instances)
    AppearanceCallback(reference).on_validation_epoch_end(
        SimpleNamespace(sanity_checking=False, is_global_zero=True),
        module,  # type: ignore[arg-type]
    )
    logged = module.logged
    assert {f"appearance/outline{d:+d}" for d in (-OUTLINE_REACH, -1, 1, OUTLINE_REACH)} <= logged.keys()
    assert logged["appearance/outline-4"] < 0.2 < 0.8 < logged["appearance/outline+4"]  # film / disc
    assert logged["appearance/diff_outline_max_abs"] == pytest.approx(0.0)  # against itself
    assert logged["appearance/diff_profile_max_abs"] == pytest.approx(0.0)
    assert logged["appearance/profile_bin0"] > logged["appearance/substrate"]
    assert logged["appearance/contacts_per_particle"] == 0.0  # one grain per render: no seam
    assert "appearance/seam" not in logged and "appearance/pairs_merged" not in logged  # NaN: not logged
