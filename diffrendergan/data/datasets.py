"""Torch datasets and Lightning data modules for real patches, annotated and synthetic data.

Images come out as (1, H, W) float32 in [0, 1]; 3-class targets as (H, W) int64 in {0, 1, 2}.
Augmentations are the paper's: flips, 90-degree rotations and transposes (the dihedral group),
which do not change SEM physics (except the detector direction, which the paper ignores too).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import albumentations as A
import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities import CombinedLoader
from torch.utils.data import DataLoader, Dataset, get_worker_info

from diffrendergan.data.labeled import match_by_stem, read_pair
from diffrendergan.data.patches import MANIFEST_NAME, PATCH_SUBDIR, read_manifest
from diffrendergan.data.readers import list_images, read_micrograph
from diffrendergan.data.scenes import SceneStream
from diffrendergan.errors import ConfigError, DataError

log = logging.getLogger(__name__)

Transform = Callable[..., dict]


def _dihedral() -> list[A.BasicTransform]:
    return [A.HorizontalFlip(p=0.5), A.VerticalFlip(p=0.5), A.RandomRotate90(p=0.5),
            A.Transpose(p=0.5)]  # fmt: skip


def real_augmentations(brightness_contrast: float = 0.0, seed: int | None = None) -> A.Compose:
    """The paper's flips/rot90/transpose, plus brightness/contrast jitter of +-value if > 0.

    albumentations keeps its own RNG (not touched by ``seed_everything``): pass ``seed`` for
    reproducible runs."""
    if brightness_contrast < 0:
        raise ConfigError("data.brightness_contrast", f"must be >= 0, got {brightness_contrast}")
    ops = _dihedral()
    if brightness_contrast > 0:
        ops.append(
            A.RandomBrightnessContrast(
                brightness_limit=brightness_contrast, contrast_limit=brightness_contrast, p=0.5
            )
        )
    return A.Compose(ops, seed=seed)


def _seed_worker_transform(_: int) -> None:
    """DataLoader workers fork one augmentation RNG state; give each its own stream."""
    info = get_worker_info()
    transform = getattr(info.dataset, "transform", None) if info else None
    if isinstance(transform, A.BaseCompose):
        transform.set_random_seed(int(torch.initial_seed() % 2**32))


def _to_image_tensor(img: np.ndarray) -> torch.Tensor:
    """(H, W) float -> (1, H, W) float32 in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(np.clip(img, 0.0, 1.0), dtype=np.float32))[None]


def resolve_patch_files(source: str | Path | Sequence[str | Path]) -> list[Path]:
    """Patch files from a list, a `prepare_patches` output folder (its manifest), or a folder.

    The manifest wins over a directory listing so that stale PNGs of an older run are ignored.
    """
    if not isinstance(source, str | Path):
        files = [Path(f) for f in source]
        if not files:
            raise DataError("<patch list>", "no patch files given")
        return files
    folder = Path(source)
    manifest = folder / MANIFEST_NAME
    if manifest.is_file():
        files = [folder / p.file for p in read_manifest(manifest) if p.file]
        if not files:
            raise DataError(manifest, "manifest lists no patches; rerun experiments.prepare")
        return files
    if (folder / PATCH_SUBDIR).is_dir():
        folder = folder / PATCH_SUBDIR
    return list_images(folder)


