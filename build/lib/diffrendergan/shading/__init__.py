"""Shaders by name. Add a new one by registering a :class:`Shader` here."""

from diffrendergan.errors import ConfigError
from diffrendergan.shading.base import Shader
from diffrendergan.shading.principled import PRINCIPLED
from diffrendergan.shading.sem import HIM, SEM
from diffrendergan.shading.stem import STEM_HAADF

SHADERS: dict[str, Shader] = {s.name: s for s in (SEM, HIM, STEM_HAADF, PRINCIPLED)}


def get_shader(name: str) -> Shader:
    try:
        return SHADERS[name]
    except KeyError:
        raise ConfigError(
            "material.shader", f"unknown shader {name!r}; expected one of {sorted(SHADERS)}"
        ) from None
