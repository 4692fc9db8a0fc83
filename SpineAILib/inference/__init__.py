"""Inference helpers with progress and cancel: the one 3D tiler (border discard, skipped
patches) and batches of images."""

from SpineAILib.inference.batches import predict_batches  # noqa: F401
from SpineAILib.inference.tiling import tile_predict, tile_starts  # noqa: F401
