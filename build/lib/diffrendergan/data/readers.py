"""Read micrographs and masks from the formats microscopes and annotation tools write.

Everything downstream works on one convention: a float32 (H, W) grayscale image in [0, 1]. This
module is the only place that knows about bit depths, palettes, colour channels and pages, so
that a 16-bit TIFF from one instrument and a JPEG export from another end up comparable.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image, UnidentifiedImageError

from diffrendergan.errors import DataError

log = logging.getLogger(__name__)
SUPPORTED_EXTENSIONS: tuple[str, ...] = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp")
NORMALIZE_MODES: tuple[str, ...] = ("percentile", "full", "none")
NO_PAGES = "not a readable TIFF image (no image pages: a damaged or truncated file)"

# ITU-R BT.601 luma weights (R, G, B): what SEM/TEM software uses when exporting grayscale.
_BT601 = np.array([0.299, 0.587, 0.114], dtype=np.float64)
_TIFF_EXT = (".tif", ".tiff")


def _check_extension(path: Path) -> None:
    if path.suffix.lower() not in SUPPORTED_EXTENSIONS:
        raise DataError(
            path, f"unsupported file type {path.suffix!r}; expected one of {SUPPORTED_EXTENSIONS}"
        )
    if not path.is_file():
        raise DataError(path, "file not found")


def luminance(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luminance of (..., 3 or 4) colour data; alpha is ignored. Returns float64 (...)."""
    return rgb[..., :3].astype(np.float64) @ _BT601


# --------------------------------------------------------------------------------------------
# Raw decoding: returns (array, value range) where the range is what "full" scales by.
# --------------------------------------------------------------------------------------------


def _dtype_range(dtype: np.dtype) -> tuple[float, float] | None:
    """Full value range of an integer dtype; None for floats (those are min-max scaled)."""
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return float(info.min), float(info.max)
    if dtype == np.bool_:
        return 0.0, 1.0
    return None


def _palette_luminance(colormap: np.ndarray) -> np.ndarray:
    """Per-index luminance of a TIFF colormap (3, N), on an 8-bit scale (0..255).

    TIFF colormaps are 16-bit; some writers store 8-bit values in them, which we detect.
    """
    cmap = np.asarray(colormap, dtype=np.float64)
    if cmap.max() > 255:
        cmap = cmap / 257.0
    return luminance(cmap.T)


def _tiff_page_gray(page: tifffile.TiffPage, path: Path) -> tuple[np.ndarray, tuple | None]:
    """Decode one TIFF page to (H, W) grayscale plus the range "full" normalisation uses."""
    arr = page.asarray()
    photometric = page.photometric
    if photometric == tifffile.PHOTOMETRIC.PALETTE and page.colormap is not None:
        lut = _palette_luminance(page.colormap)
        if arr.max(initial=0) >= lut.shape[0]:
            raise DataError(path, "palette index outside the colormap")
        return lut[arr], (0.0, 255.0)
    if arr.ndim == 3:
        if arr.shape[-1] not in (3, 4) and arr.shape[0] in (3, 4):  # planar RGB
            arr = np.moveaxis(arr, 0, -1)
        if arr.shape[-1] not in (3, 4):
            raise DataError(path, f"expected a grayscale or RGB page, got shape {arr.shape}")
        return luminance(arr), _dtype_range(arr.dtype)
    if arr.ndim != 2:
        raise DataError(path, f"expected a 2-D page, got shape {arr.shape}")
    rng = _dtype_range(arr.dtype)
    if photometric == tifffile.PHOTOMETRIC.MINISWHITE:
        top = rng[1] if rng is not None else float(arr.max())
        low = rng[0] if rng is not None else 0.0
        return top + low - arr.astype(np.float64), rng
    return arr, rng


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextmanager
def _tifffile_messages(path: Path) -> Iterator[None]:
    """Keep tifffile's own log lines (``<TiffTag.fromfile> raised ...``) off the console: a file
    that fails to decode is reported by the DataError naming it; one that decodes despite
    damaged tags gets one warning of ours naming the file."""
    logger = logging.getLogger("tifffile")
    handler, propagate = _Collect(), logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    ok = False
    try:
        yield
        ok = True
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate
        if ok and handler.messages:
            log.warning("%s: damaged TIFF, read anyway (%s)", path, handler.messages[0][:160])


def _read_tiff(path: Path, page: int | None) -> list[tuple[np.ndarray, tuple | None]]:
    with _tifffile_messages(path), tifffile.TiffFile(path) as tif:
        pages = list(tif.pages)
        if not pages:
            raise DataError(path, NO_PAGES)
        if page is None:
            return [_tiff_page_gray(p, path) for p in pages]
        if not -len(pages) <= page < len(pages):
            raise DataError(path, f"page {page} requested but the TIFF has {len(pages)} page(s)")
        return [_tiff_page_gray(pages[page], path)]


