"""Atomic output: complete files only, normal permissions, no temporary files left behind."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from diffrendergan.utils.io import atomic_write, atomic_write_json


def test_atomic_json_is_complete_and_readable(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        path = atomic_write_json(tmp_path / "a" / "summary.json", {"x": 1})
    finally:
        os.umask(old)
    assert json.loads(path.read_text()) == {"x": 1}
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644  # like any file, not mkstemp's 0600
    assert [p.name for p in path.parent.iterdir()] == ["summary.json"]


def test_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old")

    def broken(p: Path) -> None:
        p.write_text("half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        atomic_write(target, broken)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]
