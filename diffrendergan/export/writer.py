"""Export a pixel-annotated synthetic dataset from a generator (resumable, deterministic).

Layout::

    out_dir/images/<id>.png       8-bit grey render
    out_dir/masks/<id>.png        3-class target, uint8 in {0 background, 1 particle, 2 boundary}
    out_dir/instances/<id>.png    16-bit instance ids (0 = background)
    out_dir/metadata.jsonl        one JSON line per image: id, seed, layout, params, baseline
    out_dir/fingerprint.json      what determines the images (see :func:`export_fingerprint`)

Determinism: image ``i`` uses layout seed ``seed * 1_000_003 + i`` (or a replacement seed from a
fixed per-image sequence when the layout leaves too little background), its shot/read noise comes
from a ``torch.Generator`` seeded by that layout seed and, in baseline mode, its uniform parameters
from a second one. So the output depends on (generator weights, seed, i) only, never on the batch
size or on where an interrupted run stopped.

Crash safety: every file goes through a temp name + ``os.replace``; the metadata line of an image
is appended (flush + fsync) only after its three files exist, so "done" = files + line.

Resuming: ``fingerprint.json`` is written (atomically) before the first image. A later export into
the same folder must have the same fingerprint, or it is refused with one line saying which
parts differ, so that one folder never mixes two generators, materials or seeds; nor may it ask
for fewer images than the folder already holds.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from diffrendergan.errors import ConfigError
from diffrendergan.models.generator import Generator
from diffrendergan.rendering.masks import background_fraction
from diffrendergan.scene.layout import Layout
from diffrendergan.utils.io import atomic_write, atomic_write_json

log = logging.getLogger(__name__)

SEED_STRIDE = 1_000_003  # layout seed of image i: seed * SEED_STRIDE + i
REPLACEMENT_BASE = 1 << 40  # replacement seeds live far above every primary seed
MAX_TRIES = 64  # layouts tried per image before giving up
PARAM_SALT = 0x5EED_0F_BA5E  # baseline parameters use an RNG stream independent of the noise
SUBDIRS = ("images", "masks", "instances")
METADATA = "metadata.jsonl"
FINGERPRINT = "fingerprint.json"
# Bump when the same fingerprint would no longer give the same bytes (2: SE volume term, residue;
# 3: shot noise before the detector offset).
EXPORT_FORMAT = 3
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


# -------------------------------------------------------------------------------- fingerprint
def weights_sha256(module: torch.nn.Module) -> str:
    """sha256 of a module's state (names, shapes, dtypes and values), device independent."""
    h = hashlib.sha256()
    for name, t in module.state_dict().items():
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _material_part(material: Any) -> dict[str, Any]:
    d = asdict(material)
    d.pop("params")  # the whole parameter space is its own part (configured ranges + defaults)
    return d


def export_fingerprint(
    generator: Generator,
    seed: int,
    baseline: bool,
    checkpoint_sha256: str | None = None,
    widen: float = 0.0,
) -> dict[str, Any]:
    """Everything that determines an export's images, as plain JSON.

    material (shader, shape, laws, field), scene law (when layouts follow a learned one), the full
    parameter space (configured ranges and the shader's defaults), the renderer settings, the
    checkpoint file's sha256 (``"none"`` without one), the parameter network's weights and their
    average (only when they are used, i.e. not in baseline mode), the baseline flag, the widening
    towards the ranges, the export seed and :data:`EXPORT_FORMAT`.
    """
    scene = generator.layout_material
    fp = {
        "format": EXPORT_FORMAT,
        "material": _material_part(generator.material),
        "scene_law": None if scene is generator.material else _material_part(scene),
        "param_ranges": {n: asdict(r) for n, r in generator.space.ranges.items()},
        "renderer": asdict(generator.renderer.cfg),
        "checkpoint": checkpoint_sha256 or "none",
        "weights": None if baseline else weights_sha256(generator),
        "baseline": bool(baseline),
        "widen": float(widen),
        "seed": int(seed),
    }
    return json.loads(json.dumps(fp, sort_keys=True))  # tuples -> lists, as read back from disk


_PARTS = {
    "format": "export format",
    "material": "material",
    "scene_law": "scene law",
    "param_ranges": "parameter ranges",
    "renderer": "renderer settings",
    "checkpoint": "checkpoint",
    "weights": "generator weights",
    "baseline": "baseline flag",
    "widen": "widening towards the ranges",
    "seed": "export seed",
}


def _show(v: Any) -> str:
    if isinstance(v, str) and len(v) == 64 and all(c in "0123456789abcdef" for c in v):
        return f"sha256 {v[:12]}"  # a hash: its start is enough to tell two apart
    return json.dumps(v) if not isinstance(v, str) else v


def _first_difference(a: Any, b: Any, path: str = "") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if a.get(k) != b.get(k):
                return _first_difference(a.get(k), b.get(k), f"{path}.{k}" if path else k)
    return f"{path + ': ' if path else ''}{_show(a)} vs {_show(b)}"


