"""Sparse-to-dense labels and dense-to-sparse centroids (McCouat & Glocker).

Sparse to dense: the centroids of consecutive vertebrae, in anatomical order, define for every
vertebra a line segment from the midpoint with the vertebra above to the midpoint with the one
below (the first and last vertebra get a mirrored half-segment so the column has extra segments at
both ends). Every voxel within the vertebra's radius R_v of its segment, measured in the plane
perpendicular to the segment (so the label is a stack of transverse discs), gets the vertebra's
label. Radii come from published vertebral dimensions (half the body depth).

Dense to sparse: voxels vote for the vertebra index they carry; a vertebra's centroid is the
median position of its votes, and vertebrae with fewer than max(min_votes, 0.4 R_v^3) votes (at
1 mm voxels) are dropped.
"""

from __future__ import annotations

import numpy as np

from SpineAILib import anatomy
from SpineAILib.errors import InputError
from SpineAILib.io.image import Image
from SpineAILib.phantoms.ct_spine import vertebra_dimensions


def nominal_dimensions(label: int) -> dict[str, float]:
    """Published body height, width, depth and the disc below it (mm) of a VerSe label
    (:func:`SpineAILib.phantoms.ct_spine.vertebra_dimensions`); a transitional T13 or L6 takes
    T12's or L5's."""

    name = anatomy.vertebra_name(label)
    return vertebra_dimensions({"T13": "T12", "L6": "L5"}.get(name, name))


def vertebra_radius_mm(label: int) -> float:
    """Disc radius R_v (mm): half the vertebral body depth of that level."""
    return 0.5 * nominal_dimensions(label)["depth"]


def segments(centroids_lps: dict[int, np.ndarray]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """{label: (start, end)} segment of each vertebra (LPS mm), in anatomical order."""
    labs = [lab for lab in anatomy.ORDER if lab in centroids_lps]
    if len(labs) < 2:
        raise InputError("Dense labels need the centroids of at least two vertebrae.")
    c = np.array([centroids_lps[lab] for lab in labs], float)
    mids = (c[1:] + c[:-1]) / 2
    starts = np.vstack([2 * c[0] - mids[0], mids])
    ends = np.vstack([mids, 2 * c[-1] - mids[-1]])
    return {lab: (starts[i], ends[i]) for i, lab in enumerate(labs)}


def sparse_to_dense(reference: Image, centroids_lps: dict[int, np.ndarray], binary: bool = False,
                    radii: dict[int, float] | None = None) -> Image:
    """Dense label map on ``reference``'s grid: VerSe labels (or 1 for all with ``binary``)."""
    ref = reference.as_3d()
    shape = ref.array.shape
    out = np.zeros(shape, np.uint8)
    kk, jj, ii = np.meshgrid(*(np.arange(n, dtype=np.float32) for n in shape), indexing="ij")
    pts = ref.index_to_physical(np.stack([ii, jj, kk], -1).reshape(-1, 3)).astype(np.float32)
    best = np.full(len(pts), np.inf, np.float32)
    for lab, (a, b) in segments(centroids_lps).items():
        r = (radii or {}).get(lab, vertebra_radius_mm(lab))
        d = (b - a).astype(np.float32)
        length2 = float(d @ d)
        t = ((pts - a) @ d) / length2
        inside = (t >= 0) & (t <= 1)
        radial = np.linalg.norm(pts - a - t[:, None] * d, axis=1)
        hit = inside & (radial <= r) & (radial < best)
        out.reshape(-1)[hit] = 1 if binary else lab
        best[hit] = radial[hit]
    return ref.with_array(out)


def dense_to_sparse(labels: Image, min_votes: int = 3000) -> dict[int, np.ndarray]:
    """{label: LPS mm} from a voted label map: median voxel position per label, dropping labels
    with fewer than max(min_votes, 0.4 R_v^3) votes (R_v in voxels of 1 mm)."""
    arr = labels.as_3d().array
    out = {}
    for lab in (int(v) for v in np.unique(arr) if v):
        idx = np.argwhere(arr == lab)
        threshold = max(min_votes, 0.4 * vertebra_radius_mm(lab) ** 3) if lab in anatomy.VERTEBRAE else min_votes
        if len(idx) < threshold:
            continue
        med = np.median(idx, axis=0)[::-1]  # (z, y, x) -> (i, j, k)
        out[lab] = labels.as_3d().index_to_physical(med)
    return out
