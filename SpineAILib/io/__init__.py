"""Image I/O and geometry: one `Image` type for 2D radiographs and 3D volumes."""

from SpineAILib.io.image import Image  # noqa: F401
from SpineAILib.io.readers import read_image, write_image  # noqa: F401
