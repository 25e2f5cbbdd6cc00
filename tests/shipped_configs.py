"""The shipped YAML configs as plain dicts, for tests that build components from an edited copy
(a small image size, a known size law) without composing Hydra."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def material_raw(name: str, **overrides: Any) -> dict[str, Any]:
    """``configs/material/<name>.yaml`` with top-level ``overrides`` (e.g. ``image_size=64``)."""
    raw = yaml.safe_load((CONFIGS / "material" / f"{name}.yaml").read_text())
    raw.update(overrides)
    return raw


def renderer_raw(name: str = "default", **overrides: Any) -> dict[str, Any]:
    """``configs/renderer/<name>.yaml`` with top-level ``overrides``."""
    raw = yaml.safe_load((CONFIGS / "renderer" / f"{name}.yaml").read_text())
    raw.update(overrides)
    return raw
