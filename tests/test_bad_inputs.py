"""Bad inputs at every entry point: one ``error:`` line naming the key or file, exit status 2, no
traceback, and nothing started (no checkpoint, export, segmenter, patch set or report written).

The table runs each command line in a subprocess, as a user types it. Each row costs a Python
start with torch (~3 s), so the table is marked slow except for a few cheap rows that keep the
mechanism in ``make test-fast``. Every row's wall time is measured and printed (``pytest -rP``;
``pytest --durations=10`` lists the slowest rows), never asserted: the machine may be busy.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from cli import run_cli
from PIL import Image

from diffrendergan.errors import DataError

RUN = ("+material=sio2", "experiment=smoke", "logger=csv", "paths.cache_dir={t}/cache")
GENERATE = ("+material=sio2", "checkpoint=none", "n_images=2", "material.image_size=64", "out_dir={t}/out")
SEGMENT = ("train_dir={d}/labeled", "test_dir={d}/labeled", "segmenter.steps=2")
COMPARE = (
    "+material=sio2",
    "checkpoint=none",
    "n_images=2",
    "seeds=1",
    "segmenter.steps=2",
    "material.image_size=64",
    "test_dir={d}/labeled",
)
REALISM = ("real_dir={d}/labeled/images", "fake_dir={d}/labeled/images")
PREPARE = ("data.raw_dir={d}/raw", "data.out_dir={t}/prepared")
ONE_LINE_SEG_KEY = ("seg.instance_method", "unknown key", "did you mean 'segmenter'")


def _last_ckpt(content: bytes) -> Callable[[Path], None]:
    """Setup of a resume row: ``<run dir>/checkpoints/last.ckpt`` holding ``content``."""

    def setup(t: Path) -> None:
        (t / "hydra" / "checkpoints").mkdir(parents=True)
        (t / "hydra" / "checkpoints" / "last.ckpt").write_bytes(content)

    return setup


GARBAGE = bytes(range(256)) * 16
SETUPS = {"empty": _last_ckpt(b""), "garbage": _last_ckpt(GARBAGE)}


def row(
    name: str,
    module: str,
    base: tuple[str, ...],
    *extra: str,
    expect: tuple[str, ...],
    fast: bool = False,
    setup: str | None = None,
    run_dir: bool = True,
    marks: tuple = (),
):
    """One bad input: ``python -m experiments.<module> base... extra...`` must fail with one line
    holding every string of ``expect`` (the key or file, and what was expected)."""
    marks = marks if fast else (*marks, pytest.mark.slow)
    return pytest.param(module, (*base, *extra), expect, setup, run_dir, id=f"{module}-{name}", marks=marks)


NO_PROC = pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc (a folder nobody can write)")

# fmt: off
BAD_INPUTS = [
    # experiments.run: every check before the demo data, the first epoch or the export
    row("labeled-dir-missing", "run", RUN, "data.labeled_dir={d}/nope",
        expect=("data.labeled_dir", "does not exist", "expected a folder with images/ and masks/")),
    row("real-dir-missing", "run", RUN, "data.real_dir={d}/nope",
        expect=("data.real_dir", "does not exist", "expected a folder")),
    row("pixel-size-word", "run", RUN, "data.pixel_size_nm=seven",
        expect=("data.pixel_size_nm", "expected a number", "'seven'")),
    row("stride-word", "run", RUN, "data.stride=abc", expect=("data.stride", "expected an integer")),
    row("lr-word", "run", RUN, "model.optimizer_g.lr=fast",
        expect=("model.optimizer_g.lr", "expected a number")),
    row("renamed-model-key", "run", RUN, "model.lr_g=1e-3",
        expect=("model.lr_g", "renamed to model.optimizer_g.lr"), fast=True),
    row("callback-target", "run", RUN, "callbacks.image_grid._target_=diffrendergan.nope.Grid",
        expect=("callbacks.image_grid._target_", "cannot import")),
    row("max-epochs-word", "run", RUN, "trainer.max_epochs=lots",
        expect=("trainer.max_epochs", "expected an integer")),
    row("crop-negative", "run", RUN, "data.crop_bottom_px=-5",
        expect=("data.crop_bottom_px", "expected >= 0")),
    row("unknown-seg-key", "run", RUN, "seg.instance_method=magic", expect=ONE_LINE_SEG_KEY, fast=True),
    row("decoder", "run", RUN, "segmenter.decoder=magic", expect=("segmenter.decoder", "expected one of")),
    row("param-domain", "run", RUN, "+material.params.blur_px={low:-5,high:-1}",
        expect=("material.params.blur_px", "physical domain")),
    row("resume-empty-ckpt", "run", RUN, "resume=true", setup="empty",
        expect=("last.ckpt", "not a diffrendergan checkpoint", "expected a DiffRenderGAN generator")),
    row("resume-garbage-ckpt", "run", RUN, "resume=true", setup="garbage",
        expect=("last.ckpt", "not a diffrendergan checkpoint")),
    row("run-dir-is-file", "run", RUN, "hydra.run.dir={d}/afile", run_dir=False,
        expect=("hydra.run.dir", "is a file", "expected a folder")),
    row("cache-dir-is-file", "run", RUN, "paths.cache_dir={d}/afile",
        expect=("paths.cache_dir", "is a file")),
    row("accelerator", "run", RUN, "trainer.accelerator=tpu",
        expect=("trainer.accelerator", "expected one of")),
    row("unknown-material", "run", RUN[1:], "+material=nope",
        expect=("material", "no option 'nope'", "expected one of")),
    row("material-key-without-material", "run", RUN[1:], "material.count.high=3",
        expect=("material.count.high", "+material=")),
    # experiments.generate: before the generator is built or an image written
    row("n-images-zero", "generate", GENERATE, "n_images=0", expect=("n_images", "expected >= 1"), fast=True),
    row("n-images-word", "generate", GENERATE, "n_images=many", expect=("n_images", "expected an integer")),
    row("out-dir-is-file", "generate", GENERATE, "out_dir={d}/afile",
        expect=("out_dir", "is a file", "expected a folder")),
    row("out-dir-under-file", "generate", GENERATE, "out_dir={d}/afile/sub",
        expect=("out_dir", "cannot create", "is a file")),
    row("out-dir-unwritable", "generate", GENERATE, "out_dir=/proc/diffrendergan/out", marks=(NO_PROC,),
        expect=("out_dir", "cannot write", "expected a writable folder")),
    row("empty-ckpt", "generate", GENERATE, "checkpoint={d}/empty.ckpt",
        expect=("empty.ckpt", "not a diffrendergan checkpoint")),
    row("garbage-ckpt", "generate", GENERATE, "checkpoint={d}/garbage.ckpt",
        expect=("garbage.ckpt", "not a diffrendergan checkpoint")),
    row("foreign-ckpt", "generate", GENERATE, "checkpoint={d}/foreign.ckpt",
        expect=("foreign.ckpt", "not a diffrendergan checkpoint")),
    row("param-domain", "generate", GENERATE, "+material.params.blur_px={low:-5,high:-1}",
        expect=("material.params.blur_px", "expected low and high >= 0")),
    row("unknown-param-key", "generate", GENERATE, "material.params.blurr={low:1,high:2}",
        expect=("material.params.blurr", "unknown key", "+material.params.blurr=")),
    row("device", "generate", GENERATE, "device=tpu", expect=("device", "expected one of")),
    # experiments.segment: before any image is loaded or a step trained
    row("test-dir-missing", "segment", SEGMENT, "test_dir={d}/nope",
        expect=("test_dir", "does not exist", "expected a labeled folder"), fast=True),
    row("pixel-size-zero", "segment", SEGMENT, "pixel_size_nm=0",
        expect=("pixel_size_nm", "expected a positive number")),
    row("crop-negative", "segment", SEGMENT, "crop_bottom_px=-5", expect=("crop_bottom_px", "expected >= 0")),
    row("init-empty", "segment", SEGMENT, "init_from={d}/empty.ckpt",
        expect=("empty.ckpt", "not a diffrendergan checkpoint", "expected a segmenter checkpoint")),
    row("init-garbage", "segment", SEGMENT, "init_from={d}/garbage.ckpt",
        expect=("garbage.ckpt", "not a diffrendergan checkpoint")),
    row("out-dir-is-file", "segment", SEGMENT, "out_dir={d}/afile", expect=("out_dir", "is a file")),
    row("seed-word", "segment", SEGMENT, "seed=abc", expect=("seed", "expected an integer")),
    row("steps-word", "segment", SEGMENT, "segmenter.steps=lots",
        expect=("segmenter.steps", "expected an integer")),
    row("tiny-train-image", "segment", SEGMENT, "train_dir={d}/tiny_labeled",
        expect=("tiny_labeled/images/a.png", "10x10 px")),
    # experiments.compare: before the first export or segmenter
    row("test-dir-missing", "compare", COMPARE, "test_dir={d}/nope", expect=("test_dir", "does not exist")),
    row("unknown-seg-key", "compare", COMPARE, "seg.instance_method=magic", expect=ONE_LINE_SEG_KEY),
    row("decoder", "compare", COMPARE, "segmenter.decoder=magic",
        expect=("segmenter.decoder", "expected one of")),
    row("target", "compare", COMPARE, "segmenter.target=magic",
        expect=("segmenter.target", "expected one of")),
    row("empty-ckpt", "compare", COMPARE, "checkpoint={d}/empty.ckpt",
        expect=("empty.ckpt", "not a diffrendergan checkpoint")),
    row("garbage-ckpt", "compare", COMPARE, "checkpoint={d}/garbage.ckpt",
        expect=("garbage.ckpt", "not a diffrendergan checkpoint")),
    row("n-images-word", "compare", COMPARE, "n_images=many", expect=("n_images", "expected an integer")),
    row("seeds-zero", "compare", COMPARE, "seeds=0", expect=("seeds", "expected >= 1")),
    row("pixel-size-zero", "compare", COMPARE, "pixel_size_nm=0", expect=("pixel_size_nm", "positive")),
    row("crop-negative", "compare", COMPARE, "crop_bottom_px=-5", expect=("crop_bottom_px", "expected >= 0")),
    row("reference", "compare", COMPARE, "reference=magic", expect=("reference", "expected a row name")),
    row("out-dir-is-file", "compare", COMPARE, "out_dir={d}/afile", expect=("out_dir", "is a file")),
    # experiments.realism: before the images are read
    row("max-patches-zero", "realism", REALISM, "max_patches=0",
        expect=("max_patches", "expected >= 1"), fast=True),
    row("patch-size-word", "realism", REALISM, "patch_size=big",
        expect=("patch_size", "expected an integer")),
    row("tiny-image", "realism", REALISM, "fake_dir={d}/tiny", expect=("tiny/a.png", "10x10 px", "16x16")),
    row("real-dir-missing", "realism", REALISM, "real_dir={d}/nope", expect=("real_dir", "does not exist")),
    row("out-dir-is-file", "realism", REALISM, "out_dir={d}/afile", expect=("out_dir", "is a file")),
    # experiments.prepare: before a patch is cut (a bad file: before the patch set is published)
    row("stride-word", "prepare", PREPARE, "data.stride=abc",
        expect=("data.stride", "expected an integer"), fast=True),
    row("patch-size-word", "prepare", PREPARE, "data.patch_size=big",
        expect=("data.patch_size", "expected an integer")),
    row("crop-negative", "prepare", PREPARE, "data.crop_bottom_px=-5",
        expect=("data.crop_bottom_px", "expected >= 0")),
    row("raw-dir-missing", "prepare", PREPARE, "data.raw_dir={d}/nope",
        expect=("data.raw_dir", "does not exist")),
    row("out-dir-is-file", "prepare", PREPARE, "data.out_dir={d}/afile",
        expect=("data.out_dir", "is a file")),
    row("corrupt-tiff-strict", "prepare", PREPARE, "data.raw_dir={d}/raw_bad", "data.patch_size=64",
        "data.stride=64", expect=("broken.tif", "not a readable TIFF")),
    row("unknown-key", "prepare", PREPARE, "data.magic=1", expect=("data.magic", "unknown key")),
]
# fmt: on


def _png(path: Path, size: int, seed: int = 0) -> None:
    """A grey image with bright square 'particles' (and its 0/255 mask next to it when asked)."""
    rng = np.random.default_rng(seed)
    img = np.full((size, size), 40, np.uint8)
    for y, x in rng.integers(0, max(size - 12, 1), (4, 2)):
        img[y : y + 10, x : x + 10] = 200
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Small inputs every row may point at (never written to by a row)."""
    d = tmp_path_factory.mktemp("inputs")
    for sub in ("labeled", "tiny_labeled"):
        size = 64 if sub == "labeled" else 10
        _png(d / sub / "images" / "a.png", size)
        mask = (np.asarray(Image.open(d / sub / "images" / "a.png")) > 100).astype(np.uint8) * 255
        (d / sub / "masks").mkdir()
        Image.fromarray(mask).save(d / sub / "masks" / "a.png")
    _png(d / "tiny" / "a.png", 10)
    for k in range(2):
        _png(d / "raw" / f"img{k}.png", 160, seed=k)
        _png(d / "raw_bad" / f"img{k}.png", 160, seed=k)
    (d / "raw_bad" / "broken.tif").write_bytes(b"II*\x00garbage")
    (d / "afile").write_text("not a folder\n")
    (d / "empty.ckpt").write_bytes(b"")
    (d / "garbage.ckpt").write_bytes(GARBAGE)
    torch.save({"weights": torch.zeros(2)}, d / "foreign.ckpt")  # a PyTorch file, not ours
    return d


