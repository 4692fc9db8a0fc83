"""Vertebral body measurements from a mask: volume and anterior / middle / posterior heights
measured in the body's own mid-sagittal plane (mm).

The body's axes come from the principal axes of its voxels (physical space): the axis of least
extent is the cranio-caudal one (a body is flatter than it is wide or deep), the next one is the
antero-posterior axis (depth < width), signed so that "anterior" points to -y in LPS (patient
front). Heights are the lengths of the mask along the cranio-caudal axis through the points at
-0.8, 0 and +0.8 of the half depth on the AP axis (the positions the CT phantom uses), sampled
every 0.1 mm with nearest-voxel lookup.
"""

from __future__ import annotations

import numpy as np

from SpineAILib.errors import InputError
from SpineAILib.io.image import Image

MEASURE_AT = {"anterior": -0.8, "middle": 0.0, "posterior": 0.8}


def body_axes(mask: Image, si_axis: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                                        np.ndarray]:
    """(centre, cranio-caudal axis (pointing superior), AP axis (pointing posterior), lateral axis)
    in LPS from a boolean body mask. ``si_axis`` (e.g. from the neighbouring vertebrae's
    centroids) overrides the principal-axis estimate, which a wedge-shaped body tilts."""
    m = mask.as_3d()
    idx = np.argwhere(m.array > 0)[:, ::-1].astype(float)
    if len(idx) < 20:
        raise InputError(f"The vertebral body mask has only {len(idx)} voxels; it is too small to measure.")
    pts = m.index_to_physical(idx)
    c = pts.mean(0)
    w, v = np.linalg.eigh(np.cov((pts - c).T))  # ascending variance
    si, ap = v[:, 0], v[:, 1]
    if si_axis is not None:
        si = np.asarray(si_axis, float) / np.linalg.norm(si_axis)
        ap = ap - (ap @ si) * si
        ap /= np.linalg.norm(ap)
    if si[2] < 0:
        si = -si
    if ap[1] < 0:
        ap = -ap
    return c, si, ap, np.cross(si, ap)


def measure_heights(mask: Image, si_axis: np.ndarray | None = None, step_mm: float = 0.1) -> dict[str, float]:
    """Volume (ml) and anterior/middle/posterior heights (mm) of a vertebral body mask.

    The AP positions are taken relative to the middle of the body's AP extent (not its centre
    of mass, which a wedge shifts backwards)."""
    m = mask.as_3d()
    # A probability map (float in [0, 1]) is measured with linear interpolation (sub-voxel
    # heights); a label mask with nearest-voxel lookup.
    prob = m.array.astype(np.float32) if np.issubdtype(m.array.dtype, np.floating) else None
    arr = m.array > 0.5 if prob is not None else m.array > 0
    c, si, ap, _ = body_axes(m.with_array(arr.astype(np.uint8)), si_axis)
    pts = m.index_to_physical(np.argwhere(arr)[:, ::-1].astype(float))
    proj = (pts - c) @ ap
    half_depth = 0.5 * float(np.ptp(proj))
    c = c + 0.5 * (proj.max() + proj.min()) * ap
    reach = float(np.ptp((pts - c) @ si)) + 5.0
    t = np.arange(-reach, reach, step_mm)
    out = {"volume_ml": float(arr.sum() * np.prod(m.spacing) / 1000.0)}
    shape = np.array(arr.shape[::-1])
    for key, frac in MEASURE_AT.items():
        base = c + frac * half_depth * ap
        line = base + t[:, None] * si
        if prob is not None:  # sub-voxel: the probability interpolated linearly along the line
            from scipy import ndimage

            ijk_f = m.physical_to_index(line)
            vals = ndimage.map_coordinates(prob, [ijk_f[:, 2], ijk_f[:, 1], ijk_f[:, 0]], order=1, cval=0.0)
            inside = vals >= 0.5
        else:
            ijk = np.round(m.physical_to_index(line)).astype(int)
            ok = np.all((ijk >= 0) & (ijk < shape), axis=1)
            inside = np.zeros(len(t), bool)
            inside[ok] = arr[ijk[ok, 2], ijk[ok, 1], ijk[ok, 0]]
        out[f"{key}_height_mm"] = float(inside.sum() * step_mm)
    return out
