"""Appearance statistics of annotated micrographs: what a global realism metric averages away.

SWD and grey-level histograms are dominated by the substrate, which covers most of a patch. A
microscopist judges particles: are they bright right through or rim-lit rings, are their rims
smooth or stair-stepped, is the substrate's noise right? These statistics measure that on any
annotated folder, real or synthetic, so both can be put side by side.

Conventions (every image percentile-stretched to its own 0.5/99.5 % first, data bar removed):

* **Whole particles** are instances that do not touch the image border and have at least
  :data:`MIN_AREA_PX` pixels (cut particles have no true core).
* **Rim -> core profile**: inside each particle, the distance to its own outline (including the
  line it shares with a touching neighbour) divided by the particle's largest such distance, cut
  into ``n_bins`` equal bins; bin 0 is the rim, the last bin the core. A particle's profile is the
  mean intensity per bin; the set's profile is the mean over particles.
* **core/rim** = last bin / first bin; **substrate** = mean intensity of background pixels at least
  :data:`SUBSTRATE_MARGIN_PX` away from any particle; **contrast** = mean particle intensity -
  substrate.
* **Substrate statistics are medians over images** (level, std, power per band): a render with
  hardly any particle has its film stretched over the whole 0.5/99.5 % range, which a real
  micrograph never has. Pooled over pixels, 7 such renders of 200 (particle coverage 0.5 %) made a
  GAN export's film std 0.066 where the other 193 give 0.029 (real: 0.028).
* **Outline profile**: mean intensity by signed distance (rounded Euclidean, px) to the particles'
  outline facing the substrate, from :data:`OUTLINE_REACH` px outside (background near a whole
  particle) to as far inside (pixels of whole particles); +1 is the outline pixel, -1 the first
  background pixel. Unlike the radial bins it is in pixels, not in fractions of a radius, so it
  tells a bright rim band from a mask drawn where the edge is half-way up: on the 5 labeled
  Ruehle TiO2 images -1 / +1 / +2 are 0.22 / 0.58 / 0.65 (the outline pixel is a partial one).
* **Rim sharpness**: mean Sobel gradient magnitude on the particles' outline pixels facing the
  substrate, and inside cores (the last two bins): smooth, soft-shaded grains have low core
  gradients; stair-stepped rims have high rim gradients at the pixel scale.
* **Grain-to-grain spread** (``grain_cv``): within each image with at least
  :data:`GRAIN_CV_MIN_GRAINS` whole particles of :data:`GRAIN_CV_MIN_AREA_PX` pixels or more, the
  coefficient of variation (std / mean) of their mean intensities; averaged over such images.
  Real grains of one micrograph differ in brightness; renders with one yield per image do not.
* **Substrate noise power spectrum**: 32 x 32 windows lying wholly in the substrate, mean-removed
  and Hann-windowed; their power spectra are averaged per image and binned radially into
  :data:`PSD_BANDS` frequency bands up to 0.5 cycles/px (log10 of the median over images per band).
* **Touching particles** (:mod:`diffrendergan.metrics.contacts`): the mean intensity of the seams
  between touching particles (``seam``, and relative to the core bin, ``seam_core``), contacts
  per particle, and the share of touching pairs that one bright blob swallows (``pairs_merged``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage as ndi
from skimage.filters import sobel
from skimage.segmentation import clear_border, find_boundaries

from diffrendergan.metrics.contacts import ContactCounts, contact_counts

N_BINS = 5
MIN_AREA_PX = 30
SUBSTRATE_MARGIN_PX = 4
GRAIN_CV_MIN_AREA_PX = 300  # grains of >= ~20 px diameter: their mean is not an edge average
GRAIN_CV_MIN_GRAINS = 3
PSD_WINDOW = 32
PSD_BANDS = 8
OUTLINE_REACH = 4
CONTACT_KEYS = ("seam", "seam_core", "contacts_per_particle", "pairs_merged")


@dataclass
class Appearance:
    """Appearance statistics of a set of annotated images (see module docstring).

    Attributes:
        profile: (n_bins,) mean intensity from rim (0) to core.
        core_rim: profile[-1] / profile[0].
        substrate: median over images of the mean substrate intensity.
        contrast: mean particle intensity - substrate.
        rim_gradient, core_gradient: mean Sobel magnitude on outlines / in cores.
        substrate_std: median over images of the substrate's std (noise and residue together).
        grain_cv: mean within-image coefficient of variation of large grains' mean intensities.
        substrate_psd: (PSD_BANDS,) log10 power per frequency band, low to high.
        outline_profile: (2 * OUTLINE_REACH,) mean intensity at signed distances -reach..-1,
            +1..+reach px from the outline (negative: outside).
        seam: mean intensity on the seams between touching particles; seam_core: seam / the
            profile's core bin.
        contacts_per_particle: touching pairs per particle; pairs_merged: the share of touching
            pairs that lie in one bright blob.
        n_particles, n_images: what was measured.
    """

    profile: list[float] = field(default_factory=list)
    core_rim: float = float("nan")
    substrate: float = float("nan")
    contrast: float = float("nan")
    rim_gradient: float = float("nan")
    core_gradient: float = float("nan")
    substrate_std: float = float("nan")
    grain_cv: float = float("nan")
    substrate_psd: list[float] = field(default_factory=list)
    outline_profile: list[float] = field(default_factory=list)
    seam: float = float("nan")
    seam_core: float = float("nan")
    contacts_per_particle: float = float("nan")
    pairs_merged: float = float("nan")
    n_particles: int = 0
    n_images: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


def whole_particles(instances: np.ndarray, min_area_px: int = MIN_AREA_PX) -> np.ndarray:
    """Instances not touching the border and with >= ``min_area_px`` pixels, others set to 0.
    (H, W) int -> (H, W) int64."""
    inst = clear_border(np.asarray(instances).astype(np.int64))
    if inst.max(initial=0) == 0:
        return inst
    small = np.bincount(inst.ravel()) < min_area_px
    small[0] = False
    return np.where(small[inst], 0, inst)


def radial_bins(instances: np.ndarray, n_bins: int = N_BINS) -> np.ndarray:
    """Rim -> core bin of every particle pixel (-1 outside particles). (H, W) int -> (H, W) int.

    The distance is to the particle's own outline (inner boundary, shared edges included),
    normalised by the particle's largest distance, so every particle spans all bins."""
    inst = np.asarray(instances)
    fg = inst > 0
    outline = find_boundaries(inst, mode="inner") & fg
    dist = ndi.distance_transform_edt(~outline)
    peak = np.zeros(int(inst.max(initial=0)) + 1)
    ids = np.unique(inst[fg])
    if ids.size:
        peak[ids] = ndi.maximum(dist, labels=inst, index=ids)
    rel = np.where(fg, dist / np.maximum(peak[inst], 1e-9), 0.0)
    bins = np.minimum((rel * n_bins).astype(np.int64), n_bins - 1)
    return np.where(fg, bins, -1)


