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
    # the endplate lines the angles were measured on: "T4 top" -> [[x, y] posterior, [x, y] anterior]
    endplates: dict[str, list[list[float]]] = field(default_factory=dict)
    method: str = "corners"  # "corners" or "column" (see column_endplates)

    def angles(self) -> dict[str, float | None]:
        return {k: getattr(self, k) for k in ALIGNMENT_COLUMNS}

    def to_dict(self) -> dict:
        return {**{k: (None if v is None else round(float(v), 2)) for k, v in self.angles().items()},
                "method": self.method, "endplates_px": self.endplates,
                "vertebra_heights_px": self.vertebra_heights, "disc_heights_px": self.disc_heights}

    @classmethod
    def from_dict(cls, data: dict) -> Alignment:
        return cls(**{k: (None if data.get(k) is None else float(data[k])) for k in ALIGNMENT_COLUMNS},
                   vertebra_heights=dict(data.get("vertebra_heights_px", {})),
                   disc_heights=dict(data.get("disc_heights_px", {})),
                   endplates={k: [list(map(float, p)) for p in v] for k, v in data.get("endplates_px", {}).items()},
                   method=str(data.get("method", "corners")))


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
            for v, pl, e in ((v1, pl1, e1), (v2, pl2, e2)):
                out.endplates[f"{v} {pl}"] = [[round(float(x), 2) for x in p] for p in e]
    out.sacral_slope = sacral_slope(c)
    if out.sacral_slope is not None:
        out.endplates["S1 top"] = [[round(float(x), 2) for x in p] for p in endplate(c, "S1", "top")]
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


# Column method: (vertebra, plate, tangent from, tangent to). The endplate is taken perpendicular to
# the column's tangent through the neighbours' centres.
_COLUMN_PLATES = (("C2", "bottom", "C2", "C3"), ("C7", "bottom", "C6", "T1"), ("T4", "top", "T3", "T5"),
                  ("T12", "bottom", "T11", "L1"), ("L1", "top", "T12", "L2"), ("S1", "top", "L5", "S1"))
# The S1 plate is steeper than the normal to the L5-S1 chord: by 10.3 degrees (L1-S1 lordosis)
# and 14.3 degrees (sacral slope) on the 20 training radiographs' reference centres and corners;
# their mean is added.
S1_EXTRA_TILT_DEG = 12.3


def column_endplates(centres: np.ndarray, facing_right: bool) -> np.ndarray:
    """Endplate corners (24, 4, 2) of the alignment's six endplates estimated from the vertebra
    centres (24, 2; NaN = not found) alone: each endplate is perpendicular to the column through
    the neighbouring centres, through the vertebra's centre shifted half a vertebra along the
    column (C2 and S1 are marked at their endplate already), posterior -> anterior by
    ``facing_right``; the S1 plate tilted by ``S1_EXTRA_TILT_DEG`` more. On the reference
    annotations this reproduces the corner-based T4-T12 kyphosis within 2.4 degrees (mean
    absolute difference over 25 radiographs) while corners predicted at the network's resolution
    flatten the endplates towards the mean tilt."""
    c = np.asarray(centres, float)
    out = np.full((len(LATERAL_VERTEBRAE), 4, 2), np.nan)
    sign = 1.0 if facing_right else -1.0
    found = ~np.isnan(c[:, 0])
    for name, plate, a, b in _COLUMN_PLATES:
        i, ia, ib = (LATERAL_VERTEBRAE.index(n) for n in (name, a, b))
        # a missed neighbour: the next one found within two levels (same side of the vertebra)
        ia = next((j for j in range(ia, max(-1, ia - 3), -1) if found[j] and (j < i or j == i == ia)), None)
        ib = next((j for j in range(ib, min(len(c), ib + 3)) if found[j] and (j > i or j == i == ib)), None)
        if ia is None or ib is None or not found[i]:
            continue
        t = c[ib] - c[ia]
        length = float(np.linalg.norm(t))
        if length == 0:
            continue
        t /= length
        n = np.array([t[1], -t[0]])
        if n[0] * sign < 0:
            n = -n  # posterior -> anterior
        if name == "S1":
            th = np.radians(S1_EXTRA_TILT_DEG)
            cands = [np.array([[np.cos(a_), -np.sin(a_)], [np.sin(a_), np.cos(a_)]]) @ n for a_ in (th, -th)]
            n = max(cands, key=lambda v: v[1])  # the anterior end lower (larger y), as the sacrum tilts
        step = 0.0 if name in ("C2", "S1") else 0.25 * length  # half a vertebra ~ a quarter of the span
        mid = c[i] + (step if plate == "bottom" else -step) * t
        half = 0.3 * length
        k = (0, 1) if plate == "top" else (2, 3)
        out[i, k[0]], out[i, k[1]] = mid - half * n, mid + half * n
    return out
