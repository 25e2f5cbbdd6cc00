"""How well could a representation do with a perfect network? Its *ceiling*: encode the exact
instances into the target, decode the one-hot target with the representation's decoder, and
score against the same ground truth as any segmenter (AP50, PQ).

A ceiling below 1 comes from the decoder (e.g. distance peaks splitting elongated grains), from
the band swallowing thin particles, or from ground-truth instances smaller than the decoder's
``min_size_px`` (hand-made masks have 1-2 px specks where separating lines meet).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from diffrendergan.metrics import segmentation as segmetrics
from diffrendergan.segmentation.data import Sample
from diffrendergan.segmentation.representations import Representation, encode_rendered, one_hot


def _target(s: Sample, rep: Representation) -> np.ndarray:
    if s.rendered:
        return encode_rendered(s.classes, s.instances, rep.target, rep.width_px)
    return rep.encode(s.instances)


def ceiling(samples: Sequence[Sample], rep: Representation) -> dict[str, Any]:
    """Scores of decoding the exact target of ``samples`` (dataset means, see aggregate), and
    how many ground-truth instances are smaller than the decoder keeps."""
    records, small = [], 0
    for s in samples:
        target = _target(s, rep)
        records.append(segmetrics.evaluate_image(s.classes, rep.decode(one_hot(target)), target))
        areas = np.unique(segmetrics.instances_from_classes(s.classes), return_counts=True)[1][1:]
        small += int((areas < rep.min_size_px).sum())
    agg = segmetrics.aggregate(records)
    n_gt = agg["tp"] + agg["fn"]
    return {k: agg[k] for k in ("ap50", "pq", "dsc", "tp", "fp", "fn")} | {
        "n_gt": n_gt,
        "gt_below_min_size": small,
    }


DEFAULT_CASES = (
    Representation("line", decoder="components"),
    Representation("line", decoder="distance_watershed"),
    Representation("line", decoder="core_watershed"),
    Representation("contour", 2),
    Representation("contour", 3),
    Representation("bordercore", 2),
    Representation("bordercore", 3),
)


def ceilings_table(sets: dict[str, Sequence[Sample]], cases: Sequence[Representation] = DEFAULT_CASES) -> str:
    """Markdown table: one row per representation, AP50 / PQ per named sample set."""
    head = ["target", "width", "decoder", *(f"{name} AP50 / PQ" for name in sets)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for rep in cases:
        cells = [rep.target, "-" if rep.target == "line" else str(rep.width_px), rep.decoder_name]
        for samples in sets.values():
            c = ceiling(samples, rep)
            cells.append(f"{c['ap50']:.3f} / {c['pq']:.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