def _new_files(folder: Path, before: set[Path]) -> list[str]:
    """Files written below ``folder`` since ``before``, less Hydra's own (.hydra/, logs)."""
    files = {p for p in folder.rglob("*") if p.is_file()}
    return sorted(
        str(p.relative_to(folder)) for p in files - before if ".hydra" not in p.parts and p.suffix != ".log"
    )


@pytest.mark.slow  # the command line in a subprocess: integration, full suite only
@pytest.mark.parametrize(("module", "overrides", "expect", "setup", "run_dir"), BAD_INPUTS)
def test_bad_input_is_one_line_before_any_work(
    module: str,
    overrides: tuple[str, ...],
    expect: tuple[str, ...],
    setup: str | None,
    run_dir: bool,
    inputs: Path,
    tmp_path: Path,
) -> None:
    if setup is not None:
        SETUPS[setup](tmp_path)
    before = {p for p in tmp_path.rglob("*") if p.is_file()}
    args = [o.replace("{d}", str(inputs)).replace("{t}", str(tmp_path)) for o in overrides]
    t0 = time.perf_counter()
    proc = run_cli(f"experiments.{module}", *args, cwd=tmp_path, run_dir=run_dir)
    wall = time.perf_counter() - t0  # measured and shown (pytest -rP), never asserted
    print(f"exit {proc.returncode} after {wall:.1f} s: {proc.stderr.strip()}")

    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: "), lines[0]
    for text in expect:
        assert text in lines[0], lines[0]
    assert proc.returncode == 2, proc.stderr
    assert not _new_files(tmp_path, before), "work started before the error"


