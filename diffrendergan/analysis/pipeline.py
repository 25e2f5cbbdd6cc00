"""The whole analysis of checked inputs: load the segmenter, predict, measure, summarise, draw.

Order matters to the user: everything that can be wrong with the inputs (folders, files, pixel
sizes: :func:`diffrendergan.analysis.inputs.plan`; the segmenter checkpoint, loaded first here)
is found before the first image is predicted. Each image is then read once more, predicted,
measured and drawn, and only its table is kept, so a folder of any size fits in memory.
Outputs (all atomic) in ``out_dir``: ``particles.csv`` (+ ``.parquet``), ``summary.json``,
``report.md``, ``histogram.png``, ``overlays/<stem>.png``; with labels also
``histogram_vs_labels.png`` and ``labels/particles_manual.csv``.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from tqdm import tqdm

from diffrendergan.analysis import figures, report
from diffrendergan.analysis.inference import predict_instances, scale_factor
from diffrendergan.analysis.inputs import Micrograph, Plan
from diffrendergan.analysis.labels import SIZE, compare, manual_instances
from diffrendergan.analysis.law_fit import MIN_LAW_PARTICLES, fit_size_law, fitting_field_px
from diffrendergan.analysis.lognormal import fit_lognormal
from diffrendergan.analysis.measure import measure_particles
from diffrendergan.analysis.tables import Table, concat, counted, write_csv, write_parquet
from diffrendergan.config import MaterialConfig
from diffrendergan.data.labeled import LabeledPair, read_pair
from diffrendergan.data.readers import read_micrograph
from diffrendergan.segmentation.checkpoint import load_segmenter
from diffrendergan.segmentation.data import micrograph_input
from diffrendergan.segmentation.module import SegModule
from diffrendergan.segmentation.recipe import validate
from diffrendergan.utils.device import resolve_device

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Options:
    """How images are read and what enters the statistics (the keys of configs/analyze.yaml)."""

    crop_bottom_px: int | None = None  # data-bar rows; None = detect per image
    include_border: bool = False  # count particles cut by the image border / data bar
    device: str = "auto"  # auto (GPU when present) | cpu | cuda
    tta: bool | None = None  # test-time augmentation; None = as the checkpoint's recipe says
    decoding: dict[str, Any] = field(default_factory=dict)  # decode-only recipe keys over the checkpoint's
    n_boot: int = 2000  # bootstrap resamples of the lognormal fit's intervals
    seed: int = 0
    law_images: int = 256  # material images' area the fitted size law is measured over


@dataclass(frozen=True)
class Measured:
    """One analysed image: its predicted particles, its manual ones (None without a mask) and its
    line in the report."""

    predicted: Table
    manual: Table | None
    record: dict[str, Any]


def analyse_image(module: SegModule, m: Micrograph, options: Options, overlay_path: Path) -> Measured:
    """Read, crop, normalise, predict at the training scale, measure on the file's grid, draw."""
    if m.mask_path is None:
        full, mask = read_micrograph(m.path, normalize="full"), None
    else:
        full, mask = read_pair(LabeledPair(m.path, m.mask_path))
    image = micrograph_input(full, module.recipe.normalize, options.crop_bottom_px, m.path)  # (h, W)
    nm = float(m.pixel.nm)  # type: ignore[arg-type]  (checked known by inputs.plan)
    factor = scale_factor(nm, module.train_pixel_size_nm)
    instances = predict_instances(module, image, factor)
    table = measure_particles(instances, nm, m.name)
    figures.overlay_image(full, instances, table, nm, overlay_path)
    manual = None
    if mask is not None:
        smallest = module.recipe.min_size_px / factor**2  # the decoder's limit, in the file's pixels
        manual = measure_particles(manual_instances(mask, image.shape[0], m.mask_path, smallest), nm, m.name)
    record = {
        "image": m.name,
        "path": str(m.path),
        "pixel_size_nm": nm,
        "pixel_size_source": m.pixel.source,
        "height": full.shape[0],
        "width": full.shape[1],
        "bar_rows": full.shape[0] - image.shape[0],
        "inference_scale": factor,
        "inference_pixel_size_nm": nm / factor,
        "n_particles": len(table["id"]),
        "n_counted": len(counted(table, options.include_border)["id"]),
        "overlay": str(overlay_path),
    }
    return Measured(table, manual, record)


