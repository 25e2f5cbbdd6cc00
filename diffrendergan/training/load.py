"""Load a trained generator from a GAN checkpoint, checked to be one (safe unpickling)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from diffrendergan.errors import ConfigError, DataError
from diffrendergan.models.generator import Generator
from diffrendergan.schemas import RENAMED_MODEL_KEYS
from diffrendergan.utils.checkpoints import read_checkpoint


def load_gan_module(checkpoint: str | Path):  # -> GANModule (import kept local: heavy)
    """The GANModule of a checkpoint; a file that is not one is a one-line DataError."""
    from diffrendergan.training.gan_module import GANModule

    hparams = read_checkpoint(checkpoint, "gan")["hyper_parameters"]  # one-line errors for foreign files
    # Checkpoints from before the model group was split into built parts hold flat keys.
    upgrade = {} if "model" in hparams else {"model": model_from_flat_hparams(hparams)}
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
