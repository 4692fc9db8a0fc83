"""Vertebra labelling -> MRML: a point list with one point per vertebra ("C1".."L5", "S1"), a
segmentation with one segment per vertebra (names, colours, SNOMED terminology) and a table."""

from __future__ import annotations

import numpy as np

from SpineAILib import anatomy
from SpineAILib.io.image import lps_to_ras
from SpineAILib.scene import add_table
from SpineAILib.scene.spine import write_centroids, write_vertebra_labels
from SpineAILib.vertebrae.predict import VertebraResult


def result_table(result: VertebraResult) -> dict[str, list]:
    labs = result.ordered_labels()
    ras = [lps_to_ras(np.asarray(result.centroids[lab])) for lab in labs]
    return {"Vertebra": [anatomy.vertebra_name(lab) for lab in labs], "Label": [int(lab) for lab in labs],
            "R (mm)": [round(float(p[0]), 2) for p in ras], "A (mm)": [round(float(p[1]), 2) for p in ras],
            "S (mm)": [round(float(p[2]), 2) for p in ras],
            "Confidence": [round(float(result.confidence.get(lab, 1.0)), 3) for lab in labs]}


def write_vertebrae_result(scene, result: VertebraResult, reference_volume=None, prefix: str = "Vertebra") -> dict:
    """Nodes: "<prefix> centroids" (points), "<prefix> segments" (segmentation, when any vertebra
    was found), "<prefix> table". Existing nodes are never overwritten: names are made unique."""
    nodes = {}
    desc = {lab: f"confidence {result.confidence.get(lab, 1.0):.2f}" for lab in result.centroids}
    nodes["centroids"] = write_centroids(scene, result.centroids, f"{prefix} centroids", desc)
    if result.found and result.labels.array.any():
        nodes["segmentation"] = write_vertebra_labels(scene, result.labels, reference_volume, f"{prefix} segments")
    nodes["table"] = add_table(scene, f"{prefix} table", result_table(result))
    return nodes
