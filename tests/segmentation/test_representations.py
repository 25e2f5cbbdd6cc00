"""Instance representations: encoding label images into 3-class targets and decoding them back."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from skimage.measure import label

from diffrendergan.metrics.segmentation import match_instances
from diffrendergan.segmentation.representations import (
    DECODERS,
    MIN_CORE_PX,
    PARTICLE,
    Representation,
    decode,
    encode_target,
    one_hot,
    remove_small,
)

H, W = 64, 112


def discs(centres: list[tuple[int, int, int]], separated: bool) -> np.ndarray:
    """Label image of discs (cy, cx, r); later discs win overlaps. ``separated`` draws the 1-px
    background line of hand-made masks between touching discs (else they touch, as in renders)."""
    yy, xx = np.mgrid[:H, :W]
    inst = np.zeros((H, W), np.int32)
    for k, (cy, cx, r) in enumerate(centres, start=1):
        inst[(yy - cy) ** 2 + (xx - cx) ** 2 <= r**2] = k
    if separated:
        from scipy import ndimage as ndi

        grown = ndi.maximum_filter(inst, size=3)
        lo = ndi.minimum_filter(np.where(inst > 0, inst, 99), size=3)
        inst[(inst > 0) & (grown != lo) & (inst == grown)] = 0  # the larger id gives up its rim
    return inst


TOUCHING = [(32, 36, 14), (32, 62, 13), (30, 86, 11)]  # three grains in a row, touching


def elongated() -> np.ndarray:
    """One grain 5x longer than wide, gently waisted (where distance peaks over-split)."""
    yy, xx = np.mgrid[:H, :W].astype(float)
    half_width = 8.0 - 1.5 * np.cos((xx - 56) / 40 * np.pi) ** 2
    inside = (np.abs(yy - 32) <= half_width) & (np.abs(xx - 56) <= 44)
    return inside.astype(np.int32)


def _recovered(truth: np.ndarray, pred: np.ndarray, min_iou: float = 0.8) -> bool:
    matches, n_gt, n_pred = match_instances(truth, pred)
    return n_pred == n_gt == len(matches) and min(m[2] for m in matches) > min_iou


PAIRS = [
    ("line", "components"),
    ("line", "core_watershed"),
    ("contour", "core_watershed"),
    ("bordercore", "core_watershed"),
]


@pytest.mark.parametrize("separated", [True, False], ids=["annotated", "rendered"])
@pytest.mark.parametrize(("target", "decoder"), [*PAIRS, ("line", "distance_watershed")])
def test_touching_discs_are_separated(target: str, decoder: str, separated: bool) -> None:
    truth = discs(TOUCHING, separated)
    classes = encode_target(truth, target, width_px=2)
    assert (classes == 2).any()  # there is something separating the grains
    pred = decode(one_hot(classes), decoder, min_size_px=10)
    assert _recovered(truth, pred), (target, decoder)


@pytest.mark.parametrize(("target", "decoder"), PAIRS)
def test_elongated_grain_is_not_split(target: str, decoder: str) -> None:
    truth = elongated()
    pred = decode(one_hot(encode_target(truth, target, width_px=2)), decoder)
    assert pred.max() == 1 and _recovered(truth, pred, min_iou=0.9)


def test_distance_peaks_over_split_elongated_grains() -> None:
    """The known limit of the old default decoder (why it is no longer the default)."""
    pred = decode(one_hot(encode_target(elongated(), "line")), "distance_watershed")
    assert pred.max() >= 2


def test_banded_targets() -> None:
    truth = discs(TOUCHING[:2], separated=False)
    contour = encode_target(truth, "contour", width_px=2)
    bordercore = encode_target(truth, "bordercore", width_px=2)
    # contour: the band lies only where grains meet; the rim towards the substrate stays class 1
    far = np.abs(np.arange(W)[None, :] - 49) > 3  # away from the contact point
    rim = (truth > 0) & (np.roll(truth, 1, axis=0) == 0) & far
    assert (contour[rim] == 1).all() and (bordercore[rim] == 2).all()
    near_contact = np.zeros_like(truth, bool)
    near_contact[30:35, 48:51] = True
    assert (contour[near_contact] == 2).all()
    # the foreground (particles + separating pixels) is the same in every representation
    line = encode_target(truth, "line")
    assert ((line >= 1) >= (truth > 0)).all()
    for c in (contour, bordercore):
        assert ((c >= 1) == (line >= 1)).all()


def test_a_grain_thinner_than_the_band_keeps_a_core() -> None:
    truth = np.zeros((20, 40), np.int32)
    truth[5:15, 5:20] = 1
    truth[9:12, 20:34] = 2  # a 3-px-wide sliver touching grain 1
    classes = encode_target(truth, "bordercore", width_px=3)
    assert (classes[truth == 2] == 1).any()
    pred = decode(
        one_hot(classes), "core_watershed", min_size_px=0, erode_px=0
    )  # no erosion: keep 1-px cores
    assert _recovered(truth, pred, min_iou=0.7)


def test_a_small_grain_beside_a_large_one_keeps_a_seed() -> None:
    # A 5x5 grain against a disc: under a 2-px band only its centre pixel would stay core, fewer
    # than a seed needs, and the decoder would flood it from the disc.
    truth = discs(TOUCHING[:1], separated=False)
    truth[30:35, 50:55] = 2
    classes = encode_target(truth, "bordercore", width_px=2)
    assert (classes[truth == 2] == 1).sum() >= MIN_CORE_PX
    core = label((classes == 1) & (truth == 2))
    assert core.max() == 1  # one connected seed
    pred = decode(one_hot(classes), "core_watershed", min_size_px=10, erode_px=0, core_threshold=0.9)
    assert _recovered(truth, pred, min_iou=0.7)


def test_probabilities_and_logits_decode_like_classes() -> None:
    classes = encode_target(discs(TOUCHING, False), "contour")
    probs = one_hot(classes)
    logits = np.log(probs * 0.98 + 0.01)
    a = decode(probs, "core_watershed")
    np.testing.assert_array_equal(a, decode(logits, "core_watershed"))  # softmax keeps the order
    assert _recovered(a, decode(classes, "core_watershed"), min_iou=0.95)  # distance landscape


def test_small_instances_removed_and_relabelled() -> None:
    inst = np.array([[0, 5, 5], [9, 0, 0]])
    np.testing.assert_array_equal(remove_small(inst, 2), [[0, 1, 1], [0, 0, 0]])
    with pytest.raises(ValueError):
        decode(np.zeros((4, 4)), "nope")
    with pytest.raises(ValueError):
        Representation(target="nope")  # type: ignore[arg-type]
    assert set(DECODERS) >= {p[1] for p in PAIRS}


def test_core_erosion_cuts_bridges() -> None:
    """Erosion splits two cores joined by a 1-px bridge (a gap in the predicted border)."""
    truth = discs([(32, 30, 12), (32, 56, 12)], separated=False)
    bridged = encode_target(truth, "bordercore", width_px=2)
    bridged[32, 40:47] = 1  # the border between the grains has a 1-px gap
    pred = decode(one_hot(bridged), "core_watershed", min_size_px=10, erode_px=1)
    assert _recovered(truth, pred, min_iou=0.8)
    merged = decode(one_hot(bridged), "core_watershed", min_size_px=10, erode_px=0)
    assert merged.max() == 1  # without erosion the bridge merges the two grains


def test_core_threshold_cuts_uncertain_bridges_and_keeps_confident_small_cores() -> None:
    """A bridge of uncertain core pixels (p = 0.6) merges two grains under the argmax; seeds of
    p >= 0.8 separate them without erosion, and a small grain (13 core px) touching a neighbour
    keeps its seed, which an erosion of 1 px deletes (the grain then merges into the neighbour)."""
    truth = discs([(32, 30, 12), (32, 56, 12), (32, 72, 4)], separated=False)
    target = encode_target(truth, "bordercore", width_px=2)
    probs = one_hot(target) * 0.9 + 0.1 / 3  # confident everywhere (p = 0.933 for the class)
    probs[:, 32, 40:47] = np.array([[0.1], [0.6], [0.3]])  # a gap of uncertain core pixels
    merged = decode(probs, "core_watershed", min_size_px=5, erode_px=0)
    assert merged[32, 30] == merged[32, 56]
    assert _recovered(
        truth, decode(probs, "core_watershed", min_size_px=5, erode_px=0, core_threshold=0.8), 0.7
    )
    eroded = decode(probs, "core_watershed", min_size_px=5, erode_px=1)
    assert eroded[32, 30] != eroded[32, 56] and eroded[32, 56] == eroded[32, 72]
    # an exact class map has no probabilities: the threshold leaves it unchanged
    np.testing.assert_array_equal(
        decode(target, "core_watershed", erode_px=0, core_threshold=0.8),
        decode(target, "core_watershed", erode_px=0),
    )
    with pytest.raises(ValueError, match="core_threshold"):
        Representation(core_threshold=0.3)


def test_min_seed_px_decides_whether_a_small_confident_core_seeds_its_own_grain() -> None:
    """A grain whose network gives it only 4 confident core pixels is flooded from its neighbour
    under the default seed size (6 px) and kept as its own instance with ``min_seed_px=3``."""
    truth = discs([(32, 30, 12), (32, 46, 4)], separated=False)
    target = encode_target(truth, "bordercore", width_px=2)
    probs = one_hot(target) * 0.9 + 0.1 / 3
    small_core = (truth == 2) & (target == PARTICLE)
    probs[:, small_core] = np.array([[0.05], [0.3], [0.65]])  # only a 2x2 patch stays confident
    probs[:, 31:33, 45:47] = np.array([[0.02], [0.95], [0.03]])[:, :, None]
    default = Representation(target="bordercore", min_size_px=5)
    assert default.min_seed_px == MIN_CORE_PX
    merged = default.decode(probs)
    assert merged[32, 30] == merged[32, 46]
    kept = replace(default, min_seed_px=3).decode(probs)
    assert kept[32, 30] != kept[32, 46] and kept[32, 46] > 0
    with pytest.raises(ValueError, match="min_seed_px"):
        Representation(min_seed_px=0)
