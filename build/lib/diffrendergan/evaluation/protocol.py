"""Rankings with confidence: every row trained with one recipe, N seeds, paired intervals.

A *row* is a way to get a segmenter — train on a folder, cross-validate on the real test images
themselves, fine-tune, or the classical baseline — scored on the same test images. Each row is
run once per seed; the per-image scores of all rows form arrays ``(n_seeds, n_images)`` that are
summarised as mean ± std over seeds (of the per-seed mean over images) and compared with a
reference row by a paired difference: a two-level bootstrap that resamples test images (the
same images for both rows: paired) and, within them, each row's seeds. Its 95 % percentile
interval says whether the rows differ beyond test-image and training-seed variation.

Real labeled rows are cross-validated leave-one-image-out, so no test image is ever trained on.
Finished (row, seed, fold) runs are recognised by a signature in their ``metrics.json`` and
reused, so an interrupted comparison resumes.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from diffrendergan.segmentation.checkpoint import load_segmenter
from diffrendergan.segmentation.module import SegModule
from diffrendergan.segmentation.recipe import SegmenterConfig
from diffrendergan.segmentation.train import accelerator, train_segmenter
from diffrendergan.tasks.segment import ImageSet, TrainOptions, classical_baseline, score, segmenter_predictor
from diffrendergan.utils.io import atomic_write_json

log = logging.getLogger(__name__)

METRICS = ("dsc", "ap50", "pq")
ROW_KINDS = ("train", "cv", "finetune", "classical")
N_BOOTSTRAP = 10_000


@dataclass(frozen=True)
class Row:
    """One row of a comparison.

    Attributes:
        name: short key (``gan``, ``uniform``, ``real``, ...).
        label: what the row is, for tables.
        kind: ``train`` (on ``train_dir``), ``cv`` (leave-one-image-out over the test images),
            ``finetune`` (``cv`` starting from row ``pretrain``'s segmenter of the same seed),
            ``classical`` (Otsu + watershed, no training).
        recipe: the segmenter recipe (None for ``classical``).
    """

    name: str
    label: str
    kind: str
    recipe: SegmenterConfig | None = None
    train_dir: Path | None = None
    pretrain: str | None = None


def _signature(**parts: Any) -> str:
    return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _cached(out: Path, signature: str) -> dict[str, Any] | None:
    """metrics.json of a finished run with this signature, if there is one."""
    path = out / "metrics.json"
    try:
        old = json.loads(path.read_text()) if path.is_file() else None
    except (OSError, ValueError):
        return None
    return old if old is not None and old.get("signature") == signature else None


def _per_image(metrics: dict[str, Any]) -> dict[str, dict[str, float]]:
    return {r["stem"]: {k: float(r[k]) for k in METRICS} for r in metrics["per_image"]}


def _segmenter(
    recipe: SegmenterConfig, train: ImageSet, options: TrainOptions, root: Path
) -> tuple[SegModule, dict]:
    """The segmenter these training settings produce: trained once into
    ``root/_segmenters/<signature>/`` and reused by every row that only decodes differently."""
    sig = _signature(
        recipe=recipe.training_dict(), train=str(train), seed=options.seed, init=str(options.init_from)
    )
    folder = root / "_segmenters" / sig
    ckpt, info_path = folder / "segmenter.ckpt", folder / "train.json"
    if ckpt.is_file() and info_path.is_file():
        module = load_segmenter(ckpt, "cuda" if accelerator(recipe) == "gpu" else "cpu")
        info = json.loads(info_path.read_text())
    else:
        module, info = train_segmenter(recipe, train.load(recipe.normalize), folder, options.seed, None,
                                       options.init_from)  # fmt: skip
        info["train_dir"] = str(train.folder)
        atomic_write_json(info_path, info)
    module.recipe = module.recipe.decoding_of(recipe)
    return module, info


@dataclass(frozen=True)
class _Context:
    """What every run of one comparison shares: the test set, its stems, where trained
    segmenters are kept, and the pixel size for sizes."""

    test: ImageSet
    stems: tuple[str, ...]
    root: Path
    pixel_size_nm: float | None


def _train_and_score(
    ctx: _Context, recipe: SegmenterConfig, train: ImageSet, test: ImageSet, out: Path, options: TrainOptions
) -> dict[str, dict[str, float]]:
    """Per-image scores of one trained segmenter on ``test`` (reused when an identical run
    finished; the network is reused when only the decoding differs)."""
    sig = _signature(recipe=recipe.resolved().as_dict(), train=str(train), test=str(test), seed=options.seed,
                     init=str(options.init_from))  # fmt: skip
    if (done := _cached(out, sig)) is not None:
        return _per_image(done)
    samples = test.load(recipe.normalize)
    module, info = _segmenter(recipe, train, options, ctx.root)
    extra = {"recipe": recipe.resolved().as_dict(), "seed": options.seed, "train": info, "signature": sig}
    return _per_image(score(samples, segmenter_predictor(module), out, ctx.pixel_size_nm, extra))


def _run_cv(ctx: _Context, row: Row, out: Path, options: TrainOptions) -> dict[str, dict[str, float]]:
    """Leave-one-image-out over the test images: train on the others, score the one left out."""
    assert row.recipe is not None
    scores: dict[str, dict[str, float]] = {}
    for stem in ctx.stems:
        train = replace(ctx.test, stems=tuple(s for s in ctx.stems if s != stem))
        held = replace(ctx.test, stems=(stem,))
        scores.update(_train_and_score(ctx, row.recipe, train, held, out / f"fold_{stem}", options))
    return scores


def _run_row(ctx: _Context, row: Row, out: Path, options: TrainOptions) -> dict[str, dict[str, float]]:
    if row.kind == "classical":
        return _per_image(classical_baseline(ctx.test, out.parent, ctx.pixel_size_nm))
    if row.kind == "train":
        assert row.recipe is not None and row.train_dir is not None
        train = ImageSet(row.train_dir, crop_bottom_px=ctx.test.crop_bottom_px)
        return _train_and_score(ctx, row.recipe, train, ctx.test, out, options)
    if row.kind in ("cv", "finetune"):
        return _run_cv(ctx, row, out, options)
    raise ValueError(f"unknown row kind {row.kind!r}; expected one of {ROW_KINDS}")


def _checkpoint_of(run_dir: Path) -> Path:
    """The segmenter a finished ``train`` row's run used (its metrics.json records it)."""
    return Path(json.loads((run_dir / "metrics.json").read_text())["train"]["checkpoint"])


def run_rows(
    rows: list[Row],
    test: ImageSet,
    out_dir: str | Path,
    seeds: list[int],
    pixel_size_nm: float | None = None,
) -> dict[str, np.ndarray]:
    """Run every row for every seed. Returns {row: (n_seeds, n_images, n_metrics)} scores, images
    in sorted stem order and metrics in :data:`METRICS` order. A ``finetune`` row starts from its
    ``pretrain`` row's segmenter of the same seed (that row must come earlier)."""
    out = Path(out_dir)
    ctx = _Context(test, tuple(sorted(s.stem for s in test.load("percentile"))), out, pixel_size_nm)
    result: dict[str, np.ndarray] = {}
    for row in rows:
        per_seed = []
        for seed in seeds:
            init = _checkpoint_of(out / str(row.pretrain) / f"seed{seed}") if row.kind == "finetune" else None
            options = TrainOptions(seed, init)
            scores = _run_row(ctx, row, out / row.name / f"seed{seed}", options)
            per_seed.append([[scores[s][m] for m in METRICS] for s in ctx.stems])
            if row.kind == "classical":  # deterministic: one run stands for every seed
                per_seed = per_seed * len(seeds)
                break
        result[row.name] = np.asarray(per_seed, dtype=np.float64)
        log.info("row %s done: %s", row.name, summarize(result[row.name]))
    return result


def summarize(scores: np.ndarray) -> dict[str, dict[str, float]]:
    """(S, I, M) scores -> {metric: {mean, std, per_seed}}: std over the per-seed image means."""
    per_seed = scores.mean(axis=1)  # (S, M)
    out = {}
    for k, m in enumerate(METRICS):
        v = per_seed[:, k]
        out[m] = {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0,
                  "per_seed": [float(x) for x in v]}  # fmt: skip
    return out


def paired_difference(
    a: np.ndarray, b: np.ndarray, n_boot: int = N_BOOTSTRAP, seed: int = 0, level: float = 0.95
) -> dict[str, float]:
    """Mean of a - b with a bootstrap interval. a: (S_a, I), b: (S_b, I) scores of one metric on
    the same I test images. Each bootstrap draw resamples the images (shared by both rows) and,
    independently, each row's seeds; the interval is the percentile interval of the draws."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"rows scored on different test images: {a.shape} vs {b.shape}")
    rng = np.random.default_rng(seed)
    n_img = a.shape[1]
    images = rng.integers(0, n_img, size=(n_boot, n_img))

    def draw(x: np.ndarray) -> np.ndarray:
        seeds = rng.integers(0, x.shape[0], size=(n_boot, x.shape[0]))
        per_image = x[seeds].mean(axis=1)  # (B, I): mean over the resampled seeds
        return np.take_along_axis(per_image, images, axis=1).mean(axis=1)

    diffs = draw(a) - draw(b)
    tail = (1.0 - level) / 2.0 * 100.0
    lo, hi = np.percentile(diffs, [tail, 100.0 - tail])
    return {"diff": float(a.mean() - b.mean()), "ci_low": float(lo), "ci_high": float(hi),
            "excludes_zero": bool(lo > 0 or hi < 0)}  # fmt: skip


def compare_to(scores: dict[str, np.ndarray], reference: str) -> dict[str, dict[str, dict[str, float]]]:
    """{row: {metric: paired difference row - reference}} for every row but the reference."""
    ref = scores[reference]
    return {
        name: {m: paired_difference(s[..., k], ref[..., k]) for k, m in enumerate(METRICS)}
        for name, s in scores.items()
        if name != reference
    }