def particle_profiles(image: np.ndarray, instances: np.ndarray, n_bins: int = N_BINS) -> np.ndarray:
    """Mean intensity per rim -> core bin of every whole particle. image, instances (H, W) ->
    (P, n_bins); a bin a tiny particle has no pixel in is NaN."""
    inst = whole_particles(instances)
    ids = np.unique(inst[inst > 0])
    if ids.size == 0:
        return np.zeros((0, n_bins))
    bins = radial_bins(inst, n_bins)
    index = np.searchsorted(ids, inst[inst > 0]) * n_bins + bins[inst > 0]
    total = np.bincount(index, weights=np.asarray(image, np.float64)[inst > 0], minlength=ids.size * n_bins)
    count = np.bincount(index, minlength=ids.size * n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (total / count).reshape(ids.size, n_bins)


def grain_cv(image: np.ndarray, instances: np.ndarray) -> float:
    """Coefficient of variation of the mean intensities of an image's large whole particles
    (NaN with fewer than :data:`GRAIN_CV_MIN_GRAINS`). image, instances (H, W) -> float."""
    inst = whole_particles(instances, GRAIN_CV_MIN_AREA_PX)
    area = np.bincount(inst.ravel())
    total = np.bincount(inst.ravel(), weights=np.asarray(image, np.float64).ravel())
    ids = np.flatnonzero(area[1:]) + 1
    if ids.size < GRAIN_CV_MIN_GRAINS:
        return float("nan")
    means = total[ids] / area[ids]
    return float(means.std() / means.mean()) if means.mean() > 0 else float("nan")


def outline_sums(
    image: np.ndarray, instances: np.ndarray, whole: np.ndarray, reach: int = OUTLINE_REACH
) -> tuple[np.ndarray, np.ndarray]:
    """Intensity sums and pixel counts, each (2 * reach,), by signed distance to the outline facing
    the substrate: index 0 is ``reach`` px outside, ``reach - 1`` the first background pixel,
    ``reach`` the outline pixel, ``2 * reach - 1`` ``reach`` px inside. image, instances and
    ``whole`` (the caller's :func:`whole_particles` of ``instances``) (H, W)."""
    fg, whole = np.asarray(instances) > 0, np.asarray(whole) > 0
    if not whole.any():
        return np.zeros(2 * reach), np.zeros(2 * reach)
    inside = np.rint(ndi.distance_transform_edt(fg)).astype(np.int64)  # 1 on the outline
    outside = np.rint(ndi.distance_transform_edt(~fg)).astype(np.int64)  # 1 next to it
    near = ndi.binary_dilation(whole, iterations=reach)
    keep_in = whole & (inside <= reach)
    keep_out = near & ~fg & (outside <= reach)
    index = np.concatenate([reach - 1 + inside[keep_in], reach - outside[keep_out]])
    values = np.concatenate([image[keep_in], image[keep_out]]).astype(np.float64)
    sums = np.bincount(index, weights=values, minlength=2 * reach)
    return sums, np.bincount(index, minlength=2 * reach).astype(np.float64)


def outline_items(outline_profile: list[float]) -> list[tuple[int, float]]:
    """(signed distance in px, value) pairs of an outline profile: -reach..-1, +1..+reach."""
    reach = len(outline_profile) // 2
    offsets = [*range(-reach, 0), *range(1, reach + 1)]
    return list(zip(offsets, outline_profile))


def substrate_mask(instances: np.ndarray, margin_px: int = SUBSTRATE_MARGIN_PX) -> np.ndarray:
    """Background pixels at least ``margin_px`` from any particle. (H, W) -> (H, W) bool."""
    fg = np.asarray(instances) > 0
    return ~ndi.binary_dilation(fg, iterations=margin_px) if fg.any() else np.ones(fg.shape, bool)


def substrate_power_spectrum(
    image: np.ndarray, substrate: np.ndarray, window: int = PSD_WINDOW, bands: int = PSD_BANDS
) -> tuple[np.ndarray, int]:
    """Radially binned power of every ``window``² tile wholly in ``substrate``, summed over
    tiles; each band holds the mean power of its frequencies (a density: white noise is flat).
    Frequencies beyond 0.5 cycles/px (the corners) are left out. -> ((bands,), number of tiles)."""
    h, w = image.shape
    hann = np.outer(np.hanning(window), np.hanning(window))
    fy, fx = np.meshgrid(np.fft.fftfreq(window), np.fft.fftfreq(window), indexing="ij")
    radius = np.hypot(fx, fy).ravel()
    band = np.minimum((radius / 0.5 * bands).astype(int), bands - 1)
    inside = radius <= 0.5
    per_band = np.bincount(band[inside], minlength=bands)
    power, n = np.zeros(bands), 0
    for y in range(0, h - window + 1, window):
        for x in range(0, w - window + 1, window):
            if not substrate[y : y + window, x : x + window].all():
                continue
            tile = image[y : y + window, x : x + window].astype(np.float64)
            spec = np.abs(np.fft.fft2((tile - tile.mean()) * hann)) ** 2 / window**2
            power += np.bincount(band[inside], weights=spec.ravel()[inside], minlength=bands) / per_band
            n += 1
    return power, n


@dataclass
class _Accumulator:
    profiles: list[np.ndarray] = field(default_factory=list)
    particle: list[np.ndarray] = field(default_factory=list)
    substrate: list[np.ndarray] = field(default_factory=list)
    rim_grad: list[np.ndarray] = field(default_factory=list)
    core_grad: list[np.ndarray] = field(default_factory=list)
    grain_cv: list[float] = field(default_factory=list)
    power: list[np.ndarray] = field(default_factory=list)  # (PSD_BANDS,) mean tile power per image
    outline_sum: np.ndarray = field(default_factory=lambda: np.zeros(2 * OUTLINE_REACH))
    outline_count: np.ndarray = field(default_factory=lambda: np.zeros(2 * OUTLINE_REACH))
    contacts: ContactCounts = field(default_factory=ContactCounts)
    images: int = 0

    def add(self, image: np.ndarray, instances: np.ndarray, n_bins: int) -> None:
        image = np.asarray(image, np.float64)
        inst = np.asarray(instances)
        whole = whole_particles(inst)
        bins = radial_bins(whole, n_bins)
        sub = substrate_mask(inst)
        grad = sobel(image)
        facing_substrate = find_boundaries(inst > 0, mode="inner") & (whole > 0)
        self.profiles.append(particle_profiles(image, inst, n_bins))
        self.particle.append(image[inst > 0])
        self.substrate.append(image[sub])
        self.rim_grad.append(grad[facing_substrate])
        self.core_grad.append(grad[bins >= n_bins - 2])
        self.grain_cv.append(grain_cv(image, inst))
        sums, counts = outline_sums(image, inst, whole)
        self.outline_sum += sums
        self.outline_count += counts
        power, n = substrate_power_spectrum(image, sub)
        if n:
            self.power.append(power / n)
        self.contacts += contact_counts(image, inst)
        self.images += 1


def _mean(parts: list[np.ndarray]) -> float:
    values = np.concatenate(parts) if parts else np.zeros(0)
    return float(values.mean()) if values.size else float("nan")


def _ratio(num: float, den: float) -> float:
    """num / den, NaN when nothing was measured (den 0 or NaN)."""
    return float(num / den) if den > 0 else float("nan")


def _per_image_median(parts: list[np.ndarray], statistic: Callable[[np.ndarray], Any]) -> float:
    """Median over images of ``statistic`` of each image's pixels (images without any skipped)."""
    values = [float(statistic(v)) for v in parts if v.size]
    return float(np.median(values)) if values else float("nan")


def appearance_stats(pairs: Iterable[tuple[np.ndarray, np.ndarray]], n_bins: int = N_BINS) -> Appearance:
    """Statistics of (image (H, W) in [0, 1], instances (H, W) int) pairs; images are expected
    percentile-stretched already (see :func:`diffrendergan.data.readers.normalize_image`)."""
    acc = _Accumulator()
    for image, instances in pairs:
        acc.add(image, instances, n_bins)
    profiles = np.concatenate(acc.profiles) if acc.profiles else np.zeros((0, n_bins))
    profile = np.nanmean(profiles, axis=0) if len(profiles) else np.full(n_bins, np.nan)
    substrate = _per_image_median(acc.substrate, np.mean)
    psd = np.log10(np.median(acc.power, axis=0) + 1e-12) if acc.power else np.full(PSD_BANDS, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        outline = acc.outline_sum / acc.outline_count
    c = acc.contacts
    seam = _ratio(c.seam_sum, c.seam_pixels)
    return Appearance(
        profile=[float(v) for v in profile],
        core_rim=float(profile[-1] / profile[0]) if profile[0] > 0 else float("nan"),
        substrate=substrate,
        contrast=_mean(acc.particle) - substrate,
        rim_gradient=_mean(acc.rim_grad),
        core_gradient=_mean(acc.core_grad),
        substrate_std=_per_image_median(acc.substrate, np.std),
        grain_cv=float(np.nanmean(acc.grain_cv)) if np.isfinite(acc.grain_cv).any() else float("nan"),
        substrate_psd=[float(v) for v in psd],
        outline_profile=[float(v) for v in outline],
        seam=seam,
        seam_core=_ratio(seam, float(profile[-1])),
        contacts_per_particle=_ratio(c.pairs, c.particles),
        pairs_merged=_ratio(c.merged, c.pairs),
        n_particles=len(profiles),
        n_images=acc.images,
    )


def appearance_difference(real: Appearance, fake: Appearance) -> dict[str, float]:
    """fake - real for each statistic, the largest absolute profile-bin difference (the
    criterion "every bin within +-0.07") and the largest absolute outline-profile difference."""
    bins = np.asarray(fake.profile) - np.asarray(real.profile)
    out = {f"profile_bin{k}": float(v) for k, v in enumerate(bins)}
    out["profile_max_abs"] = float(np.abs(bins).max()) if bins.size else float("nan")
    for key in (
        "core_rim",
        "substrate",
        "contrast",
        "rim_gradient",
        "core_gradient",
        "substrate_std",
        "grain_cv",
        *CONTACT_KEYS,
    ):
        out[key] = float(getattr(fake, key) - getattr(real, key))
    outline = np.asarray(fake.outline_profile) - np.asarray(real.outline_profile)
    out["outline_max_abs"] = float(np.abs(outline).max()) if outline.size else float("nan")
    out["substrate_psd_max_abs"] = float(
        np.abs(np.asarray(fake.substrate_psd) - np.asarray(real.substrate_psd)).max()
    )
    return out


def profile_figure(stats: Mapping[str, Appearance], path: str) -> None:
    """Rim -> core profiles (left), outline profiles (middle) and substrate power spectra (right)
    of named sets."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from diffrendergan.utils.io import atomic_write

    fig, (ax, ax_out, ax_psd) = plt.subplots(1, 3, figsize=(13, 3.4), dpi=120)
    for name, s in stats.items():
        ax.plot(range(len(s.profile)), s.profile, "o-", label=f"{name} (core/rim {s.core_rim:.2f})")
        ax.axhline(s.substrate, ls=":", color=ax.lines[-1].get_color(), lw=1)
        offsets, values = zip(*outline_items(s.outline_profile)) if s.outline_profile else ((), ())
        ax_out.plot(offsets, values, "o-", label=name)
        bands = (np.arange(len(s.substrate_psd)) + 0.5) * 0.5 / max(len(s.substrate_psd), 1)
        ax_psd.plot(bands, s.substrate_psd, "o-", label=name)
    ax.set_xlabel("rim (0) -> core")
    ax.set_ylabel("normalised intensity (dotted: substrate)")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7)
    ax_out.axvline(0, color="grey", lw=0.5)
    ax_out.set_xlabel("px from the outline (< 0: film, +1: outline pixel)")
    ax_out.set_ylim(0, 1)
    ax_out.legend(fontsize=7)
    ax_psd.set_xlabel("frequency (cycles/px)")
    ax_psd.set_ylabel("substrate log10 power")
    ax_psd.legend(fontsize=7)
    fig.tight_layout()
    atomic_write(path, lambda p: fig.savefig(p, format="png"))
    plt.close(fig)
