"""Read our own checkpoints safely and say in one line when a file is not one.

``torch.load(weights_only=True)`` refuses to unpickle arbitrary objects, so a foreign or
malicious file cannot run code; Lightning checkpoints written by this project hold only tensors,
numbers, strings and containers, which it accepts.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from diffrendergan.errors import DataError

KINDS = {
    "gan": ("material", "a DiffRenderGAN generator checkpoint (checkpoints/*.ckpt of experiments.run)"),
    "segmenter": ("recipe", "a segmenter checkpoint (segmenter.ckpt of experiments.segment/run)"),
}


def read_checkpoint(path: str | Path, kind: str) -> dict[str, Any]:
    """The checkpoint dict of ``path``, checked to be a diffrendergan checkpoint of ``kind``
    ("gan" or "segmenter"). Anything else is a :class:`DataError` naming the file."""
    path = Path(path)
    key, what = KINDS[kind]
    if not path.is_file():
        raise DataError(path, f"file not found; expected {what}")
    if path.stat().st_size == 0:
        raise DataError(path, f"not a diffrendergan checkpoint (empty file); expected {what}")
    if not zipfile.is_zipfile(path):  # torch.save writes zip archives; the rest is garbage to us
        raise DataError(path, f"not a diffrendergan checkpoint (not a PyTorch zip archive); expected {what}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError, OSError, ValueError) as exc:
        reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise DataError(path, f"not a diffrendergan checkpoint ({reason}); expected {what}") from None
    hparams = ckpt.get("hyper_parameters") if isinstance(ckpt, dict) else None
    if not isinstance(hparams, dict) or "state_dict" not in ckpt:
        raise DataError(
            path, f"not a diffrendergan checkpoint (no state_dict/hyper_parameters); expected {what}"
        )
    if key not in hparams:
        other = next((k for k, (h, _) in KINDS.items() if h in hparams), None)
        found = f"it is {KINDS[other][1].split(' (')[0]}" if other else "unknown kind"
        raise DataError(path, f"wrong checkpoint kind ({found}); expected {what}")
    return ckpt


def resume_checkpoint(out_dir: str | Path, resume: bool) -> Path | None:
    """``<out_dir>/checkpoints/last.ckpt`` when ``resume`` and it exists, checked to be a GAN
    checkpoint (a corrupt or foreign file is one line now, not a traceback mid-fit); None = start
    from scratch."""
    last = Path(out_dir) / "checkpoints" / "last.ckpt"
    if not resume or not last.exists():
        return None
    read_checkpoint(last, "gan")
    return last
