"""Fixed-size patches of arrays for training and patch-wise inference."""

from __future__ import annotations

import numpy as np


def crop_with_fill(arr: np.ndarray, start, size, fill) -> np.ndarray:
    """``arr[start:start + size]`` (any number of axes) with the parts outside the array set to
    ``fill``; ``start`` may be negative or run past the end. Keeps ``arr``'s dtype."""
    out = np.full(tuple(size), fill, arr.dtype)
    src = tuple(slice(max(0, int(s)), min(n, int(s) + k)) for s, k, n in zip(start, size, arr.shape, strict=True))
    dst = tuple(slice(sl.start - int(s), sl.stop - int(s)) for sl, s in zip(src, start, strict=True))
    if all(sl.stop > sl.start for sl in src):
        out[dst] = arr[src]
    return out