class RealPatchDataset(Dataset):
    """Real micrograph patches -> (1, H, W) float32 in [0, 1]; with ``with_ids``, (patch, its
    index): validation metrics key patches by index so DDP shards reassemble the whole set."""

    def __init__(
        self,
        source: str | Path | Sequence[str | Path],
        transform: Transform | None = None,
        with_ids: bool = False,
    ):
        self.files = resolve_patch_files(source)
        self.transform = transform
        self.with_ids = with_ids

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> torch.Tensor | tuple[torch.Tensor, int]:
        img = read_micrograph(self.files[i], normalize="full")
        if self.transform is not None:
            img = self.transform(image=img)["image"]
        return (_to_image_tensor(img), i) if self.with_ids else _to_image_tensor(img)


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Deterministic (train, val) index split; val gets round(n * fraction), >= 1 if fraction > 0
    and n >= 2, and train always keeps at least one item."""
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError("data.val_fraction", f"must be in [0, 1), got {val_fraction}")
    perm = np.random.default_rng(seed).permutation(n).tolist()
    n_val = round(n * val_fraction)
    if val_fraction > 0 and n >= 2:
        n_val = max(n_val, 1)
    n_val = min(n_val, n - 1)
    return sorted(perm[n_val:]), sorted(perm[:n_val])


def _check_loader_args(batch_size: int, num_workers: int) -> None:
    if batch_size < 1:
        raise ConfigError("data.batch_size", f"must be >= 1, got {batch_size}")
    if num_workers < 0:
        raise ConfigError("data.num_workers", f"must be >= 0, got {num_workers}")


class RealPatchDataModule(pl.LightningDataModule):
    """Real patches for the GAN's discriminator, with a train/validation split seeded by
    ``split_seed`` (not ``seed``), so that runs of different seeds share one held-out set.

    Validation patches are never augmented, so validation metrics are comparable across epochs.
    With ``scenes`` (the generator's :class:`~diffrendergan.data.scenes.SceneStream`), a training
    batch is ``{"real": (B, 1, H, W), "scenes": SceneBatch}``: the layouts and G-buffers come
    from the stream's own DataLoader workers on this rank.
    """

    def __init__(
        self,
        patch_dir: str | Path,
        batch_size: int = 16,
        num_workers: int = 0,
        augment: bool = True,
        brightness_contrast: float = 0.0,
        val_fraction: float = 0.1,
        seed: int = 0,
        scenes: SceneStream | None = None,
        split_seed: int = 0,
    ):
        super().__init__()
        _check_loader_args(batch_size, num_workers)
        if not 0.0 <= val_fraction < 1.0:
            raise ConfigError("data.val_fraction", f"must be in [0, 1), got {val_fraction}")
        self.patch_dir = Path(patch_dir)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.augment = augment
        self.brightness_contrast = brightness_contrast
        self.val_fraction = val_fraction
        self.seed = seed
        # The held-out patches depend on split_seed only: runs of different seeds (which shuffle,
        # augment and initialise differently) are measured against one reference.
        self.split_seed = split_seed
        self.scenes = scenes
        self.train_set: RealPatchDataset | None = None
        self.val_set: RealPatchDataset | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        try:
            files = resolve_patch_files(self.patch_dir)
        except DataError as exc:
            raise DataError(
                self.patch_dir, f"no real patches ({exc}); run `python -m experiments.prepare`"
            ) from exc
        train_idx, val_idx = split_indices(len(files), self.val_fraction, self.split_seed)
        transform = real_augmentations(self.brightness_contrast, seed=self.seed) if self.augment else None
        self.train_set = RealPatchDataset([files[i] for i in train_idx], transform)
        self.val_set = RealPatchDataset([files[i] for i in val_idx], with_ids=True) if val_idx else None

    def _loader(self, ds: Dataset, shuffle: bool) -> DataLoader:
        return DataLoader(
            ds,
            batch_size=self.batch_size,
            shuffle=shuffle,
            drop_last=False,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            worker_init_fn=_seed_worker_transform,
            generator=torch.Generator().manual_seed(self.seed) if shuffle else None,
        )

    def train_dataloader(self) -> DataLoader | CombinedLoader:
        self.setup("fit")
        assert self.train_set is not None
        real = self._loader(self.train_set, shuffle=True)
        if self.scenes is None:
            return real
        trainer = self.trainer
        rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        on_gpu = trainer is not None and trainer.strategy.root_device.type != "cpu"
        scenes = self.scenes.loader(len(self.train_set), self.batch_size, rank, world, on_gpu)
        return CombinedLoader({"real": real, "scenes": scenes}, mode="min_size")

    def val_dataloader(self) -> DataLoader | list:
        self.setup("validate")
        return [] if self.val_set is None else self._loader(self.val_set, shuffle=False)


class SyntheticFolderDataset(Dataset):
    """A generator output folder: ``images/*.png`` + ``masks/*.png`` (classes 0/1/2), same stems.

    Returns (image (1, H, W) float32 in [0, 1], classes (H, W) int64). ``transform`` (optional,
    albumentations) is applied jointly to image and mask.
    """

    def __init__(self, folder: str | Path, transform: Transform | None = None, strict: bool = True):
        folder = Path(folder)
        for sub in ("images", "masks"):
            if not (folder / sub).is_dir():
                raise DataError(folder / sub, "folder not found; expected images/ + masks/")
        self.pairs = match_by_stem(folder / "images", folder / "masks", strict=strict)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        pair = self.pairs[i]
        image, classes = read_pair(pair)
        if classes.min() < 0 or classes.max() > 2:
            raise DataError(pair.mask_path, "expected a 3-class mask with values 0, 1, 2")
        if self.transform is not None:
            out = self.transform(image=image, mask=classes)
            image, classes = out["image"], out["mask"]
        return _to_image_tensor(image), torch.from_numpy(np.ascontiguousarray(classes)).long()
