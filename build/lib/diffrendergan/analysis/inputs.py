"""Which files are analysed, with which segmenter, at what pixel size: all checked before inference.

A folder of new micrographs is only worth a GPU hour if every file can be used, so the checks run
first and fail in one line: the segmenter path (a ``segmenter.ckpt`` or an output folder that holds
one), the input and label folders, every file's decoding, and every file's pixel size (sizes are
reported in nm, so a file without one stops the run with the key to pass). An unreadable file is
skipped with a warning naming it, or stops the run when ``strict``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from diffrendergan.analysis.labels import manual_instances
from diffrendergan.data.labeled import LabeledPair, find_labeled_pairs, read_pair
from diffrendergan.data.pixel_size import PixelSize, resolve_pixel_size
from diffrendergan.data.readers import list_images, read_micrograph
from diffrendergan.errors import ConfigError, DataError

log = logging.getLogger(__name__)

CHECKPOINT = "segmenter.ckpt"
# Where a segmenter.ckpt lies in an output folder: experiments.segment writes it at the top,
# experiments.run in its evaluation folder (diffrendergan/tasks/train.py: export_and_evaluate).
CHECKPOINT_PLACES = (Path(CHECKPOINT), Path("segmentation") / CHECKPOINT)


@dataclass(frozen=True)
class Micrograph:
    """One checked input: a readable file with a known pixel size, and its manual mask (or None)."""

    path: Path
    pixel: PixelSize
    mask_path: Path | None = None

    @property
    def name(self) -> str:
        return self.path.name


@dataclass(frozen=True)
class Plan:
    """What a run analyses: the inputs, the annotated micrographs (the inputs themselves when no
    input folder is given), the files skipped as unreadable (path -> reason) and the folders."""

    inputs: list[Micrograph]
    labeled: list[Micrograph]
    skipped: dict[str, str]
    input_dir: Path
    labels_dir: Path | None = None


def segmenter_file(value: str | Path) -> Path:
    """The ``segmenter.ckpt`` that ``segmenter=`` names: the file itself, or the one inside an
    experiments.segment folder or an experiments.run folder. Its kind is checked when loaded."""
    path = Path(value).expanduser()
    if not path.is_dir():
        if not path.exists():
            raise DataError(path, f"not found; expected a {CHECKPOINT} or a run/segment output folder")
        return path
    for place in CHECKPOINT_PLACES:
        if (path / place).is_file():
            return path / place
    wanted = " or ".join(str(p) for p in CHECKPOINT_PLACES)
    if (path / "summary.json").is_file():  # a finished experiments.run without its evaluation
        wanted += " (this run trained no segmenter: that needs labeled data and evaluate.enabled=true)"
    raise DataError(path, f"no {wanted} in this folder; expected an experiments.run/segment output")


def check_readable(path: Path, mask_path: Path | None, crop_bottom_px: int | None) -> None:
    """Decode the file (and its mask, checked to match) once; a failure is a DataError naming it."""
    if mask_path is None:
        height = read_micrograph(path, normalize="full").shape[0]
    else:
        image, mask = read_pair(LabeledPair(path, mask_path))
        height = manual_instances(mask, image.shape[0], mask_path).shape[0]  # label values checked
    if crop_bottom_px is not None and crop_bottom_px >= height:
        raise DataError(path, f"cannot crop crop_bottom_px={crop_bottom_px} rows from height {height}")


def with_pixel_size(path: Path, explicit: float | None, mask_path: Path | None = None) -> Micrograph:
    """The file with its pixel size (explicit key, else metadata); unknown is a ConfigError."""
    pixel = resolve_pixel_size(explicit, path)
    if not pixel.known:
        raise ConfigError(
            "pixel_size_nm",
            f"{path}: no pixel size in the file's metadata (Zeiss CZ_SEM, FEI, ImageJ or TIFF resolution "
            "tags); pass pixel_size_nm=<nm per px>",
        )
    return Micrograph(path, pixel, mask_path)


def usable(
    files: Sequence[tuple[Path, Path | None]], explicit: float | None, crop: int | None, strict: bool
) -> tuple[list[Micrograph], dict[str, str]]:
    """Checked micrographs of ``(image, mask or None)`` pairs, and the skipped ones' reasons.

    Unreadable files are skipped with a warning (``strict``: the DataError stops the run); a
    readable file without a pixel size always stops it.
    """
    kept: list[Micrograph] = []
    skipped: dict[str, str] = {}
    for path, mask in files:
        try:
            check_readable(path, mask, crop)
        except DataError as exc:
            if strict:
                raise
            log.warning("warning: skipping %s (strict=true stops the run instead)", exc)
            skipped[str(path)] = str(exc).removeprefix(f"{path}: ")
            continue
        kept.append(with_pixel_size(path, explicit, mask))
    return kept, skipped


def labeled_files(labels_dir: Path, strict: bool) -> list[tuple[Path, Path | None]]:
    """(image, mask) pairs of an annotated folder (images/ + masks/, matched by stem)."""
    return [(p.image_path, p.mask_path) for p in find_labeled_pairs(labels_dir, strict=strict)]


def plan(
    input_dir: Path | None,
    labels_dir: Path | None,
    pixel_size_nm: float | None = None,
    crop_bottom_px: int | None = None,
    strict: bool = False,
) -> Plan:
    """Every file checked, before any inference. Without ``input_dir`` the label folder's images
    are the inputs; a folder left with no usable file is a DataError."""
    if input_dir is None and labels_dir is None:
        raise ConfigError("input_dir", "is required (input_dir=<folder of micrographs>), or give labels_dir=")
    pairs = labeled_files(labels_dir, strict) if labels_dir is not None else []
    labeled, skipped = usable(pairs, pixel_size_nm, crop_bottom_px, strict)
    if labels_dir is not None and not labeled:
        raise DataError(labels_dir, "no readable annotated micrograph (images/ + masks/)")
    if input_dir is None:
        return Plan(labeled, labeled, skipped, Path(str(labels_dir)) / "images", labels_dir)
    files = [(p, None) for p in list_images(input_dir)]
    inputs, bad = usable(files, pixel_size_nm, crop_bottom_px, strict)
    if not inputs:
        raise DataError(input_dir, "no readable micrograph; every image file failed to decode (see warnings)")
    return Plan(inputs, labeled, {**skipped, **bad}, input_dir, labels_dir)
