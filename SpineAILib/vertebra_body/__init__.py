"""Click-to-segment a vertebral body in CT (after Klein et al.) with its measurements: volume,
mean HU, anterior/middle/posterior heights in the body's mid-sagittal plane, Genant grade.

    from SpineAILib import vertebra_body
    r = vertebra_body.segment("ct.nii.gz", (12.0, -40.0, 310.0))   # RAS mm (space="LPS" too)
    r.name, r.volume_ml, r.mean_hu, r.heights, r.genant.label, r.mask
"""

from SpineAILib.tasks import TaskInfo, register_task
from SpineAILib.vertebra_body.predict import BodyResult, segment, segment_many  # noqa: F401

register_task(TaskInfo(name="vertebral-body", title="Vertebral body (click to segment, CT)",
                       cli="spineai vertebral-body CT --point X,Y,Z --output DIR", input="ct",
                       entry_point="SpineAILib.vertebra_body.segment", slicer_module="VertebralBody"))
