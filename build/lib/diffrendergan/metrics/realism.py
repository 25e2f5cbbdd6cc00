"""Weight-free realism metrics between a real and a generated (fake) grey-level image set.

FID/KID need Inception weights, which cannot be downloaded here and are tuned to natural RGB
photos anyway. These metrics need no weights:

* **Sliced Wasserstein distance (SWD)** on Laplacian-pyramid patches, after Karras et al. 2018
  ("Progressive Growing of GANs", appendix D), adapted to one channel: every pyramid level (from
  full resolution down to 16 px) contributes 128 random 7x7 neighbourhoods per image; descriptors
  are normalised per level with the mean/std of the **real** set (so that a brightness or contrast
  shift of the fake set is *not* normalised away, and the real side can be cached); the distance
  is the mean over 4 repeats x 128 random unit directions of the 1-D Wasserstein-1 distance between
  the sorted projections. Reported x1e3 per level (index 0 = finest) and as the mean over levels.
  Low levels measure fine texture / noise, high levels the coarse layout.
* **Grey-level histogram W1**: 1-D Wasserstein-1 distance between the pixel-value distributions
  (values in [0, 1]); catches global brightness / contrast mismatches.

All randomness comes from seeded ``torch.Generator`` objects: a fixed seed gives identical numbers,
and the k-th real and k-th fake image are sampled at the same patch positions (so identical sets
give exactly 0).
"""

from __future__ import annotations

import numpy as np
import torch
from kornia.filters import filter2d_separable
from torchmetrics import Metric

PATCH = 7
PATCHES_PER_IMAGE = 128
DIR_REPEATS = 4
DIRS_PER_REPEAT = 128
MIN_LEVEL_SIZE = 16

_BINOMIAL = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0


