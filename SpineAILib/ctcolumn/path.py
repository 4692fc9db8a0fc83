"""A line through a CT resampled along its length, with its local frame, and the HU sampled in
a band parallel to it: the geometry shared by the column found from the canal
(:mod:`SpineAILib.ctcolumn.canal`) and the sacrum numbering of the vertebra labelling.

Canonical grid (:func:`SpineAILib.preprocessing.resample_to_canonical`): identity direction, LPS,
array axes z, y, x with z towards the head and y towards the back.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from SpineAILib.io.image import Image


@dataclass
class Path:
    """A column line resampled every ``step_mm`` from the feet up: positions (N, 3, LPS mm) and
    unit vectors along it (``tangent``, towards the head), to the patient's left
    (``lateral``) and to the front (``anterior``)."""

    points: np.ndarray
    tangent: np.ndarray
    lateral: np.ndarray
    anterior: np.ndarray
    step_mm: float


def straighten(line: np.ndarray, reference: Image, step_mm: float = 1.0, max_gap_slices: int = 3,
               min_length_mm: float = 20.0) -> Path | None:
    """The longest run of ``line`` (gaps up to ``max_gap_slices`` bridged), smoothed (median
    over 9 slices against single-slice jumps, then Gaussian) and resampled every ``step_mm``
    along its length. None when it is shorter than ``min_length_mm``."""
    from scipy import ndimage

    zs = np.flatnonzero(~np.isnan(line[:, 0]))
    if len(zs) < 2:
        return None
    run = max(np.split(zs, np.flatnonzero(np.diff(zs) > max_gap_slices) + 1), key=len)
    z = np.arange(run[0], run[-1] + 1)
    if len(z) * float(reference.spacing[2]) < min_length_mm:
        return None
    xy = [np.interp(z, zs, line[zs, k]) for k in (0, 1)]
    xy = [ndimage.gaussian_filter1d(ndimage.median_filter(v, 9, mode="nearest"), 2, mode="nearest") for v in xy]
    pts = reference.index_to_physical(np.stack([xy[0], xy[1], z], axis=1))
    arc = np.r_[0.0, np.cumsum(np.linalg.norm(np.diff(pts, axis=0), axis=1))]
    s = np.arange(0.0, arc[-1], step_mm)
    q = np.stack([np.interp(s, arc, pts[:, k]) for k in range(3)], axis=1)
    t = ndimage.gaussian_filter1d(np.gradient(q, axis=0), 5.0 / step_mm, axis=0, mode="nearest")
    t /= np.linalg.norm(t, axis=1, keepdims=True)
    lateral = np.array([1.0, 0.0, 0.0]) - t[:, :1] * t  # LPS +x (patient's left), made orthogonal
    lateral /= np.linalg.norm(lateral, axis=1, keepdims=True)
    anterior = np.cross(t, lateral)
    anterior *= -np.sign(np.median(anterior[:, 1]) or 1.0)  # the front is -y in LPS
    return Path(q, t, lateral, anterior, step_mm)


def body_band(hu: np.ndarray, reference: Image, path: Path, ap_mm: tuple[float, float] = (-5.0, 12.0),
              lateral_mm: float = 6.0, step_mm: float = 2.0) -> np.ndarray:
    """HU (linear interpolation) on a grid of lines parallel to ``path``: ``ap_mm`` in front of
    it (negative: behind) and up to ``lateral_mm`` to each side, every ``step_mm``. Returns
    (lines, samples along the path)."""
    rows = []
    for a in np.arange(ap_mm[0], ap_mm[1] + 1e-6, step_mm):
        for lat in np.arange(-lateral_mm, lateral_mm + 1e-6, step_mm):
            rows.append(sample_hu(hu, reference, path.points + a * path.anterior + lat * path.lateral))
    return np.array(rows)


def sample_hu(hu: np.ndarray, reference: Image, points: np.ndarray) -> np.ndarray:
    """HU of ``hu`` (z, y, x array on ``reference``'s grid) at ``points`` (..., 3, LPS mm),
    linear interpolation, the nearest edge value outside; flat (one value per point)."""
    from scipy import ndimage

    idx = reference.physical_to_index(np.asarray(points, float).reshape(-1, 3))
    return ndimage.map_coordinates(hu, idx[:, ::-1].T, order=1, mode="nearest")
