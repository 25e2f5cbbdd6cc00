"""Sliding-window inference for images larger than (or not a multiple of) the network's input.

Real micrographs are e.g. 1024x712 while the segmenter is trained on 256x256 crops and needs sizes
divisible by its total stride. The image is reflect-padded to a multiple of ``multiple``, cut into
overlapping tiles, and the per-tile class probabilities are blended with a window that falls off
towards the tile edges (where the receptive field sees padding and predictions are worst), then
cropped back to the original size.

Measurements that compare real micrographs with renders cut them into plain non-overlapping tiles
of the render size instead (:func:`tiles`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch


def _reflect_pad(x: torch.Tensor, pad_h: int, pad_w: int) -> torch.Tensor:
    """Reflect-pad the bottom/right of x (N,C,H,W); repeats reflection when the pad exceeds the
    size (torch's reflect needs pad < size) and replicates 1-px axes."""
    while pad_h > 0 or pad_w > 0:
        h, w = x.shape[-2:]
        ph = min(pad_h, h - 1) if h > 1 else 0
        pw = min(pad_w, w - 1) if w > 1 else 0
        if ph == 0 and pw == 0:  # 1-px axis: nothing to reflect, replicate the rest at once
            return torch.nn.functional.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        x = torch.nn.functional.pad(x, (0, pw, 0, ph), mode="reflect")
        pad_h, pad_w = pad_h - ph, pad_w - pw
    return x


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Reflect-pad the bottom/right of (N, C, H, W) up to multiples of ``multiple``."""
    h, w = x.shape[-2:]
    return _reflect_pad(x, -h % multiple, -w % multiple)


def tiles(array: np.ndarray, size: int) -> list[np.ndarray]:
    """Non-overlapping ``size`` x ``size`` tiles of a 2-D array, from the top left; a remainder
    narrower than ``size`` is left out (real micrographs cut to the patch or render size)."""
    h, w = array.shape[:2]
    return [
        array[y : y + size, x : x + size]
        for y in range(0, h - size + 1, size)
        for x in range(0, w - size + 1, size)
    ]


def _starts(size: int, tile: int, stride: int) -> list[int]:
    """Tile origins covering [0, size) with the last tile flush with the end."""
    if size <= tile:
        return [0]
    starts = list(range(0, size - tile, stride))
    starts.append(size - tile)
    return sorted(set(starts))


def blend_window(tile_h: int, tile_w: int, overlap: int) -> torch.Tensor:
    """(tile_h, tile_w) positive weights: linear ramps over ``overlap`` px at each edge, 1 inside.

    Strictly positive so that image borders, covered by a single tile, stay well defined.
    """

    def ramp(n: int) -> torch.Tensor:
        i = torch.arange(n, dtype=torch.float32)
        r = torch.minimum(i + 1, n - i) / float(max(overlap, 0) + 1)
        return r.clamp(max=1.0)

    return ramp(tile_h)[:, None] * ramp(tile_w)[None, :]


@torch.no_grad()
def tiled_predict(
    predict_fn: Callable[[torch.Tensor], torch.Tensor],
    image: np.ndarray | torch.Tensor,
    tile: int = 256,
    overlap: int = 32,
    multiple: int = 32,
    batch_size: int = 8,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Class probabilities of a whole image from overlapping tiles.

    Args:
        predict_fn: maps a batch (N,1,t_h,t_w) to logits (N,C,t_h,t_w).
        image: (H,W) float image (numpy or torch).
        tile: tile side; images (after padding) smaller than a tile are run as a single tile.
        overlap: overlap between neighbouring tiles (and blend-ramp width) in px.
        multiple: the padded size (and thus every tile side) is a multiple of this.
        batch_size: tiles per ``predict_fn`` call.
        device: where tiles are sent (default: the image's device).
    Returns:
        (C,H,W) float32 softmax probabilities on ``device``.
    """
    img = torch.as_tensor(image).detach().to(torch.float32)
    if img.ndim != 2:
        raise ValueError(f"expected an (H,W) image, got {tuple(img.shape)}")
    dev = torch.device(device) if device is not None else img.device
    if tile % multiple:
        raise ValueError(f"tile={tile} must be a multiple of multiple={multiple}")
    if not 0 <= overlap < tile:
        raise ValueError(f"need 0 <= overlap < tile, got overlap={overlap}, tile={tile}")
    h, w = img.shape
    x = pad_to_multiple(img[None, None].to(dev), multiple)  # (1,1,Hp,Wp)
    hp, wp = x.shape[-2:]
    th, tw = min(tile, hp), min(tile, wp)
    window = blend_window(th, tw, overlap).to(dev)
    origins = [(y, x0) for y in _starts(hp, th, th - overlap) for x0 in _starts(wp, tw, tw - overlap)]

    acc: torch.Tensor | None = None
    weight = torch.zeros(hp, wp, device=dev)
    for b in range(0, len(origins), batch_size):
        chunk = origins[b : b + batch_size]
        batch = torch.cat([x[..., y : y + th, x0 : x0 + tw] for y, x0 in chunk], dim=0)
        probs = torch.softmax(predict_fn(batch).to(dev, torch.float32), dim=1)  # (n,C,th,tw)
        if acc is None:
            acc = torch.zeros(probs.shape[1], hp, wp, device=dev)
        for (y, x0), p in zip(chunk, probs):
            acc[:, y : y + th, x0 : x0 + tw] += p * window
            weight[y : y + th, x0 : x0 + tw] += window
    assert acc is not None
    return (acc / weight)[:, :h, :w]
