"""Data bar, tiling, foreground test and the patch preparation pipeline (+ its CLI)."""

import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from diffrendergan.data.databar import (
    crop_data_bar,
    detect_data_bar,
    pixel_size_from_width,
    row_mode_fraction,
)
from diffrendergan.data.patches import (
    PatchOptions,
    has_particles,
    prepare_patches,
    read_manifest,
    resample,
    tile,
)
from diffrendergan.data.readers import list_images, read_micrograph
from diffrendergan.errors import DataError

REAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "ruehle2021_tio2_sem"
REPO = Path(__file__).resolve().parents[2]


def particle_image(h=300, w=400, n=40, seed=0) -> np.ndarray:
    """(H, W) float in [0, 1]: bright discs on a dark noisy substrate, like SEM particles."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    img = np.full((h, w), 0.15)
    for _ in range(n):
        cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(6, 16)
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng.uniform(0.6, 0.9)
    return np.clip(img + rng.normal(0, 0.03, img.shape), 0, 1)


def with_bar(img: np.ndarray, rows: int = 40, seed: int = 1) -> np.ndarray:
    """Append a Zeiss-like bar: a white line, then black with sparse white text blocks."""
    rng = np.random.default_rng(seed)
    bar = np.zeros((rows, img.shape[1]))
    bar[0] = 1.0
    for _ in range(12):
        y, x = rng.integers(3, rows - 8), rng.integers(0, img.shape[1] - 20)
        bar[y : y + 6, x : x + 15] = rng.random((6, 15)) > 0.5
    return np.vstack([img, bar])


def _u8(img: np.ndarray) -> np.ndarray:
    return np.round(img * 255).astype(np.uint8)


# ---------------------------------------------------------------------------- data bar


def test_detects_synthetic_bar_and_crops_it():
    img = with_bar(particle_image(), rows=40)
    assert detect_data_bar(img) == 40
    cropped = crop_data_bar(img)
    assert cropped.shape == (300, 400)
    assert detect_data_bar(cropped) == 0
    assert crop_data_bar(img, 10).shape == (330, 400)  # explicit override


def test_no_bar_on_specimen_noise_or_flat_synthetic():
    assert detect_data_bar(particle_image()) == 0
    assert detect_data_bar(np.random.default_rng(0).random((200, 256))) == 0
    flat = np.zeros((200, 256))
    flat[50:60, 100:120] = 1.0  # a mostly-flat rendered image: every row flat -> no bar
    assert detect_data_bar(flat) == 0


def test_bar_below_which_a_few_specimen_rows_remain():
    img = with_bar(particle_image(), rows=40)
    img = np.vstack([img, particle_image(h=2, w=400, n=0, seed=3)])
    assert detect_data_bar(img) == 42  # the stray rows go with the bar


def test_pixel_size_from_width():
    assert pixel_size_from_width(7.52, 1024) == pytest.approx(7.34375)


@pytest.mark.real_data
def test_real_data_bars_are_detected():
    if not REAL.is_dir():
        pytest.skip(f"real data not found at {REAL}")
    files = list_images(REAL / "unlabeled") + list_images(REAL / "labeled" / "images")
    assert len(files) == 25
    rows = []
    for f in files:
        img = read_micrograph(f, normalize="full")
        n = detect_data_bar(img)
        rows.append(n)
        cropped = img[: img.shape[0] - n]
        assert detect_data_bar(cropped) == 0, f.name
        assert row_mode_fraction(cropped[-8:]).max() < 0.5, f.name  # no bar rows left
    assert max(rows) - min(rows) <= 3
    assert all(50 <= n <= 60 for n in rows), rows


# ---------------------------------------------------------------------------- tiling etc.


@pytest.mark.parametrize(("h", "w", "size", "stride"), [(300, 400, 128, 128), (256, 256, 256, 256),
                                                        (500, 270, 100, 64)])  # fmt: skip
def test_tiles_cover_image_and_stay_inside(h, w, size, stride):
    starts = tile(np.zeros((h, w)), size, stride)
    covered = np.zeros((h, w), bool)
    for y, x in starts:
        assert 0 <= y <= h - size and 0 <= x <= w - size
        covered[y : y + size, x : x + size] = True
    assert covered.all()
    assert len(set(starts)) == len(starts)
    assert max(y for y, _ in starts) == h - size and max(x for _, x in starts) == w - size


def test_tile_smaller_than_patch_names_source():
    with pytest.raises(DataError, match=r"tiny\.tif.*smaller"):
        tile(np.zeros((100, 300)), 256, 256, source="tiny.tif")


def test_resample_shape_and_range():
    img = particle_image()
    half = resample(img, 0.5)
    assert half.shape == (150, 200) and half.dtype == np.float32
    assert 0.0 <= half.min() and half.max() <= 1.0
    assert abs(float(half.mean()) - float(img.mean())) < 0.01
    assert resample(img, 2.0).shape == (600, 800)


def test_foreground_test_keeps_particles_rejects_flat_and_noise():
    rng = np.random.default_rng(0)
    assert has_particles(particle_image(256, 256, n=8))
    assert has_particles(particle_image(256, 256, n=1, seed=2))  # one particle is enough
    assert not has_particles(np.full((256, 256), 0.4))
    assert not has_particles(np.clip(rng.normal(0.5, 0.1, (256, 256)), 0, 1))
    assert not has_particles(rng.random((256, 256)))
    assert not has_particles(particle_image(256, 256, n=0))  # bare substrate


# ---------------------------------------------------------------------------- pipeline


def _raw_folder(tmp_path: Path) -> Path:
    raw = tmp_path / "raw"
    raw.mkdir()
    for i in range(2):
        Image.fromarray(_u8(with_bar(particle_image(seed=i), 30))).save(raw / f"img{i}.png")
    tifffile.imwrite(raw / "img2.tif", _u8(with_bar(particle_image(seed=5), 30)))
    return raw


def test_prepare_patches_writes_pngs_and_manifest(tmp_path):
    raw, out = _raw_folder(tmp_path), tmp_path / "out"
    patches = prepare_patches(raw, out, PatchOptions(size=128, stride=128, pixel_size_nm=5.0))
    assert len(patches) >= 6
    lines = (out / "manifest.jsonl").read_text().splitlines()
    assert len(lines) == len(patches)
    rec = json.loads(lines[0])
    assert set(rec) == {"source", "box", "scale", "pixel_size_nm", "file"}
    assert read_manifest(out / "manifest.jsonl") == patches
    for p in patches:
        y0, x0, y1, x1 = p.box
        assert (y1 - y0, x1 - x0) == (128, 128) and y1 <= 300  # bar cropped: specimen is 300 rows
        assert p.file == f"patches/{Path(p.source).stem}_{y0}_{x0}.png"
        png = np.asarray(Image.open(out / p.file))
        assert png.dtype == np.uint8 and png.shape == (128, 128)
        assert p.pixel_size_nm == 5.0 and p.scale == 1.0
    assert not list((out / "patches").glob(".*.tmp"))


def test_prepare_patches_resamples_to_target_pixel_size(tmp_path):
    raw, out = _raw_folder(tmp_path), tmp_path / "out"
    patches = prepare_patches(
        raw, out, PatchOptions(size=64, stride=64, pixel_size_nm=5.0, target_pixel_size_nm=10.0)
    )
    assert patches and all(p.scale == 0.5 and p.pixel_size_nm == 10.0 for p in patches)
    y0, x0, y1, x1 = patches[0].box
    assert (y1 - y0, x1 - x0) == (128, 128)  # 64 px at half scale = 128 source px


def test_prepare_patches_bad_files_strict_and_lenient(tmp_path, caplog):
    raw, out = _raw_folder(tmp_path), tmp_path / "out"
    (raw / "broken.tif").write_bytes(b"II*\x00garbage")
    Image.fromarray(_u8(particle_image(100, 100))).save(raw / "small.png")
    with pytest.raises(DataError, match=r"broken\.tif"):
        prepare_patches(raw, out, PatchOptions(size=128, stride=128))
    assert not [p for p in out.rglob("*") if p.is_file()]  # no partial patch set, no manifest
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # nor a staging folder
    with caplog.at_level(logging.WARNING):
        patches = prepare_patches(raw, out, PatchOptions(size=128, stride=128, strict=False))
    assert patches
    assert "broken.tif" in caplog.text and "small.png" in caplog.text
    assert {Path(p.source).name for p in patches} == {"img0.png", "img1.png", "img2.tif"}


def test_prepare_patches_strict_failure_keeps_an_earlier_set(tmp_path):
    """A strict run that fails on a bad file leaves the folder's earlier, complete set as it was
    (patches and manifest): nothing of the failed run is published."""
    raw, out = _raw_folder(tmp_path), tmp_path / "out"
    prepare_patches(raw, out, PatchOptions(size=128, stride=128))
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    (raw / "zz_broken.tif").write_bytes(b"II*\x00garbage")
    Image.fromarray(_u8(particle_image(seed=9))).save(raw / "aa_new.png")  # cut before the failure
    with pytest.raises(DataError, match=r"zz_broken\.tif"):
        prepare_patches(raw, out, PatchOptions(size=128, stride=128))
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_patch_cache_notices_a_replaced_file(tmp_path):
    """The patch cache of experiments.run is keyed on every input file (name, size, mtime): a
    file replaced under the same name gives a new cache entry cut from the new content."""
    import os

    from omegaconf import OmegaConf
    from shipped_configs import material_raw

    from diffrendergan.config import material_from_dict
    from diffrendergan.tasks.train import prepare_real_data

    raw = _raw_folder(tmp_path)
    material = material_from_dict(material_raw("sio2", image_size=128))
    data = OmegaConf.create(
        {"real_dir": str(raw), "labeled_dir": None, "pixel_size_nm": None, "target_pixel_size_nm": None,
         "crop_bottom_px": None, "patch_size": 128, "stride": 128, "page": 0, "strict": True}
    )  # fmt: skip
    first = prepare_real_data(data, material, tmp_path / "cache").patch_dir
    assert prepare_real_data(data, material, tmp_path / "cache").patch_dir == first  # a cache hit
    target = raw / "img1.png"
    stat = target.stat()
    Image.fromarray(_u8(with_bar(particle_image(seed=7), 30))).save(target)  # same name, new content
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    second = prepare_real_data(data, material, tmp_path / "cache").patch_dir
    assert second != first and (second / "manifest.jsonl").is_file()
    new = np.asarray(Image.open(second / read_manifest(second / "manifest.jsonl")[0].file))
    assert new.shape == (128, 128)
    old_files = {p.name: p.read_bytes() for p in (first / "patches").glob("img1_*.png")}
    new_files = {p.name: p.read_bytes() for p in (second / "patches").glob("img1_*.png")}
    assert new_files and new_files != old_files


def test_prepare_patches_small_image_strict_names_file(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    Image.fromarray(_u8(particle_image(100, 100))).save(raw / "small.png")
    with pytest.raises(DataError, match=r"small\.png.*smaller"):
        prepare_patches(raw, tmp_path / "out", PatchOptions(size=128))


def test_prepare_patches_never_returns_empty(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    Image.fromarray(np.full((200, 200), 90, np.uint8)).save(raw / "blank.png")
    with pytest.raises(DataError, match=r"raw.*no patches"):
        prepare_patches(raw, tmp_path / "out", PatchOptions(size=128))
    assert not (tmp_path / "out" / "manifest.jsonl").exists()


def test_prepare_patches_empty_folder(tmp_path):
    (tmp_path / "raw").mkdir()
    with pytest.raises(DataError, match=r"raw.*empty"):
        prepare_patches(tmp_path / "raw", tmp_path / "out")


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "experiments.prepare", *args],
        cwd=REPO, capture_output=True, text=True, timeout=60,
        env={"NO_ALBUMENTATIONS_UPDATE": "1", "HYDRA_FULL_ERROR": "0", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip


@pytest.mark.slow  # the command line in a subprocess: integration, full suite only
def test_cli_prepares_and_reports_errors_in_one_line(tmp_path):
    raw, out = _raw_folder(tmp_path), tmp_path / "out"
    ok = _cli(f"data.raw_dir={raw}", f"data.out_dir={out}", "data.patch_size=128",
              "data.stride=128")  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert str(out / "manifest.jsonl") in ok.stdout
    assert (out / "manifest.jsonl").is_file()
    missing = _cli(f"data.out_dir={out}")
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines() == [
        "error: data.raw_dir: is required (e.g. data.raw_dir=path/to/folder)"
    ]
    bad = _cli(f"data.raw_dir={tmp_path / 'nope'}", f"data.out_dir={out}")
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "nope" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.real_data
def test_real_prepare_three_unlabeled_images(tmp_path):
    if not REAL.is_dir():
        pytest.skip(f"real data not found at {REAL}")
    raw = tmp_path / "raw"
    raw.mkdir()
    for f in list_images(REAL / "unlabeled")[:3]:
        (raw / f.name).symlink_to(f)  # read in place: no copy of licensed data
    patches = prepare_patches(raw, tmp_path / "out", PatchOptions(pixel_size_nm=7.34))
    # 712 specimen rows x 1024: 3 x 4 tiles per image (last row flush), most show particles.
    assert 12 <= len(patches) <= 36
    assert {Path(p.source).name for p in patches} == {f.name for f in raw.iterdir()}
    assert all(p.box[2] <= 712 for p in patches)
