"""``summary.json`` (for scripts) and ``report.md`` (for people) of one analysis.

The statistics describe the particles that enter the distribution: whole particles only unless
``include_border`` (a particle cut by the image border or the data bar has no true size). Every
number needed to judge the result sits next to it: how many particles were left out, the pixel
size of every image and where it came from, the segmenter and its recipe.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from diffrendergan.analysis.lognormal import LognormalFit
from diffrendergan.analysis.tables import Table, counted, n_rows
from diffrendergan.tasks.segment import json_safe
from diffrendergan.utils.io import atomic_write_json, atomic_write_text

MEASURES = ("equivalent_diameter_nm", "feret_max_nm", "feret_min_nm", "area_nm2", "aspect_ratio", "solidity")
STATS = ("mean", "median", "p10", "p90", "std")


def describe(values: np.ndarray) -> dict[str, float | None]:
    """Mean, median, 10th/90th percentile and sample std (ddof 1) of (N,) values; None when empty."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return dict.fromkeys(STATS)
    p10, median, p90 = np.percentile(v, [10, 50, 90])
    std = float(v.std(ddof=1)) if v.size > 1 else 0.0
    return {
        "mean": float(v.mean()),
        "median": float(median),
        "p10": float(p10),
        "p90": float(p90),
        "std": std,
    }


def distribution(table: Table, include_border: bool, fit: LognormalFit) -> dict[str, Any]:
    """Counts, statistics of every measure and the lognormal fit of the counted particles."""
    rows = counted(table, include_border)
    return {
        "include_border": include_border,
        "count": n_rows(rows),
        "count_all": n_rows(table),
        "count_touching_border": int(np.count_nonzero(table["touches_border"])),
        "measures": {m: describe(rows[m]) for m in MEASURES},
        "lognormal_equivalent_diameter": fit.as_dict(),
    }