def _pil_gray(img: Image.Image, path: Path) -> tuple[np.ndarray, tuple | None]:
    """Decode one PIL frame to (H, W) grayscale plus its full value range."""
    mode = img.mode
    if mode == "P":
        pal = np.asarray(img.getpalette() or [], dtype=np.float64).reshape(-1, 3)
        idx = np.asarray(img)
        if idx.size and idx.max() >= len(pal):
            raise DataError(path, "palette index outside the palette")
        return luminance(pal)[idx], (0.0, 255.0)
    if mode in ("RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "LAB", "HSV", "PA"):
        return luminance(np.asarray(img.convert("RGB"))), (0.0, 255.0)
    if mode == "LA":
        return np.asarray(img.convert("L")), (0.0, 255.0)
    if mode == "1":
        return np.asarray(img, dtype=np.uint8), (0.0, 1.0)
    arr = np.asarray(img)
    if mode.startswith("I;16"):
        arr = arr.astype(np.uint16)
    if mode == "I" and path.suffix.lower() == ".png":
        # Pillow widens 16-bit PNGs to int32; PNG samples are at most 16-bit unsigned.
        return arr, (0.0, 65535.0)
    return arr, _dtype_range(arr.dtype)


def _read_pil(path: Path, page: int | None) -> list[tuple[np.ndarray, tuple | None]]:
    with Image.open(path) as img:
        n = getattr(img, "n_frames", 1)
        indices = range(n) if page is None else [page]
        out = []
        for i in indices:
            if not -n <= i < n:
                raise DataError(path, f"page {i} requested but the file has {n} frame(s)")
            img.seek(i % n)
            img.load()
            out.append(_pil_gray(img, path))
        return out


@contextmanager
def _decoding(path: Path, what: str) -> Iterator[None]:
    """Translate every image-library failure into a DataError naming the file."""
    try:
        yield
    except DataError:
        raise
    except (UnidentifiedImageError, tifffile.TiffFileError) as exc:
        raise DataError(path, f"not a readable {what} ({exc})") from exc
    except (OSError, ValueError, IndexError, KeyError, SyntaxError, EOFError) as exc:
        raise DataError(path, f"corrupt or truncated {what} ({exc})") from exc


def _decode(path: Path, page: int | None) -> list[tuple[np.ndarray, tuple | None]]:
    """Decode pages; every library failure becomes a DataError naming the file."""
    _check_extension(path)
    kind = "TIFF" if path.suffix.lower() in _TIFF_EXT else path.suffix.lower().lstrip(".").upper()
    with _decoding(path, f"{kind} image"):
        pages = _read_tiff(path, page) if kind == "TIFF" else _read_pil(path, page)
    for arr, _ in pages:
        if arr.size == 0 or min(arr.shape) == 0:
            raise DataError(path, f"empty image (shape {arr.shape}); expected a non-empty 2-D one")
    return pages


# --------------------------------------------------------------------------------------------
# Normalisation
# --------------------------------------------------------------------------------------------


def _minmax(x: np.ndarray) -> np.ndarray:
    lo, hi = float(x.min()), float(x.max())
    if hi <= lo:
        return np.zeros_like(x)
    return (x - lo) / (hi - lo)


def normalize_image(
    img: np.ndarray,
    mode: str = "percentile",
    percentiles: Sequence[float] = (0.5, 99.5),
    value_range: tuple[float, float] | None = None,
) -> np.ndarray:
    """Map a (H, W) image to float32 [0, 1] (see `read_micrograph` for the modes).

    ``value_range`` is the (min, max) that "full" maps to [0, 1]; None means min-max.
    Constant images map to all zeros rather than dividing by zero.
    """
    if mode not in NORMALIZE_MODES:
        raise ValueError(f"normalize must be one of {NORMALIZE_MODES}, got {mode!r}")
    x = np.asarray(img, dtype=np.float64)
    if mode == "none":
        return x.astype(np.float32)
    if mode == "full":
        if value_range is None:
            out = _minmax(x)
        else:
            lo, hi = value_range
            out = np.clip((x - lo) / (hi - lo), 0.0, 1.0)
        return out.astype(np.float32)
    p_lo, p_hi = percentiles
    if not 0.0 <= p_lo < p_hi <= 100.0:
        raise ValueError(f"percentiles must satisfy 0 <= low < high <= 100, got {percentiles}")
    lo, hi = np.percentile(x, [p_lo, p_hi])
    if hi <= lo:  # a few dominant values: fall back to the full data range
        return _minmax(x).astype(np.float32)
    return np.clip((x - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


def read_micrograph(
    path: str | Path,
    page: int | None = 0,
    normalize: str = "percentile",
    percentiles: Sequence[float] = (0.5, 99.5),
) -> np.ndarray:
    """Read a micrograph as float32 grayscale.

    Formats: 8/16/32-bit integer and float TIFF (single or multi-page, palette TIFFs resolved
    through their colormap), PNG, JPEG, BMP. Colour (RGB/RGBA, palette) becomes BT.601
    luminance; palette luminance is on the 8-bit scale.

    Normalisation (applied per page):
        * "percentile": clip to the given low/high percentiles, then scale to [0, 1]. Robust to a
          few saturated pixels; the default for specimen images.
        * "full": integers are divided by their dtype's full range (uint8 / 255, uint16 / 65535,
          ...), floats are min-max scaled. Keeps the detector's absolute brightness.
        * "none": raw values as float32 (masks, or when the caller normalises later).

    Args:
        path: image file.
        page: page/frame index; None reads all pages (they must share one shape).
    Returns:
        (H, W) float32, or (P, H, W) when ``page`` is None.
    Raises:
        DataError: unsupported extension, missing, corrupt, truncated or empty file.
    """
    path = Path(path)
    if normalize not in NORMALIZE_MODES:
        raise ValueError(f"normalize must be one of {NORMALIZE_MODES}, got {normalize!r}")
    pages = _decode(path, page)
    out = []
    for arr, rng in pages:
        if np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
            raise DataError(path, "image contains NaN or infinite values")
        out.append(normalize_image(arr, normalize, percentiles, rng))
    if page is not None:
        return out[0]
    shapes = {a.shape for a in out}
    if len(shapes) > 1:
        raise DataError(path, f"pages have different shapes {sorted(shapes)}; cannot stack them")
    return np.stack(out)


def read_mask(path: str | Path) -> np.ndarray:
    """Read an annotation mask as its stored values: (H, W) int64.

    Palette masks keep their indices (the stored label values), not the palette colours. RGB
    masks whose channels agree use one channel; otherwise each distinct colour becomes one label
    (black = 0). Multi-page masks use the first page.
    """
    path = Path(path)
    _check_extension(path)
    with _decoding(path, "mask"):
        if path.suffix.lower() in _TIFF_EXT:
            with _tifffile_messages(path), tifffile.TiffFile(path) as tif:
                if not tif.pages:
                    raise DataError(path, NO_PAGES)
                arr = tif.pages[0].asarray()
        else:
            with Image.open(path) as img:
                img.load()
                arr = np.asarray(img)
    if arr.size == 0:
        raise DataError(path, "empty mask")
    if arr.ndim == 3:
        arr = _colour_mask_to_labels(arr, path)
    if arr.ndim != 2:
        raise DataError(path, f"expected a 2-D mask, got shape {arr.shape}")
    if np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise DataError(path, "mask has non-integer values; expected integer labels")
    return arr.astype(np.int64)


def _colour_mask_to_labels(arr: np.ndarray, path: Path) -> np.ndarray:
    """(H, W, C) mask -> (H, W) labels: one channel when gray, else one label per colour."""
    if arr.shape[-1] not in (2, 3, 4):
        raise DataError(path, f"expected a 2-D or RGB mask, got shape {arr.shape}")
    rgb = arr[..., :3] if arr.shape[-1] >= 3 else arr[..., :1]
    if np.all(rgb == rgb[..., :1]):
        return rgb[..., 0]
    colours, inverse = np.unique(rgb.reshape(-1, rgb.shape[-1]), axis=0, return_inverse=True)
    labels = inverse.reshape(rgb.shape[:2]).astype(np.int64)
    black = np.flatnonzero(~colours.any(axis=1))
    if black.size:  # black is background: make it 0, shifting the labels below it up by one
        b = int(black[0])
        labels = np.where(labels == b, 0, np.where(labels < b, labels + 1, labels))
    else:
        labels = labels + 1
    return labels


def list_images(folder: str | Path) -> list[Path]:
    """Sorted image files (by name) with a supported extension directly inside ``folder``."""
    folder = Path(folder)
    if not folder.exists():
        raise DataError(folder, "folder not found")
    if not folder.is_dir():
        raise DataError(folder, "expected a folder of images, got a file")
    entries = [p for p in folder.iterdir() if not p.name.startswith(".")]
    if not entries:
        raise DataError(folder, f"folder is empty; expected images with {SUPPORTED_EXTENSIONS}")
    files = sorted(
        (p for p in entries if p.is_file() and p.suffix.lower() in SUPPORTED_EXTENSIONS),
        key=lambda p: p.name,
    )
    if not files:
        raise DataError(folder, f"no supported image files; expected extensions {SUPPORTED_EXTENSIONS}")
    return files
