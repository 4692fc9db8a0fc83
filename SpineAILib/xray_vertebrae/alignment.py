"""Sagittal alignment from the endplate corners of a lateral radiograph (Cobb method on endplate
lines through the posterior and anterior corners), plus vertebral body and disc heights.

Corners are (x, y) pixels per vertebra in LATERAL_CORNERS order (top_posterior, top_anterior,
bottom_posterior, bottom_anterior); NaN where unknown. Angles are magnitudes in degrees; the
image may face either way (the endplate directions run posterior -> anterior, so a mirrored
image gives the same angles).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from SpineAILib.anatomy import LATERAL_VERTEBRAE

# (name, upper vertebra, its endplate, lower vertebra, its endplate)
ANGLES: tuple[tuple[str, str, str, str, str], ...] = (
    ("c2_c7_lordosis", "C2", "bottom", "C7", "bottom"),
    ("t4_t12_kyphosis", "T4", "top", "T12", "bottom"),
    ("l1_s1_lordosis", "L1", "top", "S1", "top"),
)
ALIGNMENT_COLUMNS: tuple[str, ...] = ("c2_c7_lordosis", "t4_t12_kyphosis", "l1_s1_lordosis", "sacral_slope")
_PLATE = {"top": (0, 1), "bottom": (2, 3)}  # (posterior, anterior) corner indices


def endplate(corners: np.ndarray, vertebra: str, plate: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(posterior, anterior) corner points of one endplate, or None when either is unknown."""
    v = LATERAL_VERTEBRAE.index(vertebra)
    p, a = (np.asarray(corners[v, i], float) for i in _PLATE[plate])
    if np.isnan(p).any() or np.isnan(a).any() or np.allclose(p, a):
        return None
    return p, a


def angle_between(p1: np.ndarray, a1: np.ndarray, p2: np.ndarray, a2: np.ndarray) -> float:
    """Magnitude (degrees, 0..180) of the angle between two posterior -> anterior endplate lines."""
    d1, d2 = a1 - p1, a2 - p2
    ang = math.degrees(math.atan2(d1[0] * d2[1] - d1[1] * d2[0], float(d1 @ d2)))
    return abs(ang)


def sacral_slope(corners: np.ndarray) -> float | None:
    """Angle (degrees, 0..90) between the S1 plate and the image horizontal."""
    plate = endplate(corners, "S1", "top")
    if plate is None:
        return None
    d = plate[1] - plate[0]
    return math.degrees(math.atan2(abs(d[1]), abs(d[0])))


@dataclass
class Alignment:
    """Angles in degrees (None where a needed endplate is not in view); heights in pixels of the
    input image (mm where the pixel spacing is known: see ``spacing``)."""

    c2_c7_lordosis: float | None = None
    t4_t12_kyphosis: float | None = None
    l1_s1_lordosis: float | None = None
    sacral_slope: float | None = None
    vertebra_heights: dict[str, dict[str, float]] = field(default_factory=dict)  # name -> anterior/posterior
    disc_heights: dict[str, dict[str, float]] = field(default_factory=dict)  # "L4-L5" -> anterior/posterior

    def angles(self) -> dict[str, float | None]:
        return {k: getattr(self, k) for k in ALIGNMENT_COLUMNS}

    def to_dict(self) -> dict:
        return {**{k: (None if v is None else round(float(v), 2)) for k, v in self.angles().items()},
                "vertebra_heights_px": self.vertebra_heights, "disc_heights_px": self.disc_heights}


def _dist(a: np.ndarray, b: np.ndarray) -> float | None:
    if np.isnan(a).any() or np.isnan(b).any():
        return None
    return round(float(np.linalg.norm(a - b)), 2)


def sagittal_alignment(corners: np.ndarray, available: np.ndarray | None = None) -> Alignment:
    """Alignment of (24, 4, 2) lateral corners; ``available`` (24,) bool marks the vertebrae that
    were found (the others are treated as unknown)."""
    c = np.array(corners, float)
    if available is not None:
        c[~np.asarray(available, bool)] = np.nan
    out = Alignment()
    for name, v1, pl1, v2, pl2 in ANGLES:
        e1, e2 = endplate(c, v1, pl1), endplate(c, v2, pl2)
        if e1 is not None and e2 is not None:
            setattr(out, name, angle_between(*e1, *e2))
    out.sacral_slope = sacral_slope(c)
    for i, name in enumerate(LATERAL_VERTEBRAE):
        ant, post = _dist(c[i, 1], c[i, 3]), _dist(c[i, 0], c[i, 2])
        if ant is not None or post is not None:
            out.vertebra_heights[name] = {"anterior": ant, "posterior": post}
        if i + 1 < len(LATERAL_VERTEBRAE):
            nxt = LATERAL_VERTEBRAE[i + 1]
            ant, post = _dist(c[i, 3], c[i + 1, 1]), _dist(c[i, 2], c[i + 1, 0])
            if ant is not None or post is not None:
                out.disc_heights[f"{name}-{nxt}"] = {"anterior": ant, "posterior": post}
    return out