def _as_images(x: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Any of (H,W), (N,H,W), (N,1,H,W) -> float32 (N,1,H,W) on CPU."""
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    t = t.detach().to("cpu", torch.float32)
    if t.ndim == 2:
        t = t[None, None]
    elif t.ndim == 3:
        t = t[:, None]
    if t.ndim != 4 or t.shape[1] != 1:
        raise ValueError(f"expected (N,1,H,W) grey images, got shape {tuple(t.shape)}")
    return t


def _blur(x: torch.Tensor) -> torch.Tensor:
    """Separable 5-tap binomial blur with reflect padding (kornia). x: (N,1,H,W)."""
    k = _BINOMIAL.to(x)[None]
    return filter2d_separable(x, k, k, border_type="reflect")


# The blur is kornia's; the pyramid's resampling stays ours. kornia's build_laplacian_pyramid
# decimates by bilinear interpolation after the blur (not by taking every second pixel, the
# Burt-Adelson pyramid of the ProGAN SWD), so its coarse levels differ from these by 50-78 %
# (relative L2, random 256 px images) and every SWD reported so far would shift; and it fails on a
# 690x1024 micrograph (odd sizes below the top level), which these handle (ceil(H / 2)).
def _pyr_down(x: torch.Tensor) -> torch.Tensor:
    """Blur + decimate by 2: (N,1,H,W) -> (N,1,ceil(H/2),ceil(W/2)) (as cv2.pyrDown)."""
    return _blur(x)[..., ::2, ::2]


def _pyr_up(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Zero-insertion upsampling + 4x blur, cropped to ``size``: the inverse step of _pyr_down."""
    n, c, h, w = x.shape
    up = x.new_zeros(n, c, 2 * h, 2 * w)
    up[..., ::2, ::2] = x * 4.0
    return _blur(up)[..., : size[0], : size[1]]


def num_levels(height: int, width: int, min_size: int = MIN_LEVEL_SIZE) -> int:
    """Pyramid levels so that the coarsest one is still >= ``min_size`` px (256 -> 5 levels)."""
    side, levels = min(height, width), 1
    while -(-side // 2) >= min_size:  # the next level is ceil(side / 2) px
        side, levels = -(-side // 2), levels + 1
    return levels


def laplacian_pyramid(x: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """Laplacian pyramid, finest first; the last entry is the Gaussian residual.

    Args:
        x: (N,1,H,W) float images.
        levels: number of returned levels (>= 1).
    Returns:
        list of ``levels`` tensors (N,1,H_l,W_l), H_l = ceil(H / 2**l). ``sum of upsampled levels``
        reconstructs x exactly.
    """
    out: list[torch.Tensor] = []
    g = x
    for _ in range(levels - 1):
        small = _pyr_down(g)
        out.append(g - _pyr_up(small, g.shape[-2:]))
        g = small
    out.append(g)
    return out


def _positions(ids: torch.Tensor, seed: int, level: int, h: int, w: int, n_patches: int) -> torch.Tensor:
    """(N, n_patches, 2) top-left corners of 7x7 patches. Each image's positions depend only on
    ``(seed, its id, level)``, not on which other images share its batch or process, so a set
    split over updates or DDP ranks gives exactly the descriptors of the whole set."""
    out = torch.empty(len(ids), n_patches, 2, dtype=torch.long)
    for row, i in enumerate(ids.tolist()):
        gen = torch.Generator().manual_seed((int(seed) * 1_000_003 + int(i)) * 31 + level)
        out[row, :, 0] = torch.randint(0, h - PATCH + 1, (n_patches,), generator=gen)
        out[row, :, 1] = torch.randint(0, w - PATCH + 1, (n_patches,), generator=gen)
    return out


def _patch_descriptors(level: torch.Tensor, corners: torch.Tensor) -> torch.Tensor:
    """7x7 neighbourhoods at ``corners`` (N,P,2). level: (N,1,H,W) -> (N, P, 49)."""
    n, p = corners.shape[:2]
    d = torch.arange(PATCH)
    yy = corners[:, :, 0, None, None] + d[None, None, :, None]  # (N,P,7,1)
    xx = corners[:, :, 1, None, None] + d[None, None, None, :]  # (N,P,1,7)
    nn = torch.arange(n)[:, None, None, None]
    return level[:, 0][nn, yy, xx].reshape(n, p, PATCH * PATCH)


def extract_descriptors(
    images: torch.Tensor | np.ndarray,
    seed: int = 0,
    n_patches: int = PATCHES_PER_IMAGE,
    levels: int | None = None,
    ids: torch.Tensor | None = None,
) -> torch.Tensor:
    """Raw (unnormalised) patch descriptors of every pyramid level, finest first.

    Args:
        images: (N,1,H,W), (N,H,W) or (H,W) grey images (any value range, same for both sets).
        seed: with each image's id, seeds its patch positions.
        ids: (N,) an id per image (default 0..N-1); images with the same id and size get the
            same positions, in whatever batch or process they are measured.
    Returns:
        (N, L, n_patches, 49) float32 descriptors.
    """
    x = _as_images(images)
    if levels is None:
        levels = num_levels(*x.shape[-2:])
    ids = torch.arange(len(x)) if ids is None else torch.as_tensor(ids).reshape(-1).cpu()
    if len(ids) != len(x):
        raise ValueError(f"got {len(ids)} ids for {len(x)} images")
    per_level = []
    for i, lvl in enumerate(laplacian_pyramid(x, levels)):
        corners = _positions(ids, seed, i, lvl.shape[-2], lvl.shape[-1], n_patches)
        per_level.append(_patch_descriptors(lvl, corners))
    return torch.stack(per_level, dim=1)


def _directions(dim: int, seed: int, level: int) -> torch.Tensor:
    """(DIR_REPEATS, dim, DIRS_PER_REPEAT) random unit vectors, seeded per level."""
    gen = torch.Generator().manual_seed(int(seed) * 1000 + 7919 + level)
    d = torch.randn(DIR_REPEATS, dim, DIRS_PER_REPEAT, generator=gen)
    return d / d.norm(dim=1, keepdim=True)


def _sorted_projections(desc: torch.Tensor, dirs: torch.Tensor) -> torch.Tensor:
    """desc (M,D), dirs (R,D,K) -> sorted projections (R,K,M)."""
    proj = torch.einsum("md,rdk->rkm", desc.float(), dirs.float())  # float32: ~2x faster sort
    return proj.sort(dim=-1).values


def _resample_sorted(s: torch.Tensor, m: int) -> torch.Tensor:
    """Quantile-resample sorted samples (..., M0) to (..., m) so unequal sets can be compared."""
    m0 = s.shape[-1]
    if m0 == m:
        return s
    q = (torch.arange(m, dtype=s.dtype) + 0.5) / m * m0 - 0.5  # positions on the old grid
    q = q.clamp(0, m0 - 1)
    lo = q.floor().long()
    hi = (lo + 1).clamp(max=m0 - 1)
    frac = q - lo.to(s.dtype)
    return s[..., lo] * (1 - frac) + s[..., hi] * frac


def _sliced_w1(sorted_a: torch.Tensor, sorted_b: torch.Tensor) -> float:
    """Mean W1 over all directions from sorted projections (R,K,Ma), (R,K,Mb)."""
    m = max(sorted_a.shape[-1], sorted_b.shape[-1])
    a = _resample_sorted(sorted_a, m)
    b = _resample_sorted(sorted_b, m)
    return float((a - b).abs().mean())


def _level_stats(desc: torch.Tensor) -> tuple[float, float]:
    """Scalar mean/std of a level's descriptors (one channel -> one pair per level)."""
    mean = float(desc.double().mean())
    std = float(desc.double().std())
    return mean, max(std, 1e-12)


def _dedupe(feats: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Per-image features (N, ...) of distinct ids, in id order: a set measured in shards (DDP
    pads its shards with repeats) gives exactly the features of the whole set."""
    order = torch.argsort(ids, stable=True)
    ids, feats = ids[order], feats[order]
    first = torch.ones(len(ids), dtype=torch.bool)
    first[1:] = ids[1:] != ids[:-1]
    return feats[first]


class ImageSetMetric(Metric):
    """A distance between a real and a fake image set, kept as per-image features keyed by image
    id, so that it syncs across DDP ranks and can keep its real side as a cached reference.

    ``update(images, real=True|False, ids=None)`` stores :meth:`features` (not images) with ids
    (default: running numbers per set). ``compute()`` gathers every rank's features and drops
    repeated ids (DistributedSampler pads its shards with repeats): the same value however the
    sets were split over updates and processes. ``reset_fake()`` forgets only the fake side, so a
    fixed real validation set is measured once. Subclasses define ``features`` and ``compute``.
    """

    full_state_update = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        for side in ("real", "fake"):
            self.add_state(f"{side}_features", default=[], dist_reduce_fx="cat")
            self.add_state(f"{side}_ids", default=[], dist_reduce_fx="cat")
        self._next_id = {True: 0, False: 0}

    def features(self, images: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """(N, 1, H, W) images and their (N,) ids -> (N, ...) per-image features."""
        raise NotImplementedError

    def update(self, images: torch.Tensor | np.ndarray, real: bool, ids: torch.Tensor | None = None) -> None:
        """images: (N,1,H,W) in a fixed value range; ``real`` picks the set; ids: (N,) or None."""
        real = bool(real)
        x = _as_images(images)
        if ids is None:
            ids = torch.arange(self._next_id[real], self._next_id[real] + len(x))
            self._next_id[real] += len(x)
        ids = torch.as_tensor(ids, dtype=torch.long).reshape(-1).cpu()
        side = "real" if real else "fake"
        getattr(self, f"{side}_features").append(self.features(x, ids).to(self.device))
        getattr(self, f"{side}_ids").append(ids.to(self.device))

    def side(self, side: str) -> torch.Tensor:
        """The features of one set ("real" or "fake"), one row per distinct id, in id order."""
        feats, ids = _cat_state(getattr(self, f"{side}_features")), _cat_state(getattr(self, f"{side}_ids"))
        if feats.numel() == 0:
            raise RuntimeError(f"{type(self).__name__} needs both real and fake updates before compute()")
        return _dedupe(feats, ids.long())

    def reset(self) -> None:
        super().reset()
        self._next_id = {True: 0, False: 0}

    def reset_fake(self) -> None:
        """Forget the fake side only; the real side stays as the cached reference."""
        self.fake_features, self.fake_ids = [], []
        self._next_id[False] = 0
        self._computed = None


class SlicedWasserstein(ImageSetMetric):
    """SWD (x1e3) between a real and a fake image set from Laplacian-pyramid patch descriptors;
    ``compute()`` returns ``{"levels": tensor(L), "mean": tensor()}``. See :class:`ImageSetMetric`."""

    def __init__(self, seed: int = 0, n_patches: int = PATCHES_PER_IMAGE, **kwargs) -> None:
        super().__init__(**kwargs)
        self.seed = int(seed)
        self.n_patches = int(n_patches)

    def features(self, images: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        return extract_descriptors(images, seed=self.seed, n_patches=self.n_patches, ids=ids)

    def compute(self) -> dict[str, torch.Tensor]:
        real, fake = self.side("real"), self.side("fake")
        if real.shape[1] != fake.shape[1]:
            raise ValueError("real and fake images have different pyramid depths (sizes differ)")
        levels = []
        for i in range(real.shape[1]):
            r, f = real[:, i].reshape(-1, PATCH * PATCH), fake[:, i].reshape(-1, PATCH * PATCH)
            m, s = _level_stats(r)
            dirs = _directions(PATCH * PATCH, self.seed, i)
            levels.append(1e3 * _sliced_w1(_sorted_projections((r - m) / s, dirs),
                                           _sorted_projections((f - m) / s, dirs)))  # fmt: skip
        lv = torch.tensor(levels, dtype=torch.float64)
        return {"levels": lv, "mean": lv.mean()}


class GreyLevelW1(ImageSetMetric):
    """Wasserstein-1 between the grey-level distributions of a real and a fake image set (values
    clipped to [0, 1]), from ``bins``-bin histograms: sum |CDF_real - CDF_fake| * bin width, in
    grey-level units (0.1 = a mean brightness shift of 10 % of the range). Per-image histograms
    are the features, so shards add up to the whole set. See :class:`ImageSetMetric`."""

    def __init__(self, bins: int = 256, **kwargs) -> None:
        super().__init__(**kwargs)
        self.bins = int(bins)

    def features(self, images: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        edges = np.linspace(0.0, 1.0, self.bins + 1)
        counts = [np.histogram(x.numpy().ravel().clip(0.0, 1.0), bins=edges)[0] for x in images]
        return torch.from_numpy(np.stack(counts)).long()  # (N, bins)

    def compute(self) -> torch.Tensor:
        cdfs = []
        for side in ("real", "fake"):
            h = self.side(side).sum(0).double()
            cdfs.append(torch.cumsum(h, 0) / h.sum().clamp_min(1))
        return (cdfs[0] - cdfs[1]).abs().sum() / self.bins


def swd(
    real: torch.Tensor | np.ndarray, fake: torch.Tensor | np.ndarray, seed: int = 0
) -> dict[str, list[float] | float]:
    """Sliced Wasserstein distance x1e3 between two image sets: ``{"levels": [...], "mean": m}``.

    real, fake: (N,1,H,W) / (N,H,W) grey images of one size; the set sizes may differ.
    """
    x, y = _as_images(real), _as_images(fake)
    if x.shape[-2:] != y.shape[-2:]:
        raise ValueError(f"fake size {tuple(y.shape[-2:])} != real size {tuple(x.shape[-2:])}")
    metric = SlicedWasserstein(seed=seed, sync_on_compute=False)
    metric.update(x, real=True)
    metric.update(y, real=False)
    out = metric.compute()
    return {"levels": out["levels"].tolist(), "mean": float(out["mean"])}


def _cat_state(state: list[torch.Tensor] | torch.Tensor) -> torch.Tensor:
    """List state (per update) or already-gathered tensor -> one CPU tensor."""
    if isinstance(state, torch.Tensor):
        return state.detach().cpu()
    if not state:
        return torch.empty(0)
    return torch.cat([s.detach().cpu() for s in state], dim=0)


def histogram_distance(
    real: torch.Tensor | np.ndarray, fake: torch.Tensor | np.ndarray, bins: int = 256
) -> float:
    """Grey-level Wasserstein-1 between two image sets (one-shot :class:`GreyLevelW1`)."""
    metric = GreyLevelW1(bins=bins, sync_on_compute=False)
    metric.update(real, real=True)
    metric.update(fake, real=False)
    return float(metric.compute())


def realism_report(
    real: torch.Tensor | np.ndarray, fake: torch.Tensor | np.ndarray, seed: int = 0
) -> dict[str, float | list[float]]:
    """All weight-free realism numbers: ``swd`` (mean x1e3), ``swd_levels``, ``hist_w1``."""
    s = swd(real, fake, seed=seed)
    return {"swd": s["mean"], "swd_levels": s["levels"], "hist_w1": histogram_distance(real, fake)}
