"""Vertebral bodies -> MRML: one segment per clicked body ("L2 vertebral body" or "Vertebral
body 1") in a segmentation node, and a measurements table (volume, mean HU, heights, Genant).

Fracture assessment -> MRML: a table per vertebra (classifier probability, Genant grade,
deformity, heights, status) and the vertebra points coloured by status: green normal, orange
mild/moderate, red severe, orange-red a fracture the classifier alone found (no grade); one point
list per status group, since a point list has one colour."""

from __future__ import annotations

import numpy as np

from SpineAILib import anatomy
from SpineAILib.io import Image
from SpineAILib.scene import SegmentSpec, add_fiducials, add_segmentation, add_table
from SpineAILib.vertebra_body.fracture import COLORS, FractureResult
from SpineAILib.vertebra_body.predict import BodyResult


def body_segment_spec(result: BodyResult) -> SegmentSpec:
    if result.label is not None:
        name = anatomy.vertebra_name(result.label)
        return SegmentSpec(result.name, anatomy.vertebra_color(result.label), anatomy.vertebra_terminology(name))
    return SegmentSpec(result.name, (0.95, 0.85, 0.55), anatomy.terminology_entry(anatomy.SPINE_REGION_CODE))


def measurement_columns(results: list[BodyResult]) -> dict[str, list]:
    def g(r, attr, default="not graded"):
        return default if r.genant is None else getattr(r.genant, attr)

    return {"Vertebral body": [r.name for r in results],
            "Volume (ml)": [round(r.volume_ml, 2) for r in results],
            "Mean HU": [round(r.mean_hu, 1) for r in results],
            "Anterior height (mm)": [round(r.heights["anterior"], 2) for r in results],
            "Middle height (mm)": [round(r.heights["middle"], 2) for r in results],
            "Posterior height (mm)": [round(r.heights["posterior"], 2) for r in results],
            "Height loss (%)": [round(100 * r.genant.height_loss, 1) if r.genant else 0.0 for r in results],
            "Genant": [g(r, "label") for r in results],
            "Deformity": [g(r, "deformity", "") for r in results],
            # why a body is not graded (heights the CT does not confirm, ...): the reader needs it
            "Notes": ["; ".join(r.warnings) for r in results]}


def add_body_segment(scene, image: Image, result: BodyResult, reference_volume=None, segmentation_node=None,
                     name: str = "Vertebral bodies"):
    """Add the body as a segment (to ``segmentation_node`` when given, else a new node). Returns
    (segmentation node, segment ID)."""
    lab = image.with_array(result.mask.astype(np.uint8))
    before = set()
    if segmentation_node is not None:
        seg = segmentation_node.GetSegmentation()
        before = {seg.GetNthSegmentID(i) for i in range(seg.GetNumberOfSegments())}
    node = add_segmentation(scene, lab, {1: body_segment_spec(result)}, name, reference_volume, segmentation_node)
    seg = node.GetSegmentation()
    new = [seg.GetNthSegmentID(i) for i in range(seg.GetNumberOfSegments()) if seg.GetNthSegmentID(i) not in before]
    return node, (new[0] if new else "")


def write_body_results(scene, image: Image, results: list[BodyResult], reference_volume=None,
                       prefix: str = "Vertebral body") -> dict:
    """All bodies at once: "<prefix> segments" and "<prefix> measurements" (new, uniquely named)."""
    seg_node = None
    for r in results:
        seg_node, _ = add_body_segment(scene, image, r, reference_volume, seg_node, f"{prefix} segments")
    table = add_table(scene, f"{prefix} measurements", measurement_columns(results))
    return {"segmentation": seg_node, "table": table}



STATUS_GROUPS = {"normal": ("normal",), "mild/moderate": ("mild", "moderate"), "severe": ("severe",),
                 "fracture, not graded": ("fracture",)}


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
