"""Cobb angles from the 68 AASCE landmarks, following the AASCE 2019 challenge's rule.

Landmarks: (68, 2) pixel (x, y), 17 vertebrae T1..L5 top to bottom, corners TL, TR, BL, BR.

The rule (re-implemented from the challenge's published evaluation code):

1. Each vertebra's direction is the vector from its left-side midpoint (TL+BL)/2 to its
   right-side midpoint (TR+BR)/2. Angles between all pairs of vertebra directions form a
   17 x 17 matrix.
2. Main curve: the largest angle of the matrix, between vertebrae a < b.
3. S-curve test on the 34 endplate midpoints: each point's deviation from the straight line
   joining the first and last midpoint (in normalised coordinates); mixed signs = S curve.
4. Not S: upper curve = angle(T1, a), lower curve = angle(L5, b).
   S and the main curve in the upper half of the image (mean of a's and b's lower-endplate
   midpoint y < image height / 2): upper = max angle between a and any vertebra above it,
   lower = max angle between b and any vertebra below it. S and the main curve in the lower
   half: upper = max angle between a and a vertebra c above it, and the third angle is the
   largest angle between c and any vertebra above c (the challenge then calls it the upper-
   upper curve, stored in the third column).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from SpineAILib import anatomy
from SpineAILib.errors import InputError

N_VERTEBRAE = 17
N_LANDMARKS = 68


# Severity classes of a scoliotic curve by its Cobb angle (degrees): below 10 is not called
# scoliosis; 10-25 mild, 25-40 moderate, 40 and above severe (the usual clinical bands).
SEVERITY_BANDS = ((10.0, "none"), (25.0, "mild"), (40.0, "moderate"), (float("inf"), "severe"))


def severity(angle_deg: float) -> str:
    """"none" (< 10 degrees), "mild" (10-25), "moderate" (25-40) or "severe" (>= 40)."""
    return next(label for limit, label in SEVERITY_BANDS if angle_deg < limit)


@dataclass
class Curve:
    """One Cobb angle with the vertebrae that bound it (names like "T5") and its apex."""

    angle_deg: float
    upper_end: str
    lower_end: str
    apex: str

    @property
    def severity(self) -> str:
        """The curve's severity class (:func:`severity`)."""
        return severity(self.angle_deg)

    def to_dict(self) -> dict:
        return {**asdict(self), "severity": self.severity}


@dataclass
class CobbAngles:
    """The three AASCE angles (degrees) in ``angles.csv`` column order, with their curves."""

    main: Curve
    upper: Curve
    lower: Curve
    s_curve: bool
    vertebra_tilts_deg: list[float] = field(default_factory=list)  # per vertebra, + = right side up

    @property
    def values(self) -> tuple[float, float, float]:
        return (self.main.angle_deg, self.upper.angle_deg, self.lower.angle_deg)

    def to_dict(self) -> dict:
        return {"main": self.main.to_dict(), "upper": self.upper.to_dict(), "lower": self.lower.to_dict(),
                "s_curve": self.s_curve, "vertebra_tilts_deg": list(self.vertebra_tilts_deg)}


def check_landmarks(landmarks: np.ndarray) -> np.ndarray:
    pts = np.asarray(landmarks, dtype=float)
    if pts.shape != (N_LANDMARKS, 2):
        raise InputError(f"Expected 68 landmarks as a (68, 2) array of (x, y) pixels, got shape {pts.shape}.")
    if not np.all(np.isfinite(pts)):
        raise InputError("Landmarks contain NaN/inf values.")
    return pts


def vertebra_vectors(landmarks: np.ndarray) -> np.ndarray:
    """(17, 2) left-to-right direction of each vertebra (from side midpoints)."""
    p = check_landmarks(landmarks).reshape(N_VERTEBRAE, 4, 2)
    left = (p[:, 0] + p[:, 2]) / 2
    right = (p[:, 1] + p[:, 3]) / 2
    return right - left


def angle_matrix(vectors: np.ndarray) -> np.ndarray:
    """Pairwise angles (radians) between direction vectors; rounded cosines like the challenge."""
    norm = np.linalg.norm(vectors, axis=1)
    cos = (vectors @ vectors.T) / np.outer(norm, norm)
    return np.arccos(np.clip(np.round(cos, 8), -1.0, 1.0))


