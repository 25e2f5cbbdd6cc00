"""Export a pixel-annotated synthetic dataset from a generator (resumable, deterministic).

Layout::

    out_dir/images/<id>.png       8-bit grey render
    out_dir/masks/<id>.png        3-class target, uint8 in {0 background, 1 particle, 2 boundary}
    out_dir/instances/<id>.png    16-bit instance ids (0 = background)
    out_dir/metadata.jsonl        one JSON line per image: id, seed, layout, params, baseline

Determinism: image ``i`` uses layout seed ``seed * 1_000_003 + i`` (or a replacement seed from a
fixed per-image sequence when the layout leaves too little background), its shot/read noise comes
from a ``torch.Generator`` seeded by that layout seed and, in baseline mode, its uniform parameters
from a second one. So the output depends on (generator weights, seed, i) only, never on the batch
size or on where an interrupted run stopped.

Crash safety: every file goes through a temp name + ``os.replace``; the metadata line of an image
is appended (flush + fsync) only after its three files exist, so "done" = files + line.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from diffrendergan.errors import ConfigError
from diffrendergan.models.generator import Generator
from diffrendergan.noise.detector import add_noise, optics
from diffrendergan.rendering.masks import background_fraction
from diffrendergan.scene.layout import Layout
from diffrendergan.utils.io import atomic_write

log = logging.getLogger(__name__)

SEED_STRIDE = 1_000_003  # layout seed of image i: seed * SEED_STRIDE + i
REPLACEMENT_BASE = 1 << 40  # replacement seeds live far above every primary seed
MAX_TRIES = 64  # layouts tried per image before giving up
PARAM_SALT = 0x5EED_0F_BA5E  # baseline parameters use an RNG stream independent of the noise
SUBDIRS = ("images", "masks", "instances")
METADATA = "metadata.jsonl"
_TEMP = re.compile(r"^\..+\.png$")


def image_id(i: int) -> str:
    return f"{i:06d}"


def candidate_seeds(seed: int, i: int) -> Iterator[int]:
    """Layout seeds tried for image ``i``, in order: the primary one, then replacements that no
    other image (of any export seed) ever uses as its primary seed."""
    base = seed * SEED_STRIDE + i
    yield base
    for k in range(1, MAX_TRIES):
        yield REPLACEMENT_BASE + base * MAX_TRIES + k


def _files(out: Path, ident: str) -> list[Path]:
    return [out / sub / f"{ident}.png" for sub in SUBDIRS]


# ----------------------------------------------------------------------------------- metadata
def _read_metadata(path: Path) -> dict[int, dict]:
    """Complete lines of metadata.jsonl by image index; a trailing partial line (a crash during
    the append) is cut off the file, unreadable lines are ignored (and dropped on compaction)."""
    if not path.exists():
        return {}
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end < len(data):
        log.warning("%s: dropping a partial trailing line (%d bytes)", path, len(data) - end)
        with open(path, "r+b") as f:
            f.truncate(end)
            f.flush()
            os.fsync(f.fileno())
    out: dict[int, dict] = {}
    for line in data[:end].decode("utf-8", errors="replace").splitlines():
        try:
            rec = json.loads(line)
            out[int(rec["id"])] = rec
        except (ValueError, KeyError, TypeError):
            log.warning("%s: ignoring an unreadable line", path)
    return out


def _append_line(path: Path, rec: dict) -> None:
    """Append one complete line and make it durable before the image counts as done."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(rec, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())


def _compact(path: Path, records: dict[int, dict]) -> None:
    """Rewrite metadata.jsonl sorted by id (one line per id) when it is not already, so a resumed
    export ends byte-identical to an uninterrupted one."""
    text = "".join(json.dumps(records[i], sort_keys=True) + "\n" for i in sorted(records))
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))


# ------------------------------------------------------------------------------------ writing
def _save_png(path: Path, arr: np.ndarray) -> None:
    """uint8 -> 8-bit 'L' PNG, uint16 -> 16-bit 'I;16' PNG; atomic."""
    atomic_write(path, lambda p: Image.fromarray(arr).save(p, format="PNG"))


def _to_uint8(image: torch.Tensor) -> np.ndarray:
    """(H, W) float in [0, 1] -> (H, W) uint8."""
    return (image.clamp(0, 1) * 255.0).round().to(torch.uint8).cpu().numpy()


def _to_uint16(instance: torch.Tensor) -> np.ndarray:
    if int(instance.max()) > np.iinfo(np.uint16).max:
        raise ValueError("more than 65535 instances do not fit a 16-bit PNG")
    return instance.cpu().numpy().astype(np.uint16)


# ---------------------------------------------------------------------------------- rendering
def _accept_layouts(
    g: Generator, seed: int, ids: list[int]
) -> tuple[list[Layout], torch.Tensor, torch.Tensor]:
    """Layouts for images ``ids`` with enough background, and their masks.

    Returns layouts (B), classes (B, H, W) uint8 and instances (B, H, W) long.
    """
    min_bg = g.renderer.cfg.min_background_fraction
    seeds = {i: candidate_seeds(seed, i) for i in ids}
    chosen = {i: next(seeds[i]) for i in ids}
    pending = list(ids)
    results: dict[int, tuple[Layout, torch.Tensor, torch.Tensor]] = {}
    while pending:
        lays = g.layouts([chosen[i] for i in pending])
        classes, inst = g.renderer.masks(lays, device=g.device)
        frac = background_fraction(classes)
        retry = []
        for k, i in enumerate(pending):
            if float(frac[k]) >= min_bg:
                results[i] = (lays[k], classes[k], inst[k])
                continue
            try:
                chosen[i] = next(seeds[i])
            except StopIteration:
                raise ConfigError(
                    "renderer.min_background_fraction",
                    f"image {i}: {MAX_TRIES} layouts all left less than {min_bg} background; "
                    "lower it or the particle count/size",
                ) from None
            retry.append(i)
        pending = retry
    lays = [results[i][0] for i in ids]
    return lays, torch.stack([results[i][1] for i in ids]), torch.stack([results[i][2] for i in ids])


