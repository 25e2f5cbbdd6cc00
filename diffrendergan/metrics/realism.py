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
and real and fake sets are sampled at the same patch positions (so identical sets give exactly 0).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
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


def _pad(x: torch.Tensor, pad: tuple[int, int, int, int]) -> torch.Tensor:
    """Reflect padding, replicate where an axis is too short to reflect."""
    short = x.shape[-1] <= max(pad[:2]) or x.shape[-2] <= max(pad[2:])
    return F.pad(x, pad, mode="replicate" if short else "reflect")


def _blur(x: torch.Tensor) -> torch.Tensor:
    """Separable 5-tap binomial blur with reflect padding. x: (N,1,H,W)."""
    k = _BINOMIAL.to(x)
    x = F.conv2d(_pad(x, (2, 2, 0, 0)), k.view(1, 1, 1, 5))
    return F.conv2d(_pad(x, (0, 0, 2, 2)), k.view(1, 1, 5, 1))


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


def _patch_descriptors(level: torch.Tensor, gen: torch.Generator, n_patches: int) -> torch.Tensor:
    """Random 7x7 neighbourhoods. level: (N,1,H,W) -> (N * n_patches, 49)."""
    n, _, h, w = level.shape
    ys = torch.randint(0, h - PATCH + 1, (n, n_patches), generator=gen)
    xs = torch.randint(0, w - PATCH + 1, (n, n_patches), generator=gen)
    d = torch.arange(PATCH)
    yy = ys[:, :, None, None] + d[None, None, :, None]  # (N,P,7,1)
    xx = xs[:, :, None, None] + d[None, None, None, :]  # (N,P,1,7)
    nn = torch.arange(n)[:, None, None, None]
    return level[:, 0][nn, yy, xx].reshape(n * n_patches, PATCH * PATCH)


def extract_descriptors(
    images: torch.Tensor | np.ndarray,
    seed: int = 0,
    n_patches: int = PATCHES_PER_IMAGE,
    levels: int | None = None,
) -> list[torch.Tensor]:
    """Raw (unnormalised) patch descriptors per pyramid level, finest first.

    Args:
        images: (N,1,H,W), (N,H,W) or (H,W) grey images (any value range, same for both sets).
        seed: seeds patch positions; the same seed gives the same positions for same-shaped sets.
    Returns:
        list of (N * n_patches, 49) float32 tensors, one per level.
    """
    x = _as_images(images)
    if levels is None:
        levels = num_levels(*x.shape[-2:])
    gen = torch.Generator().manual_seed(int(seed))
    pyr = laplacian_pyramid(x, levels)
    return [_patch_descriptors(lvl, gen, n_patches) for lvl in pyr]


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


class SWDReference:
    """Cached real-set side of the SWD: descriptors, normalisation and sorted projections.

    Build once per real set (e.g. at the start of training) and call ``distance(fake)`` every
    validation epoch; the fake set must have the real set's image size.
    """

    def __init__(self, real: torch.Tensor | np.ndarray, seed: int = 0) -> None:
        x = _as_images(real)
        self.seed = int(seed)
        self.shape = tuple(x.shape[-2:])
        self.levels = num_levels(*self.shape)
        desc = extract_descriptors(x, seed=self.seed, levels=self.levels)
        self.stats = [_level_stats(d) for d in desc]
        self.dirs = [_directions(PATCH * PATCH, self.seed, i) for i in range(self.levels)]
        self.sorted_real = [
            _sorted_projections((d - m) / s, dirs) for d, (m, s), dirs in zip(desc, self.stats, self.dirs)
        ]

    def distance(self, fake: torch.Tensor | np.ndarray) -> dict[str, list[float] | float]:
        """SWD x1e3 per level (finest first) and their mean. fake: (N,1,H,W) like the real set."""
        x = _as_images(fake)
        if tuple(x.shape[-2:]) != self.shape:
            raise ValueError(f"fake size {tuple(x.shape[-2:])} != real size {self.shape}")
        desc = extract_descriptors(x, seed=self.seed, levels=self.levels)
        return self._from_fake_descriptors(desc)

    def _from_fake_descriptors(self, desc: list[torch.Tensor]) -> dict[str, list[float] | float]:
        levels = []
        for d, (m, s), dirs, sr in zip(desc, self.stats, self.dirs, self.sorted_real):
            levels.append(1e3 * _sliced_w1(sr, _sorted_projections((d - m) / s, dirs)))
        return {"levels": levels, "mean": float(np.mean(levels))}


