"""Atomic file output: write to a temporary name in the same folder, then rename.

A run killed at any moment leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from diffrendergan.errors import ConfigError


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` then move the result to ``path``. The temp file keeps the suffix
    so that format-sniffing writers (PIL, tifffile) still work."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; outputs should be readable like any file
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda p: p.write_text(text))


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, default=_jsonable) + "\n")


def _jsonable(o: Any) -> Any:
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """sha256 hex digest of a file's content (read in chunks)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def existing_folder(key: str, value: object, expected: str = "a folder") -> Path:
    """The folder of path key ``key``, which must exist (checked now, not after training)."""
    path = Path(str(value)).expanduser()
    if not path.is_dir():
        what = "is a file" if path.exists() else "does not exist"
        raise ConfigError(key, f"{path} {what}; expected {expected}")
    return path


def writable_folder(key: str, value: object) -> Path:
    """The output folder of config key ``key``, created now and checked writable: a file in its
    place, a read-only or impossible location is a :class:`ConfigError` naming the key, raised
    before any work starts rather than when the first output is written."""
    path = Path(str(value)).expanduser()
    if path.exists() and not path.is_dir():
        raise ConfigError(key, f"{path} is a file; expected a folder to write into (new or existing)")
    parent = next((p for p in (path, *path.parents) if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise ConfigError(key, f"cannot create {path}: {parent} is a file, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test.", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(key, f"cannot write to {path} ({reason}); expected a writable folder") from None
    return path
