"""Cervical spine localisation in lateral radiographs (Al Arif, Knapp & Slabaugh, region-aware
localisation): FCN / DeConvNet / UNet with and without the region-aware loss.

    from SpineAILib import cervical
    result = cervical.localize("lateral.png")
    result.region, result.polygon, result.axis, result.warnings
"""

from SpineAILib.cervical.predict import CervicalResult, localize  # noqa: F401
