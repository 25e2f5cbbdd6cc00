"""How well could a representation do with a perfect network? Its *ceiling*: encode the exact
instances into the target, decode the one-hot target with the representation's decoder, and
score against the same ground truth as any segmenter (AP50, PQ).

A ceiling below 1 comes from the decoder (e.g. distance peaks splitting elongated grains), from
the band swallowing thin particles, or from ground-truth instances smaller than the decoder's
``min_size_px`` (hand-made masks have 1-2 px specks where separating lines meet: 54 of the 646
instances of the 5 labeled TiO2 SEM images). No decoder that drops fragments keeps those specks,
so each ceiling is also given over the ground truth without them (``ap50_whole``, ``pq_whole``):
that is what the representation itself can reach.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from diffrendergan.metrics import segmentation as segmetrics
from diffrendergan.segmentation.data import Sample
from diffrendergan.segmentation.representations import Representation, encode_rendered, one_hot, remove_small


def _target(s: Sample, rep: Representation) -> np.ndarray:
    if s.rendered:
        return encode_rendered(s.classes, s.instances, rep.target, rep.width_px)
    return rep.encode(s.instances)


def ceiling(samples: Sequence[Sample], rep: Representation) -> dict[str, Any]:
    """Scores of decoding the exact target of ``samples`` (dataset means, see aggregate), and
    how many ground-truth instances are smaller than the decoder keeps."""
    records, whole, small = [], [], 0
    for s in samples:
        target = _target(s, rep)
        decoded = rep.decode(one_hot(target))
        records.append(segmetrics.evaluate_image(s.classes, decoded, target))
        gt = segmetrics.instances_from_classes(s.classes)
        kept = remove_small(gt, rep.min_size_px)
        whole.append(segmetrics.evaluate_image(s.classes, decoded, target, gt_instances=kept))
        small += int(gt.max()) - int(kept.max())
    agg, agg_whole = segmetrics.aggregate(records), segmetrics.aggregate(whole)
    n_gt = agg["tp"] + agg["fn"]
    return {k: agg[k] for k in ("ap50", "pq", "dsc", "tp", "fp", "fn")} | {
        "n_gt": n_gt,
        "gt_below_min_size": small,
        "ap50_whole": agg_whole["ap50"],
        "pq_whole": agg_whole["pq"],
    }


DEFAULT_CASES = (
    Representation("line", decoder="components"),
    Representation("line", decoder="distance_watershed"),
    Representation("line", decoder="core_watershed", core_erode_px=0, split_neck_ratio=0.0),
    Representation("contour", 2, core_erode_px=0, split_neck_ratio=0.0),
    Representation("contour", 2, core_erode_px=1, split_neck_ratio=0.0),
    Representation("contour", 3, core_erode_px=0, split_neck_ratio=0.0),
    Representation("bordercore", 1, core_erode_px=0, split_neck_ratio=0.0),
    Representation("bordercore", 2, core_erode_px=0, split_neck_ratio=0.0),
    Representation("bordercore", 2, core_erode_px=0, split_neck_ratio=0.5),
    Representation("bordercore", 2, core_erode_px=1, split_neck_ratio=0.0),
)


def ceilings_table(sets: dict[str, Sequence[Sample]], cases: Sequence[Representation] = DEFAULT_CASES) -> str:
    """Markdown table: one row per representation; per named sample set AP50 / PQ over all
    ground-truth instances and over those the decoder's ``min_size_px`` keeps."""
    head = ["target", "width", "decoder", "core erosion", "neck cut"]
    head += [f"{name} AP50 / PQ ({part})" for name in sets for part in ("all", "whole")]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for rep in cases:
        width = "-" if rep.target == "line" else str(rep.width_px)
        seeded = rep.decoder_name == "core_watershed"
        erosion = str(rep.core_erode_px) if seeded else "-"
        neck = f"{rep.split_neck_ratio:g}" if seeded and rep.split_neck_ratio > 0 else "-"
        cells = [rep.target, width, rep.decoder_name, erosion, neck]
        for samples in sets.values():
            c = ceiling(samples, rep)
            cells += [f"{c['ap50']:.3f} / {c['pq']:.3f}", f"{c['ap50_whole']:.3f} / {c['pq_whole']:.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