def fingerprint_differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """'material (sio2 vs tio2)', 'export seed (0 vs 5)', ...: the parts that differ, old vs new."""
    out = []
    for key in sorted(set(old) | set(new), key=lambda k: list(_PARTS).index(k) if k in _PARTS else 99):
        a, b = old.get(key), new.get(key)
        if a == b:
            continue
        if (
            key == "material"
            and isinstance(a, dict)
            and isinstance(b, dict)
            and a.get("name") != b.get("name")
        ):
            detail = f"{a.get('name')} vs {b.get('name')}"
        else:
            detail = _first_difference(a, b)
        out.append(f"{_PARTS.get(key, key)} ({detail})")
    return out


def _has_records(meta_path: Path) -> bool:
    """Whether metadata.jsonl holds at least one complete line (an image of some export)."""
    return meta_path.is_file() and b"\n" in meta_path.read_bytes()


def _check_fingerprint(out: Path, fingerprint: dict[str, Any]) -> None:
    """Refuse a folder that holds images of another export (before touching anything in it)."""
    fp_path = out / FINGERPRINT
    if not _has_records(out / METADATA):
        return  # nothing of another export to mix with: the fingerprint is (re)written
    if not fp_path.is_file():
        raise ConfigError(
            "out_dir",
            f"{out} holds an export without {FINGERPRINT} (from an older version, or not an export); "
            "use a new out_dir",
        )
    try:
        old = json.loads(fp_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError("out_dir", f"{fp_path} is unreadable ({exc}); use a new out_dir") from None
    diff = fingerprint_differences(old, fingerprint)
    if diff:
        raise ConfigError(
            "out_dir", f"{out} holds an export with a different {', '.join(diff)}; use a new out_dir"
        )


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


def export_unit_params(
    g: Generator, layouts: list[Layout], baseline: bool, widen: float = 0.0
) -> torch.Tensor:
    """(B, K) unit parameters of an export: learned, uniform in the ranges (``baseline``), or the
    learned ones moved a fraction ``widen`` of the way towards a uniform draw (``widen`` = 0:
    learned, 1: uniform), which widens the learned distribution towards the ranges.

    Uniform draws come from each layout's own seeded stream, and the network runs one layout at a
    time (a batched matmul's rounding would depend on the batch size), so an image never depends
    on its batch neighbours.
    """
    dev = g.device
    uniform = torch.cat(
        [g.space.sample_uniform(1, torch.Generator().manual_seed(lay.seed ^ PARAM_SALT)) for lay in layouts]
    ).to(dev)
    if baseline:
        return uniform
    learned = torch.cat([g.unit_params([lay]) for lay in layouts])
    return learned if widen == 0 else learned + float(widen) * (uniform - learned)


@torch.no_grad()
def render_batch(
    g: Generator, layouts: list[Layout], baseline: bool, widen: float = 0.0
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Render layouts in one batched shading pass, with per-image noise and parameter streams
    (:func:`export_unit_params`; noise seeded by each layout's seed), so that an image does not
    depend on its batch neighbours. Returns image (B, H, W) in [0, 1] and params {name: (B,)}.

    The no-GAN baseline is the physics shading with uniform parameters: nothing learned, so a
    trained generator's neural shader is left out of it (``compare`` renders both rows with the
    checkpoint's generator)."""
    r, dev = g.renderer, g.device
    unit = export_unit_params(g, layouts, baseline, widen)
    streams = [torch.Generator(device=dev).manual_seed(lay.seed) for lay in layouts]
    out = r.shade(r.gbuffer(layouts, device=dev), unit, streams, refine=None if baseline else g.refine)
    return out.image[:, 0], out.params


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


@dataclass(frozen=True)
class ExportOptions:
    """How :func:`export_dataset` exports. One frozen value instead of six keyword arguments keeps
    the function within the project's parameter limit; ``seed``, ``baseline``, ``widen`` and
    ``checkpoint_sha256`` go into the fingerprint, ``batch_size`` and ``progress`` never change the
    output.

    Attributes:
        seed: export seed; image i uses layout seed ``seed * 1_000_003 + i`` (or a replacement).
        batch_size: layouts per shading pass (does not change the output).
        baseline: render with parameters uniform in the configured ranges instead of the parameter
            network (the paper's "no GAN" baseline).
        progress: show a tqdm bar.
        checkpoint_sha256: sha256 of the checkpoint file the generator came from
            (:func:`diffrendergan.utils.io.file_sha256`), recorded in the fingerprint; None =
            ``"none"`` (the generator's weights are fingerprinted either way).
        widen: in [0, 1], see :func:`export_unit_params` (ignored with ``baseline``).
    """

    seed: int = 0
    batch_size: int = 8
    baseline: bool = False
    progress: bool = True
    checkpoint_sha256: str | None = None
    widen: float = 0.0


def _checked(n_images: int, opts: ExportOptions) -> ExportOptions:
    """Reject bad arguments before the folder is touched; ``widen`` as used (0 with ``baseline``)."""
    if n_images < 1:
        raise ConfigError("n_images", f"expected an integer >= 1, got {n_images}")
    if opts.batch_size < 1:
        raise ConfigError("batch_size", f"must be >= 1, got {opts.batch_size}")
    if not 0.0 <= opts.widen <= 1.0:
        raise ConfigError(
            "widen", f"expected a fraction in [0, 1] (0 = learned, 1 = uniform), got {opts.widen}"
        )
    return replace(opts, widen=0.0 if opts.baseline else float(opts.widen))


def _resume(generator: Generator, out: Path, n_images: int, opts: ExportOptions) -> tuple[dict, set[int]]:
    """Open ``out`` for this export: refuse another export's folder, clean what a killed run left,
    record the fingerprint, and find the images already done (files + metadata line).

    Returns the metadata records by image index (lines whose files were lost are dropped) and the
    set of indices below ``n_images`` that are complete.
    """
    fingerprint = export_fingerprint(generator, opts.seed, opts.baseline, opts.checkpoint_sha256, opts.widen)
    _check_fingerprint(out, fingerprint)
    for sub in SUBDIRS:
        (out / sub).mkdir(parents=True, exist_ok=True)
    _clean_temp_files(out)
    meta_path = out / METADATA
    records = _read_metadata(meta_path)
    for rec in records.values():
        _check_record(rec, opts.seed, opts.baseline, out)
    beyond = sorted(i for i in records if i >= n_images)
    if beyond:
        raise ConfigError(
            "n_images",
            f"{n_images} requested but {out} already holds {len(records)} images of this export "
            f"(ids up to {image_id(beyond[-1])}); pass n_images={beyond[-1] + 1} or more to resume or "
            "extend it, or use a new out_dir",
        )
    fp_path = out / FINGERPRINT
    if not records or not fp_path.is_file():
        atomic_write_json(fp_path, fingerprint)
    done = {i for i in range(n_images) if i in records and all(p.exists() for p in _files(out, image_id(i)))}
    stale = [i for i in records if i < n_images and i not in done]
    for i in stale:  # a line whose files were lost: redo the image, drop the line
        del records[i]
    if stale:
        _compact(meta_path, records)
    return records, done


def _export_batch(
    generator: Generator, out: Path, ids: list[int], opts: ExportOptions, records: dict, bar: tqdm
) -> None:
    """Render images ``ids`` in one batched pass and write them. An image counts as done (its
    metadata line appended, ``records`` updated, ``bar`` advanced) only once its three PNGs exist.
    """
    with torch.no_grad():
        layouts, classes, instances = _accept_layouts(generator, opts.seed, ids)
        images, params = render_batch(generator, layouts, opts.baseline, opts.widen)  # (B, H, W)
    for k, i in enumerate(ids):
        img_p, mask_p, inst_p = _files(out, image_id(i))
        _save_png(img_p, _to_uint8(images[k]))
        _save_png(mask_p, classes[k].cpu().numpy().astype(np.uint8))
        _save_png(inst_p, _to_uint16(instances[k]))
        rec = {
            "id": i,
            "seed": int(layouts[k].seed),
            "layout": layouts[k].to_dict(),
            "params": {n: float(v[k]) for n, v in params.items()},
            "baseline": bool(opts.baseline),
        }
        _append_line(out / METADATA, rec)
        records[i] = rec
        bar.update(1)


def export_dataset(
    generator: Generator, out_dir: str | Path, n_images: int, options: ExportOptions | None = None
) -> dict[str, Any]:
    """Write ``n_images`` annotated renders to ``out_dir`` (see the module docstring).

    Args:
        generator: renders with its parameter network, or with uniform parameters if
            ``options.baseline``.
        options: seed, batch size, baseline, progress bar, checkpoint hash and widening; default
            :class:`ExportOptions`.
    Returns:
        {n_written, n_skipped, images_per_s, out_dir}.
    Raises:
        ConfigError: ``out_dir`` holds another export, or more than ``n_images`` images.
    """
    opts = _checked(n_images, options or ExportOptions())
    out = Path(out_dir)
    records, done = _resume(generator, out, n_images, opts)
    todo = [i for i in range(n_images) if i not in done]
    was_training = generator.training
    generator.eval()
    t0 = time.perf_counter()
    bar = tqdm(total=n_images, initial=len(done), disable=not opts.progress, desc="export", unit="img")
    try:
        for b in range(0, len(todo), opts.batch_size):
            _export_batch(generator, out, todo[b : b + opts.batch_size], opts, records, bar)
    finally:
        bar.close()
        generator.train(was_training)
    elapsed = time.perf_counter() - t0
    _compact(out / METADATA, records)
    return {
        "n_written": len(todo),
        "n_skipped": len(done),
        "images_per_s": len(todo) / elapsed if todo and elapsed > 0 else 0.0,
        "out_dir": str(out),
    }
