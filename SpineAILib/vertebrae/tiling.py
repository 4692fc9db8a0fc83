"""Patch-wise inference of the detection stage with border discard (McCouat & Glocker):
patches of 80 x 64 x 64 (z, y, x) voxels, steps of 40 x 32 x 32 and a border of 20 x 16 x 16
voxels discarded from each output, so the kept centres tile the volume exactly."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np

from SpineAILib.progress import CancelToken, ProgressCallback, check_cancel

PATCH = (80, 64, 64)
BORDER = (20, 16, 16)


def tile_predict(volume: np.ndarray, predictor: Callable[[np.ndarray], np.ndarray], patch=PATCH, border=BORDER,
                 n_out: int = 1, pad_value: float = 0.0, progress: ProgressCallback | None = None,
                 cancel: CancelToken | None = None) -> np.ndarray:
    """Apply ``predictor`` ((z, y, x) patch -> (n_out, z, y, x) output) to overlapping patches and
    keep each output's centre (patch - 2 * border). Returns (n_out, *volume.shape)."""
    vol = np.asarray(volume)
    core = tuple(p - 2 * b for p, b in zip(patch, border, strict=True))
    if min(core) <= 0:
        raise ValueError(f"border {border} leaves no centre in patch {patch}")
    n_tiles = [int(np.ceil(s / c)) for s, c in zip(vol.shape, core, strict=True)]
    padded_shape = [n * c + 2 * b for n, c, b in zip(n_tiles, core, border, strict=True)]
    padded = np.full(padded_shape, pad_value, dtype=np.float32)
    padded[tuple(slice(b, b + s) for b, s in zip(border, vol.shape, strict=True))] = vol
    out = np.zeros((n_out, *[n * c for n, c in zip(n_tiles, core, strict=True)]), np.float32)
    tiles = list(itertools.product(*(range(n) for n in n_tiles)))
    for t, pos in enumerate(tiles):
        check_cancel(cancel)
        start = [p * c for p, c in zip(pos, core, strict=True)]
        x = padded[tuple(slice(s, s + p) for s, p in zip(start, patch, strict=True))]
        y = np.asarray(predictor(x)).reshape(n_out, *patch)
        centre = y[(slice(None), *(slice(b, b + c) for b, c in zip(border, core, strict=True)))]
        out[(slice(None), *(slice(s, s + c) for s, c in zip(start, core, strict=True)))] = centre
        if progress:
            progress((t + 1) / len(tiles), "detection patches")
    return out[(slice(None), *(slice(0, s) for s in vol.shape))]
