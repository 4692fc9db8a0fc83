"""Plumbing shared by all SpineAI Slicer modules (runs only inside Slicer, or in the pytest layer
that loads the modules on slicer-core's MRML).

Everything that is not GUI (command lines, progress parsing, install planning, the actual
computation and the scene writing) is in SpineAILib and tested outside Slicer; this package
wires it to Slicer: ``compat`` (which Slicer can run SpineAI; checked before anything else),
``logic`` (parameter-node state, result placement, terminology, sample data; no Qt) and ``gui``
(a QProcess runner with progress bar and Cancel, first-use installation after asking, error
dialogs).
"""

import os
import sys

from SpineAICommon.compat import DOCUMENTATION_URL, UNSUPPORTED  # noqa: F401


def ensureSpineAILib():
    """Make SpineAILib importable when the modules run from a source checkout
    ("Add module paths" pointing at SpineAI/<Module>): the package sits two folders up."""
    try:
        import SpineAILib  # noqa: F401
    except ImportError:
        root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
        if os.path.isdir(os.path.join(root, "SpineAILib")) and root not in sys.path:
            sys.path.insert(0, root)


def torchMissing():
    """True when PyTorch is not installed (self-tests then skip, as Slicer's test machines have none)."""
    import importlib.util

    return importlib.util.find_spec("torch") is None


CONTRIBUTORS = ["SpineAI maintainers (SpineAI project, https://github.com/SpineAI/SlicerSpineAI)"]


def describeModule(parent, title, helpText, acknowledgementText):
    """Title, category, contributors and help (with the documentation link, and the reason when
    this Slicer cannot run SpineAI) of a SpineAI module."""
    parent.title = title
    parent.categories = ["SpineAI"]
    parent.dependencies = []
    parent.contributors = list(CONTRIBUTORS)
    text = helpText
    if UNSUPPORTED:
        text = "<b>" + UNSUPPORTED + "</b><br><br>" + text
    parent.helpText = text + f'<br><br>Documentation: <a href="{DOCUMENTATION_URL}">{DOCUMENTATION_URL}</a>'
    parent.acknowledgementText = acknowledgementText


ensureSpineAILib()

# Both files load on any Slicer (SpineAILib is imported inside their functions only), so a module
# on an unsupported Slicer still loads and shows why it cannot run.
from SpineAICommon.gui import (  # noqa: E402,F401
    BackgroundCliRunner,
    TaskWidgetMixin,
    ensureDependencies,
    exportVolume,
    setupUnsupported,
    showError,
)
from SpineAICommon.logic import (  # noqa: E402,F401
    OutputNodesMixin,
    clickedPointInVolume,
    loadTerminology,
    registerSampleData,
)
