"""Model registry: weights file + JSON model card, verified by sha256 before loading."""

from SpineAILib.models.registry import (  # noqa: F401
    ModelCard,
    cached_model,
    check_models,
    default_models_dir,
    list_models,
    load_card,
    load_model,
    sha256_file,
    write_card,
)
