"""Radiograph -> network canvas (and back), shared by training and inference so both see the
same pixels. The canvas keeps the aspect ratio (scale + centred padding, recorded)."""

from __future__ import annotations

import numpy as np

from SpineAILib.preprocessing import CanvasRecord, fit_to_canvas

CANVAS = (512, 256)  # rows, cols: AP radiographs are about 2.4 times taller than wide


def to_canvas(array: np.ndarray, canvas: tuple[int, int] = CANVAS) -> tuple[np.ndarray, CanvasRecord]:
    """(rows, cols) radiograph -> float32 canvas in [0, 1] and the record mapping back.

    Intensities: 1st-99th percentile window (robust to burnt-in text and collimator edges).
    The image is low-pass filtered before down-scaling so thin structures do not alias.
    """
    import SimpleITK as sitk

    a = np.asarray(array, np.float32)
    sub = a[:: max(1, a.shape[0] // 256), :: max(1, a.shape[1] // 256)]
    lo, hi = np.percentile(sub, [1, 99])
    if hi <= lo:
        hi = lo + 1.0
    a = np.clip((a - lo) / (hi - lo), 0.0, 1.0)
    scale = min(canvas[0] / a.shape[0], canvas[1] / a.shape[1])
    if scale < 0.7:
        img = sitk.GetImageFromArray(a)
        a = sitk.GetArrayFromImage(sitk.SmoothingRecursiveGaussian(img, 0.45 / scale))
    out, rec = fit_to_canvas(a, canvas, align="center", interpolator="linear", pad_value=0.0)
    return out.astype(np.float32), rec
