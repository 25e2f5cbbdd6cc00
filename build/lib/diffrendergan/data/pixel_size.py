"""Pixel size of a micrograph: from the one explicit key, else from the file's own metadata.

Microscopes write the scale into their TIFFs; reading it removes the commonest source of wrong
sizes (a pixel size typed by hand, or none, so that "nm" are really pixels). Order:

1. the explicit value (the command's ``pixel_size_nm`` key);
2. the file's metadata: Zeiss SmartSEM ``CZ_SEM`` (``ap_image_pixel_size``), FEI/Thermo
   (``[Scan] PixelWidth``, metres), ImageJ (``unit`` + resolution) or the TIFF resolution tags
   (``XResolution`` per inch or centimetre);
3. unknown: sizes stay in pixels, and commands that need nm say how to pass the key.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tifffile

from diffrendergan.errors import ConfigError

NM_PER = {"pm": 1e-3, "nm": 1.0, "um": 1e3, "µm": 1e3, "μm": 1e3, "micron": 1e3, "mm": 1e6, "m": 1e9}
NM_PER_RESOLUTION_UNIT = {2: 2.54e7, 3: 1e7}  # TIFF ResolutionUnit: 2 inch, 3 centimetre
UNKNOWN = "unknown"


@dataclass(frozen=True)
class PixelSize:
    """nm per pixel (None when unknown) and where the value came from."""

    nm: float | None
    source: str

    @property
    def known(self) -> bool:
        return self.nm is not None


def _valid(nm: float | None) -> float | None:
    return nm if nm is not None and math.isfinite(nm) and nm > 0 else None


def _zeiss(tif: tifffile.TiffFile) -> float | None:
    meta: dict[str, Any] = tif.sem_metadata or {}
    for key in ("ap_image_pixel_size", "ap_pixel_size"):
        entry = meta.get(key)
        if isinstance(entry, tuple) and len(entry) >= 3 and str(entry[2]) in NM_PER:
            return _valid(float(entry[1]) * NM_PER[str(entry[2])])
    return None


def _fei(tif: tifffile.TiffFile) -> float | None:
    meta: dict[str, Any] = tif.fei_metadata or {}
    width = (meta.get("Scan") or {}).get("PixelWidth") or (meta.get("EScan") or {}).get("PixelWidth")
    return _valid(float(width) * 1e9) if width else None


def _resolution(tif: tifffile.TiffFile) -> float | None:
    page = tif.pages[0]
    tag = page.tags.get("XResolution")
    if tag is None:
        return None
    num, den = tag.value
    if not num or not den:
        return None
    per_unit = num / den  # pixels per unit
    ij_unit = str((tif.imagej_metadata or {}).get("unit", "")).replace("\\u00B5", "µ")
    if ij_unit in NM_PER:
        return _valid(NM_PER[ij_unit] / per_unit)
    unit = page.tags.get("ResolutionUnit")
    code = int(unit.value) if unit is not None else 2
    if code in NM_PER_RESOLUTION_UNIT and per_unit > 1:  # 72 dpi and the like are screen defaults
        nm = NM_PER_RESOLUTION_UNIT[code] / per_unit
        return _valid(nm) if nm < 1e5 else None  # > 0.1 mm per pixel: not a micrograph scale
    return None


def pixel_size_from_metadata(path: str | Path) -> PixelSize:
    """The pixel size a TIFF's metadata records (Zeiss, FEI/Thermo, ImageJ, resolution tags)."""
    path = Path(path)
    if path.suffix.lower() not in (".tif", ".tiff"):
        return PixelSize(None, UNKNOWN)
    try:
        with tifffile.TiffFile(path) as tif:
            for source, read in (("CZ_SEM", _zeiss), ("FEI", _fei), ("resolution tags", _resolution)):
                nm = read(tif)
                if nm is not None:
                    return PixelSize(nm, source)
    except (tifffile.TiffFileError, OSError, ValueError, KeyError, TypeError, AttributeError):
        pass
    return PixelSize(None, UNKNOWN)


def resolve_pixel_size(explicit: float | None, path: str | Path | None = None) -> PixelSize:
    """Explicit key, else the file's metadata, else unknown."""
    if explicit is not None:
        if not (isinstance(explicit, int | float) and math.isfinite(explicit) and explicit > 0):
            raise ConfigError("pixel_size_nm", f"must be a positive number of nm per pixel, got {explicit!r}")
        return PixelSize(float(explicit), "pixel_size_nm")
    if path is None:
        return PixelSize(None, UNKNOWN)
    return pixel_size_from_metadata(path)
