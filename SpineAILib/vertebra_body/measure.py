"""Vertebral body measurements from a mask: volume and anterior / middle / posterior heights
measured in the body's own mid-sagittal plane (mm).

The body's axes come from the principal axes of its voxels (physical space): the axis of least
extent is the cranio-caudal one (a body is flatter than it is wide or deep), the next one is the
antero-posterior axis (depth < width), signed so that "anterior" points to -y in LPS (patient
front). Heights are the lengths of the mask along the cranio-caudal axis through the points at
-0.8, 0 and +0.8 of the half depth on the AP axis (the positions the CT phantom uses), sampled
every 0.1 mm with nearest-voxel lookup.

With the CT (``hu``) each end of a height is refined to the endplate's edge in the image: the
steepest fall from the bright endplate to the disc/outside, searched within ``refine_mm`` of the
mask's end. A segmentation network smooths a body towards the mean shape
(it fills a biconcave endplate and rounds a wedge by a fraction of a millimetre), which is enough
to move a Genant grade across a limit; the CT's own edge does not have that bias.
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


def refine_edge(t: np.ndarray, hu: np.ndarray, end: float, outward: int, search_mm: float = 1.5,
                min_contrast_hu: float = 200.0, smooth_mm: float = 0.15) -> float:
    """Position (same units as ``t``, mm) of the bone edge near ``end`` on an HU profile along ``t``.

    The edge is where the profile falls fastest going ``outward`` (+1 along increasing t, -1
    decreasing) within ``search_mm`` of ``end``: the profile is smoothed (Gaussian,
    ``smooth_mm``), differentiated, and the steepest descent located to a fraction of a sample
    by a parabola through its neighbours. That is the exact edge of a blurred step, and is less
    pulled outward by the bright cortical endplate than a half-maximum crossing (which ran
    +0.4 mm on the phantoms). Returns ``end`` unchanged when the profile varies by less than
    ``min_contrast_hu`` there (no visible endplate)."""
    from scipy.ndimage import gaussian_filter1d

    sel = np.flatnonzero(np.abs(t - end) <= search_mm)
    if len(sel) < 3 or float(np.ptp(hu[sel])) < min_contrast_hu:
        return end
    step = float(t[1] - t[0])
    slope = np.gradient(gaussian_filter1d(np.asarray(hu, float), smooth_mm / abs(step)), t) * outward
    k = int(sel[np.argmin(slope[sel])])
    if 0 < k < len(t) - 1:
        y0, y1, y2 = slope[k - 1], slope[k], slope[k + 1]
        den = y0 - 2 * y1 + y2
        if den > 0:
            return float(t[k] + 0.5 * (y0 - y2) / den * step)
    return float(t[k])


def measure_heights(mask: Image, si_axis: np.ndarray | None = None, step_mm: float = 0.1,
                    hu: Image | None = None, refine_mm: float = 1.5) -> dict[str, float]:
    """Volume (ml) and anterior/middle/posterior heights (mm) of a vertebral body mask.

    The AP positions are taken relative to the middle of the body's AP extent (not its centre
    of mass, which a wedge shifts backwards). ``hu`` (the CT on the mask's grid) refines both
    ends of each height to the endplate edges in the image (:func:`refine_edge`, within
    ``refine_mm``); the heights are then end-to-end distances."""
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
    lateral = np.cross(si, ap)
    volume = None if hu is None else hu.as_3d().array.astype(np.float32)  # converted once, sampled 9 times
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
        height = float(inside.sum() * step_mm)
        if volume is not None and inside.any():
            # three parallel lines 1 mm apart laterally: less noise, same height (the
            # deformities vary antero-posteriorly)
            from scipy import ndimage

            prof = np.mean([ndimage.map_coordinates(volume, m.physical_to_index(line + d * lateral)[:, ::-1].T,
                                                    order=3, mode="nearest")
                            for d in (-1.0, 0.0, 1.0)], axis=0)  # cubic: less blur than linear
            lo_end, hi_end = float(t[inside].min()), float(t[inside].max())
            height = (refine_edge(t, prof, hi_end, +1, refine_mm) - refine_edge(t, prof, lo_end, -1, refine_mm))
        out[f"{key}_height_mm"] = height
    return out
