"""The paper's comparison: what is synthetic data worth for segmenting real micrographs?

Rows (one segmenter recipe, same crops and step budget, N seeds, one annotated test set):

* ``gan`` — DiffRenderGAN: synthetic data rendered with the trained parameter network;
* ``gan_w<f>`` — the same, each image's parameters moved a fraction f towards a uniform draw
  (``widen``: wider appearance than learned, narrower than uniform);
* ``uniform`` — no GAN: the same layouts rendered with parameters uniform in the ranges;
* ``real`` — the annotated real images: trained on ``real_train_dir``, or, without one,
  cross-validated leave-one-image-out over the test images;
* ``finetune`` — the ``gan`` (or ``uniform``) segmenter fine-tuned on the real images (same CV);
* ``classical`` — Otsu threshold + watershed, no training;
* any folder given under ``extra_rows`` (a synthetic export or a labeled folder).

Several recipes (``recipes``: name -> overrides) turn the comparison into an ablation: every
trained row is run with every recipe. Outputs ``comparison.json`` (per-seed scores, mean ± std,
paired differences with 95 % intervals against the reference row), ``comparison.md`` and
``comparison.png``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from diffrendergan.evaluation.protocol import METRICS, Row, compare_to, run_rows, summarize
from diffrendergan.export.writer import ExportOptions, export_dataset
from diffrendergan.models.generator import Generator
from diffrendergan.segmentation.recipe import SegmenterConfig, segmenter_from_dict
from diffrendergan.tasks.segment import ImageSet, json_safe
from diffrendergan.utils.io import atomic_write, atomic_write_json, atomic_write_text

log = logging.getLogger(__name__)

ROW_NAMES = ("gan", "uniform", "real", "finetune", "classical")
LABELS = {
    "gan": "DiffRenderGAN synthetic",
    "uniform": "no-GAN synthetic (uniform params)",
    "real": "real annotated",
    "finetune": "synthetic pretrain + real finetune",
    "classical": "Otsu + watershed",
}


@dataclass(frozen=True)
class ComparisonSpec:
    """What to compare. ``generator``/``baseline_generator`` render the gan/uniform exports
    (None: those rows are skipped); ``recipes``: name -> recipe (one = a plain comparison)."""

    rows: tuple[str, ...]
    test: ImageSet
    recipes: dict[str, SegmenterConfig]
    seeds: tuple[int, ...] = (0, 1, 2)
    generator: Generator | None = None
    baseline_generator: Generator | None = None
    real_train_dir: Path | None = None
    extra_rows: dict[str, Path] | None = None
    n_images: int = 500
    export_seed: int = 0
    reference: str = "gan"
    pixel_size_nm: float | None = None
    widen: tuple[float, ...] = ()
    export_batch_size: int = 8


def recipes_from_overrides(base: Any, overrides: dict[str, dict] | None) -> dict[str, SegmenterConfig]:
    """{name: recipe}: the base recipe with each entry's overrides on top ({"default": base})."""
    from omegaconf import OmegaConf

    if not overrides:
        return {"default": segmenter_from_dict(base)}
    base_node = OmegaConf.create(base if isinstance(base, dict) else OmegaConf.to_container(base))
    merged = {}
    for name, over in overrides.items():
        node = OmegaConf.merge(base_node, OmegaConf.create(dict(over or {})))
        merged[str(name)] = segmenter_from_dict(node, f"recipes.{name}")
    return merged


def widened_name(fraction: float) -> str:
    return f"gan_w{fraction:g}"


def _synthetic_rows(spec: ComparisonSpec) -> list[tuple[str, Generator | None, bool, float]]:
    """(row, generator, baseline, widen) of every export the comparison needs."""
    rows = [("gan", spec.generator, False, 0.0)]
    rows += [(widened_name(w), spec.generator, False, w) for w in spec.widen if "gan" in spec.rows]
    return [*rows, ("uniform", spec.baseline_generator, True, 0.0)]


def build_rows(spec: ComparisonSpec, out: Path, progress: bool = False) -> tuple[list[Row], dict[str, Any]]:
    """Rows to run (exports written first) and the export summaries."""
    exports: dict[str, Any] = {}
    folders: dict[str, Path] = {}
    for name, gen, baseline, widen in _synthetic_rows(spec):
        if name.partition("_w")[0] not in spec.rows:
            continue
        if gen is None:
            log.info("no generator for row %s: skipped", name)
            continue
        folders[name] = out / f"synthetic_{name}"
        opts = ExportOptions(
            seed=spec.export_seed,
            batch_size=spec.export_batch_size,
            baseline=baseline,
            progress=progress,
            widen=widen,
        )
        exports[name] = export_dataset(gen, folders[name], spec.n_images, opts)
    folders.update({k: Path(v) for k, v in (spec.extra_rows or {}).items()})
    rows: list[Row] = []
    for rname, recipe in spec.recipes.items():
        suffix = "" if len(spec.recipes) == 1 else f"/{rname}"
        for name, folder in folders.items():
            label = LABELS.get(name.partition("_w")[0], str(folder))
            if name.startswith("gan_w"):
                label += f", widened {name[5:]} towards the ranges"
            rows.append(Row(name + suffix, label, "train", recipe, folder))
        if "real" in spec.rows:
            kind = "cv" if spec.real_train_dir is None else "train"
            rows.append(Row("real" + suffix, LABELS["real"], kind, recipe, spec.real_train_dir))
        if "finetune" in spec.rows and folders.keys() & {"gan", "uniform"}:
            pre = ("gan" if "gan" in folders else "uniform") + suffix
            rows.append(
                Row("finetune" + suffix, f"{LABELS['finetune']} ({pre})", "finetune", recipe, None, pre)
            )
    if "classical" in spec.rows:
        rows.append(Row("classical", LABELS["classical"], "classical"))
    return rows, exports


