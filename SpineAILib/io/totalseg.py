"""A TotalSegmentator ``segmentations/`` folder (one binary NIfTI mask per structure, as that tool
and its dataset write them) read as one VerSe label map of the vertebrae: reference labels for
evaluation and the source of centroids (``spineai fracture --centroids FOLDER``)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from SpineAILib import anatomy
from SpineAILib.errors import InputError, InputWarning
from SpineAILib.io.image import Image
from SpineAILib.io.readers import read_image

# mask file name -> VerSe label: vertebrae_C1 .. vertebrae_L5, vertebrae_S1 (the sacrum's top)
MASK_LABELS = {f"vertebrae_{name}": label for label, name in anatomy.VERTEBRAE.items() if name not in ("T13", "L6")}


def totalseg_folder(path: str | os.PathLike) -> Path | None:
    """The folder holding ``vertebrae_*.nii.gz`` masks (``path`` itself or its ``segmentations/``),
    or None when neither does."""
    p = Path(path)
    for cand in (p, p / "segmentations"):
        if cand.is_dir() and any(cand.glob("vertebrae_*.nii*")):
            return cand
    return None


def read_totalseg_vertebrae(path: str | os.PathLike) -> Image:
    """The VerSe label map (uint8, on the masks' common grid) of the vertebra masks in a
    TotalSegmentator folder. Masks whose direction cosines are only nearly orthonormal (as that
    tool writes them) are read with the nearest orthonormal frame and one warning for all."""
    folder = totalseg_folder(path)
    if folder is None:
        raise InputError(f"{path} holds no TotalSegmentator vertebra masks (vertebrae_C1.nii.gz ... "
                         "vertebrae_S1.nii.gz, directly or in segmentations/).")
    labels: Image | None = None
    notes = 0
    for f in sorted(folder.glob("vertebrae_*.nii*")):
        stem = f.name.split(".")[0]
        if stem not in MASK_LABELS:
            continue
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            mask = read_image(f, expect_ndim=3)
        notes += sum(issubclass(w.category, InputWarning) for w in caught)
        if labels is None:
            labels = mask.with_array(np.zeros(mask.array.shape, np.uint8))
        elif mask.array.shape != labels.array.shape or not np.allclose(mask.origin, labels.origin, atol=1e-3):
            raise InputError(f"{f.name} is not on the grid of the other masks in {folder}; expected one "
                             "TotalSegmentator output (all masks on the CT's grid).")
        labels.array[(mask.array > 0) & (labels.array == 0)] = MASK_LABELS[stem]
    if labels is None:
        raise InputError(f"{folder} holds no readable vertebra masks.")
    if notes:
        warnings.warn(f"{folder}: {notes} masks with direction cosines off orthonormal, read with the nearest "
                      "orthonormal directions.", InputWarning, stacklevel=2)
    return labels
