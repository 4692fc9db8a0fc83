"""Shared training utilities: seeding, config-as-data, resumable checkpoints, history logs."""

from SpineAILib.training.common import (  # noqa: F401
    TrainingLog,
    git_commit,
    load_checkpoint,
    load_fp16_weights,
    resume,
    save_checkpoint,
    save_config,
    save_fp16_weights,
    seed_everything,
)
