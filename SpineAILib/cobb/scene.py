"""Cobb result -> MRML: 68 named landmarks, endplate lines of each curve's end vertebrae,
three labelled angle markups and a table."""

from __future__ import annotations

import numpy as np

from SpineAILib import anatomy
from SpineAILib.cobb.angles import vertebra_vectors
from SpineAILib.cobb.predict import CobbResult
from SpineAILib.io import Image
from SpineAILib.scene import add_angle, add_line, add_table
from SpineAILib.scene.spine import write_landmarks_2d

CURVE_LABELS = {"main": "Main curve", "upper": "Upper curve", "lower": "Lower curve"}
CURVE_COLORS = {"main": (1.0, 0.85, 0.1), "upper": (0.3, 0.8, 1.0), "lower": (1.0, 0.4, 0.7)}


def _endplate(landmarks: np.ndarray, vertebra: str, which: str) -> tuple[np.ndarray, np.ndarray]:
    v = anatomy.AASCE_VERTEBRAE.index(vertebra)
    p = landmarks.reshape(17, 4, 2)[v]
    return (p[0], p[1]) if which == "upper" else (p[2], p[3])


def write_cobb_result(scene, image: Image, result: CobbResult, prefix: str = "Cobb") -> dict:
    """Add the result to ``scene`` on the radiograph's plane (``image`` is the 2D input,
    carrying the volume geometry it came from). Returns the created nodes by role."""
    nodes = {"landmarks": write_landmarks_2d(scene, image, result.landmarks, f"{prefix} landmarks")}
    lm = result.landmarks
    rows = {"Angle": [], "Value (deg)": [], "Upper end vertebra": [], "Lower end vertebra": [], "Apex": []}
    right = lm[:, 0].max()
    for key in ("main", "upper", "lower"):
        curve = getattr(result.angles, key)
        rows["Angle"].append(CURVE_LABELS[key])
        rows["Value (deg)"].append(round(curve.angle_deg, 2))
        rows["Upper end vertebra"].append(curve.upper_end)
        rows["Lower end vertebra"].append(curve.lower_end)
        rows["Apex"].append(curve.apex)
        if curve.angle_deg <= 0:
            continue
        a0, a1 = _endplate(lm, curve.upper_end, "upper")
        b0, b1 = _endplate(lm, curve.lower_end, "lower")
        color = CURVE_COLORS[key]
        for (p0, p1), label in (((a0, a1), f"{curve.upper_end} upper endplate"),
                                ((b0, b1), f"{curve.lower_end} lower endplate")):
            nodes[f"{key}_{label}"] = add_line(scene, f"{prefix} {CURVE_LABELS[key].lower()}: {label}",
                                               *image.pixels_to_lps(np.array([p0, p1])), color=color)
        # Angle markup with arms parallel to the two end vertebrae's directions (the vectors the
        # AASCE rule measures), so the markup's own value equals the reported angle.
        ya = (lm.reshape(17, 4, 2)[anatomy.AASCE_VERTEBRAE.index(curve.upper_end)].mean(0))[1]
        yb = (lm.reshape(17, 4, 2)[anatomy.AASCE_VERTEBRAE.index(curve.lower_end)].mean(0))[1]
        vertex = np.array([right + 40.0 + 40.0 * list(CURVE_LABELS).index(key), (ya + yb) / 2])
        arm = 0.25 * abs(yb - ya) + 30.0
        vec = vertebra_vectors(lm)
        da = vec[anatomy.AASCE_VERTEBRAE.index(curve.upper_end)]
        db = vec[anatomy.AASCE_VERTEBRAE.index(curve.lower_end)]
        da, db = da / np.linalg.norm(da), db / np.linalg.norm(db)
        pts = image.pixels_to_lps(np.array([vertex + arm * da, vertex, vertex + arm * db]))
        nodes[f"{key}_angle"] = add_angle(scene, f"{CURVE_LABELS[key]} {curve.upper_end}-{curve.lower_end}",
                                          *pts, color=color)
    nodes["table"] = add_table(scene, f"{prefix} angles", rows)
    return nodes
