"""X-ray vertebrae result -> MRML: a point list named by vertebra (centroids), the endplate lines
and angle markups of the sagittal alignment, and a table (per vertebra, then the angles)."""

from __future__ import annotations

import numpy as np

from SpineAILib.io import Image
from SpineAILib.scene import add_angle, add_line, add_table
from SpineAILib.scene.mrml import add_fiducials
from SpineAILib.xray_vertebrae.alignment import ANGLES, endplate
from SpineAILib.xray_vertebrae.predict import XrayVertebraeResult, corner_array

ANGLE_LABELS = {"c2_c7_lordosis": "C2-C7 lordosis", "t4_t12_kyphosis": "T4-T12 kyphosis",
                "l1_s1_lordosis": "L1-S1 lordosis", "sacral_slope": "Sacral slope"}
ANGLE_COLORS = {"c2_c7_lordosis": (0.3, 0.8, 1.0), "t4_t12_kyphosis": (1.0, 0.85, 0.1),
                "l1_s1_lordosis": (1.0, 0.4, 0.7), "sacral_slope": (0.5, 1.0, 0.4)}


def write_xray_vertebrae_result(scene, image: Image, result: XrayVertebraeResult, prefix: str = "X-ray vertebrae"
                                ) -> dict:
    """Add the result to ``scene`` on the radiograph's plane. Returns the created nodes by role."""
    nodes: dict = {}
    if result.vertebrae:
        xy = np.array([v.centroid for v in result.vertebrae], float)
        nodes["vertebrae"] = add_fiducials(scene, f"{prefix} vertebrae", image.pixels_to_lps(xy),
                                           [v.name for v in result.vertebrae], color=(1.0, 0.8, 0.1),
                                           descriptions=[f"confidence {v.confidence:.2f}" for v in result.vertebrae])
    rows: dict[str, list] = {"Item": [], "Value": [], "Unit": []}
    for v in result.vertebrae:
        rows["Item"].append(f"{v.name} confidence")
        rows["Value"].append(round(v.confidence, 3))
        rows["Unit"].append("")
    if result.view == "lateral" and result.alignment is not None:
        c = corner_array(result.vertebrae)
        width = max(float(np.nanmax(c[..., 0]) - np.nanmin(c[..., 0])), 50.0) if not np.isnan(c).all() else 50.0
        plates = result.alignment.endplates
        for key, v1, pl1, v2, pl2 in ANGLES:
            value = getattr(result.alignment, key)
            if value is None:
                continue
            if f"{v1} {pl1}" in plates and f"{v2} {pl2}" in plates:  # the lines the angle was measured on
                e1, e2 = (tuple(np.array(p, float) for p in plates[k]) for k in (f"{v1} {pl1}", f"{v2} {pl2}"))
            else:
                e1, e2 = endplate(c, v1, pl1), endplate(c, v2, pl2)
            color = ANGLE_COLORS[key]
            for (p, a), label in ((e1, f"{v1} {pl1} endplate"), (e2, f"{v2} {pl2} endplate")):
                nodes[f"{key} {label}"] = add_line(scene, f"{prefix} {ANGLE_LABELS[key]}: {label}",
                                                   *image.pixels_to_lps(np.array([p, a])), color=color)
            # angle markup beside the spine with arms parallel to the two endplates, so its
            # own value equals the reported angle
            d1 = (e1[1] - e1[0]) / np.linalg.norm(e1[1] - e1[0])
            d2 = (e2[1] - e2[0]) / np.linalg.norm(e2[1] - e2[0])
            vertex = np.array([np.nanmax(c[..., 0]) + 0.5 * width, (e1[0][1] + e2[0][1]) / 2])
            arm = 0.5 * width
            nodes[f"{key}_angle"] = add_angle(scene, f"{prefix} {ANGLE_LABELS[key]} {value:.1f}",
                                              *image.pixels_to_lps(np.array([vertex + arm * d1, vertex,
                                                                             vertex + arm * d2])), color=color)
        for key, value in result.alignment.angles().items():
            if value is not None:
                rows["Item"].append(ANGLE_LABELS[key])
                rows["Value"].append(round(float(value), 2))
                rows["Unit"].append("deg")
    for key, value in result.extra.items():
        rows["Item"].append(key.replace("_", " "))
        rows["Value"].append(value)
        rows["Unit"].append("deg")
    nodes["table"] = add_table(scene, f"{prefix} table", rows)
    return nodes
