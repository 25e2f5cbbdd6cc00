"""Load a trained generator from a GAN checkpoint, checked to be one (safe unpickling)."""

from __future__ import annotations

from pathlib import Path

from diffrendergan.errors import ConfigError
from diffrendergan.models.generator import Generator
from diffrendergan.utils.checkpoints import read_checkpoint


def load_gan_module(checkpoint: str | Path):  # -> GANModule (import kept local: heavy)
    """The GANModule of a checkpoint; a file that is not one is a one-line DataError."""
    from diffrendergan.training.gan_module import GANModule

    read_checkpoint(checkpoint, "gan")  # one-line errors for missing, empty, foreign files
    return GANModule.load_from_checkpoint(str(checkpoint), map_location="cpu", weights_only=True)


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