@torch.no_grad()
def render_batch(
    g: Generator, layouts: list[Layout], baseline: bool
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Render layouts in one batched shading pass, with per-image noise and parameter streams.

    ``MicroscopyRenderer.shade`` draws noise for the whole batch from one generator, which would
    tie each image to its batch neighbours; here shading and optics run batched, the noise (and,
    for the baseline, the uniform parameters) are drawn per image from its layout seed, and the
    parameter network runs per image (its batched matmul would round differently per batch size).

    Returns image (B, H, W) float in [0, 1] and physical params {name: (B,)}.
    """
    r = g.renderer
    dev = g.device
    if baseline:
        unit = torch.cat(
            [
                r.space.sample_uniform(1, torch.Generator().manual_seed(lay.seed ^ PARAM_SALT))
                for lay in layouts
            ]
        ).to(dev)
    else:  # one row at a time: a batched matmul's rounding would depend on the batch size
        unit = torch.cat([g.unit_params([lay]) for lay in layouts])
    params = r.space.to_physical(unit)
    signal = r.shader(r.gbuffer(layouts, device=dev).to(dev), params)
    x = optics(signal, params, r.cfg.supersample)  # (B, 1, H, W)
    images = []
    for k, lay in enumerate(layouts):
        gen = torch.Generator(device=dev).manual_seed(lay.seed)
        p_k = {n: v[k : k + 1] for n, v in params.items()}
        images.append(add_noise(x[k : k + 1], p_k, gen))
    return torch.cat(images)[:, 0], params


# ------------------------------------------------------------------------------------- export
def _clean_temp_files(out: Path) -> None:
    """Remove temp files a killed run left behind (atomic_write's ``.<stem>.*.png``)."""
    for sub in SUBDIRS:
        for p in (out / sub).glob(".*.png"):
            if _TEMP.match(p.name):
                p.unlink(missing_ok=True)
    for p in out.glob(f".{Path(METADATA).stem}.*"):
        p.unlink(missing_ok=True)


def _check_record(rec: dict, seed: int, baseline: bool, out: Path) -> None:
    """An existing line must come from the same export settings, or resuming would mix sets."""
    i = int(rec["id"])
    if bool(rec.get("baseline")) != baseline or int(rec.get("seed", -1)) not in set(candidate_seeds(seed, i)):
        raise ConfigError(
            "out_dir",
            f"{out} already holds image {image_id(i)} of a different export "
            f"(seed/baseline differ); use a new out_dir",
        )


def export_dataset(
    generator: Generator,
    out_dir: str | Path,
    n_images: int,
    seed: int = 0,
    batch_size: int = 8,
    baseline: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Write ``n_images`` annotated renders to ``out_dir`` (see the module docstring).

    Args:
        generator: renders with its parameter network, or with uniform parameters if ``baseline``
            (the paper's "no GAN" baseline: parameters uniform in the configured ranges).
        seed: export seed; image i uses layout seed ``seed * 1_000_003 + i`` (or a replacement).
        batch_size: layouts per shading pass (does not change the output).
        progress: show a tqdm bar.
    Returns:
        {n_written, n_skipped, images_per_s, out_dir}.
    """
    if n_images < 0:
        raise ConfigError("n_images", f"must be >= 0, got {n_images}")
    if batch_size < 1:
        raise ConfigError("batch_size", f"must be >= 1, got {batch_size}")
    out = Path(out_dir)
    for sub in SUBDIRS:
        (out / sub).mkdir(parents=True, exist_ok=True)
    _clean_temp_files(out)
    meta_path = out / METADATA
    records = _read_metadata(meta_path)
    for rec in records.values():
        _check_record(rec, seed, baseline, out)
    done = {i for i in range(n_images) if i in records and all(p.exists() for p in _files(out, image_id(i)))}
    stale = [i for i in records if i < n_images and i not in done]
    for i in stale:  # a line whose files were lost: redo the image, drop the line
        del records[i]
    if stale:
        _compact(meta_path, records)
    todo = [i for i in range(n_images) if i not in done]

    was_training = generator.training
    generator.eval()
    t0 = time.perf_counter()
    bar = tqdm(total=n_images, initial=len(done), disable=not progress, desc="export", unit="img")
    try:
        for b in range(0, len(todo), batch_size):
            ids = todo[b : b + batch_size]
            with torch.no_grad():
                layouts, classes, instances = _accept_layouts(generator, seed, ids)
                images, params = render_batch(generator, layouts, baseline)
            for k, i in enumerate(ids):
                ident = image_id(i)
                img_p, mask_p, inst_p = _files(out, ident)
                _save_png(img_p, _to_uint8(images[k]))
                _save_png(mask_p, classes[k].cpu().numpy().astype(np.uint8))
                _save_png(inst_p, _to_uint16(instances[k]))
                rec = {
                    "id": i,
                    "seed": int(layouts[k].seed),
                    "layout": layouts[k].to_dict(),
                    "params": {n: float(v[k]) for n, v in params.items()},
                    "baseline": bool(baseline),
                }
                _append_line(meta_path, rec)
                records[i] = rec
                bar.update(1)
    finally:
        bar.close()
        generator.train(was_training)
    elapsed = time.perf_counter() - t0
    _compact(meta_path, records)
    return {
        "n_written": len(todo),
        "n_skipped": len(done),
        "images_per_s": len(todo) / elapsed if todo and elapsed > 0 else 0.0,
        "out_dir": str(out),
    }
