"""The one tiler of the 3D tasks: a volume (z, y, x) cut into output tiles of ``core`` voxels,
each predicted from its input patch (the tile plus ``border`` voxels of context on every side,
filled with ``pad_value`` beyond the volume), the outputs put side by side. Tiles do not
overlap: whatever border a network's output is unreliable in, or consumed by valid convolutions,
is the border discarded (McCouat & Glocker's detection patches; Nicolaes et al.'s dual-pathway
context). Patches for which ``skip(patch)`` holds are not computed (their output keeps ``fill``).

A pure function of numpy arrays: the predictor is any ``(N, *patch) -> (N, n_out, *core or
*patch)`` callable, so it is tested with exact-answer predictors (identity, constants).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import numpy as np

from SpineAILib.preprocessing.patches import crop_with_fill
from SpineAILib.progress import CancelToken, ProgressCallback, check_cancel


def tile_starts(box: Sequence[slice], core: Sequence[int]) -> list[np.ndarray]:
    """First voxel (z, y, x) of each output tile covering ``box``, in C order."""
    lo = np.array([b.start for b in box])
    counts = [int(np.ceil((b.stop - b.start) / c)) for b, c in zip(box, core, strict=True)]
    return [lo + np.array(t) * np.array(core) for t in itertools.product(*(range(n) for n in counts))]


def tile_predict(volume: np.ndarray, predictor: Callable[[np.ndarray], np.ndarray], core: Sequence[int],
                 border: Sequence[int] = (0, 0, 0), n_out: int = 1, pad_value: float = 0.0,
                 box: Sequence[slice] | None = None, batch: int = 4, skip: Callable[[np.ndarray], bool] | None = None,
                 fill: Sequence[float] | float = 0.0, progress: ProgressCallback | None = None,
                 cancel: CancelToken | None = None, message: str = "patches") -> np.ndarray:
    """Predict ``volume`` tile by tile; returns (n_out, *volume.shape) float32.

    ``core``: output tile size; ``border``: context voxels on each side of a tile in the input
    patch (patch = core + 2 * border). ``predictor`` takes a batch of patches (N, *patch) and
    returns (N, n_out, *core) or (N, n_out, *patch) (then its border is discarded). ``box``:
    the part of the volume to tile (default all; outside it the output keeps ``fill``, one
    value or one per output channel). ``skip(patch)``: leave that tile at ``fill``. Tiles run
    in C order, ``batch`` computed tiles per predictor call; progress (0 to 1 over the tiles
    visited) is reported after each call and ``cancel`` is checked before each tile."""
    vol = np.asarray(volume, np.float32)
    core, border = tuple(int(c) for c in core), tuple(int(b) for b in border)
    if min(core) <= 0:
        raise ValueError(f"tile core {core} must be positive on every axis")
    patch = tuple(c + 2 * b for c, b in zip(core, border, strict=True))
    box = tuple(box) if box is not None else tuple(slice(0, n) for n in vol.shape)
    out = np.empty((n_out, *vol.shape), np.float32)
    out[...] = np.asarray(fill, np.float32).reshape(-1, *([1] * vol.ndim))
    hi = np.array([b.stop for b in box])

    def run(group: list[tuple[np.ndarray, np.ndarray]]) -> None:
        pred = np.asarray(predictor(np.stack([x for _, x in group])), np.float32)
        pred = pred.reshape(len(group), n_out, *pred.shape[-vol.ndim:])
        if pred.shape[2:] == patch:
            pred = pred[(slice(None), slice(None), *(slice(b, b + c) for b, c in zip(border, core, strict=True)))]
        elif pred.shape[2:] != core:
            raise ValueError(f"predictor returned spatial size {pred.shape[2:]}; expected {core} or {patch}")
        for (s, _), p in zip(group, pred, strict=True):
            n = np.minimum(s + np.array(core), hi) - s
            out[(slice(None), *(slice(a, a + k) for a, k in zip(s, n, strict=True)))] = \
                p[(slice(None), *(slice(0, k) for k in n))]

    # patches are cut once and held one batch at a time (memory: one batch of patches)
    starts = tile_starts(box, core)
    group: list[tuple[np.ndarray, np.ndarray]] = []
    done = 0.0
    for i, s in enumerate(starts):
        check_cancel(cancel)
        x = crop_with_fill(vol, s - np.array(border), patch, pad_value)
        if skip is None or not skip(x):
            group.append((s, x))
        if group and (len(group) == batch or i == len(starts) - 1):
            run(group)
            group = []
            done = (i + 1) / len(starts)
            if progress is not None:
                progress(done, message)
    if progress is not None and starts and done < 1.0:  # the last tiles were skipped
        progress(1.0, message)
    return out
