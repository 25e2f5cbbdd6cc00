"""Instance representations: how particle instances become a 3-class training target, and how a
predicted 3-class map becomes instances again.

A segmenter predicts 3 classes per pixel (0 background, 1 particle, 2 "separator"). What class 2
means is the *representation*; its decoder must undo it. Scoring never depends on it: ground
truth instances are always the 4-connected components of the annotation (see
:mod:`diffrendergan.metrics.segmentation`).

* ``line`` (the paper's target): class 2 is the 1-px line that separates touching particles.
  Decoded by ``components``: class-1 components, grown back over the separator. Exact on perfect
  maps, but a 1-px class is rarely predicted by a briefly trained network, so particles merge.
* ``contour``: class 2 is every particle pixel within ``width_px`` of a *different* particle (and
  the separating line between them): a band as wide as the official DiffRenderGAN export's
  dilated contours. Decoded by ``core_watershed``: class-1 cores are the seeds, flooded over the
  predicted foreground. Particle rims facing the substrate stay class 1, so the foreground edge is
  learned as the ordinary particle/background transition.
* ``bordercore``: class 2 is the whole rim of ``width_px`` (towards substrate and neighbours), class
  1 the eroded core (Caicedo et al. 2019's 3-class boundary target). Same decoder.

For both banded targets, a particle whose core under the band would be smaller than a seed
(``MIN_CORE_PX``) keeps its ``MIN_CORE_PX`` innermost pixels as core, so the decoder can seed every
instance the encoding was given instead of flooding it from a neighbour.

``core_watershed`` also decodes the line target (cores = class 1 minus the line), and
``distance_watershed`` (the old default: distance-transform peaks of class 1, which over-split
elongated grains) is kept for comparison.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from scipy import ndimage as ndi
from skimage.feature import peak_local_max
from skimage.measure import label
from skimage.morphology import disk
from skimage.segmentation import expand_labels, relabel_sequential, watershed

from diffrendergan.rendering.masks import classes_from_annotation
from diffrendergan.segmentation.necks import split_at_necks

BACKGROUND, PARTICLE, SEPARATOR = 0, 1, 2
TARGETS = ("line", "contour", "bordercore")
DECODERS = ("components", "core_watershed", "distance_watershed")
DEFAULT_DECODER = {"line": "components", "contour": "core_watershed", "bordercore": "core_watershed"}

TargetKind = Literal["line", "contour", "bordercore"]
DecoderKind = Literal["components", "core_watershed", "distance_watershed"]
MIN_CORE_PX = 6  # the default seed size: smaller predicted cores are speckle, not seeds


@dataclass(frozen=True)
class Representation:
    """A training target and the decoder that inverts it.

    Attributes:
        target: "line" | "contour" | "bordercore".
        width_px: band width of the banded targets (ignored by "line").
        decoder: how predictions become instances ("components", "core_watershed",
            "distance_watershed"); None = the target's own decoder.
        min_size_px: predicted instances with fewer pixels are dropped.
        core_erode_px: ``core_watershed``: erosion of the predicted cores before seeding.
        core_threshold: ``core_watershed`` with probabilities: seeds are the pixels whose core
            probability is at least this (in [0.5, 1)); None = the argmax core.
        split_neck_ratio: ``core_watershed``: a seed is cut where it narrows below this fraction
            of the smaller lobe's width (:mod:`~diffrendergan.segmentation.necks`); 0 = never.
        min_seed_px: ``core_watershed``: predicted cores with fewer pixels are not seeds.
    """

    target: TargetKind = "contour"
    width_px: int = 2
    decoder: DecoderKind | None = None
    min_size_px: int = 10
    core_erode_px: int = 0
    core_threshold: float | None = 0.9
    split_neck_ratio: float = 0.5
    min_seed_px: int = MIN_CORE_PX

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise ValueError(f"target: expected one of {TARGETS}, got {self.target!r}")
        if self.decoder is not None and self.decoder not in DECODERS:
            raise ValueError(f"decoder: expected one of {DECODERS}, got {self.decoder!r}")
        if self.width_px < 1:
            raise ValueError(f"width_px: must be >= 1, got {self.width_px}")
        if self.core_threshold is not None and not 0.5 <= self.core_threshold < 1.0:
            raise ValueError(
                f"core_threshold: expected null or a probability in [0.5, 1), got {self.core_threshold}"
            )
        if not 0 <= self.split_neck_ratio < 1:
            got = self.split_neck_ratio
            raise ValueError(f"split_neck_ratio: expected a fraction in [0, 1) (0 = never cut), got {got}")
        if self.min_seed_px < 1:
            raise ValueError(f"min_seed_px: expected a pixel count >= 1, got {self.min_seed_px}")

    @property
    def decoder_name(self) -> DecoderKind:
        return self.decoder or DEFAULT_DECODER[self.target]  # type: ignore[return-value]

    def encode(self, instances: np.ndarray) -> np.ndarray:
        """(H, W) instance ids (touching, or separated by background lines) -> (H, W) uint8."""
        return encode_target(instances, self.target, self.width_px)

    def decode(self, pred: np.ndarray | torch.Tensor) -> np.ndarray:
        """(3, H, W) probabilities or (H, W) classes -> (H, W) int32 instance ids 1..K."""
        return decode(
            pred,
            self.decoder_name,
            self.min_size_px,
            self.core_erode_px,
            self.core_threshold,
            self.split_neck_ratio,
            self.min_seed_px,
        )


# ------------------------------------------------------------------------------------- encoding
def _window_extremes(inst: np.ndarray, radius: int, ignore_background: bool) -> tuple[np.ndarray, ...]:
    """Smallest and largest id within a disc of ``radius`` around every pixel.

    With ``ignore_background`` the background (0) is left out, so only other particles count.
    Pixels outside the image repeat the edge: a particle cut by the border has no rim there.
    """
    fp = disk(radius)
    # Sentinel above every id. Not the int64 maximum: scipy's rank filters pass through float64,
    # where it rounds to 2**63 and wraps to the int64 minimum (scipy 1.17, separable filters).
    above = int(inst.max(initial=0)) + 1
    lo_src = np.where(inst > 0, inst, above) if ignore_background else inst
    hi_src = inst  # background 0 never exceeds an id
    lo = ndi.minimum_filter(lo_src, footprint=fp, mode="nearest")
    hi = ndi.maximum_filter(hi_src, footprint=fp, mode="nearest")
    return lo, hi


def _keep_cores(inst: np.ndarray, band: np.ndarray) -> np.ndarray:
    """Band without the innermost pixels of particles whose core it would leave smaller than a
    seed: each keeps the ``MIN_CORE_PX`` pixels nearest its distance peak (a connected patch).

    Otherwise the decoder floods such a grain from its neighbour's seed: on the demo's 3 labeled
    TiO2 images the exact ``bordercore`` (2 px) target decoded to 114 of 126 whole particles, with
    a median equivalent diameter 5.6 % too large (with this: 126, +1.3 %).
    """
    ids, area = np.unique(inst[inst > 0], return_counts=True)
    core = ndi.sum_labels((inst > 0) & ~band, labels=inst, index=ids)
    need = np.minimum(area, MIN_CORE_PX)
    short = ids[core < need]
    if short.size == 0:
        return band
    band = band.copy()
    lo, hi = _window_extremes(inst, 1, ignore_background=False)  # the 4 neighbours
    dist = ndi.distance_transform_edt((inst > 0) & (lo == inst) & (hi == inst))  # to another id
    slices = ndi.find_objects(inst)
    for i, k in zip(short, need[core < need]):
        box = slices[i - 1]
        own = inst[box] == i
        py, px = np.unravel_index(np.argmax(np.where(own, dist[box], -1.0)), own.shape)
        yy, xx = np.indices(own.shape)
        r2 = np.where(own, (yy - py) ** 2 + (xx - px) ** 2, np.inf)
        keep = np.zeros(own.shape, bool)
        keep.flat[np.argsort(r2, axis=None, kind="stable")[:k]] = True
        band[box][keep] = False
    return band


def encode_target(instances: np.ndarray, target: str, width_px: int = 2) -> np.ndarray:
    """3-class target of an instance map. (H, W) int -> (H, W) uint8 in {0, 1, 2}.

    ``line``: the separating lines of hand-made masks
    (:func:`~diffrendergan.rendering.masks.classes_from_annotation`) and, where grains touch
    directly, the 1-px rim of the lower id on the higher; the banded targets add the band.
    """
    inst = np.asarray(instances).astype(np.int64)
    t = torch.from_numpy(inst)[None]
    classes = classes_from_annotation(t)[0].numpy()
    if target == "line":
        return classes
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; expected one of {TARGETS}")
    lo, hi = _window_extremes(inst, width_px, ignore_background=target == "contour")
    band = (inst > 0) & ((lo != inst) | (hi != inst))
    band = _keep_cores(inst, band)
    classes[band] = SEPARATOR
    return classes


def encode_rendered(classes: np.ndarray, instances: np.ndarray, target: str, width_px: int) -> np.ndarray:
    """Target for an export: its own mask for ``line`` (the renderer's occlusion-aware line),
    otherwise the band computed from the exact (touching) instance map."""
    if target == "line":
        return np.asarray(classes, dtype=np.uint8)
    return encode_target(instances, target, width_px)


# ------------------------------------------------------------------------------------- decoding
def _to_numpy(x: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def classes_from_input(x: np.ndarray | torch.Tensor) -> np.ndarray:
    """(H, W) class map, or (3, H, W) probabilities / logits -> (H, W) int class map (argmax)."""
    a = _to_numpy(x)
    if a.ndim == 3:
        return a.argmax(axis=0).astype(np.int64)
    if a.ndim != 2:
        raise ValueError(f"expected (H,W) classes or (C,H,W) probabilities, got {a.shape}")
    return a.astype(np.int64)


def remove_small(instances: np.ndarray, min_size_px: int) -> np.ndarray:
    """Drop instances with fewer than ``min_size_px`` pixels and relabel 1..K. -> (H, W) int32."""
    inst = np.asarray(instances).astype(np.int64)
    if min_size_px > 1 and inst.max(initial=0) > 0:
        # bincount rather than skimage's remove_small_objects, which warns on single-label maps
        small = np.bincount(inst.ravel()) < min_size_px
        small[0] = False
        inst = np.where(small[inst], 0, inst)
    return relabel_sequential(inst)[0].astype(np.int32)


def distance_markers(dist: np.ndarray, comps: np.ndarray, min_distance_px: int) -> np.ndarray:
    """Watershed markers: distance-transform peaks inside each component, (H, W) int32.

    A component without any peak (e.g. a 1-px-wide sliver) keeps one marker of its own, so no
    object is lost by the flooding.
    """
    peaks = peak_local_max(
        dist, min_distance=max(int(min_distance_px), 1), labels=comps, exclude_border=False
    )
    markers = np.zeros(comps.shape, dtype=np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1, dtype=np.int32)
    has_peak = np.zeros(int(comps.max()) + 1, dtype=bool)
    has_peak[comps[markers > 0]] = True
    missing = ~has_peak[comps] & (comps > 0)
    markers[missing] = comps[missing] + len(peaks)
    return markers


def _components(classes: np.ndarray, grow_px: int = 2) -> np.ndarray:
    """Class-1 components, grown into the foreground by ``grow_px`` pixels."""
    inst = label(classes == PARTICLE, connectivity=1)
    if grow_px > 0:
        inst = expand_labels(inst, distance=grow_px) * (classes >= 1)
    return inst


def _probabilities(pred: np.ndarray) -> np.ndarray | None:
    """(3, H, W) class probabilities from probabilities or logits; None for a class map."""
    if pred.ndim != 3:
        return None
    p = pred.astype(np.float32)
    if p.min() < 0 or p.max() > 1:  # logits
        p = np.exp(p - p.max(0, keepdims=True))
        p /= p.sum(0, keepdims=True)
    return p


def _core_watershed(
    pred: np.ndarray,
    classes: np.ndarray,
    erode_px: int = 1,
    core_threshold: float | None = None,
    split_neck_ratio: float = 0.0,
    min_seed_px: int = MIN_CORE_PX,
) -> np.ndarray:
    """Class-1 cores as seeds, flooded over the separator evidence inside the foreground.

    Where a network's separator has a gap, two grains' cores hang together by a thin bridge of
    uncertain pixels. ``core_threshold`` keeps only confident core pixels as seeds (bridges fall
    below it; exact or confident maps keep every core, so small grains keep their seeds), and
    ``erode_px`` erodes the cores (cuts bridges, but also deletes small grains' cores). Cores
    under ``min_seed_px`` pixels are not seeds (speckle). Foreground components without any seed (a
    particle predicted entirely as separator) become instances of their own. ``split_neck_ratio``
    cuts seeds at necks, where the bridge is confident too
    (:func:`~diffrendergan.segmentation.necks.split_at_necks`).
    """
    fg = classes >= 1
    probabilities = _probabilities(pred)
    core = classes == PARTICLE
    if core_threshold is not None and probabilities is not None:
        core = probabilities[PARTICLE] >= core_threshold
    if erode_px > 0:
        core = ndi.binary_erosion(core, structure=disk(erode_px) if erode_px > 1 else None)
    markers = split_at_necks(remove_small(label(core, connectivity=1), min_seed_px), split_neck_ratio)
    if probabilities is not None:
        landscape = probabilities[SEPARATOR]
    else:
        landscape = -ndi.distance_transform_edt(fg)
    inst = watershed(landscape, markers, mask=fg).astype(np.int64)
    orphans = label(fg & (inst == 0), connectivity=1)
    inst[orphans > 0] = orphans[orphans > 0] + inst.max()
    return inst


def _distance_watershed(classes: np.ndarray, min_distance_px: int = 3) -> np.ndarray:
    """Distance-transform watershed of the foreground with class-1 distance peaks as markers."""
    core = classes == PARTICLE
    if not core.any():
        return np.zeros(classes.shape, dtype=np.int32)
    dist = ndi.distance_transform_edt(core)
    markers = distance_markers(dist, label(core, connectivity=1), min_distance_px)
    return watershed(-dist, markers, mask=classes >= 1)


def decode(
    pred: np.ndarray | torch.Tensor,
    decoder: str = "core_watershed",
    min_size_px: int = 10,
    erode_px: int = 1,
    core_threshold: float | None = None,
    split_neck_ratio: float = 0.0,
    min_seed_px: int = MIN_CORE_PX,
) -> np.ndarray:
    """Instance map from a 3-class prediction.

    Args:
        pred: (H, W) class map in {0, 1, 2} or (3, H, W) class probabilities / logits.
        decoder: one of :data:`DECODERS`.
        min_size_px: instances with fewer pixels are removed.
        erode_px: ``core_watershed`` only: core erosion before seeding.
        core_threshold: ``core_watershed`` only: minimum core probability of a seed pixel.
        split_neck_ratio: ``core_watershed`` only: a seed is cut where it narrows below this
            fraction of its smaller lobe's width (0 = never).
        min_seed_px: ``core_watershed`` only: smallest predicted core that seeds an instance.
    Returns:
        (H, W) int32 instance ids 1..K, 0 = background.
    """
    arr = _to_numpy(pred)
    classes = classes_from_input(arr)
    if decoder == "components":
        inst = _components(classes)
    elif decoder == "core_watershed":
        inst = _core_watershed(arr, classes, erode_px, core_threshold, split_neck_ratio, min_seed_px)
    elif decoder == "distance_watershed":
        inst = _distance_watershed(classes)
    else:
        raise ValueError(f"unknown decoder {decoder!r}; expected one of {DECODERS}")
    return remove_small(inst, min_size_px)


def one_hot(classes: np.ndarray) -> np.ndarray:
    """(H, W) classes in {0, 1, 2} -> (3, H, W) float32 probabilities (a perfect prediction)."""
    return np.eye(3, dtype=np.float32)[np.asarray(classes, dtype=np.int64)].transpose(2, 0, 1)