def _reference(spec: ComparisonSpec, names: list[str]) -> str:
    ref = spec.reference if spec.reference in names else None
    if ref is None:
        ref = next((n for n in names if n.split("/")[0] == spec.reference), names[0])
    return ref


def run_comparison(spec: ComparisonSpec, out_dir: str | Path, progress: bool = False) -> dict[str, Any]:
    """Export, train every row for every seed, score, and write comparison.json/.md/.png."""
    out = Path(out_dir)
    spec.test.load("percentile")  # fail on a bad test folder before exporting anything
    rows, exports = build_rows(spec, out, progress)
    scores = run_rows(rows, spec.test, out, list(spec.seeds), spec.pixel_size_nm)
    ref = _reference(spec, list(scores))
    diffs = compare_to(scores, ref)
    table = {
        r.name: {
            "label": r.label,
            "kind": r.kind,
            "dir": str(out / r.name),
            **summarize(scores[r.name]),
            f"vs_{ref}": diffs.get(r.name),
        }
        for r in rows
    }
    result = json_safe({
        "test_dir": str(spec.test.folder),
        "n_test_images": int(next(iter(scores.values())).shape[1]),
        "seeds": list(spec.seeds),
        "reference": ref,
        "recipes": {k: v.resolved().as_dict() for k, v in spec.recipes.items()},
        "exports": exports,
        "rows": table,
        "scores": {k: v.tolist() for k, v in scores.items()},
        "score_axes": ["seed", "image", list(METRICS)],
    })  # fmt: skip
    atomic_write_json(out / "comparison.json", result)
    atomic_write_text(out / "comparison.md", comparison_markdown(result))
    comparison_plot(result, out / "comparison.png")
    return result


def _ms(m: dict[str, float]) -> str:
    return f"{m['mean']:.3f} ± {m['std']:.3f}"


def _ci(d: dict[str, float] | None) -> str:
    if d is None:
        return "(reference)"
    star = " *" if d["excludes_zero"] else ""
    return f"{d['diff']:+.3f} [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}]{star}"


def comparison_markdown(result: dict[str, Any]) -> str:
    """Rows with mean ± std over seeds and the paired differences against the reference."""
    ref = result["reference"]
    head = [
        "row",
        "training data",
        "DSC",
        "AP50",
        "PQ",
        f"ΔAP50 vs {ref} [95 % CI]",
        f"ΔPQ vs {ref} [95 % CI]",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, r in result["rows"].items():
        d = r.get(f"vs_{ref}") or {}
        cells = [name, r["label"], _ms(r["dsc"]), _ms(r["ap50"]), _ms(r["pq"]),
                 _ci(d.get("ap50")), _ci(d.get("pq"))]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    n_seeds, n_img = len(result["seeds"]), result["n_test_images"]
    lines.append(
        f"\nmean ± std over {n_seeds} seeds (each seed: mean over {n_img} test images); Δ: paired "
        "bootstrap over test images × seeds, * = interval excludes 0."
    )
    return "\n".join(lines) + "\n"


def comparison_plot(result: dict[str, Any], path: Path) -> None:
    """Left: scores per metric (mean over seeds, error bar = std), one bar per row. Right: each
    row's paired difference to the reference row with its 95 % interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names, ref = list(result["rows"]), result["reference"]
    x = np.arange(len(METRICS))
    width = 0.8 / max(len(names), 1)
    fig, (ax, ax_d) = plt.subplots(1, 2, figsize=(11, 3.8), dpi=120, gridspec_kw={"width_ratios": [3, 2]})
    for j, name in enumerate(names):
        r = result["rows"][name]
        means = [r[m]["mean"] or 0.0 for m in METRICS]
        stds = [r[m]["std"] or 0.0 for m in METRICS]
        ax.bar(x + (j - (len(names) - 1) / 2) * width, means, width, yerr=stds, capsize=2, label=name)
    ax.set_xticks(x, [m.upper() for m in METRICS])
    ax.set_ylim(0, 1)
    ax.set_ylabel(f"score (mean ± std, {len(result['seeds'])} seeds)")
    others = [n for n in names if n != ref]
    for k, m in enumerate(("ap50", "pq")):
        for j, name in enumerate(others):
            d = result["rows"][name][f"vs_{ref}"][m]
            y = j + (k - 0.5) * 0.3
            err = [[d["diff"] - d["ci_low"]], [d["ci_high"] - d["diff"]]]
            ax_d.errorbar(
                d["diff"], y, xerr=err, fmt="o", color=f"C{k}", capsize=3, label=m.upper() if j == 0 else None
            )
    ax_d.axvline(0, color="k", lw=0.8)
    ax_d.set_yticks(range(len(others)), others)
    ax_d.set_xlabel(f"row - {ref} (paired, 95 % CI)")
    ax_d.legend(fontsize=7)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    atomic_write(path, lambda p: fig.savefig(p, format="png"))
    plt.close(fig)
