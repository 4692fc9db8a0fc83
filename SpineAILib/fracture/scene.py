"""Fracture assessment -> MRML: a table per vertebra (classifier probability, Genant grade,
deformity, heights, status) and the vertebra points coloured by status: green normal, orange
mild/moderate, red severe (one point list per status, since a point list has one colour)."""

from __future__ import annotations

import numpy as np

from SpineAILib.fracture.predict import COLORS, FractureResult
from SpineAILib.scene import add_fiducials, add_table

STATUS_GROUPS = {"normal": ("normal",), "mild/moderate": ("mild", "moderate"), "severe": ("severe",)}


def fracture_columns(result: FractureResult) -> dict[str, list]:
    rows = [v.to_dict() for v in result.vertebrae]
    return {"Vertebra": [r["name"] for r in rows],
            "Fracture probability": [r["fracture_probability"] for r in rows],
            "Genant grade": [-1 if r["genant_grade"] is None else r["genant_grade"] for r in rows],
            "Genant": [r["genant"] or "not graded" for r in rows],
            "Deformity": [r["deformity"] or "" for r in rows],
            "Height loss (%)": [0.0 if r["height_loss"] is None else round(100 * r["height_loss"], 1) for r in rows],
            "Status": [r["status"] for r in rows], "Note": [r["note"] for r in rows]}


def write_fracture_result(scene, result: FractureResult, prefix: str = "Fracture") -> dict:
    nodes = {"table": add_table(scene, f"{prefix} assessment", fracture_columns(result))}
    for group, statuses in STATUS_GROUPS.items():
        sel = [v for v in result.vertebrae if v.status in statuses]
        if not sel:
            continue
        pts = np.array([v.position_lps for v in sel]).reshape(-1, 3)
        desc = [f"{v.status}; p(fracture) {v.probability:.2f}" for v in sel]
        nodes[group] = add_fiducials(scene, f"{prefix} {group}", pts, [v.name for v in sel],
                                     color=COLORS[statuses[-1]], descriptions=desc, locked=True)
    return nodes
