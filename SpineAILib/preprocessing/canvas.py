"""Fit a 2D radiograph into a fixed network canvas without distorting it (scale + pad), and
map points and maps back to original pixels.

Pixel coordinates are (x, y) = (column, row) with pixel centres at integers, the same
convention as ITK continuous indices and the AASCE landmark files.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from SpineAILib.errors import InputError


@dataclass(frozen=True)
class CanvasRecord:
    """canvas = original * scale + shift, per axis, in (x, y) pixel coordinates."""

    original_shape: tuple[int, int]  # (rows, cols)
    canvas_shape: tuple[int, int]  # (rows, cols)
    scale: float
    shift: tuple[float, float]  # (x, y)

    def to_canvas(self, points_xy: np.ndarray) -> np.ndarray:
        return np.asarray(points_xy, dtype=float) * self.scale + np.asarray(self.shift)

    def to_original(self, points_xy: np.ndarray) -> np.ndarray:
        return (np.asarray(points_xy, dtype=float) - np.asarray(self.shift)) / self.scale

    def to_dict(self) -> dict:
        return asdict(self)


def _resample_2d(array: np.ndarray, out_shape: tuple[int, int], scale: float, shift: tuple[float, float],
                 interpolator: str, default: float) -> np.ndarray:
    """Sample ``array`` on the grid out = in * scale + shift (output pixel u <- input (u - shift)/scale)."""
    import SimpleITK as sitk

    table = {"nearest": sitk.sitkNearestNeighbor, "linear": sitk.sitkLinear, "bspline": sitk.sitkBSpline}
    if interpolator not in table:
        raise InputError(f"Unknown interpolator '{interpolator}'; expected one of {', '.join(table)}.")
    src = sitk.GetImageFromArray(np.ascontiguousarray(array))
    out = sitk.Resample(
        src,
        [int(out_shape[1]), int(out_shape[0])],
        sitk.Transform(),
        table[interpolator],
        (-shift[0] / scale, -shift[1] / scale),
        (1.0 / scale, 1.0 / scale),
        (1.0, 0.0, 0.0, 1.0),
        float(default),
        src.GetPixelID(),
    )
    return sitk.GetArrayFromImage(out)


def fit_to_canvas(
    array: np.ndarray,
    canvas_shape: tuple[int, int],
    align: str = "center",
    interpolator: str = "linear",
    pad_value: float = 0.0,
) -> tuple[np.ndarray, CanvasRecord]:
    """Scale a (rows, cols) image uniformly to fit ``canvas_shape`` and pad the rest.

    ``align`` "center" pads evenly on both sides; "topleft" pads right/bottom only.
    Returns the canvas array and the :class:`CanvasRecord` mapping back.
    """
    arr = np.asarray(array)
    if arr.ndim != 2:
        raise InputError(f"fit_to_canvas expects a 2D (rows, cols) array, got shape {arr.shape}.")
    if align not in ("center", "topleft"):
        raise InputError(f"align must be 'center' or 'topleft', got '{align}'.")
    h, w = arr.shape
    H, W = canvas_shape
    scale = min(H / h, W / w)
    # Pixel centres: the input's outer edge (-0.5 .. n-0.5) maps to (pad-0.5 .. pad+n*scale-0.5).
    pad_x = (W - w * scale) / 2 if align == "center" else 0.0
    pad_y = (H - h * scale) / 2 if align == "center" else 0.0
    shift = (pad_x + 0.5 * scale - 0.5, pad_y + 0.5 * scale - 0.5)
    out = _resample_2d(arr, (H, W), scale, shift, interpolator, pad_value)
    return out, CanvasRecord((h, w), (H, W), float(scale), (float(shift[0]), float(shift[1])))


def map_from_canvas(canvas_map: np.ndarray, record: CanvasRecord, interpolator: str = "linear") -> np.ndarray:
    """Map a (rows, cols) map predicted on the canvas back to the original image size
    (resize up and drop the padding)."""
    arr = np.asarray(canvas_map)
    if arr.shape != tuple(record.canvas_shape):
        raise InputError(f"Map shape {arr.shape} does not match the canvas {record.canvas_shape}.")
    inv_scale = 1.0 / record.scale
    inv_shift = (-record.shift[0] * inv_scale, -record.shift[1] * inv_scale)
    return _resample_2d(arr, record.original_shape, inv_scale, inv_shift, interpolator, 0.0)
