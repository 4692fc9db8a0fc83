"""Crop a fixed physical box around a clicked point and paste results back (Klein et al.: a
128 x 128 x 64 mm patch at 1 mm around the click).

The crop grid is axis-aligned in LPS (identity direction) with its centre voxel exactly at the
click, whatever the CT's spacing and direction; ``paste_back`` resamples a crop-grid result onto
the CT's own grid (linear for probabilities, then thresholded, so the mask is as smooth as the
CT's voxels allow).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from SpineAILib.errors import InputError
from SpineAILib.io.image import Image, lps_to_ras, point_inside
from SpineAILib.preprocessing.resample import _sitk_interp

CROP_SIZE_XYZ = (128, 128, 64)  # voxels at CROP_SPACING: x (right-left), y (AP), z (SI)
CROP_SPACING = 1.0


@dataclass(frozen=True)
class CropRecord:
    point_lps: tuple[float, float, float]
    size_xyz: tuple[int, int, int]
    spacing: float
    origin: tuple[float, float, float]

    def grid(self, array: np.ndarray | None = None) -> Image:
        arr = np.zeros(self.size_xyz[::-1], np.float32) if array is None else array
        return Image(arr, (self.spacing,) * 3, self.origin, np.eye(3))


def crop_around(image: Image, point_lps, size_xyz=CROP_SIZE_XYZ, spacing: float = CROP_SPACING,
                fill: float = -1000.0, interpolator: str = "linear") -> tuple[Image, CropRecord]:
    """The box of ``size_xyz`` voxels of ``spacing`` mm centred on ``point_lps`` (LPS mm).
    Voxel ``size // 2`` (x, y, z) lies exactly on the point."""
    import SimpleITK as sitk

    img = image.as_3d()
    p = np.asarray(point_lps, float).reshape(3)
    if not np.all(np.isfinite(p)):
        raise InputError(f"The point {p.tolist()} is not a finite position (mm).")
    if not point_inside(img, p):
        # reported in RAS, the space users (Slicer, --point) give points in
        corners = np.array([lps_to_ras(img.index_to_physical(np.array(c, float) * (np.array(img.size) - 1.0)))
                            for c in np.ndindex(2, 2, 2)])
        raise InputError(f"The point (RAS {lps_to_ras(p).round(1).tolist()} mm) lies outside the image, which "
                         f"spans RAS {corners.min(0).round(1).tolist()} to {corners.max(0).round(1).tolist()} mm. "
                         "Click on a vertebral body inside the CT.")
    size = np.array(size_xyz, int)
    origin = p - (size // 2) * spacing
    src = img.to_sitk()
    out = sitk.Resample(src, [int(s) for s in size], sitk.Transform(), _sitk_interp(interpolator),
                        tuple(float(v) for v in origin), (float(spacing),) * 3, tuple(np.eye(3).ravel()),
                        float(fill), sitk.sitkFloat32)
    rec = CropRecord(tuple(float(v) for v in p), tuple(int(s) for s in size), float(spacing),
                     tuple(float(v) for v in origin))
    return Image.from_sitk(out), rec


def paste_back(crop_values: np.ndarray, record: CropRecord, reference: Image,
               interpolator: str = "linear", return_box: bool = False):
    """Values on the crop grid -> ``reference``'s grid (0 outside the crop), float32.

    Only the reference voxels inside the crop's physical box are resampled (a click on a
    512 x 512 x 400 CT touches about 1 % of it). With ``return_box`` returns (values of that
    box, its array slices (z, y, x)) instead of the whole grid."""
    import SimpleITK as sitk

    ref = reference.as_3d()
    size = np.array(record.size_xyz)
    corners = np.array([[i, j, k] for i in (-0.5, size[0] - 0.5) for j in (-0.5, size[1] - 0.5)
                        for k in (-0.5, size[2] - 0.5)]) * record.spacing + np.asarray(record.origin)
    idx = ref.physical_to_index(corners)
    lo = np.clip(np.floor(idx.min(0)).astype(int), 0, np.array(ref.size))
    hi = np.clip(np.ceil(idx.max(0)).astype(int) + 1, 0, np.array(ref.size))
    sl = tuple(slice(int(lo[a]), int(hi[a])) for a in (2, 1, 0))
    sub_size = hi - lo
    values = np.zeros(tuple(sub_size[::-1]), np.float32)
    if np.all(sub_size > 0):
        src = record.grid(np.asarray(crop_values, np.float32)).to_sitk()
        target = sitk.Image([int(s) for s in sub_size], sitk.sitkFloat32)
        target.SetSpacing(tuple(float(s) for s in ref.spacing))
        target.SetOrigin(tuple(float(o) for o in ref.index_to_physical(lo.astype(float))))
        target.SetDirection(tuple(float(d) for d in ref.direction.ravel()))
        out = sitk.Resample(src, target, sitk.Transform(), _sitk_interp(interpolator), 0.0, sitk.sitkFloat32)
        values = sitk.GetArrayFromImage(out)
    if return_box:
        return values, sl
    full = np.zeros(ref.array.shape, np.float32)
    full[sl] = values
    return full


def click_channel(record: CropRecord, sigma_mm: float = 10.0) -> np.ndarray:
    """A Gaussian (peak 1) around the click on the crop grid, (z, y, x): tells the network which
    of several similar bodies in the crop was clicked."""
    sz = np.array(record.size_xyz)
    c = sz // 2
    z, y, x = ((np.arange(sz[i]) - c[i]) * record.spacing for i in (2, 1, 0))
    d2 = z[:, None, None] ** 2 + y[None, :, None] ** 2 + x[None, None, :] ** 2
    return np.exp(-d2 / (2 * sigma_mm ** 2)).astype(np.float32)
