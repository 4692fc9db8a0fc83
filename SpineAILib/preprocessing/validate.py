"""Input checks shared by every task: one clear message naming the problem and the expectation."""

from __future__ import annotations

import numpy as np

from SpineAILib.errors import InputError
from SpineAILib.io.image import Image


def check_image(image: Image, task: str, ndim: int | None = None, min_size: int = 1) -> Image:
    """Validate ``image`` for ``task`` and return the view the task should use.

    * ndim=2: X-ray tasks; a single-slice volume is squeezed, a real volume is rejected.
    * ndim=3: CT tasks; a 2D image or a single slice is rejected.
    * NaN/inf pixels, constant images and images smaller than ``min_size`` pixels per axis
      are rejected.
    """
    if not isinstance(image, Image):
        raise InputError(
            f"{task} expects a SpineAILib Image (see SpineAILib.io.read_image), got {type(image).__name__}."
        )
    if ndim == 2:
        image = image.as_2d(task=task)
    elif ndim == 3 and (image.is_2d or min(image.size) == 1):
        raise InputError(
            f"{task} expects a 3D volume (CT), but got a 2D image of size {image.size}. "
            "Load a CT volume (NIfTI, NRRD, MHA or a DICOM series)."
        )
    arr = image.array
    if min(arr.shape) < min_size:
        raise InputError(
            f"{task}: image of size {image.size} is too small; expected at least {min_size} pixels per axis."
        )
    if np.issubdtype(arr.dtype, np.floating):
        bad = ~np.isfinite(arr)
        if bad.any():
            raise InputError(
                f"{task}: image contains {int(bad.sum())} NaN/inf pixel values; expected finite intensities "
                "(fix or mask them before running)."
            )
    lo, hi = arr.min(), arr.max()
    if lo == hi:
        raise InputError(f"{task}: image is constant (every pixel = {lo}); expected an image with anatomy in it.")
    return image
