"""Instance maps of new micrographs, predicted at the segmenter's training scale.

A segmenter learns particles of a certain size in pixels; a micrograph taken at another
magnification shows them larger or smaller and is segmented worse. So the (cropped, normalised)
image is resampled to the training pixel size, predicted whole with the recipe's own decoder, and
the instance map is mapped back onto the file's pixel grid by nearest neighbour, so that every
measurement is made on the file's pixels and scaled by the file's pixel size.
"""

from __future__ import annotations

import numpy as np
from skimage.segmentation import relabel_sequential
from skimage.transform import resize

from diffrendergan.segmentation.module import SegModule
from diffrendergan.tasks.segment import segmenter_predictor

# Pixel sizes within 1 % count as equal (as for a training set's common pixel size): a resampling
# by less than that only blurs the image.
SAME_SCALE = 0.01


def scale_factor(file_nm: float | None, train_nm: float | None) -> float:
    """Image side multiplier that brings a file to the training scale: file_nm / train_nm, or 1
    when either pixel size is unknown or they agree within ``SAME_SCALE``."""
    if file_nm is None or train_nm is None:
        return 1.0
    factor = float(file_nm) / float(train_nm)
    return 1.0 if abs(factor - 1.0) <= SAME_SCALE else factor


def resample(image: np.ndarray, factor: float) -> np.ndarray:
    """(h, w) float -> (round(h f), round(w f)) float32, bilinear, anti-aliased when shrinking."""
    if factor == 1.0:
        return image
    shape = (max(1, round(image.shape[0] * factor)), max(1, round(image.shape[1] * factor)))
    out = resize(image, shape, order=1, anti_aliasing=factor < 1, preserve_range=True)
    return out.astype(np.float32)


def _nearest(n_out: int, n_in: int) -> np.ndarray:
    """Source index (n_out,) of each target pixel centre along one axis of n_in pixels."""
    return np.minimum(((np.arange(n_out) + 0.5) * n_in / n_out).astype(np.int64), n_in - 1)


def to_grid(instances: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour map of an instance map (h', w') onto ``shape`` (h, w): each target pixel
    takes the label under its centre, so ids are never blended. Returns (h, w) int32."""
    rows, cols = _nearest(shape[0], instances.shape[0]), _nearest(shape[1], instances.shape[1])
    return instances[rows[:, None], cols[None, :]].astype(np.int32)


def predict_instances(module: SegModule, image: np.ndarray, factor: float = 1.0) -> np.ndarray:
    """Instances of one cropped, normalised image (h, w) float32 -> (h, w) int32, ids 1..K.

    The image is resampled by ``factor`` (see :func:`scale_factor`), predicted whole on the
    module's device and decoded with its recipe; ids are made consecutive again after the map
    back (a particle smaller than a pixel of the file can vanish when the file is coarser).
    """
    instances, _ = segmenter_predictor(module)(resample(image, factor))
    if factor != 1.0:
        instances = to_grid(instances, image.shape)
    return relabel_sequential(instances.astype(np.int32))[0]
