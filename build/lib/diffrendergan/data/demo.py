"""The embedded default: a deterministic, *simulated* demo set made by the project itself.

A fresh clone has no real data, and licensed micrographs must not be committed. So, on first use,
the renderer draws "micrographs" of each material with hidden parameter values (``DEMO_TRUTH``)
and adds nuisances that the generator does *not* model — uneven illumination, scan-line jitter and
an instrument data bar — then writes them into a cache folder as 8-bit TIFFs. Each micrograph is a
window onto a larger specimen (a guard band of ``DEMO_GUARD``), so particles are cut by its border as
on a real micrograph:

    <cache>/demo/v5/<material>-<hash>/unlabeled/*.tif          for GAN training
    <cache>/demo/v5/<material>-<hash>/labeled/{images,masks}/  annotated (masks: 16-bit label images
                                                         of the exact, touching instances)
    <cache>/demo/v5/<material>-<hash>/truth.json                hidden parameters and size law

The masks are the simulation's truth, not a hand-made-style binary mask: a 1-px background line
between touching particles takes their pixels and cuts slivers apart (on 48 rendered TiO2 images the
whole-particle median equivalent diameter of such masks is 3.7 % below the exact one), which would
make every size measured against the demo look biased.

This is simulated data for trying the pipeline out; it says nothing about real specimens.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import tifffile
import torch
from skimage.segmentation import relabel_sequential

from diffrendergan.config import MaterialConfig, RendererConfig
from diffrendergan.noise.detector import DETECTOR_INTRODUCED
from diffrendergan.rendering.renderer import MicroscopyRenderer
from diffrendergan.scene.laws import size_law_moments
from diffrendergan.scene.layout import sample_layout, scaled_to_size
from diffrendergan.shading.sem import SE_INTRODUCED

DEMO_VERSION = "v5"  # v2: windows of a larger specimen (border-cut particles); v3: bounded shadows;
# v4: TIFF resolution tags carry the pixel size; v5: masks are exact label images
DEMO_GUARD = 0.25  # guard band of the demo micrographs (fraction of their side)
DATA_BAR_ROWS = 40

# Hidden "true" rendering parameters per material (physical units; unlisted ones: range midpoint).
# The SE and detector terms added later are held at the values that render as before
# (SE_INTRODUCED, DETECTOR_INTRODUCED), so the demo images, and every figure measured on them, stay
# what they were.
DEMO_TRUTH: dict[str, dict[str, float]] = {
    "tio2": {
        "particle_yield": 0.32, "substrate_yield": 0.14, "tilt_exponent": 0.9, "edge_gain": 0.35,
        "edge_length_nm": 14.0, "detector_asymmetry": 0.05, "shadow_strength": 0.1,
        "substrate_texture": 0.12, "blur_px": 0.9, "gain": 1.0, "offset": 0.0,
        "shot_noise": 0.06, "read_noise": 0.03, "volume_yield": 0.0, "volume_length_nm": 100.0,
        "residue_gain": 0.0, **SE_INTRODUCED, **DETECTOR_INTRODUCED,
    },
    "sio2": {
        "particle_yield": 0.35, "substrate_yield": 0.08, "tilt_exponent": 1.1, "edge_gain": 0.6,
        "edge_length_nm": 5.0, "detector_asymmetry": 0.05, "shadow_strength": 0.05,
        "substrate_texture": 0.1, "blur_px": 1.0, "gain": 1.0, "offset": 0.0,
        "shot_noise": 0.08, "read_noise": 0.04, "volume_yield": 0.0, "volume_length_nm": 100.0,
        "residue_gain": 0.0, **SE_INTRODUCED, **DETECTOR_INTRODUCED,
    },
    "agnw": {
        "particle_yield": 0.45, "substrate_yield": 0.1, "tilt_exponent": 0.8, "edge_gain": 0.3,
        "edge_length_nm": 10.0, "detector_asymmetry": 0.2, "shadow_strength": 0.3,
        "substrate_texture": 0.15, "blur_px": 1.0, "gain": 1.0, "offset": 0.0,
        "shot_noise": 0.07, "read_noise": 0.03, "volume_yield": 0.0, "volume_length_nm": 100.0,
        "residue_gain": 0.0, **SE_INTRODUCED, **DETECTOR_INTRODUCED,
    },
}  # fmt: skip


@dataclass(frozen=True)
class DemoSet:
    root: Path
    unlabeled_dir: Path
    labeled_dir: Path
    truth: dict


def add_nuisances(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Uneven illumination (a smooth gain ramp) and scan-line jitter (row shifts). img (H, W)."""
    h, w = img.shape
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    gx, gy = rng.uniform(-0.12, 0.12, size=2)
    out = img * (1.0 + gx * (xx - 0.5) + gy * (yy - 0.5))
    shifts = np.round(rng.normal(0.0, 0.5, size=h)).astype(int)
    for r in np.nonzero(shifts)[0]:
        out[r] = np.roll(out[r], shifts[r])
    return np.clip(out, 0.0, 1.0)


