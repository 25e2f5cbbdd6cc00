"""Running the entry points as a user does: ``python -m experiments.<name>`` in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def cli_env() -> dict[str, str]:
    """Offline, quiet, single-threaded, with the repository importable."""
    return {
        **os.environ,
        "WANDB_MODE": "disabled",
        "NO_ALBUMENTATIONS_UPDATE": "1",
        "HYDRA_FULL_ERROR": "0",
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p),
    }


def run_cli(
    module: str, *overrides: str, cwd: Path, run_dir: bool = True, timeout: int = 120
) -> subprocess.CompletedProcess:
    """``python -m module overrides...`` in ``cwd``; ``run_dir`` adds ``hydra.run.dir=cwd/hydra``
    (so nothing lands in the repository's outputs/)."""
    extra = [f"hydra.run.dir={cwd / 'hydra'}"] if run_dir else []
    cmd = [sys.executable, "-m", module, *overrides, *extra]
    return subprocess.run(cmd, cwd=cwd, env=cli_env(), capture_output=True, text=True, timeout=timeout)
