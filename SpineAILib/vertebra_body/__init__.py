"""Vertebral bodies in CT: click-to-segment (after Klein et al.) with volume, mean HU,
anterior/middle/posterior heights in the body's mid-sagittal plane and the Genant grade, and
fracture assessment of every labelled vertebra (the dual-pathway voxel classifier of Nicolaes
et al. plus Genant from the segmented bodies).

    from SpineAILib import vertebra_body
    r = vertebra_body.segment("ct.nii.gz", (12.0, -40.0, 310.0))   # RAS mm (space="LPS" too)
    r.name, r.volume_ml, r.mean_hu, r.heights, r.genant.label, r.mask
    f = vertebra_body.assess_fractures(image, centroids)           # {VerSe label: LPS mm}
    [(v.name, v.probability, v.status) for v in f.vertebrae], f.patient_fractured
"""

from SpineAILib.vertebra_body.fracture import FractureResult, VertebraFracture, assess_fractures  # noqa: F401
from SpineAILib.vertebra_body.genant import GenantResult, genant, grade_from_loss  # noqa: F401
from SpineAILib.vertebra_body.predict import BodyResult, segment, segment_many  # noqa: F401
