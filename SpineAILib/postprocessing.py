"""Post-processing on label maps: relabelling and per-label centres of mass in physical space."""

from __future__ import annotations

import numpy as np

from SpineAILib.io.image import Image


def relabel(labels: Image, mapping: dict[int, int], keep_unmapped: bool = False) -> Image:
    """Map label values through ``mapping`` (e.g. another tool's ids -> VerSe numbers).
    Values not in the mapping become 0 unless ``keep_unmapped``."""
    arr = labels.array
    out = arr.copy() if keep_unmapped else np.zeros_like(arr)
    for src, dst in mapping.items():
        out[arr == src] = dst
    return labels.with_array(out)


def centers_of_mass(labels: Image, ignore: tuple[int, ...] = (0,)) -> dict[int, np.ndarray]:
    """{label: centre of mass in physical (LPS) mm} for every label present."""
    from scipy import ndimage

    arr = labels.array
    values = [int(v) for v in np.unique(arr) if int(v) not in ignore]
    if not values:
        return {}
    coms = ndimage.center_of_mass(np.ones_like(arr, dtype=np.uint8), arr, values)
    # center_of_mass returns array-axis order (z, y, x); indices are (i, j, k) = reversed.
    return {v: labels.index_to_physical(np.asarray(c)[::-1]) for v, c in zip(values, coms, strict=True)}