def _num(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _ci(interval: list[float] | None, digits: int) -> str:
    return "–" if not interval else f"{interval[0]:.{digits}f}–{interval[1]:.{digits}f}"


def _sizes_section(dist: dict[str, Any]) -> list[str]:
    border = "included" if dist["include_border"] else "excluded (include_border=true counts them)"
    lines = [
        "## Sizes",
        "",
        f"{dist['count']} particles counted of {dist['count_all']}; "
        f"{dist['count_touching_border']} touch the image border or the data bar: {border}.",
        "",
        "| measure | mean | median | p10 | p90 | std |",
        "|---|---|---|---|---|---|",
    ]
    for name, s in dist["measures"].items():
        digits = 3 if name in ("aspect_ratio", "solidity") else 1
        lines.append(f"| {name} | " + " | ".join(_num(s[k], digits) for k in STATS) + " |")
    fit = dist["lognormal_equivalent_diameter"]
    ci = fit["ci95_bootstrap"] or {}
    lines += [
        "",
        "Lognormal fit of the equivalent diameter: "
        f"median {_num(fit['median_nm'])} nm (95 % CI {_ci(ci.get('median_nm'), 1)} nm), "
        f"σ {_num(fit['sigma'], 3)} (95 % CI {_ci(ci.get('sigma'), 3)}); {fit['ci_method']}.",
    ]
    return lines


def _images_section(images: list[dict[str, Any]]) -> list[str]:
    lines = [
        "## Images",
        "",
        "| image | nm/px | source | inference scale | bar rows | particles | counted |",
        "|---|---|---|---|---|---|---|",
    ]
    for im in images:
        lines.append(
            f"| {im['image']} | {im['pixel_size_nm']:.4g} | {im['pixel_size_source']} | "
            f"{im['inference_scale']:.3f} | {im['bar_rows']} | {im['n_particles']} | {im['n_counted']} |"
        )
    return lines


def _labels_section(cmp: dict[str, Any]) -> list[str]:
    return [
        "## Against manual masks",
        "",
        f"{cmp['n_images']} annotated images, {cmp['n_predicted']} predicted vs. {cmp['n_manual']} "
        "manual particles (same border rule).",
        "",
        f"* median equivalent diameter: predicted {_num(cmp['median_predicted_nm'])} nm, manual "
        f"{_num(cmp['median_manual_nm'])} nm",
        "* median over images of |relative error of the median|: "
        f"{_num(cmp['median_abs_rel_error_per_image'], 3)}",
        f"* pooled relative error of the median: {_num(cmp['pooled_median_rel_error'], 3)}",
        f"* KS distance: {_num(cmp['ks_distance'], 3)} (p = {_num(cmp['ks_pvalue'], 3)}), "
        f"Wasserstein distance: {_num(cmp['wasserstein_nm'])} nm",
    ]


def _law_section(law: dict[str, Any]) -> list[str]:
    """The material's size law refitted to these particles, for rendering more like them."""
    rendered, measured = law["rendered_whole_particles"], law["measured_whole_particles"]
    return [
        "## Size law for the generator",
        "",
        f"Lognormal median {_num(law['median_nm'])} nm, sigma {_num(law['sigma'], 3)}: its renders, measured "
        f"like these particles (whole particles in {law['field_px']} px fields), have a median of "
        f"{_num(rendered['median_nm'])} nm and a 90th percentile of {_num(rendered['p90_nm'])} nm, against "
        f"{_num(measured['median_nm'])} nm and {_num(measured['p90_nm'])} nm measured here.",
        f"Render with it: `{law['override']}`.",
    ]


def markdown(summary: dict[str, Any]) -> str:
    """The report a person reads: segmenter, sizes, fit, images, label comparison, skipped files."""
    seg = summary["segmenter"]
    r = seg["recipe"]
    train_px = seg["train_pixel_size_nm"]
    scale = f"{train_px:.3f} nm/px" if train_px else "an unknown pixel size"
    lines = [
        "# Particle size analysis",
        "",
        f"Segmenter: `{seg['path']}` ({r['arch']}/{r['encoder']}, target {r['target']}, normalize "
        f"{r['normalize']}; trained at {scale}).",
        f"Input: `{summary['input_dir']}`, {len(summary['images'])} images analysed, "
        f"{len(summary['skipped'])} skipped.",
        "",
        *_sizes_section(summary["distribution"]),
        "",
        *_images_section(summary["images"]),
    ]
    if summary.get("labels"):
        lines += ["", *_labels_section(summary["labels"])]
    if summary.get("generator_law"):
        lines += ["", *_law_section(summary["generator_law"])]
    if summary["skipped"]:
        lines += ["", "## Skipped files", "", *(f"* `{f}`: {why}" for f, why in summary["skipped"].items())]
    lines += ["", "Files: " + ", ".join(f"`{f}`" for f in summary["files"]), ""]
    return "\n".join(lines)


def headline(summary: dict[str, Any]) -> list[str]:
    """The few lines a command prints: images, particles, median size, fit, label distances."""
    d = summary["distribution"]
    fit = d["lognormal_equivalent_diameter"]
    lines = [
        f"{len(summary['images'])} images ({len(summary['skipped'])} skipped): {d['count']} particles "
        f"counted of {d['count_all']}, equivalent diameter median "
        f"{_num(d['measures']['equivalent_diameter_nm']['median'])} nm; lognormal median "
        f"{_num(fit['median_nm'])} nm, sigma {_num(fit['sigma'], 3)}"
    ]
    if cmp := summary.get("labels"):
        lines.append(
            f"vs. manual masks: median {_num(cmp['median_predicted_nm'])} nm predicted, "
            f"{_num(cmp['median_manual_nm'])} nm manual; KS {_num(cmp['ks_distance'], 3)}, "
            f"Wasserstein {_num(cmp['wasserstein_nm'])} nm"
        )
    if law := summary.get("generator_law"):
        lines.append(
            f"generator size law rendering particles like these: median {_num(law['median_nm'])} nm, "
            f"sigma {_num(law['sigma'], 3)} ({law['override']})"
        )
    return lines


def write(out_dir: Path, summary: dict[str, Any]) -> dict[str, Any]:
    """Write ``summary.json`` (NaN as null) and ``report.md``, atomically; returns the summary."""
    summary = json_safe(summary)
    atomic_write_json(out_dir / "summary.json", summary)
    atomic_write_text(out_dir / "report.md", markdown(summary))
    return summary
