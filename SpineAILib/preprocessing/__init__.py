"""Preprocessing: resampling with an exact inverse, 2D canvas fitting, intensity normalisation,
and input validation. Every geometric transform returns a record that maps results back."""

from SpineAILib.preprocessing.canvas import CanvasRecord, fit_to_canvas, map_from_canvas  # noqa: F401
from SpineAILib.preprocessing.intensity import normalize_intensity, scale_hu  # noqa: F401
from SpineAILib.preprocessing.patches import crop_with_fill  # noqa: F401
from SpineAILib.preprocessing.resample import (  # noqa: F401
    ResampleRecord,
    resample_to_canonical,
    resample_to_spacing,
)
from SpineAILib.preprocessing.validate import check_image  # noqa: F401
