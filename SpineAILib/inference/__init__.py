"""Inference helpers: MONAI sliding windows and image batches with progress and cancel."""

from SpineAILib.inference.batches import predict_batches  # noqa: F401
from SpineAILib.inference.sliding_window import count_windows, sliding_window  # noqa: F401
