"""Which torch device a task (export, evaluation) runs on, from one user-facing word."""

from __future__ import annotations

import torch

from diffrendergan.errors import ConfigError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "gpu")


def resolve_device(name: str, key: str = "device") -> torch.device:
    """``auto``: the GPU when there is one, else the CPU; ``cuda``/``gpu``: the GPU (an error when
    there is none, rather than a silent CPU run); ``cpu``: the CPU."""
    word = str(name).strip().lower()
    if word not in DEVICE_CHOICES:
        raise ConfigError(key, f"expected one of {DEVICE_CHOICES}, got {name!r}")
    if word == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if word == "auto":
        return torch.device("cpu")
    raise ConfigError(key, f"{name!r} asked for, but torch sees no CUDA device")


def accelerator_uses_cuda(accelerator: str) -> bool:
    """Whether a Lightning ``accelerator`` setting (cpu | gpu | cuda | auto) trains on the GPU here;
    work done after ``fit`` (export, evaluation) should follow it there."""
    return str(accelerator).lower() in ("gpu", "cuda", "auto") and torch.cuda.is_available()