def predict_all(module: SegModule, p: Plan, out_dir: Path, options: Options) -> dict[Path, Measured]:
    """Every planned image once (inputs, then annotated images not among them), with a progress
    bar on a terminal. Overlays of annotated images that are not inputs go to overlays/labels/."""
    input_paths = {m.path for m in p.inputs}
    todo = list({m.path: m for m in [*p.inputs, *p.labeled]}.values())
    done: dict[Path, Measured] = {}
    for m in tqdm(todo, desc="analyze", unit="image", disable=None):
        folder = out_dir / "overlays" if m.path in input_paths else out_dir / "overlays" / "labels"
        done[m.path] = analyse_image(module, m, options, folder / f"{m.path.stem}.png")
    return done


def _labels_part(p: Plan, done: dict[Path, Measured], out_dir: Path, options: Options) -> dict[str, Any]:
    """Predicted vs. manual on the annotated images: tables, comparison, shared histogram."""
    predicted = concat([done[m.path].predicted for m in p.labeled])
    manual = concat([done[m.path].manual for m in p.labeled if done[m.path].manual is not None])
    write_csv(manual, out_dir / "labels" / "particles_manual.csv")
    if p.labeled is not p.inputs:
        write_csv(predicted, out_dir / "labels" / "particles_predicted.csv")
    figures.histogram_vs_labels(
        counted(predicted, options.include_border)[SIZE],
        counted(manual, options.include_border)[SIZE],
        out_dir / "histogram_vs_labels.png",
    )
    result = compare(predicted, manual, options.include_border)
    result["images"] = [done[m.path].record for m in p.labeled]
    return result


def _law(material: MaterialConfig, table: Table, images: list[dict], options: Options) -> dict | None:
    """The material's size law fitted to the whole particles (the renders are measured so), or
    None with a warning when too few were found to fit it."""
    whole = counted(table, include_border=False)[SIZE]
    if len(whole) < MIN_LAW_PARTICLES:
        log.warning("%d whole particles: too few to fit %s's size law", len(whole), material.name)
        return None
    field = fitting_field_px(images, material)
    return fit_size_law(material, whole, field, images=options.law_images, seed=options.seed).as_dict()


def analyze(
    ckpt: Path,
    p: Plan,
    out_dir: Path,
    options: Options = Options(),
    law_material: MaterialConfig | None = None,
) -> dict[str, Any]:
    """Analyse the planned micrographs with the segmenter of ``ckpt`` (a ``segmenter.ckpt``;
    another kind of file is one line here, before any prediction); returns the summary written
    to ``out_dir/summary.json``. With ``law_material`` the summary also holds its size law fitted
    to the measured whole particles (``generator_law``, see analysis.law_fit)."""
    device = resolve_device(options.device)
    module = load_segmenter(ckpt, device)
    overrides = {**options.decoding, **({"tta": options.tta} if options.tta is not None else {})}
    module.recipe = validate(replace(module.recipe, **overrides), "decoding")
    log.info("segmenter %s on %s; %d images", ckpt, device, len(p.inputs))
    done = predict_all(module, p, out_dir, options)
    table = concat([done[m.path].predicted for m in p.inputs])
    written = [
        write_csv(table, out_dir / "particles.csv"),
        write_parquet(table, out_dir / "particles.parquet"),
    ]
    diameters = counted(table, options.include_border)[SIZE]
    fit = fit_lognormal(diameters, options.n_boot, options.seed)
    written.append(figures.histogram(diameters, fit, out_dir / "histogram.png"))
    summary: dict[str, Any] = {
        "segmenter": {
            "path": str(ckpt),
            "recipe": module.recipe.as_dict(),
            "train_pixel_size_nm": module.train_pixel_size_nm,
            "device": str(device),
        },
        "input_dir": str(p.input_dir),
        "labels_dir": None if p.labels_dir is None else str(p.labels_dir),
        "options": asdict(options),
        "distribution": report.distribution(table, options.include_border, fit),
        "images": [done[m.path].record for m in p.inputs],
        "skipped": p.skipped,
    }
    if law_material is not None:
        summary["generator_law"] = _law(law_material, table, summary["images"], options)
    extra = ["overlays/"]
    if p.labeled:
        summary["labels"] = _labels_part(p, done, out_dir, options)
        extra += ["histogram_vs_labels.png", "labels/"]
    names = [str(f.relative_to(out_dir)) for f in written if f is not None]
    summary["files"] = [*names, "summary.json", "report.md", *extra]
    return report.write(out_dir, summary)
