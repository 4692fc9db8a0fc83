"""Vertebral fracture assessment in CT: Genant semi-quantitative grade from the segmented body's
heights and the dual-pathway 3D voxel classifier (Nicolaes et al.) aggregated per vertebra and
per patient.

    from SpineAILib import fracture
    r = fracture.assess("ct.nii.gz")                 # finds the vertebrae first
    r = fracture.assess(image, centroids)            # {VerSe label: LPS mm}
    [(v.name, v.probability, v.status) for v in r.vertebrae], r.patient_fractured
"""

from SpineAILib.fracture.genant import GenantResult, genant, grade_from_loss  # noqa: F401
from SpineAILib.fracture.predict import FractureResult, VertebraFracture, assess  # noqa: F401
from SpineAILib.tasks import TaskInfo, register_task

register_task(TaskInfo(name="fracture", title="Fracture assessment (CT)",
                       cli="spineai fracture CT [--centroids FILE] --output DIR", input="ct",
                       entry_point="SpineAILib.fracture.assess", slicer_module="VertebralBody"))
