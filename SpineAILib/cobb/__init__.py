"""Cobb angles from AP spine radiographs (AASCE 2019): 68 vertebra-corner landmarks T1-L5 and
the three challenge angles.

    from SpineAILib import cobb
    result = cobb.estimate("xray.jpg")        # or a SpineAILib Image
    result.values                              # (main, upper, lower) degrees
    result.angles.main.upper_end, result.angles.main.apex, result.warnings
"""

from SpineAILib.cobb.angles import CobbAngles, Curve, cobb_angles, smape  # noqa: F401
from SpineAILib.cobb.predict import CobbResult, estimate  # noqa: F401
