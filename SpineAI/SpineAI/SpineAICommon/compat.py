"""Which Slicer runs SpineAI, checked before anything else is imported.

This file must load on every Slicer (also the old ones with Python 3.9), so it uses no syntax
newer than Python 3.9 and imports neither SpineAILib nor Qt. The numbers repeat
SpineAILib.slicer_bridge.MIN_SLICER_VERSION / MIN_PYTHON_VERSION (a test keeps them equal).
"""

import sys

MIN_SLICER_VERSION = (5, 10)
MIN_PYTHON_VERSION = (3, 10)
DOCUMENTATION_URL = "https://github.com/SpineAI/SlicerSpineAI#readme"


def unsupportedReason(pythonVersion=None, slicerVersion=None):
    """None when this Slicer/Python can run SpineAI, else a message that says what was found
    and what is needed. ``slicerVersion`` is (major, minor) or None when unknown."""
    python = tuple(pythonVersion or sys.version_info[:2])
    if slicerVersion is not None and tuple(slicerVersion)[:2] < MIN_SLICER_VERSION:
        return ("SpineAI needs 3D Slicer %d.%d or later (the current stable release or the preview); this is "
                "Slicer %d.%d with Python %d.%d. Install a newer Slicer from https://download.slicer.org."
                % (MIN_SLICER_VERSION + tuple(slicerVersion)[:2] + python[:2]))
    if python < MIN_PYTHON_VERSION:
        return ("SpineAI needs Python %d.%d or later (Slicer %d.%d or later); this Slicer runs Python %d.%d. "
                "Install a newer Slicer from https://download.slicer.org."
                % (MIN_PYTHON_VERSION + MIN_SLICER_VERSION + python[:2]))
    return None


def runningSlicerVersion():
    """(major, minor) of the running Slicer, or None outside Slicer."""
    try:
        import slicer

        return (int(slicer.app.majorVersion), int(slicer.app.minorVersion))
    except Exception:  # noqa: BLE001 - no application (tests, plain Python)
        return None


UNSUPPORTED = unsupportedReason(slicerVersion=runningSlicerVersion())
