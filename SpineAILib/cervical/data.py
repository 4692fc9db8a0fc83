"""Pre-processing and data for cervical localisation.

Pre-processing (the paper's): pad the radiograph with zeros to a square, resize to 100 x 100 with
bicubic interpolation. The ground truth is the C3-C7 vertebra masks resized the same way, closed
into one connected region. :class:`CanvasRecord` maps predictions back (resize up, drop padding).

Real data folder layout (for users who have annotated lateral radiographs)::

    <root>/images/<name>.(png|jpg|dcm|nrrd|...)
    <root>/masks/<name>.(png|nrrd|nii.gz)   # C3-C7 mask (nonzero = spine), same pixel grid
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from SpineAILib.errors import InputError
from SpineAILib.io import read_image
from SpineAILib.phantoms import CervicalPhantomConfig, lateral_cervical_phantom
from SpineAILib.preprocessing import CanvasRecord, fit_to_canvas
from SpineAILib.preprocessing.canvas import _resample_2d

SIZE = 100


def to_canvas(array: np.ndarray, size: int = SIZE) -> tuple[np.ndarray, CanvasRecord]:
    """(rows, cols) radiograph -> (size, size) float32 in [0, 1] (zero-padded square, bicubic)."""
    a = np.asarray(array, np.float32)
    lo, hi = float(a.min()), float(a.max())
    a = (a - lo) / (hi - lo if hi > lo else 1.0)
    side = max(a.shape)
    if side / size > 1.5:  # low-pass before a large down-scaling so bicubic does not alias
        import SimpleITK as sitk

        a = sitk.GetArrayFromImage(sitk.SmoothingRecursiveGaussian(sitk.GetImageFromArray(a), 0.45 * side / size))
    out, rec = fit_to_canvas(a, (size, size), align="topleft", interpolator="bspline", pad_value=0.0)
    return np.clip(out, 0.0, 1.0).astype(np.float32), rec


def region_target(mask: np.ndarray, record: CanvasRecord) -> np.ndarray:
    """C3-C7 mask (original grid) -> the single connected 100 x 100 localisation target."""
    from scipy import ndimage

    m = np.asarray(mask) > 0
    small = _resize_mask(m, record)
    closed = ndimage.binary_closing(small, structure=np.ones((3, 3)), iterations=2, border_value=0)
    closed = ndimage.binary_fill_holes(closed)
    lab, n = ndimage.label(closed)
    if n > 1:  # keep the largest part: the target is one region by definition
        areas = np.bincount(lab.ravel())[1:]
        closed = lab == (np.argmax(areas) + 1)
    return closed.astype(np.uint8)


def _resize_mask(mask: np.ndarray, record: CanvasRecord) -> np.ndarray:
    frac = _resample_2d(mask.astype(np.float32), record.canvas_shape, record.scale, record.shift, "linear", 0.0)
    return frac >= 0.5


@dataclass
class Sample:
    name: str
    canvas: np.ndarray  # (100, 100) float32
    target: np.ndarray  # (100, 100) uint8 region
    record: CanvasRecord
    mask: np.ndarray | None = None  # original-resolution C3-C7 mask (evaluation)


def phantom_samples(n: int, seed: int = 0, size: int = 512, keep_masks: bool = False) -> list[Sample]:
    """``n`` varied lateral cervical phantoms (seeds seed .. seed+n-1)."""

    out = []
    for k in range(n):
        ph = lateral_cervical_phantom(CervicalPhantomConfig.random(seed + k, size))
        canvas, rec = to_canvas(ph.image.array)
        out.append(Sample(f"phantom-{seed + k}", canvas, region_target(ph.region, rec), rec,
                          ph.region if keep_masks else None))
    return out


def folder_samples(root: str | Path, keep_masks: bool = True) -> list[Sample]:
    """Samples from a folder of real radiographs with C3-C7 masks (layout in the module doc)."""

    root = Path(root)
    if not (root / "images").is_dir() or not (root / "masks").is_dir():
        raise InputError(f"{root} needs images/ and masks/ subfolders (see SpineAILib.cervical.data).")
    out = []
    for img_path in sorted((root / "images").iterdir()):
        stem = img_path.name.split(".")[0]
        masks = [p for p in (root / "masks").iterdir() if p.name.split(".")[0] == stem]
        if not masks:
            raise InputError(f"No mask for {img_path.name} in {root / 'masks'}.")
        img = read_image(img_path, expect_ndim=2)
        mask = read_image(masks[0], expect_ndim=2).array > 0
        if mask.shape != img.array.shape:
            raise InputError(f"Mask {masks[0].name} has shape {mask.shape}, image {img.array.shape}; they must match.")
        canvas, rec = to_canvas(img.array)
        out.append(Sample(stem, canvas, region_target(mask, rec), rec, mask if keep_masks else None))
    return out
