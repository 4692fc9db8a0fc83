"""The vertebral column of a CT found from the image alone (no network): the spinal canal traced
through it, the bodies in front of it cut at their discs and measured, and their bone as a label
map. Shared by the vertebra labelling (which numbers the pieces) and the click-to-segment of a
vertebral body (which takes its disc planes)."""

from SpineAILib.ctcolumn.canal import Column, Piece, column_segments, find_column  # noqa: F401
from SpineAILib.ctcolumn.path import Path, body_band, straighten  # noqa: F401