def endplate_midpoints(landmarks: np.ndarray) -> np.ndarray:
    """(34, 2) midpoints of the upper and lower endplates, top to bottom."""
    p = check_landmarks(landmarks)
    return (p[0::2] + p[1::2]) / 2


def is_s_curve(midpoints: np.ndarray) -> bool:
    """True when the endplate midpoints fall on both sides of the line joining the first and
    the last one (the challenge's test, expressed as a sign test)."""
    p = np.asarray(midpoints, float)
    first, last = p[0], p[-1]
    dy, dx = first[1] - last[1], first[0] - last[0]
    if dx == 0:  # perfectly vertical end-to-end line: compare raw horizontal deviations
        dev = p[:-2, 0] - last[0]
    else:
        dev = (p[:-2, 1] - last[1]) / dy - (p[:-2, 0] - last[0]) / dx
    return bool((dev > 0).any() and (dev < 0).any())


def _apex(landmarks: np.ndarray, i: int, j: int) -> str:
    """Vertebra between i and j whose centre lies farthest from the line joining their centres."""
    centres = check_landmarks(landmarks).reshape(N_VERTEBRAE, 4, 2).mean(1)
    lo, hi = sorted((i, j))
    if hi - lo < 2:
        return anatomy.AASCE_VERTEBRAE[lo]
    a, b = centres[lo], centres[hi]
    d = b - a
    n = np.array([-d[1], d[0]]) / (np.linalg.norm(d) or 1.0)
    dist = np.abs((centres[lo + 1:hi] - a) @ n)
    return anatomy.AASCE_VERTEBRAE[lo + 1 + int(np.argmax(dist))]


def cobb_angles(landmarks: np.ndarray, image_height: float) -> CobbAngles:
    """The three AASCE Cobb angles (degrees) from 68 landmarks in pixels.

    ``image_height`` (pixels) decides, for S curves, whether the main curve is in the upper
    or the lower half of the radiograph.
    """
    pts = check_landmarks(landmarks)
    vec = vertebra_vectors(pts)
    if np.any(np.linalg.norm(vec, axis=1) == 0):
        raise InputError("A vertebra has coincident left and right landmarks; cannot define its direction.")
    ang = angle_matrix(vec)
    deg = np.degrees
    # First maximum in column-major order, as the challenge's MATLAB max() finds it.
    col_max = ang.max(axis=0)
    a = int(np.argmax(col_max))
    b = int(np.argmax(ang[:, a]))
    mid = endplate_midpoints(pts)
    s = is_s_curve(mid)
    names = anatomy.AASCE_VERTEBRAE
    last = N_VERTEBRAE - 1

    def curve(angle_rad: float, i: int, j: int) -> Curve:
        lo, hi = sorted((i, j))
        return Curve(float(deg(angle_rad)), names[lo], names[hi], _apex(pts, lo, hi))

    if not s:
        upper = curve(ang[0, a], 0, a)
        lower = curve(ang[last, b], b, last)
    elif mid[2 * a + 1, 1] + mid[2 * b + 1, 1] < image_height:
        c = int(np.argmax(ang[a, : a + 1]))
        upper = curve(ang[a, c], c, a)
        d = b + int(np.argmax(ang[b, b:]))
        lower = curve(ang[b, d], b, d)
    else:
        c = int(np.argmax(ang[a, : a + 1]))
        upper = curve(ang[a, c], c, a)
        e = int(np.argmax(ang[c, : c + 1]))
        lower = curve(ang[c, e], e, c)
    tilts = np.degrees(np.arctan2(-vec[:, 1], vec[:, 0]))
    return CobbAngles(curve(ang[a, b], a, b), upper, lower, s, [float(t) for t in tilts])


def smape(pred: np.ndarray, truth: np.ndarray) -> float:
    """AASCE SMAPE (%): mean over images of sum_j |p_j - t_j| / sum_j (p_j + t_j) x 100.
    Images whose angles are all zero in both count as 0."""
    p = np.atleast_2d(np.asarray(pred, float))
    t = np.atleast_2d(np.asarray(truth, float))
    if p.shape != t.shape:
        raise InputError(f"SMAPE needs predictions and truths of the same shape, got {p.shape} and {t.shape}.")
    num = np.abs(p - t).sum(1)
    den = (p + t).sum(1)
    per = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
    return float(per.mean() * 100)
