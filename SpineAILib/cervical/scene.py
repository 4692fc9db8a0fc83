"""Cervical localisation -> MRML: a segment "Cervical spine C3-C7 region" on the radiograph and,
on request, the probability map as a volume."""

from __future__ import annotations

import numpy as np

from SpineAILib import anatomy
from SpineAILib.cervical.predict import CervicalResult
from SpineAILib.io import Image
from SpineAILib.scene import SegmentSpec, add_segmentation, add_volume

SEGMENT_NAME = "Cervical spine C3-C7 region"


def write_cervical_result(scene, image: Image, result: CervicalResult, reference_volume=None,
                          prefix: str = "Cervical", probability_volume: bool = False) -> dict:
    """``image`` is the 2D input (with the volume geometry it came from, if any)."""
    region = image.with_array(result.region.astype(np.uint8))
    nodes = {"segmentation": add_segmentation(
        scene, region, {1: SegmentSpec(SEGMENT_NAME, (0.3, 0.9, 0.3),
                                       anatomy.terminology_entry(anatomy.CERVICAL_REGION_CODE))},
        f"{prefix} localization", reference_volume)}
    if probability_volume:
        nodes["probability"] = add_volume(scene, image.with_array(result.probability), f"{prefix} probability")
    return nodes
