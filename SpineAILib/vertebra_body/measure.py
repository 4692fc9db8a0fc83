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
    centroids) overrides the estimate from the mask: the direction in which the body is thinnest
    (:func:`thinnest_direction`, started from the axis of least variance)."""
    m = mask.as_3d()
    idx = np.argwhere(m.array > 0)[:, ::-1].astype(float)
    if len(idx) < 20:
        raise InputError(f"The vertebral body mask has only {len(idx)} voxels; it is too small to measure.")
    pts = m.index_to_physical(idx)
    c = pts.mean(0)
    w, v = np.linalg.eigh(np.cov((pts - c).T))  # ascending variance
    si, ap = v[:, 0], v[:, 1]
    if si_axis is None:
        si = thinnest_direction(pts - c, si)
    else:
        si = np.asarray(si_axis, float) / np.linalg.norm(si_axis)
    ap = ap - (ap @ si) * si
    ap /= np.linalg.norm(ap)
    if si[2] < 0:
        si = -si
    if ap[1] < 0:
        ap = -ap
    return c, si, ap, np.cross(si, ap)


def thinnest_direction(points: np.ndarray, start: np.ndarray, max_tilt_deg: float = 30.0) -> np.ndarray:
    """Unit direction within ``max_tilt_deg`` of ``start`` along which ``points`` (N x 3, mm,
    centred) have the least extent (max - min of the projections), by a coarse-to-fine search
    over tilts (5 degree grid, then 1 degree, then 0.2 degree).

    The cranio-caudal axis of a body is the normal of its (roughly parallel) endplates, i.e. its
    thinnest direction. The axis of least variance says the same for a flat cylinder but not
    for a body whose mid-sagittal section is about square (a real L2: 32 x 32 mm): there the
    variance hardly changes with tilt and came out 23 degrees off, and the anterior/posterior
    height lines cut the corners (9 mm instead of 28 mm)."""
    start = np.asarray(start, float) / np.linalg.norm(start)
    e1 = np.cross(start, [1.0, 0.0, 0.0] if abs(start[0]) < 0.9 else [0.0, 1.0, 0.0])
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(start, e1)
    best, best_ab, best_dir = np.inf, (0.0, 0.0), start
    for step, span in ((5.0, max_tilt_deg), (1.0, 5.0), (0.2, 1.0)):
        grid = np.deg2rad(best_ab[0] + np.arange(-span, span + 1e-9, step))[:, None], \
            np.deg2rad(best_ab[1] + np.arange(-span, span + 1e-9, step))[None, :]
        a, b = np.broadcast_arrays(*grid)
        dirs = (np.cos(a) * np.cos(b))[..., None] * start + np.sin(a)[..., None] * e1 + \
            (np.cos(a) * np.sin(b))[..., None] * e2
        dirs = dirs.reshape(-1, 3)
        proj = points @ dirs.T
        ext = proj.max(0) - proj.min(0)
        k = int(np.argmin(ext))
        if ext[k] < best - 1e-9:
            best, best_dir = float(ext[k]), dirs[k]
            best_ab = (float(np.rad2deg(a.reshape(-1)[k])), float(np.rad2deg(b.reshape(-1)[k])))
    return best_dir / np.linalg.norm(best_dir)


def find_edge(t: np.ndarray, hu: np.ndarray, end: float, outward: int, search_mm: float = 1.5,
              min_contrast_hu: float = 200.0, smooth_mm: float = 0.15) -> float | None:
    """Position (same units as ``t``, mm) of the bone edge near ``end`` on an HU profile along ``t``.

    The edge is where the profile falls fastest going ``outward`` (+1 along increasing t, -1
    decreasing) within ``search_mm`` of ``end``: the profile is smoothed (Gaussian,
    ``smooth_mm``), differentiated, and the steepest descent located to a fraction of a sample
    by a parabola through its neighbours. That is the exact edge of a blurred step, and is less
    pulled outward by the bright cortical endplate than a half-maximum crossing (which ran
    +0.4 mm on the phantoms). Returns None when the profile varies by less than
    ``min_contrast_hu`` there (no visible endplate: the mask ends inside bone or soft tissue)."""
    from scipy.ndimage import gaussian_filter1d

    sel = np.flatnonzero(np.abs(t - end) <= search_mm)
    if len(sel) < 3 or float(np.ptp(hu[sel])) < min_contrast_hu:
        return None
    step = float(t[1] - t[0])
    slope = np.gradient(gaussian_filter1d(np.asarray(hu, float), smooth_mm / abs(step)), t) * outward
    k = int(sel[np.argmin(slope[sel])])
    if 0 < k < len(t) - 1:
        y0, y1, y2 = slope[k - 1], slope[k], slope[k + 1]
        den = y0 - 2 * y1 + y2
        if den > 0:
            return float(t[k] + 0.5 * (y0 - y2) / den * step)
    return float(t[k])


def _box(mask: np.ndarray, margin) -> tuple[slice, ...]:
    """Array slices of ``mask``'s bounding box grown by ``margin`` voxels (per axis, or one
    number), clipped to the array."""
    nz = np.argwhere(mask)
    lo = np.maximum(nz.min(0) - np.asarray(margin), 0)
    hi = np.minimum(nz.max(0) + np.asarray(margin) + 1, mask.shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))


def body_core(mask: np.ndarray, spacing, radius_mm: float = 3.0) -> np.ndarray:
    """The mask without its thin appendages: morphological opening with a ball of ``radius_mm``
    (physical, per-axis voxel radii from ``spacing``, x, y, z), largest component kept.

    A segmentation that leaks a few millimetres into a pedicle tilts the principal axes by 20
    degrees and stretches the AP extent, so the anterior/posterior lines of :func:`measure_heights`
    miss the body (seen on a real L2). The body itself (>= 10 mm in every direction) survives
    the opening; the original mask is returned when the core would lose more than half of it."""
    from scipy import ndimage

    if radius_mm <= 0:
        return mask
    r = [max(1, int(round(radius_mm / s))) for s in spacing[::-1]]  # array order z, y, x
    grid = np.mgrid[tuple(slice(-k, k + 1) for k in r)]
    ball = sum((g * s) ** 2 for g, s in zip(grid, spacing[::-1], strict=True)) <= radius_mm**2 + 1e-6
    if not mask.any():
        return mask
    box = _box(mask, np.array(r) + 1)  # opened within the mask's bounding box (+ the ball): 10x less work
    core = np.zeros_like(mask, dtype=bool)
    core[box] = ndimage.binary_opening(mask[box], ball)
    lab, n = ndimage.label(core)
    if n > 1:
        core = lab == 1 + int(np.argmax(ndimage.sum(core, lab, range(1, n + 1))))
    return core if core.sum() >= 0.5 * mask.sum() else mask


def measure_heights(mask: Image, si_axis: np.ndarray | None = None, step_mm: float = 0.1,
                    hu: Image | None = None, refine_mm: float = 1.5, core_mm: float = 3.0,
                    edge_bias_mm: float = 0.0) -> dict[str, float]:
    """Volume (ml) and anterior/middle/posterior heights (mm) of a vertebral body mask.

    The AP positions are taken relative to the middle of the body's AP extent (not its centre
    of mass, which a wedge shifts backwards). ``hu`` (the CT on the mask's grid) refines both
    ends of each height to the endplate edges in the image (:func:`find_edge`, within
    ``refine_mm``); the heights are then end-to-end distances. The axes, the AP extent and the
    centre come from the mask's core (:func:`body_core`, ``core_mm``; 0 = the whole mask), so a
    leak into a pedicle does not move the measuring lines off the body. With ``hu``, the result
    also holds ``edges_found``: how many of the 6 ends had an endplate edge in the CT (fewer
    means the mask stops inside the bone or beyond it, and the heights are the mask's), and
    ``<key>_edges`` per height. Each end found on an edge is moved ``edge_bias_mm`` inwards (a
    known outward bias of the edge on the grid measured, see
    :data:`SpineAILib.vertebra_body.predict.EDGE_BIAS_MM`)."""
    from scipy import ndimage

    m = mask.as_3d()
    # A probability map (float in [0, 1]) is measured with linear interpolation (sub-voxel
    # heights); a label mask with nearest-voxel lookup.
    prob = m.array.astype(np.float32) if np.issubdtype(m.array.dtype, np.floating) else None
    arr = m.array > 0.5 if prob is not None else m.array > 0
    core = body_core(arr, m.spacing, core_mm)
    c, si, ap, lateral = body_axes(m.with_array(core.astype(np.uint8)), si_axis)
    pts = m.index_to_physical(np.argwhere(core)[:, ::-1].astype(float))
    # the AP extent in the mid-sagittal slab: a real body's posterior wall is concave (the
    # canal), so its depth at the midline is less than at the pedicles
    slab = np.abs((pts - c) @ lateral) <= max(1.5, float(max(m.spacing)))
    proj = (pts[slab] if slab.sum() >= 10 else pts) @ ap - c @ ap
    half_depth = 0.5 * float(np.ptp(proj))
    c = c + 0.5 * (proj.max() + proj.min()) * ap
    reach = float(np.ptp((pts - c) @ si)) + 5.0
    t = np.arange(-reach, reach, step_mm)
    out = {"volume_ml": float(arr.sum() * np.prod(m.spacing) / 1000.0)}
    shape = np.array(arr.shape[::-1])
    volume, offset = None, np.zeros(3)
    if hu is not None:
        # the CT around the mask only (12 voxels of margin: the lines reach 5 mm past the body),
        # spline-prefiltered once for the 9 cubic samplings: a click's time is mostly here
        box = _box(arr, 12)
        volume = ndimage.spline_filter(hu.as_3d().array[box].astype(np.float32), order=3, mode="nearest",
                                       output=np.float32)
        offset = np.array([b.start for b in box], float)  # array (z, y, x) index of the box's first voxel
        out.update({f"{key}_edges": 0 for key in MEASURE_AT})  # per height (0 where the line misses the mask)
    for key, frac in MEASURE_AT.items():
        base = c + frac * half_depth * ap
        line = base + t[:, None] * si
        if prob is not None:  # sub-voxel: the probability interpolated linearly along the line
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
            prof = np.mean([ndimage.map_coordinates(volume, m.physical_to_index(line + d * lateral)[:, ::-1].T
                                                    - offset[:, None], order=3, mode="nearest", prefilter=False)
                            for d in (-1.0, 0.0, 1.0)], axis=0)  # cubic: less blur than linear
            lo_end, hi_end = float(t[inside].min()), float(t[inside].max())
            hi, lo = find_edge(t, prof, hi_end, +1, refine_mm), find_edge(t, prof, lo_end, -1, refine_mm)
            out[f"{key}_edges"] = (hi is not None) + (lo is not None)
            height = (hi_end if hi is None else hi - edge_bias_mm) - (lo_end if lo is None else lo + edge_bias_mm)
        out[f"{key}_height_mm"] = height
    if volume is not None:  # of the 6 height ends, those confirmed by an endplate edge in the CT
        out["edges_found"] = sum(out[f"{key}_edges"] for key in MEASURE_AT)
    return out
