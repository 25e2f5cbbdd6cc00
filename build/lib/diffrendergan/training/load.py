"""Load a trained generator from a GAN checkpoint, checked to be one (safe unpickling)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from diffrendergan.config import material_from_dict
from diffrendergan.errors import ConfigError, DataError
from diffrendergan.models.generator import Generator
from diffrendergan.rendering.renderer import introduced_held, param_space_for
from diffrendergan.schemas import RENAMED_MODEL_KEYS
from diffrendergan.utils.checkpoints import read_checkpoint


def load_gan_module(checkpoint: str | Path):  # -> GANModule (import kept local: heavy)
    """The GANModule of a checkpoint; a file that is not one is a one-line DataError."""
    from diffrendergan.training.gan_module import GANModule

    ckpt = read_checkpoint(checkpoint, "gan")  # one-line errors for foreign files
    hparams = ckpt["hyper_parameters"]
    # Checkpoints from before the model group was split into built parts hold flat keys.
    upgrade = {} if "model" in hparams else {"model": model_from_flat_hparams(hparams)}
    if (material := material_with_introduced_held(hparams, ckpt.get("state_dict", {}))) is not None:
        upgrade["material"] = material
    try:
        return GANModule.load_from_checkpoint(
            str(checkpoint), map_location="cpu", weights_only=True, **upgrade
        )
    except (RuntimeError, TypeError, KeyError, ValueError) as exc:  # ConfigError included
        # a checkpoint of another code version: other parameters, networks or config keys
        raise DataError(
            checkpoint,
            f"does not fit this version's generator ({_mismatch(exc)}); expected a checkpoint "
            "written by this version of experiments.run",
        ) from None


_UNCHANGED_MODEL_KEYS = ("layout_pool", "n_eval", "ema_decay", "lr_decay", "lr_end_factor", "particle_weight")


def model_from_flat_hparams(hparams: dict[str, Any]) -> dict[str, Any]:
    """The nested ``model`` config of an older checkpoint's flat hyperparameters (``lr_g``,
    ``d_norm``, ``learn_topography`` ...; see ``RENAMED_MODEL_KEYS``); absent keys keep today's
    schema defaults, which are the old constructor's."""
    model: dict[str, Any] = {k: hparams[k] for k in _UNCHANGED_MODEL_KEYS if k in hparams}
    for old, targets in RENAMED_MODEL_KEYS.items():
        if old not in hparams or (hparams[old] is None and old != "max_particles"):
            continue
        value = list(hparams[old]) if isinstance(hparams[old], tuple) else hparams[old]  # betas
        for target in targets:
            group, _, name = target.partition(".")
            model.setdefault(group, {})[name] = value
    return model


def material_with_introduced_held(hparams: dict[str, Any], state_dict: dict[str, Any]) -> dict | None:
    """The material of a checkpoint whose parameter network predates parameters gained since
    (``introduced_held``), with those held at the values that render as it did. Parameters arrive
    one after another, so a checkpoint lacks the newest k of them: k is read off the network's
    output size. None when it predicts every parameter (or the mismatch is something else)."""
    head = state_dict.get("generator.net.head.weight")
    material = hparams.get("material")
    if head is None or not isinstance(material, dict):
        return None
    try:
        parsed = material_from_dict(material)
    except ConfigError:
        return None  # loading reports it
    configured = material.get("params") or {}
    newest_last = [(n, v) for n, v in introduced_held(parsed.shader).items() if n not in configured]
    missing = param_space_for(parsed).dim - head.shape[0]
    if not 0 < missing <= len(newest_last):
        return None
    return {**material, "params": {**configured, **dict(newest_last[-missing:])}}


_SIZE = re.compile(
    r"size mismatch for (?P<k>\S+): .*?shape torch.Size\((?P<a>[^)]*)\).*?torch.Size\((?P<b>[^)]*)\)"
)


def _mismatch(exc: Exception) -> str:
    """The first reason ``load_state_dict`` (or the module's constructor) gave, in a few words."""
    text = str(exc)
    if m := _SIZE.search(text):
        return f"{m['k']} is {m['a']} in the file, {m['b']} here"
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    first = (
        lines[1] if len(lines) > 1 and lines[0].startswith("Error(s)") else (lines or [type(exc).__name__])[0]
    )
    return first if len(first) <= 120 else first[:117] + "..."


def load_generator(checkpoint: str | Path, material_name: str | None = None) -> Generator:
    """The generator of a GAN checkpoint (material/renderer from its hyperparameters); a
    different explicitly requested material is an error rather than silently ignored."""
    g = load_gan_module(checkpoint).export_generator()
    if material_name is not None and material_name != g.material.name:
        raise ConfigError(
            "material",
            f"+material={material_name} but the checkpoint was trained on {g.material.name!r}; "
            "drop +material or pass the matching one",
        )
    return g
