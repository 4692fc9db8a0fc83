"""Scene output: plain SpineAI results -> MRML nodes (Slicer's scene, or slicer-core outside Slicer).

Inside Slicer pass ``slicer.mrmlScene``; elsewhere :func:`new_scene` makes a standalone scene
with the logic classes Slicer would have registered. ``slicer`` is imported lazily.
"""

from SpineAILib.scene.mrml import (  # noqa: F401
    SegmentSpec,
    add_angle,
    add_fiducials,
    add_line,
    add_segmentation,
    add_table,
    add_volume,
    fiducials_ras,
    image_from_volume_node,
    load_mrb,
    new_scene,
    save_mrb,
    segment_arrays,
    segment_tag,
    table_columns,
    unique_name,
)
