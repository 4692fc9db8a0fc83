"""Qt plumbing shared by all SpineAI Slicer modules (runs only inside Slicer).

Everything that is not GUI (command lines, progress parsing, install planning, the actual
computation and the scene writing) is in SpineAILib and tested outside Slicer; this package
only wires it to Qt: a QProcess runner with progress bar and Cancel, first-use installation
after asking, and error dialogs.
"""

import os
import sys


def ensureSpineAILib():
    """Make SpineAILib importable when the modules run from a source checkout
    ("Add module paths" pointing at SpineAI/<Module>): the package sits two folders up."""
    try:
        import SpineAILib  # noqa: F401
    except ImportError:
        root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
        if os.path.isdir(os.path.join(root, "SpineAILib")) and root not in sys.path:
            sys.path.insert(0, root)


ensureSpineAILib()

from SpineAICommon.gui import (  # noqa: E402,F401
    BackgroundCliRunner,
    TaskWidgetMixin,
    ensureDependencies,
    exportVolume,
    showError,
)
