"""Views cut from annotated lateral whole-spine radiographs, shared by the tasks that train and
evaluate on them (the lateral vertebra labelling and the cervical localisation)."""

from __future__ import annotations

import numpy as np

# Rows of the 24 lateral vertebrae (C2..S1, ``anatomy.LATERAL_VERTEBRAE``) that frame a lateral
# cervical view: C3 .. T2.
NECK_ROWS = slice(1, 8)


def neck_view_box(neck: np.ndarray, shape: tuple[int, int], rng: np.random.Generator) -> tuple[float, float,
                                                                                                  float, float]:
    """A random lateral cervical view framed as emergency-room radiographs are: from the top of
    the image (or a little below it, at most 30 percent of C3's height) to 0.5-3 vertebra gaps
    below T2, 0.7-1.2 times as wide as high, centred on the neck within 15 percent of the width.

    ``neck``: (7, 2) centres (x, y) px of C3..T2 (no NaN); ``shape``: (rows, cols). Returns the
    box (x0, x1, y0, y1) in pixel coordinates, clipped to the image (pixel edges at -0.5)."""
    h, w = shape
    bottom = min(h - 0.5, neck[-1, 1] + rng.uniform(0.5, 3) * np.median(np.diff(neck[:, 1])))
    top = max(-0.5, rng.uniform(-0.5, 0.3 * neck[0, 1]))
    width = (bottom - top) * rng.uniform(0.7, 1.2)
    cx = neck[:, 0].mean() + rng.uniform(-0.15, 0.15) * width
    return max(-0.5, cx - width / 2), min(w - 0.5, cx + width / 2), top, bottom
