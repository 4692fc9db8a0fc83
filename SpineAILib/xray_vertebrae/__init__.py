"""Vertebra labelling in radiographs (Bayat et al., CSI 2019: U-Net + residual corrector) and the
sagittal alignment of lateral views.

    from SpineAILib import xray_vertebrae
    result = xray_vertebrae.label("lateral.png")            # view="auto" | "lateral" | "ap"
    [(v.name, v.centroid, v.confidence) for v in result.vertebrae]
    result.alignment.t4_t12_kyphosis, result.warnings
"""

from SpineAILib.xray_vertebrae.alignment import Alignment, sagittal_alignment  # noqa: F401
from SpineAILib.xray_vertebrae.predict import VertebraFinding, XrayVertebraeResult, label  # noqa: F401
