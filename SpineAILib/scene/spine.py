"""Spine-specific scene writers shared by the tasks and the demo: vertebra segmentations with
names/colours/SNOMED terminology, centroid and landmark point lists, measurement tables."""

from __future__ import annotations

import numpy as np

from SpineAILib import anatomy
from SpineAILib.io.image import Image
from SpineAILib.scene.mrml import SegmentSpec, add_fiducials, add_segmentation


def vertebra_segments(labels: list[int], suffix: str = "vertebra") -> dict[int, SegmentSpec]:
    """SegmentSpec per VerSe label: "L1 vertebra", its colour and SNOMED terminology."""
    out = {}
    for lab in labels:
        name = anatomy.vertebra_name(lab)
        out[lab] = SegmentSpec(f"{name} {suffix}", anatomy.vertebra_color(lab), anatomy.vertebra_terminology(name))
    return out


def write_vertebra_labels(scene, labelmap: Image, reference_volume=None, name: str = "Vertebrae", node=None):
    """Segmentation node with one segment per vertebra label present in ``labelmap``. With
    ``node`` (a segmentation SpineAI made earlier) its segments are replaced instead."""
    present = [int(v) for v in np.unique(labelmap.array) if v != 0 and int(v) in anatomy.VERTEBRAE]
    if node is not None:
        node.GetSegmentation().RemoveAllSegments()
    return add_segmentation(scene, labelmap, vertebra_segments(present), name, reference_volume, node)


def write_centroids(scene, centroids_lps: dict[int, np.ndarray], name: str = "Vertebra centroids",
                    descriptions: dict[int, str] | None = None):
    """Point list with one point per vertebra, named "C1".."L5"/"S1", in anatomical order."""
    labs = [lab for lab in anatomy.ORDER if lab in centroids_lps]
    pts = np.array([centroids_lps[lab] for lab in labs]).reshape(-1, 3)
    desc = [descriptions.get(lab, "") for lab in labs] if descriptions else None
    return add_fiducials(scene, name, pts, [anatomy.vertebra_name(lab) for lab in labs], descriptions=desc)


def landmark_names(vertebrae: list[str] | None = None) -> list[str]:
    """AASCE landmark names in file order: "T1-TL", "T1-TR", "T1-BL", "T1-BR", "T2-TL", ..."""
    return [f"{v}-{c}" for v in (vertebrae or anatomy.AASCE_VERTEBRAE) for c in anatomy.CORNERS]


def write_landmarks_2d(scene, image: Image, points_xy: np.ndarray, name: str = "Vertebra corners",
                       labels: list[str] | None = None):
    """Point list of 2D radiograph landmarks (pixel (x, y)) placed on the radiograph's plane."""
    pts = np.asarray(points_xy, float).reshape(-1, 2)
    labels = labels or landmark_names()[: len(pts)]
    return add_fiducials(scene, name, image.pixels_to_lps(pts), labels, color=(1.0, 0.8, 0.1))