def test_the_table_covers_every_entry_point_with_30_bad_inputs() -> None:
    modules = [p.values[0] for p in BAD_INPUTS]
    assert len(modules) >= 30
    for m in ("run", "generate", "segment", "compare", "realism", "prepare"):
        assert modules.count(m) >= 4, m


# ------------------------------------------------------------------------- focused checks
def test_summary_line_without_matched_particles() -> None:
    """No matched particle: undefined metrics print as n/a (this used to be a TypeError after
    training had finished)."""
    from experiments.segment import _line

    metrics = {"dsc": 0.5, "ap50": 0.0, "pq": 0.0, "miou": 0.4, "size_unit": "px"}
    line = _line("segmenter", {**metrics, "matched_median_rel_error": None, "mean_error_px": None})
    assert "matched size error n/a" in line and "mean size error n/a px" in line


def test_checkpoint_of_another_version_is_one_line(tmp_path: Path, gan_checkpoint: Path) -> None:
    """A GAN checkpoint whose networks no longer fit the code: a DataError naming the file and
    the first mismatching tensor, not load_state_dict's multi-line RuntimeError."""
    from diffrendergan.training.load import load_generator

    path = tmp_path / "old.ckpt"
    ckpt = torch.load(gan_checkpoint, map_location="cpu", weights_only=True)
    name = next(k for k, v in ckpt["state_dict"].items() if v.ndim == 2)
    ckpt["state_dict"][name] = torch.zeros(3, 3)
    torch.save(ckpt, path)
    with pytest.raises(DataError) as err:
        load_generator(path)
    message = str(err.value)
    assert str(path) in message and name in message and "does not fit" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("override", "expect"),
    [
        ("seg.instance_method=magic", "did you mean 'segmenter'"),
        ("+material=nope", "no option 'nope'; expected one of"),
        ("data.stride==3", "cannot parse the override"),
        ("material.count.high=3", "no material selected"),
    ],
)
def test_override_errors_are_one_line(override: str, expect: str) -> None:
    from experiments._common import override_error

    message = override_error("run", [override])
    assert message is not None and expect in message and "\n" not in message
    assert override_error("run", ["+material=sio2", "experiment=smoke"]) is None


def test_command_line_check_leaves_flags_to_hydra(capsys: pytest.CaptureFixture[str]) -> None:
    from experiments._common import check_command_line

    check_command_line("run", ["--help", "seg.x=1"])  # Hydra prints the help; no check here
    with pytest.raises(SystemExit) as exit_info:
        check_command_line("run", ["seg.x=1"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.startswith("error: seg.x: unknown key")


@pytest.mark.skipif(os.name != "posix", reason="POSIX paths")
def test_writable_folder_names_the_key(tmp_path: Path) -> None:
    from diffrendergan.errors import ConfigError
    from diffrendergan.utils.io import writable_folder

    (tmp_path / "f").write_text("x")
    with pytest.raises(ConfigError, match=r"^out_dir: .*f is a file"):
        writable_folder("out_dir", tmp_path / "f")
    assert writable_folder("out_dir", tmp_path / "new" / "deep").is_dir()
