"""Per-particle tables as columns (name -> 1-D array), and how they are written.

A plain dict of equal-length numpy arrays keeps the library free of pandas (an optional extra):
``particles.csv`` is always written, ``particles.parquet`` only when pandas and pyarrow import.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from diffrendergan.utils.io import atomic_write

log = logging.getLogger(__name__)

Table = dict[str, np.ndarray]  # column -> (N,) array, one row per particle

COLUMNS = (
    "image",
    "id",
    "area_nm2",
    "equivalent_diameter_nm",
    "feret_max_nm",
    "feret_min_nm",
    "aspect_ratio",
    "solidity",
    "centroid_x_nm",
    "centroid_y_nm",
    "touches_border",
)
_DTYPES = {"image": object, "id": np.int64, "touches_border": bool}


def empty_table() -> Table:
    """A table with every column and no rows."""
    return {c: np.zeros(0, dtype=_DTYPES.get(c, np.float64)) for c in COLUMNS}


def n_rows(table: Table) -> int:
    return len(table["id"])


def concat(tables: Sequence[Table]) -> Table:
    """Rows of all ``tables`` in order (an empty sequence gives an empty table)."""
    if not tables:
        return empty_table()
    return {c: np.concatenate([t[c] for t in tables]).astype(_DTYPES.get(c, np.float64)) for c in COLUMNS}


def select(table: Table, rows: np.ndarray) -> Table:
    """The rows where ``rows`` (N,) bool is true."""
    return {c: v[rows] for c, v in table.items()}


def counted(table: Table, include_border: bool) -> Table:
    """The particles that enter the statistics: all, or only those not cut by a border."""
    return table if include_border else select(table, ~table["touches_border"])


def _cell(value: object) -> object:
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, float | np.floating):
        return repr(round(float(value), 6))
    return value


def write_csv(table: Table, path: str | Path) -> Path:
    """One header line (``COLUMNS``) and one line per particle; atomic."""

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(COLUMNS)
            for i in range(n_rows(table)):
                w.writerow([_cell(table[c][i]) for c in COLUMNS])

    return atomic_write(path, write)


def write_parquet(table: Table, path: str | Path) -> Path | None:
    """``path`` when pandas + pyarrow are installed (None, silently, otherwise); atomic."""
    try:
        import pandas as pd
        import pyarrow  # noqa: F401  (pandas needs it for parquet)
    except ImportError:
        return None
    frame = pd.DataFrame({c: table[c] for c in COLUMNS})
    return atomic_write(path, lambda tmp: frame.to_parquet(tmp, index=False))
