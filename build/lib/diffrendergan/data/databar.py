"""Detect and crop the instrument data bar at the bottom of SEM micrographs.

SEM software (Zeiss, FEI, JEOL, ...) burns a bar with acquisition metadata (text, scale bar)
into the bottom of the image. It is not specimen, and a GAN trained on patches containing it
would learn to draw text. The bar is synthetic graphics: each of its rows is dominated by one
exact value (its flat background, e.g. black behind white text), which specimen rows, being
noisy, never are. We therefore look for a band of such "flat" rows at the bottom that starts
sharply below a block of non-flat specimen rows.
"""

from __future__ import annotations

import numpy as np

from diffrendergan.errors import DataError

# A row is "flat" when this fraction of its pixels share one exact (8-bit quantised) value.
FLAT_ROW_FRACTION = 0.6
# The bar must be mostly flat rows (text lines lower the fraction of some rows) ...
MIN_FLAT_IN_BAR = 0.75
# ... and the rows just above it must be mostly non-flat specimen.
MAX_FLAT_ABOVE_BAR = 0.25
# Bars never take more than this fraction of the height (guards against flat synthetic images).
MAX_BAR_FRACTION = 0.3
MIN_BAR_ROWS = 4


def _quantise(img: np.ndarray) -> np.ndarray:
    """(H, W) any dtype -> (H, W) uint8 after min-max scaling, so "exact value" means 1/255."""
    x = np.asarray(img, dtype=np.float64)
    lo, hi = float(x.min()), float(x.max())
    if hi <= lo:
        return np.zeros(x.shape, dtype=np.uint8)
    return np.round((x - lo) / (hi - lo) * 255.0).astype(np.uint8)


def row_mode_fraction(img: np.ndarray) -> np.ndarray:
    """Per row, the fraction of pixels equal to the row's most common value. (H, W) -> (H,)."""
    q = _quantise(img).astype(np.int64)
    h, w = q.shape
    counts = np.bincount((q + 256 * np.arange(h)[:, None]).ravel(), minlength=256 * h)
    return counts.reshape(h, 256).max(axis=1) / float(w)


def detect_data_bar(img: np.ndarray) -> int:
    """Number of bottom rows occupied by a data bar; 0 when there is none.

    The bar top is the highest row ``r`` in the bottom ``MAX_BAR_FRACTION`` of the image where
    a flat band starts: row ``r`` is flat, row ``r - 1`` is not, at least ``MIN_FLAT_IN_BAR`` of
    rows ``r..H-1`` are flat and at most ``MAX_FLAT_ABOVE_BAR`` of the rows just above are.
    A few specimen rows below the bar (some instruments leave them) are cropped with it.

    Args:
        img: (H, W) grayscale, any dtype/range.
    """
    img = np.asarray(img)
    if img.ndim != 2:
        raise ValueError(f"expected a (H, W) image, got shape {img.shape}")
    h = img.shape[0]
    if h < 4 * MIN_BAR_ROWS:
        return 0
    flat = row_mode_fraction(img) >= FLAT_ROW_FRACTION
    lowest_top = max(1, h - int(MAX_BAR_FRACTION * h))
    above = max(MIN_BAR_ROWS, h // 20)
    for r in range(lowest_top, h - MIN_BAR_ROWS + 1):
        if not flat[r] or flat[r - 1]:
            continue
        if flat[r:].mean() < MIN_FLAT_IN_BAR:
            continue
        if flat[max(0, r - above) : r].mean() > MAX_FLAT_ABOVE_BAR:
            continue
        return h - r
    return 0


def crop_data_bar(img: np.ndarray, crop_bottom_px: int | None = None) -> np.ndarray:
    """Remove the data bar: ``crop_bottom_px`` rows, or the detected number when None.

    Args:
        img: (H, W) image. Returns (H - n, W), a view.
    """
    n = detect_data_bar(img) if crop_bottom_px is None else int(crop_bottom_px)
    if n < 0:
        raise ValueError(f"crop_bottom_px must be >= 0, got {n}")
    if n >= img.shape[0]:
        raise DataError("<image>", f"cannot crop {n} rows from an image of height {img.shape[0]}")
    return img[: img.shape[0] - n] if n else img


def pixel_size_from_width(width_um: float, image_width_px: int) -> float:
    """Pixel size in nm/px from the field width a data bar prints ("Width = 7.520 µm")."""
    if width_um <= 0 or image_width_px <= 0:
        raise ValueError("width_um and image_width_px must be positive")
    return width_um * 1000.0 / image_width_px
