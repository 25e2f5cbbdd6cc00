"""Render the README pictures from the project itself, from SIMULATED demo data only.

    python -m experiments.figures out_dir=docs [comparison=outputs/compare/<date>/comparison.json]
    python -m experiments.figures --out-dir docs --comparison path/to/comparison.json

Writes into out_dir:
* demo_real_vs_synthetic.png: simulated demo "real" patches (diffrendergan.data.demo, 256 px crops)
  | renders with range-midpoint parameters | renders with uniformly random parameters (TiO2);
* mask_overlays.png: synthetic images and their exact masks (green particle, red boundary) for
  tio2, sio2 and agnw (diffrendergan.tasks.preview);
* comparison.png: scores (mean ± std over seeds) and paired intervals from a comparison.json
  (experiments.compare), only when one is given.
Never reads real (licensed) micrographs. PNGs are 8-bit and kept small (downscaled tiles).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
MATERIALS = ("tio2", "sio2", "agnw")
TILE = 200  # px per image tile in the pictures (renders are 256 px; downscaled to keep PNGs small)
PAD = 4
LABEL_W = 86
MAX_BYTES = 300_000


def load_material(name: str):
    from omegaconf import OmegaConf

    from diffrendergan.config import material_from_dict

    raw = OmegaConf.to_container(OmegaConf.load(ROOT / "configs" / "material" / f"{name}.yaml"))
    return material_from_dict(raw)  # type: ignore[arg-type]


def _tile(img: np.ndarray, size: int = TILE) -> Image.Image:
    """float [0, 1] grey (H, W) or uint8 RGB (H, W, 3) -> PIL tile of size x size."""
    if img.dtype != np.uint8:
        img = np.clip(np.round(img * 255.0), 0, 255).astype(np.uint8)
    return Image.fromarray(img).resize((size, size), Image.Resampling.LANCZOS)


def _sheet(rows: list[tuple[str, list[Image.Image]]], mode: str) -> Image.Image:
    """Rows of tiles with a text label on the left."""
    n = max(len(t) for _, t in rows)
    w = LABEL_W + n * (TILE + PAD)
    h = len(rows) * (TILE + PAD) + PAD
    sheet = Image.new(mode, (w, h), 255 if mode == "L" else (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for r, (label, tiles) in enumerate(rows):
        y = PAD + r * (TILE + PAD)
        for line_no, line in enumerate(label.split("\n")):
            draw.text((4, y + TILE // 2 - 14 + 12 * line_no), line, fill=0 if mode == "L" else (0, 0, 0))
        for c, t in enumerate(tiles):
            sheet.paste(t.convert(mode), (LABEL_W + c * (TILE + PAD), y))
    return sheet


def _save(img: Image.Image, path: Path) -> Path:
    """Save as PNG; palette-quantize RGB and shrink until it is under MAX_BYTES."""
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        out = img.quantize(colors=256) if img.mode == "RGB" else img
        out.save(path, format="PNG", optimize=True)
        if path.stat().st_size <= MAX_BYTES or img.width < 300:
            return path
        img = img.resize((int(img.width * 0.85), int(img.height * 0.85)), Image.Resampling.LANCZOS)


def _crop(img: np.ndarray, size: int) -> np.ndarray:
    """The size x size window (stride size/2) with the most contrast, i.e. with particles in it."""
    h, w = img.shape
    windows = [
        img[y : y + size, x : x + size]
        for y in range(0, max(h - size, 0) + 1, size // 2)
        for x in range(0, max(w - size, 0) + 1, size // 2)
    ]
    return max(windows, key=lambda c: float(c.std()))


def real_vs_synthetic(out_dir: Path, cache_dir: Path, material_name: str = "tio2", n: int = 4) -> Path:
    """Demo 'real' patches | range-midpoint renders | uniformly random renders."""
    import torch

    from diffrendergan.config import RendererConfig
    from diffrendergan.data.demo import DATA_BAR_ROWS, ensure_demo
    from diffrendergan.data.readers import list_images, read_micrograph
    from diffrendergan.rendering.renderer import MicroscopyRenderer
    from diffrendergan.scene.layout import sample_layout

    material = load_material(material_name)
    demo = ensure_demo(material, cache_dir, n_unlabeled=n, n_labeled=0, size=512)
    size = material.image_size
    real = [_crop(read_micrograph(p)[:-DATA_BAR_ROWS], size) for p in list_images(demo.unlabeled_dir)[:n]]
    r = MicroscopyRenderer(material, RendererConfig())
    layouts = [sample_layout(material, 7_000 + i) for i in range(n)]
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        mid = r.render(layouts, torch.full((n, r.space.dim), 0.5), gen).image[:, 0].numpy()
        rnd = r.render(layouts, r.space.sample_uniform(n, gen), gen).image[:, 0].numpy()
    rows = [
        ("demo 'real'\n(simulated)", [_tile(x) for x in real]),
        ("midpoint\nparameters", [_tile(x) for x in mid]),
        ("random\nparameters", [_tile(x) for x in rnd]),
    ]
    return _save(_sheet(rows, "L"), out_dir / "demo_real_vs_synthetic.png")


def mask_overlays(out_dir: Path, n: int = 3) -> Path:
    """Per material: synthetic renders (midpoint parameters) and their mask overlays."""
    from diffrendergan.config import RendererConfig
    from diffrendergan.tasks.preview import render_preview

    rows: list[tuple[str, list[Image.Image]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in MATERIALS:
            material = load_material(name)
            png = render_preview(material, RendererConfig(), Path(tmp) / f"{name}.png", n_images=n)
            grid = np.asarray(Image.open(png).convert("RGB"))  # rows: real (empty) | fake | overlay
            h, w = material.image_size, material.image_size
            tiles = []
            for i in range(n):  # make_grid pads every side of every tile by PAD
                x, y = PAD + i * (w + PAD), PAD + h + PAD
                fake = grid[y : y + h, x : x + w]
                overlay = grid[y + h + PAD : y + 2 * h + PAD, x : x + w]
                tiles += [_tile(fake), _tile(overlay)]
            rows.append((f"{name}\n{material.shader}\n{material.pixel_size_nm} nm/px", tiles))
    return _save(_sheet(rows, "RGB"), out_dir / "mask_overlays.png")


def comparison_figure(out_dir: Path, comparison: Path | None) -> Path | None:
    if comparison is None:
        print("comparison.png skipped: pass comparison=<path/to/comparison.json> (from experiments.compare)")
        return None
    from diffrendergan.tasks.compare import comparison_plot

    result = json.loads(Path(comparison).read_text())
    path = out_dir / "comparison.png"
    comparison_plot(result, path)
    return _save(Image.open(path).convert("RGB"), path)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m experiments.figures",
        description="Render the README pictures (simulated demo data only). Accepts key=value "
        "(out_dir=docs comparison=...) or --out-dir/--comparison.",
    )
    parser.add_argument("overrides", nargs="*", help="out_dir=..., comparison=..., cache_dir=...")
    parser.add_argument("--out-dir", type=Path, default=None)
    parser.add_argument("--comparison", type=Path, default=None, help="comparison.json to plot")
    parser.add_argument("--cache-dir", type=Path, default=None, help="demo data cache")
    args = parser.parse_args(argv)
    for item in args.overrides:
        key, sep, value = item.partition("=")
        if not sep or key not in ("out_dir", "comparison", "cache_dir"):
            parser.error(f"unknown argument {item!r}; expected out_dir=, comparison= or cache_dir=")
        setattr(args, key, Path(value))
    args.out_dir = args.out_dir or Path("docs")
    default_cache = Path.home() / ".cache" / "diffrendergan"
    args.cache_dir = args.cache_dir or Path(os.environ.get("DIFFRENDERGAN_CACHE", default_cache))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    written = [
        real_vs_synthetic(args.out_dir, args.cache_dir),
        mask_overlays(args.out_dir),
        comparison_figure(args.out_dir, args.comparison),
    ]
    for path in written:
        if path is not None:
            print(f"wrote {path} ({path.stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