def add_data_bar(img: np.ndarray, rng: np.random.Generator, rows: int = DATA_BAR_ROWS) -> np.ndarray:
    """Append a fake instrument data bar: a dark band with text-like blocks and a scale bar."""
    w = img.shape[1]
    bar = np.full((rows, w), 0.02, dtype=np.float32)
    bar[0, :] = 0.9  # separator line, as on Zeiss/FEI bars
    x = 6
    while x < w - 40:
        bw = int(rng.integers(4, 14))
        bar[8:16, x : x + bw] = 0.95
        if rng.random() < 0.6:
            bar[22:30, x : x + bw] = 0.95
        x += bw + int(rng.integers(2, 8))
    bar[rows - 10 : rows - 7, w - 70 : w - 10] = 1.0
    return np.concatenate([img.astype(np.float32), bar], 0)


def _to_u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x * 255.0), 0, 255).astype(np.uint8)


def _write_micrograph(path: Path, img: np.ndarray, pixel_size_nm: float) -> None:
    """8-bit TIFF whose resolution tags record the pixel size (pixels per cm), as microscope
    software writes it, so ``analyze`` reads the scale from the file like a real micrograph's."""
    per_cm = 1e7 / pixel_size_nm
    tifffile.imwrite(path, _to_u8(img), resolution=(per_cm, per_cm), resolutionunit="CENTIMETER")


def demo_root(
    cache_dir: str | Path, material: MaterialConfig, n_unlabeled: int, n_labeled: int, size: int
) -> Path:
    """Cache folder, keyed by everything the demo depends on (a changed config makes a new set)."""
    key = json.dumps(
        [asdict(material), n_unlabeled, n_labeled, size, DEMO_TRUTH.get(material.name)],
        sort_keys=True,
        default=str,
    )
    digest = hashlib.sha1(key.encode()).hexdigest()[:10]
    return Path(cache_dir).expanduser() / "demo" / DEMO_VERSION / f"{material.name}-{digest}"


def ensure_demo(
    material: MaterialConfig,
    cache_dir: str | Path,
    n_unlabeled: int = 8,
    n_labeled: int = 3,
    size: int = 512,
) -> DemoSet:
    """Create the demo set for ``material`` unless it is already cached; returns its folders.

    Written into a temporary folder and renamed into place, so an interrupted run never leaves a
    half-written set behind.
    """
    root = demo_root(cache_dir, material, n_unlabeled, n_labeled, size)
    done = root / "truth.json"
    if not done.exists():
        root.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{material.name}-", dir=root.parent))
        try:
            _write_demo(material, tmp, n_unlabeled, n_labeled, size)
            if root.exists():
                shutil.rmtree(root)
            os.replace(tmp, root)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    truth = json.loads(done.read_text())
    return DemoSet(root, root / "unlabeled", root / "labeled", truth)


def demo_specimen(material: MaterialConfig, size: int) -> MaterialConfig:
    """The material scaled to a ``size``-px micrograph with at least the demo's guard band: what
    the demo's layouts are drawn from and rendered with."""
    big = scaled_to_size(material, size)
    return replace(big, placement=replace(big.placement, guard=max(big.placement.guard, DEMO_GUARD)))


def _write_demo(material: MaterialConfig, out: Path, n_unlabeled: int, n_labeled: int, size: int) -> None:
    truth_params = DEMO_TRUTH.get(material.name, {})
    big = demo_specimen(material, size)
    renderer = MicroscopyRenderer(big, RendererConfig())
    space = renderer.space
    values = {n: truth_params.get(n, space.ranges[n].fixed_value) for n in space.learned}
    for n, v in values.items():  # keep the truth inside the configured ranges
        values[n] = min(max(v, space.ranges[n].low), space.ranges[n].high)
    unit = space.to_unit(values)
    (out / "unlabeled").mkdir(parents=True)
    (out / "labeled" / "images").mkdir(parents=True)
    (out / "labeled" / "masks").mkdir(parents=True)
    gen = torch.Generator().manual_seed(2024)
    for i in range(n_unlabeled + n_labeled):
        seed = 900_000 + i
        lay = sample_layout(big, seed)
        img = renderer.render([lay], unit, gen).image[0, 0].numpy()
        rng = np.random.default_rng(seed)
        img = add_data_bar(add_nuisances(img, rng), rng)
        if i < n_unlabeled:
            _write_micrograph(out / "unlabeled" / f"demo_{i:03d}.tif", img, material.pixel_size_nm)
            continue
        _, instances = renderer.masks([lay])
        mask = relabel_sequential(instances[0].numpy())[0].astype(np.uint16)
        mask = np.concatenate([mask, np.zeros((DATA_BAR_ROWS, size), np.uint16)], 0)
        _write_micrograph(out / "labeled" / "images" / f"demo_{i:03d}.tif", img, material.pixel_size_nm)
        tifffile.imwrite(out / "labeled" / "masks" / f"demo_{i:03d}.tif", mask)
    truth = {
        "material": material.name,
        "params": values,
        "size_law": asdict(material.size),
        "size_moments_nm": size_law_moments(material.size),
        "pixel_size_nm": material.pixel_size_nm,
        "data_bar_rows": DATA_BAR_ROWS,
        "note": "simulated demo data generated by diffrendergan; not a real specimen",
    }
    (out / "truth.json").write_text(json.dumps(truth, indent=2))
