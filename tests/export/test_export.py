"""Synthetic export: deterministic, batch-size independent, resumable, consistent masks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from shipped_configs import material_raw, renderer_raw

from diffrendergan.config import material_from_dict, renderer_from_dict
from diffrendergan.errors import ConfigError
from diffrendergan.export.writer import SEED_STRIDE, ExportOptions, export_dataset
from diffrendergan.metrics.segmentation import instances_from_classes
from diffrendergan.models.generator import Generator


def small_generator(**renderer: float) -> Generator:
    """sio2 at 64 px with 2-4 particles: fast enough to export a handful of images per test."""
    raw = material_raw("sio2", image_size=64, count={"kind": "uniform", "low": 2, "high": 4})
    torch.manual_seed(0)  # the (untrained) parameter network's weights
    return Generator(material_from_dict(raw), renderer_from_dict(renderer_raw(**renderer)))


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file below ``folder`` (relative path -> bytes)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def read_meta(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "metadata.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def gen() -> Generator:
    return small_generator()


def test_deterministic_and_batch_size_independent(gen: Generator, tmp_path: Path) -> None:
    r1 = export_dataset(gen, tmp_path / "bs1", 6, ExportOptions(seed=3, batch_size=1, progress=False))
    export_dataset(gen, tmp_path / "bs4", 6, ExportOptions(seed=3, batch_size=4, progress=False))
    export_dataset(gen, tmp_path / "again", 6, ExportOptions(seed=3, batch_size=4, progress=False))
    a, b, c = (snapshot(tmp_path / d) for d in ("bs1", "bs4", "again"))
    assert len(a) == 6 * 3 + 2  # + metadata.jsonl, fingerprint.json
    assert a == b == c
    assert r1["n_written"] == 6 and r1["n_skipped"] == 0 and r1["images_per_s"] > 0
    meta = read_meta(tmp_path / "bs1")
    assert [m["id"] for m in meta] == list(range(6))
    assert all(not m["baseline"] for m in meta)
    assert set(meta[0]) == {"id", "seed", "layout", "params", "baseline"}
    assert set(meta[0]["params"]) == set(gen.space.ranges)
    other = export_dataset(gen, tmp_path / "seed4", 2, ExportOptions(seed=4, progress=False))
    assert other["n_written"] == 2
    assert snapshot(tmp_path / "seed4")["images/000000.png"] != a["images/000000.png"]


def test_files_masks_and_instances_consistent(gen: Generator, tmp_path: Path) -> None:
    export_dataset(gen, tmp_path, 4, ExportOptions(progress=False))
    for i, rec in enumerate(read_meta(tmp_path)):
        stem = f"{i:06d}.png"
        img = Image.open(tmp_path / "images" / stem)
        mask_img = Image.open(tmp_path / "masks" / stem)
        inst_img = Image.open(tmp_path / "instances" / stem)
        assert (img.mode, mask_img.mode, inst_img.mode) == ("L", "L", "I;16")
        assert img.size == mask_img.size == inst_img.size == (64, 64)
        mask, inst = np.asarray(mask_img), np.asarray(inst_img).astype(np.int64)
        assert set(np.unique(mask)) <= {0, 1, 2} and (mask == 1).any()
        assert np.array_equal(mask > 0, inst > 0)
        comps = instances_from_classes(mask)
        for c in range(1, comps.max() + 1):  # a class-1 component never spans two particles
            assert len(np.unique(inst[comps == c])) == 1
        assert rec["seed"] == i and rec["layout"]["seed"] == i


def test_baseline_params_uniform_in_ranges(gen: Generator, tmp_path: Path) -> None:
    export_dataset(gen, tmp_path / "base", 5, ExportOptions(baseline=True, batch_size=2, progress=False))
    export_dataset(gen, tmp_path / "gan", 5, ExportOptions(baseline=False, progress=False))
    base, net = read_meta(tmp_path / "base"), read_meta(tmp_path / "gan")
    assert all(m["baseline"] for m in base)
    assert [m["layout"] for m in base] == [m["layout"] for m in net]  # same layouts
    for name, r in gen.space.ranges.items():
        vals = [m["params"][name] for m in base]
        assert all(r.low - 1e-6 <= v <= r.high + 1e-6 for v in vals), name
        if r.learn and r.high > r.low:
            assert len(set(vals)) == len(vals), name  # differ between images
    masks = tmp_path / "base" / "masks" / "000000.png"
    assert masks.read_bytes() == (tmp_path / "gan" / "masks" / "000000.png").read_bytes()


def test_resume_after_crash(gen: Generator, tmp_path: Path) -> None:
    ref, out = tmp_path / "ref", tmp_path / "out"
    export_dataset(gen, ref, 6, ExportOptions(seed=1, batch_size=4, progress=False))
    export_dataset(gen, out, 6, ExportOptions(seed=1, batch_size=4, progress=False))
    # simulate a crash: lost files, a half-written metadata line, a leftover temp file
    (out / "images" / "000002.png").unlink()
    (out / "instances" / "000004.png").unlink()
    meta = out / "metadata.jsonl"
    lines = meta.read_bytes().splitlines(keepends=True)
    meta.write_bytes(b"".join(lines[:5]) + lines[5][: len(lines[5]) // 2])
    (out / "masks" / ".000005.abc123.png").write_bytes(b"partial")
    res = export_dataset(gen, out, 6, ExportOptions(seed=1, batch_size=3, progress=False))
    assert res["n_written"] == 3 and res["n_skipped"] == 3  # ids 2, 4, 5 redone
    assert snapshot(out) == snapshot(ref)
    assert not [p for p in out.rglob(".*")]
    again = export_dataset(gen, out, 6, ExportOptions(seed=1, progress=False))
    assert again["n_written"] == 0 and again["n_skipped"] == 6
    more = export_dataset(gen, out, 8, ExportOptions(seed=1, progress=False))  # extend an existing set
    assert more["n_written"] == 2 and len(read_meta(out)) == 8


def test_resume_refuses_other_settings(gen: Generator, tmp_path: Path) -> None:
    export_dataset(gen, tmp_path, 2, ExportOptions(progress=False))
    with pytest.raises(ConfigError, match="out_dir"):
        export_dataset(gen, tmp_path, 2, ExportOptions(baseline=True, progress=False))
    with pytest.raises(ConfigError, match="out_dir"):
        export_dataset(gen, tmp_path, 2, ExportOptions(seed=5, progress=False))


def test_rejects_layouts_with_too_little_background(tmp_path: Path) -> None:
    g = small_generator(min_background_fraction=0.7)
    export_dataset(g, tmp_path, 8, ExportOptions(seed=0, progress=False))
    meta = read_meta(tmp_path)
    replaced = [m for m in meta if m["seed"] != m["id"]]
    assert replaced, "expected some rejected layouts with this threshold"
    assert all(m["seed"] >= 2**40 for m in replaced)
    for m in meta:
        mask = np.asarray(Image.open(tmp_path / "masks" / f"{m['id']:06d}.png"))
        assert (mask == 0).mean() >= 0.7
    # a batch-size-independent choice of the replacement seeds
    export_dataset(g, tmp_path / "bs1", 8, ExportOptions(seed=0, batch_size=1, progress=False))
    assert read_meta(tmp_path / "bs1") == meta


def test_seed_formula(gen: Generator, tmp_path: Path) -> None:
    export_dataset(gen, tmp_path, 2, ExportOptions(seed=2, progress=False))
    assert [m["seed"] for m in read_meta(tmp_path)] == [2 * SEED_STRIDE, 2 * SEED_STRIDE + 1]


def test_resume_refuses_another_checkpoint_or_weights(gen: Generator, tmp_path: Path) -> None:
    """The fingerprint holds the checkpoint file's hash and the parameter network's weights: an
    export of another checkpoint (or other weights) is refused with one line naming the part."""
    export_dataset(gen, tmp_path, 2, ExportOptions(checkpoint_sha256="a" * 64, progress=False))
    with pytest.raises(ConfigError) as err:
        export_dataset(gen, tmp_path, 3, ExportOptions(checkpoint_sha256="b" * 64, progress=False))
    message = str(err.value)
    assert message.startswith("out_dir: ") and "\n" not in message
    assert "checkpoint (sha256 aaaaaaaaaaaa vs sha256 bbbbbbbbbbbb)" in message
    other = small_generator()
    with torch.no_grad():
        next(other.net.parameters()).add_(1.0)
    with pytest.raises(ConfigError, match=r"generator weights \(sha256 \w+ vs sha256 \w+\)"):
        export_dataset(other, tmp_path, 3, ExportOptions(checkpoint_sha256="a" * 64, progress=False))
    assert len(read_meta(tmp_path)) == 2  # nothing was added to the refused folder


def test_fewer_images_than_the_export_holds_is_refused(gen: Generator, tmp_path: Path) -> None:
    """n_images below what the folder holds: one line saying how many there are and what to pass,
    and the export left as it was (no silent '2 already there' over a folder of 4)."""
    export_dataset(gen, tmp_path, 4, ExportOptions(progress=False))
    before = snapshot(tmp_path)
    with pytest.raises(ConfigError) as err:
        export_dataset(gen, tmp_path, 2, ExportOptions(progress=False))
    message = str(err.value)
    assert message.startswith("n_images: 2 requested") and "already holds 4 images" in message
    assert "n_images=4" in message and "\n" not in message
    assert snapshot(tmp_path) == before