def swd(
    real: torch.Tensor | np.ndarray, fake: torch.Tensor | np.ndarray, seed: int = 0
) -> dict[str, list[float] | float]:
    """Sliced Wasserstein distance x1e3 between two image sets: ``{"levels": [...], "mean": m}``.

    real, fake: (N,1,H,W) / (N,H,W) grey images of one size; the set sizes may differ.
    """
    return SWDReference(real, seed=seed).distance(fake)


class SlicedWasserstein(Metric):
    """torchmetrics wrapper of :func:`swd` that syncs descriptors across DDP ranks.

    ``update(images, real=True|False)`` stores the patch descriptors (not the images);
    ``compute()`` returns ``{"levels": tensor(L), "mean": tensor()}`` (x1e3). Descriptors are
    stored as one (M, L, 49) tensor per update (every level draws the same number of patches), in
    list states with ``dist_reduce_fx="cat"``.
    """

    full_state_update = False

    def __init__(self, seed: int = 0, n_patches: int = PATCHES_PER_IMAGE, **kwargs) -> None:
        super().__init__(**kwargs)
        self.seed = int(seed)
        self.n_patches = int(n_patches)
        self.add_state("real_desc", default=[], dist_reduce_fx="cat")
        self.add_state("fake_desc", default=[], dist_reduce_fx="cat")
        self._n_updates = {True: 0, False: 0}

    def update(self, images: torch.Tensor, real: bool) -> None:
        """images: (N,1,H,W) in a fixed value range; ``real`` picks the set."""
        # Per-set update counters: the k-th real and k-th fake batch share patch positions.
        real = bool(real)
        seed = self.seed + 100_003 * self._n_updates[real]
        desc = extract_descriptors(images, seed=seed, n_patches=self.n_patches)
        self._n_updates[real] += 1
        stacked = torch.stack(desc, dim=1).to(self.device)  # (M, L, 49)
        (self.real_desc if real else self.fake_desc).append(stacked)

    def compute(self) -> dict[str, torch.Tensor]:
        real = _cat_state(self.real_desc)
        fake = _cat_state(self.fake_desc)
        if real.numel() == 0 or fake.numel() == 0:
            raise RuntimeError("SlicedWasserstein needs both real and fake updates before compute()")
        if real.shape[1] != fake.shape[1]:
            raise ValueError("real and fake images have different pyramid depths (sizes differ)")
        levels = []
        for i in range(real.shape[1]):
            m, s = _level_stats(real[:, i])
            dirs = _directions(PATCH * PATCH, self.seed, i)
            sa = _sorted_projections((real[:, i] - m) / s, dirs)
            sb = _sorted_projections((fake[:, i] - m) / s, dirs)
            levels.append(1e3 * _sliced_w1(sa, sb))
        lv = torch.tensor(levels, dtype=torch.float64)
        return {"levels": lv, "mean": lv.mean()}

    def reset(self) -> None:
        super().reset()
        self._n_updates = {True: 0, False: 0}


def _cat_state(state: list[torch.Tensor] | torch.Tensor) -> torch.Tensor:
    """List state (per update) or already-gathered tensor -> one CPU (M, L, 49) tensor."""
    if isinstance(state, torch.Tensor):
        return state.detach().cpu()
    if not state:
        return torch.empty(0)
    return torch.cat([s.detach().cpu() for s in state], dim=0)


def histogram_distance(
    real: torch.Tensor | np.ndarray, fake: torch.Tensor | np.ndarray, bins: int = 256
) -> float:
    """Wasserstein-1 between the grey-level distributions of two sets (values clipped to [0, 1]).

    Computed from ``bins``-bin histograms as sum |CDF_real - CDF_fake| * bin_width, so it is in
    grey-level units (0.1 = a mean brightness shift of 10 % of the range).
    """
    edges = np.linspace(0.0, 1.0, bins + 1)
    cdfs = []
    for x in (real, fake):
        v = _as_images(x).numpy().ravel().clip(0.0, 1.0)
        h, _ = np.histogram(v, bins=edges)
        cdfs.append(np.cumsum(h) / max(h.sum(), 1))
    return float(np.abs(cdfs[0] - cdfs[1]).sum() / bins)


def realism_report(
    real: torch.Tensor | np.ndarray, fake: torch.Tensor | np.ndarray, seed: int = 0
) -> dict[str, float | list[float]]:
    """All weight-free realism numbers: ``swd`` (mean x1e3), ``swd_levels``, ``hist_w1``."""
    s = swd(real, fake, seed=seed)
    return {"swd": s["mean"], "swd_levels": s["levels"], "hist_w1": histogram_distance(real, fake)}
