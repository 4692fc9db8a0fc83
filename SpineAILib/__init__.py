"""SpineAILib: the pure-Python core of SpineAI.

Importable without Slicer and without a GPU; torch is imported lazily by the functions
that need it. Layers (see README "Architecture"): io -> preprocessing -> networks/models ->
inference -> postprocessing -> metrics -> scene output, plus phantoms, cli and the task
registry.
"""

__version__ = "0.1.0"

from SpineAILib.errors import (  # noqa: F401  (public re-exports)
    CancelledError,
    InputError,
    ModelError,
    SpineAIError,
)
