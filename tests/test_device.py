"""Device words of the task configs (`device: auto|cpu|cuda`)."""

from __future__ import annotations

import pytest
import torch

from diffrendergan.errors import ConfigError
from diffrendergan.utils.device import accelerator_uses_cuda, resolve_device


def test_cpu_and_auto() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("AUTO").type == expected


def test_unknown_word_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"generate\.device.*auto"):
        resolve_device("tpu", key="generate.device")


def test_cuda_without_a_gpu_is_an_error_not_a_cpu_run() -> None:
    if torch.cuda.is_available():
        assert resolve_device("gpu").type == "cuda"
        return
    with pytest.raises(ConfigError, match="no CUDA device"):
        resolve_device("cuda")


def test_accelerator_uses_cuda_only_for_gpu_settings_with_a_gpu() -> None:
    assert not accelerator_uses_cuda("cpu")
    for word in ("gpu", "cuda", "auto", "GPU"):
        assert accelerator_uses_cuda(word) == torch.cuda.is_available()
