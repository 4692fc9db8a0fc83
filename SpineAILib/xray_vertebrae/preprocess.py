"""Radiograph -> network canvas, shared by training and inference so both see the same pixels.

Two steps: :func:`prepare_source` windows the intensities (1st-99th percentile) and low-pass
filters + shrinks the image to at most ``SOURCE_ROWS`` rows; :func:`sample_canvas` samples the
canvas from that source through an affine map (canvas pixel -> source pixel), which is a plain
"fit and centre" at inference and carries the crops, rotations, scales and flips of training.
Pixel coordinates are (x, y) = (column, row) with pixel centres at integers.
"""

from __future__ import annotations

import numpy as np

CANVAS = (512, 256)  # rows, cols: whole-spine lateral views are about 2.4 times taller than wide
SOURCE_ROWS = 1024


def prepare_source(array: np.ndarray, rows: int = SOURCE_ROWS) -> tuple[np.ndarray, float]:
    """(rows, cols) radiograph -> (float32 source in [0, 1], scale) with source = original * scale
    in pixel-centre coordinates (x_s + 0.5 = (x + 0.5) * scale)."""
    import SimpleITK as sitk

    a = np.asarray(array, np.float32)
    sub = a[:: max(1, a.shape[0] // 256), :: max(1, a.shape[1] // 256)]
    lo, hi = np.percentile(sub, [1, 99])
    if hi <= lo:
        hi = lo + 1.0
    a = np.clip((a - lo) / (hi - lo), 0.0, 1.0)
    scale = min(1.0, rows / a.shape[0])
    if scale < 1.0:
        img = sitk.GetImageFromArray(a)
        img = sitk.SmoothingRecursiveGaussian(img, 0.45 / scale)
        size = [max(1, int(round(a.shape[1] * scale))), max(1, int(round(a.shape[0] * scale)))]
        scale = size[1] / a.shape[0]
        # output pixel u samples input (u + 0.5) / scale - 0.5
        out = sitk.Resample(img, size, sitk.Transform(), sitk.sitkLinear, (0.5 / scale - 0.5,) * 2,
                            (1.0 / scale, 1.0 / scale), (1.0, 0.0, 0.0, 1.0), 0.0, sitk.sitkFloat32)
        a = sitk.GetArrayFromImage(out)
    return a.astype(np.float32), float(scale)


def fit_matrix(source_shape: tuple[int, int], canvas: tuple[int, int] = CANVAS,
               window: tuple[float, float] | None = None,
               columns: tuple[float, float] | None = None) -> np.ndarray:
    """3x3 affine canvas pixel -> source pixel that fits the source rows ``window`` (first, last
    row as floats; default all) and the columns ``columns`` (default the whole width) into the
    canvas, centred, aspect kept."""
    h, w = source_shape
    y0, y1 = window if window is not None else (-0.5, h - 0.5)
    x0, x1 = columns if columns is not None else (-0.5, w - 0.5)
    H, W = canvas
    s = min(H / (y1 - y0), W / (x1 - x0))  # canvas pixels per source pixel
    cx_s, cy_s = (x0 + x1) / 2, (y0 + y1) / 2
    cx_c, cy_c = (W - 1) / 2, (H - 1) / 2
    return np.array([[1 / s, 0, cx_s - cx_c / s], [0, 1 / s, cy_s - cy_c / s], [0, 0, 1.0]])


def sample_canvas(sources, matrices, canvas: tuple[int, int] = CANVAS):
    """Bilinear samples of each source (torch (1, h, w) tensors, sizes may differ) on the canvas
    grid mapped by its 3x3 matrix (canvas pixel -> source pixel); zero outside. -> (N, 1, H, W)."""
    import torch
    import torch.nn.functional as F

    H, W = canvas
    yy, xx = torch.meshgrid(torch.arange(H, dtype=torch.float32), torch.arange(W, dtype=torch.float32),
                            indexing="ij")
    ones = torch.ones_like(xx)
    grid_c = torch.stack([xx, yy, ones], -1).view(-1, 3)
    out = []
    for src, m in zip(sources, matrices, strict=True):
        p = grid_c @ torch.as_tensor(np.asarray(m, np.float32)).T  # source pixels (x, y, 1)
        h, w = src.shape[-2:]
        u = torch.stack([(2 * p[:, 0] + 1) / w - 1, (2 * p[:, 1] + 1) / h - 1], -1).view(1, H, W, 2)
        out.append(F.grid_sample(src.view(1, 1, h, w).float(), u, mode="bilinear", padding_mode="zeros",
                                 align_corners=False))
    return torch.cat(out, 0)


def to_canvas_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Source pixel points (..., 2) -> canvas pixels (inverse of the canvas -> source matrix)."""
    inv = np.linalg.inv(matrix)
    p = np.asarray(points, float)
    return p @ inv[:2, :2].T + inv[:2, 2]


def to_source_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    p = np.asarray(points, float)
    return p @ matrix[:2, :2].T + matrix[:2, 2]
