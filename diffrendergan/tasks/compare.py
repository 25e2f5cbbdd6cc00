"""The paper's comparison: what is synthetic data worth for segmenting real micrographs?

Rows (one segmenter recipe, different training data, one annotated test set):

* a — DiffRenderGAN: synthetic data rendered with the trained parameter network;
* b — no GAN: the same layouts rendered with parameters uniform in the configured ranges;
* c — real: the annotated real training images (when given);
* d — synthetic pretraining (a, or b without a checkpoint) then real fine-tuning (optional);
* classical — Otsu threshold + watershed, no training.

Outputs ``comparison.json``, ``comparison.md`` (table) and ``comparison.png`` (grouped bars).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from diffrendergan.config import material_from_dict, renderer_from_dict
from diffrendergan.errors import ConfigError
from diffrendergan.export.writer import export_dataset
from diffrendergan.models.generator import Generator
from diffrendergan.tasks.segment import classical_baseline, run_segmentation
from diffrendergan.utils.io import atomic_write, atomic_write_json, atomic_write_text

log = logging.getLogger(__name__)

ROW_LABELS = {
    "a": "DiffRenderGAN synthetic",
    "b": "no-GAN synthetic (uniform params)",
    "c": "real annotated",
    "d": "synthetic pretrain + real finetune",
    "classical": "Otsu + watershed",
}
COLUMNS = {"dsc": "DSC", "ap50": "AP50", "pq": "PQ", "miou": "mIoU"}
SIZE_KEY = "mean_error_nm"


def load_generator(checkpoint: str | Path, material_name: str | None = None) -> Generator:
    """The generator of a GAN checkpoint (material/renderer from its hyperparameters); a
    different explicitly requested material is an error rather than silently ignored."""
    from diffrendergan.training.gan_module import GANModule

    path = Path(checkpoint)
    if not path.is_file():
        raise ConfigError("checkpoint", f"{path}: file not found")
    module = GANModule.load_from_checkpoint(str(path), map_location="cpu")
    g = module.export_generator()
    if material_name is not None and material_name != g.material.name:
        raise ConfigError(
            "material",
            f"+material={material_name} but the checkpoint was trained on {g.material.name!r}; "
            "drop +material or pass the matching one",
        )
    return g


def _row(key: str, metrics: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    out = {"label": ROW_LABELS[key], "dir": str(run_dir)}
    out.update({k: metrics.get(k) for k in (*COLUMNS, "particle_iou", SIZE_KEY)})
    return out


def _fmt(v: Any) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def comparison_markdown(rows: dict[str, dict[str, Any]]) -> str:
    """Table with rows a/b/c/d/classical and columns DSC, AP50, PQ, mIoU, mean size error (nm)."""
    head = ["row", "training data", *COLUMNS.values(), "mean size error (nm)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key, r in rows.items():
        cells = [key, r["label"], *(_fmt(r.get(k)) for k in COLUMNS), _fmt(r.get(SIZE_KEY))]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def comparison_plot(rows: dict[str, dict[str, Any]], path: Path) -> None:
    """Grouped bar chart: one group per metric, one bar per row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    keys = list(rows)
    x = np.arange(len(COLUMNS))
    width = 0.8 / max(len(keys), 1)
    fig, ax = plt.subplots(figsize=(7, 3.5), dpi=120)
    for j, key in enumerate(keys):
        vals = [rows[key].get(m) or 0.0 for m in COLUMNS]
        ax.bar(x + (j - (len(keys) - 1) / 2) * width, vals, width, label=f"{key}: {rows[key]['label']}")
    ax.set_xticks(x, list(COLUMNS.values()))
    ax.set_ylim(0, 1)
    ax.set_ylabel("score")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    atomic_write(path, lambda p: fig.savefig(p, format="png"))
    plt.close(fig)


def run_comparison(
    material_cfg_dict: dict[str, Any] | None,
    checkpoint: str | Path | None,
    test_dir: str | Path,
    out_dir: str | Path,
    real_train_dir: str | Path | None = None,
    n_images: int = 200,
    seg_kwargs: dict[str, Any] | None = None,
    finetune: bool = False,
    renderer_cfg_dict: dict[str, Any] | None = None,
    seed: int = 0,
    export_batch_size: int = 8,
    progress: bool = True,
) -> dict[str, Any]:
    """Export (a) and (b), train one segmenter per training set, score all rows on ``test_dir``.

    Args:
        material_cfg_dict: material config (needed without a checkpoint; checked against it).
        checkpoint: GAN checkpoint or None (then row a and its fine-tuning are skipped and the
            no-GAN generator is built from the material and ``renderer_cfg_dict``).
        seg_kwargs: extra :func:`run_segmentation` arguments (encoder, max_epochs, ...);
            ``pixel_size_nm`` defaults to the material's.
        finetune: add row d (needs ``real_train_dir``).
    Returns:
        {"rows": {key: {label, dsc, ap50, pq, miou, particle_iou, mean_error_nm, dir}}, ...}.
    """
    out = Path(out_dir)
    seg = dict(seg_kwargs or {})
    seg.setdefault("progress", progress)
    seg.setdefault("seed", seed)
    name = None if material_cfg_dict is None else str(material_cfg_dict.get("name"))
    if checkpoint is not None:
        gen = load_generator(checkpoint, name)
    elif material_cfg_dict is None:
        raise ConfigError("material", "without a checkpoint a material is needed: +material=<name>")
    else:
        gen = Generator(material_from_dict(material_cfg_dict), renderer_from_dict(renderer_cfg_dict))
    seg.setdefault("pixel_size_nm", gen.material.pixel_size_nm)
    crop = seg.get("crop_bottom_px")

    rows: dict[str, dict[str, Any]] = {}
    exports: dict[str, dict[str, Any]] = {}
    for key, baseline in (("a", False), ("b", True)):
        if key == "a" and checkpoint is None:
            log.info("no checkpoint: skipping row a (DiffRenderGAN synthetic)")
            continue
        data_dir = out / f"synthetic_{key}"
        exports[key] = export_dataset(
            gen, data_dir, n_images, seed, export_batch_size, baseline=baseline, progress=progress
        )
        metrics = run_segmentation(data_dir, test_dir, out / f"seg_{key}", **seg)
        rows[key] = _row(key, metrics, out / f"seg_{key}")
    if real_train_dir is not None:
        metrics = run_segmentation(real_train_dir, test_dir, out / "seg_c", **seg)
        rows["c"] = _row("c", metrics, out / "seg_c")
        if finetune:
            pre = "a" if "a" in rows else "b"
            init = out / f"seg_{pre}" / "segmenter.ckpt"
            ft = {**seg, "init_from": init}
            metrics = run_segmentation(real_train_dir, test_dir, out / "seg_d", **ft)
            rows["d"] = _row("d", metrics, out / "seg_d")
            rows["d"]["pretrained_on"] = pre
    elif finetune:
        log.warning("finetune=true needs real_train_dir; skipping row d")
    classical = classical_baseline(test_dir, out / "classical", seg["pixel_size_nm"], crop)
    rows["classical"] = _row("classical", classical, out / "classical")

    result = {
        "material": gen.material.name,
        "checkpoint": None if checkpoint is None else str(checkpoint),
        "test_dir": str(test_dir),
        "real_train_dir": None if real_train_dir is None else str(real_train_dir),
        "n_images": n_images,
        "exports": exports,
        "rows": rows,
    }
    atomic_write_json(out / "comparison.json", result)
    atomic_write_text(out / "comparison.md", comparison_markdown(rows))
    comparison_plot(rows, out / "comparison.png")
    return result
