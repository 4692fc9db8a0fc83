"""Vertebra instances from the image itself, labelled as one consecutive run ("discs" fusion).

The identification network's index is good locally (neighbouring vertebrae differ by about 1)
but carries a per-scan offset and local slips of half a level or more, and per-vertebra
rounding turns those into duplicated or skipped labels. Two things in the CT do not slip:

* **Discs.** Along the detected column, the mean HU of each axial slice of the column drops
  at every intervertebral disc (about 80-100 HU, between two bright endplates) and stays high
  inside a body. The dips split the column into one instance per vertebra
  (:func:`disc_dips`, :func:`column_instances`).
* **Ribs.** T1-T12 carry ribs, C7 and L1 do not. Where the field of view shows a transition
  (cervical to thoracic or thoracic to lumbar), the rib pattern fixes the numbering
  (:func:`rib_anchor`); a run with no rib at all is moved out of the thorax where only one
  caudal shift does that.

* **C1 and C2.** No disc lies between them, so at the top of a column that ends inside the
  field of view they make one long instance (:func:`atlas_axis_top`), which fixes the numbering
  from C1 down.

The instances are then numbered consecutively head to feet with the one offset that best fits
the network's medians (:func:`label_instances`), moved by the rib pattern where it is clear, or
from C1 where the column's top is C1+C2 (docs/methods/vertebrae.md; how each rule was decided:
docs/history/ct_tasks.md). All positions are on the canonical grid of :func:`prepare` (identity
direction, LPS; array axes z, y, x with z growing towards the head).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from SpineAILib import anatomy
from SpineAILib.io.image import Image
from SpineAILib.vertebrae.labels import nominal_dimensions

RIB_LEVELS = frozenset(anatomy.vertebra_label(f"T{i}") for i in range(1, 13))


@dataclass
class Instance:
    """One vertebra found between two discs: its slices (canonical z indices), the voxels'
    median position (LPS mm), the network's median index over them and the mean detection
    probability."""

    slices: np.ndarray
    centroid: np.ndarray
    median_index: float
    probability: float
    anchor: int | None = None  # a label the image itself fixes (C1 at the column's top, S1/L5 above the pelvis)


def disc_dips(profile: np.ndarray, spacing_mm: float, ratio: float = 0.6, min_gap_mm: float = 8.0,
              plateau_mm: float = 32.0) -> list[int]:
    """Positions (indices into ``profile``) of the discs along a column's HU profile (one value
    per axial slice, head or feet first, ``spacing_mm`` apart).

    A disc is a local minimum (within ``min_gap_mm``) at most ``ratio`` times the profile's
    running median over ``plateau_mm`` (the bodies' level). Why not peak prominence: the bright
    endplates that flank every body make a shallow dip inside a body look prominent too."""
    from scipy.ndimage import median_filter, minimum_filter

    p = np.asarray(profile, float)
    if p.size < 3:
        return []
    gap = max(1, int(round(min_gap_mm / spacing_mm)))
    plateau = median_filter(p, size=max(3, int(round(plateau_mm / spacing_mm)) | 1), mode="reflect")
    is_min = p == minimum_filter(p, size=max(3, gap | 1), mode="nearest")
    dips: list[int] = []
    for c in np.flatnonzero(is_min & (p <= ratio * plateau)):
        if not dips or c - dips[-1] >= gap:  # a flat-bottomed dip: its first slice
            dips.append(int(c))
    return dips


def _bone_slices(seg: np.ndarray, mean_hu: np.ndarray) -> np.ndarray:
    """The slices of a segment at least half as bright as its median: the vertebra without the
    disc halves at its ends (or air beyond a column's end)."""
    return seg[mean_hu[seg] >= 0.5 * float(np.median(mean_hu[seg]))]


def _neighbours_length(lengths: list[int], j: int) -> float | None:
    """The median of up to two segments' lengths on each side of segment ``j`` (None: it has
    no neighbour)."""
    neigh = [lengths[k] for k in range(max(0, j - 2), min(len(lengths), j + 3)) if k != j]
    return float(np.median(neigh)) if neigh else None


def split_long(segs: list[np.ndarray], mean_hu: np.ndarray, factor: float = 1.6, max_parts: int = 6,
               nominal: Callable[[np.ndarray], tuple[float, float]] | None = None, max_lone_parts: int = 8
               ) -> list[np.ndarray]:
    """Split a segment that is ``factor`` times longer than its neighbours (the median bone
    length of up to two segments on each side) into ``round(length / neighbours)`` parts, each
    cut at the darkest slice near the even split: a disc the dips missed (a narrow or bridged
    one; C1-C2 have none) would otherwise merge two vertebrae and shift every label after it.
    At most ``max_parts`` parts: a segment can hold four vertebrae over three missed discs.

    A segment with no neighbour (the whole run is one segment: every disc too faint for a dip)
    is measured against ``nominal(segment)`` instead, the nominal body height and disc (both in
    slices) at its level: ``factor`` body heights or longer, it holds ``round((length + disc) /
    (height + disc))`` vertebrae (at most ``max_lone_parts``): with low disc contrast several
    vertebrae are found as one."""
    lengths = [len(_bone_slices(seg, mean_hu)) for seg in segs]
    out = []
    for j, seg in enumerate(segs):
        expected = _neighbours_length(lengths, j)
        if expected is not None:
            split = lengths[j] >= factor * expected
            parts = int(min(max_parts, max(2, round(lengths[j] / expected))))
        elif nominal is not None:
            height, disc = nominal(seg)
            split = lengths[j] >= factor * height
            parts = int(min(max_lone_parts, max(2, round((lengths[j] + disc) / (height + disc)))))
        else:
            split = False
        if not split:
            out.append(seg)
            continue
        cuts, start = [], 0
        for m in range(1, parts):
            ideal = int(round(m * len(seg) / parts))
            half = max(1, int(round(0.25 * len(seg) / parts)))
            lo, hi = max(start + 1, ideal - half), min(len(seg) - 1, ideal + half + 1)
            if lo >= hi:
                continue
            cut = lo + int(np.argmin(mean_hu[seg[lo:hi]]))
            cuts.append(cut)
            start = cut
        out += [piece for piece in np.split(seg, cuts) if len(piece)]
    return out


def merge_short(segs: list[np.ndarray], mean_hu: np.ndarray, factor: float = 0.55, max_merged: float = 1.4
                ) -> list[np.ndarray]:
    """Merge an interior segment whose bone is shorter than ``factor`` times its neighbours'
    (the median bone length of up to two segments on each side) with its shorter neighbour,
    where the two together are at most ``max_merged`` times that length: a dip inside one
    vertebra cut it in two (the inverse of :func:`split_long`, whose 1.6 it stays below).

    Why: a C2 found as two pieces (e.g. 4 and 6 slices between neighbours of 8-9) makes the top
    look like C1+C2, and every label below comes out one level high. The first and last segments
    are left alone: a vertebra cut by the field of view is short and is a vertebra of its own."""
    segs = list(segs)
    merged_one = True
    while merged_one:
        merged_one = False
        lengths = [len(_bone_slices(seg, mean_hu)) for seg in segs]
        for j in range(1, len(segs) - 1):
            expected = _neighbours_length(lengths, j)
            if lengths[j] >= factor * expected:
                continue
            k = j - 1 if lengths[j - 1] <= lengths[j + 1] else j + 1
            a, b = min(j, k), max(j, k)
            joined = np.concatenate([segs[a], segs[b]])
            if len(_bone_slices(joined, mean_hu)) <= max_merged * expected:
                segs[a:b + 1] = [joined]
                merged_one = True
                break
    return segs


def column_mask(mask: np.ndarray, reference: Image, radius_mm: float = 40.0) -> np.ndarray:
    """The detected voxels (canonical grid, axes z, y, x) that belong to the column: within
    ``radius_mm`` in the axial plane of the centre line of the detection's longest connected
    component (the one spanning the most axial slices; its per-slice median, interpolated
    where it has no voxels).

    Why: the detector also fires on ribs and other bone beside the column, and where such
    false positives outnumber the column's voxels in a slice they pull the instance centroids
    and the network's medians off the column (thoracic levels read as "C2" or "C5" from rib
    voxels 125 mm lateral). Other components near the line (a
    column broken at a faint disc) are kept."""
    from scipy import ndimage

    lab, n = ndimage.label(mask)
    if n <= 1:
        return mask
    objs = ndimage.find_objects(lab)
    longest = 1 + max(range(n), key=lambda k: objs[k][0].stop - objs[k][0].start)
    zz, yy, xx = np.nonzero(lab == longest)  # sorted by z (C order)
    zs, first = np.unique(zz, return_index=True)
    cx = np.array([np.median(part) for part in np.split(xx, first[1:])])
    cy = np.array([np.median(part) for part in np.split(yy, first[1:])])
    all_z = np.arange(mask.shape[0])
    line_x, line_y = np.interp(all_z, zs, cx), np.interp(all_z, zs, cy)
    sx, sy = float(reference.spacing[0]), float(reference.spacing[1])
    rows, cols = np.ogrid[: mask.shape[1], : mask.shape[2]]
    out = np.zeros_like(mask)
    for z in np.flatnonzero(mask.any(axis=(1, 2))):
        near = ((cols - line_x[z]) * sx) ** 2 + ((rows - line_y[z]) * sy) ** 2 <= radius_mm ** 2
        out[z] = mask[z] & near
    return out


def nominal_height_disc(index: float, spacing_mm: float) -> tuple[float, float]:
    """Nominal body height and the disc below it (in slices of ``spacing_mm``) of the vertebra
    with index ``index`` (rounded, clipped to C1..L5), from the published dimensions the dense
    labels use (:func:`SpineAILib.vertebrae.labels.nominal_dimensions`)."""

    lab = int(np.clip(round(index), anatomy.vertebra_label("C1"), anatomy.vertebra_label("L5")))
    d = nominal_dimensions(lab)
    return d["height"] / spacing_mm, d["disc"] / spacing_mm


C1_FRACTION = 10.0 / (10.0 + 14.75)  # C1's share of the C1+C2 height (phantoms.ct_spine nominal sizes)


def atlas_axis_top(found: list[tuple[np.ndarray, np.ndarray]], med_idx: np.ndarray, n_slices: int,
                   ratio: float = 1.3, max_index: float = 3.5) -> bool:
    """Whether the top instance (``found``: (voting slices, all slices), head first) is C1 and
    C2 together: there is no disc between them, so at the top of a column that ends inside the
    field of view (not at its top slice) they make one instance whose bone is at least
    ``ratio`` times longer than the next two's (median), and the network reads it as C1-C3
    (median index <= ``max_index``). C1+C2 tops measure about 1.4-1.6 times their neighbours,
    other tops at most about 1.15 (phantoms)."""
    if len(found) < 3:
        return False
    voting, seg = found[0]
    lengths = [len(f[0]) for f in found[1:3]]
    return bool(seg.max() < n_slices - 1 and len(voting) >= 4 and len(voting) >= ratio * float(np.median(lengths))
                and float(np.median(med_idx[voting])) <= max_index)


def column_instances(hu: np.ndarray, prob: np.ndarray, index: np.ndarray, reference: Image,
                     threshold: float = 0.5, min_voxels: int = 20, min_bone_hu: float = 150.0
                     ) -> tuple[list[Instance], np.ndarray]:
    """Split the detected column (``prob`` > ``threshold``, :func:`column_mask`) into vertebrae
    at its discs.

    Returns the instances head to feet and a map (canonical grid) of the instance number + 1
    of every detected voxel in an instance's slice range (0 elsewhere). Slices darker than half
    the instance's median HU (the disc halves at its ends, air beyond a column's end) do not
    vote for the centroid. A run without bone (max HU < ``min_bone_hu``) is no vertebra."""
    mask = column_mask(prob > threshold, reference)
    counts = mask.sum(axis=(1, 2))
    zs = np.flatnonzero(counts >= min_voxels)
    owner = np.zeros(mask.shape, np.int16)
    if not len(zs):
        return [], owner
    mean_hu = np.full(hu.shape[0], np.nan)
    med_idx = np.full(hu.shape[0], np.nan)
    for z in zs:
        mean_hu[z] = float(hu[z][mask[z]].mean())
        med_idx[z] = float(np.median(index[z][mask[z]]))
    spacing = float(reference.spacing[2])

    def nominal(seg: np.ndarray) -> tuple[float, float]:
        # the published body height and disc (slices) at the level the network reads there
        return nominal_height_disc(float(np.nanmedian(med_idx[seg])), spacing)

    found: list[tuple[np.ndarray, np.ndarray]] = []  # (voting slices, all slices)
    for run in np.split(zs, np.flatnonzero(np.diff(zs) > 1) + 1):
        if len(run) * spacing < 10.0:  # a fragment, not a vertebra
            continue
        bounds = [0] + disc_dips(mean_hu[run], spacing) + [len(run)]
        segs = [run[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        segs = [seg for seg in segs if len(seg) and float(np.max(mean_hu[seg])) >= min_bone_hu]
        segs = merge_short(split_long(segs, mean_hu, nominal=nominal), mean_hu)
        found += [(_bone_slices(seg, mean_hu), seg) for seg in segs]
    found.sort(key=lambda f: -float(f[1].mean()))  # head first (z grows towards the head)
    anchors: list[int | None] = [None] * len(found)
    # after split_long: checked before it, a top merged with its neighbour over a missed disc
    # would look like C1+C2
    if atlas_axis_top(found, med_idx, hu.shape[0]):
        voting, seg = found[0]
        # C1 is the top C1_FRACTION of the bone (slices run feet to head)
        cut = len(voting) - int(round(len(voting) * C1_FRACTION))
        found[:1] = [(voting[cut:], seg[seg >= voting[cut]]), (voting[:cut], seg[seg < voting[cut]])]
        anchors = [anatomy.vertebra_label("C1"), anatomy.vertebra_label("C2")] + anchors[1:]
    out = []
    for n, (voting, seg) in enumerate(found):
        sub = mask[voting]  # the voting slices only, not a full-volume selection per instance
        idx = np.argwhere(sub)
        idx[:, 0] = voting[idx[:, 0]]
        centroid = reference.index_to_physical(np.median(idx, axis=0)[::-1])
        out.append(Instance(seg, centroid, float(np.median(med_idx[voting])), float(prob[voting][sub].mean()),
                            anchors[n]))
        owner[seg] = np.where(mask[seg], n + 1, owner[seg])
    return out, owner


def axis_offsets(reference: Image, shape: tuple[int, int, int], point: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Signed distances (mm) from ``point`` (LPS) of every column (x), row (y) and slice (z) of
    an array of ``shape`` (z, y, x) on the canonical grid ``reference`` (identity direction):
    the coordinates of the windows placed around a vertebra."""
    o = np.asarray(reference.origin, float)
    sp = np.asarray(reference.spacing, float)
    nz, ny, nx = shape
    return (np.arange(nx) * sp[0] + o[0] - point[0], np.arange(ny) * sp[1] + o[1] - point[1],
            np.arange(nz) * sp[2] + o[2] - point[2])


def rib_score(hu: np.ndarray, reference: Image, centroid: np.ndarray, lateral_mm: tuple[float, float] = (45.0, 90.0),
              z_mm: tuple[float, float] = (-30.0, 8.0), ap_mm: tuple[float, float] = (-20.0, 50.0),
              bone_hu: float = 200.0, min_cover_mm: float = 5.0, seen_below_mm: float = 15.0,
              slope: tuple[float, float] = (0.0, 0.0)) -> float | None:
    """Bone volume (mm^3) lateral to a vertebra where its ribs run, the smaller of the two sides
    in view.

    The windows are relative to the centroid (LPS mm on the canonical grid): ``lateral_mm`` from
    the midline, ``z_mm`` (ribs leave at the body's level and run downwards), ``ap_mm`` (from
    the body to behind the canal). None when the window does not fit in the field of view
    (less than ``seen_below_mm`` below the centroid or its top cut off in z, or less than
    ``min_cover_mm`` of it laterally on both sides): unknown, not "no rib". A side with less
    than ``min_cover_mm`` in view is left out and the other side's volume returned (a narrow
    field of view off the column's midline, a scoliotic column). A small ``min_cover_mm``:
    many fields of view are narrow, and a partly seen rib still counts against the other levels
    of the same scan. Below: a vertebra's own rib lies 10-20 mm under its centroid at this
    distance, so 15 mm of the 30 suffice to tell; requiring the whole 30 would leave scans that
    end at T1 or L1 without a transition.

    ``slope`` (dz/dx, dz/dy; :func:`column_slope`) tilts the window with the vertebra: its z
    range is then measured from the plane through the centroid perpendicular to the column, so
    the ribs of a vertebra tilted by kyphosis, lordosis or scoliosis stay in it (a window along z
    misses the first rib of a steeply bowed short column and reads a neighbour's instead)."""
    sp = np.asarray(reference.spacing, float)
    xs, ys, zs = axis_offsets(reference, hu.shape, centroid)
    if zs.min() > -seen_below_mm or zs.max() < z_mm[1]:
        return None
    # z is measured from the plane through the centroid that follows the vertebra's tilt (for
    # slope (0, 0) the axial plane); it moves at most ``reach`` in z across the window
    reach = abs(slope[0]) * lateral_mm[1] + abs(slope[1]) * max(abs(ap_mm[0]), abs(ap_mm[1]))
    zsel = (zs >= z_mm[0] - reach) & (zs <= z_mm[1] + reach)
    ysel = (ys >= ap_mm[0]) & (ys <= ap_mm[1])
    sides = []
    for side in (-1.0, 1.0):
        if max(side * xs) < lateral_mm[0] + min_cover_mm:
            continue  # this side's window is (almost) out of view
        xsel = (side * xs >= lateral_mm[0]) & (side * xs <= lateral_mm[1])
        dz = zs[zsel][:, None, None] - slope[0] * xs[xsel][None, None, :] - slope[1] * ys[ysel][None, :, None]
        block = (hu[np.ix_(zsel, ysel, xsel)] > bone_hu) & (dz >= z_mm[0]) & (dz <= z_mm[1])
        sides.append(float(block.sum() * np.prod(sp)))
    return min(sides) if sides else None


def rib_anchor(labels: list[int], scores: list[float | None], relative: float = 0.4, absent: float = 0.1,
               min_mm3: float = 500.0, max_shift: int = 2, t1_missed_gap: int = 2) -> int | None:
    """The label shift (added to every label) that makes the rib pattern agree with T1-T12, or
    None where the pattern fixes no numbering (no rib transition in view, not a clean one, or
    several shifts agree, the tie break below picks none and 0 is one of them; of several that
    all move the labels, the smallest).

    ``labels`` are consecutive head to feet, ``scores`` their :func:`rib_score` (None =
    unknown). A vertebra has a rib when its score is at least ``relative`` times the highest
    (and that at least ``min_mm3``), none when at most ``absent`` times it; in between it is
    undecided (a rib cut by the field of view, the next level's rib running into the window).
    Only a clean pattern moves labels: one run of rib-bearing vertebrae, some without, and a
    shift of at most ``max_shift`` after which every vertebra agrees. Otherwise 0: bone beside
    the column that is not a rib (shoulders, pelvis) breaks the pattern rather than moving the
    numbering.

    Where several shifts agree, a tie break first keeps the one that names most of the
    undecided vertebrae T1 or L1, if one does: a partial rib score is common at T1 (its short
    first rib) and L1 (T12's rib running into its window), rare at C7, T12 and T2-T11.
    Where no vertebra in view has a rib (all below ``min_mm3``), the shift that leaves no label
    on T1-T12 is taken if it is the only one within ``max_shift`` and moves the labels caudally
    (six rib-less vertebrae read as T12-L5 are L1-S1). Where the one clean shift is
    ``t1_missed_gap`` or more levels below the network's numbering and the shift one level up
    disagrees only by naming a rib-less vertebra T1, that one is taken (a T1 rib missed by the
    window, see below)."""
    known = [(lab, s) for lab, s in zip(labels, scores, strict=True) if s is not None]
    if len(known) < 2:
        return None
    top = max(s for _, s in known)
    if top < min_mm3:
        # no rib beside any vertebra in view: no label may be T1-T12. Only a move towards the
        # sacrum, and only where one shift is left (a lumbar run as long as L1-S1): T12's rib
        # always scores, T1's short one may not (a C2-T1 scan read rib-less would otherwise be
        # moved a level up, wrongly)
        last = anatomy.vertebra_label("L6")  # read as S1 (label_instances)
        fits = [s for s in range(-max_shift, max_shift + 1)
                if all(1 <= lab + s <= last and (lab + s) not in RIB_LEVELS for lab, _ in known)]
        return fits[0] if len(fits) == 1 and fits[0] > 0 else None
    # between ``absent`` and ``relative`` of the highest: undecided (a rib cut by the field of
    # view, the next level's rib running down into the window)
    undecided = [lab for lab, s in known if absent * top < s < relative * top]
    known = [(lab, s) for lab, s in known if s >= relative * top or s <= absent * top]
    flags = [s >= relative * top for _, s in known]
    where = np.flatnonzero(flags)
    if all(flags) or len(np.split(where, np.flatnonzero(np.diff(where) > 1) + 1)) != 1:
        return None

    def disagreeing(shift: int) -> list[int]:
        """The labels, after ``shift``, whose rib flag contradicts T1-T12."""
        return [lab + shift for (lab, _), f in zip(known, flags, strict=True) if f != ((lab + shift) in RIB_LEVELS)]

    def cost(shift: int) -> int:
        return len(disagreeing(shift))

    fits = [s for s in range(-max_shift, max_shift + 1) if cost(s) == 0]
    if not fits:
        return None
    if len(fits) == 1 and fits[0] <= -t1_missed_gap:
        # T1's short first rib can lie inside the window's medial edge (about 5 % of T1 score
        # rib-less; C7 does not score a rib). A scan whose rib pattern puts the network
        # ``t1_missed_gap`` or more levels high, where one level less would only name such a
        # rib-less vertebra T1, is read so
        up = fits[0] + 1
        if disagreeing(up) == [anatomy.vertebra_label("T1")]:
            return up
    if len(fits) > 1 and undecided:
        # a partial rib score is common at T1 (its short first rib) and L1 (T12's rib running
        # down into its window), rare at other levels: prefer the one shift that names most of
        # the undecided vertebrae T1 or L1
        ends = (anatomy.vertebra_label("T1"), anatomy.vertebra_label("L1"))
        hits = {s: sum((lab + s) in ends for lab in undecided) for s in fits}
        most = max(hits.values())
        if most > 0 and sum(h == most for h in hits.values()) == 1:
            fits = [max(hits, key=hits.get)]
    best = min(fits, key=abs)
    # several shifts agree where the transition is in the undecided band or out of view (one
    # rib-bearing level, undecided levels beside the last rib): the ribs then still rule shifts
    # out (the nearest that agrees), but where the
    # network's own numbering is among them they fixed nothing
    return None if best == 0 and len(fits) > 1 else best


def column_slope(instances: list[Instance], i: int, limit: float = 0.7) -> tuple[float, float]:
    """(dz/dx, dz/dy) of the plane perpendicular to the column at instance ``i``, from the line
    through its neighbours' centroids (one-sided at the ends), each clipped to +-``limit``; (0, 0)
    for a lone instance. :func:`rib_score` tilts its window by it."""
    if len(instances) < 2:
        return (0.0, 0.0)
    a = instances[max(0, i - 1)].centroid
    b = instances[min(len(instances) - 1, i + 1)].centroid
    t = np.asarray(a, float) - np.asarray(b, float)
    if abs(t[2]) < 1e-6:
        return (0.0, 0.0)
    return (float(np.clip(-t[0] / t[2], -limit, limit)), float(np.clip(-t[1] / t[2], -limit, limit)))


def label_instances(instances: list[Instance], hu: np.ndarray | None = None, reference: Image | None = None,
                    use_ribs: bool = True) -> tuple[list[int | None], int, str | None]:
    """VerSe labels of the instances (head to feet; None = dropped), the rib shift applied, and
    what in the image fixed the numbering: "C1", "S1" or "L5" (an instance's ``anchor``), "ribs"
    (a clean rib transition, :func:`rib_anchor`, even when it agreed with the network: shift 0,
    but not when other shifts would have agreed as well and the tie break did not pick one; or a
    rib-less run moved out of the thorax),
    or None (the identification network's offset alone).

    Consecutive numbering with the offset that best fits the network's medians
    (``round(median(m_i - i))``); an instance at either end whose median is more than 2.5 levels
    off that line is dropped (a fragment beyond the column). With ``hu`` and ``reference`` the
    rib pattern may shift the numbering (:func:`rib_anchor`; a vertebra cut by the field of view
    shows a partial rib, which its undecided band leaves out). An instance with an ``anchor``
    sets the numbering instead, without a rib shift: C1 at the top (C1 of a C1+C2 top,
    :func:`atlas_axis_top`), or S1 / L5 at the bottom where the pelvis is seen
    (:func:`SpineAILib.vertebrae.sacrum.sacral_instances`)."""
    n = len(instances)
    if not n:
        return [], 0, None
    m = np.array([inst.median_index for inst in instances])
    offset = int(np.round(np.median(m - np.arange(n))))
    run = offset  # what an end instance's median index is checked against
    anchored = next((i for i, inst in enumerate(instances) if inst.anchor is not None), None)
    if anchored is not None:  # the image fixes the numbering: no network offset, no rib shift
        a = instances[anchored].anchor
        # S1 follows L5 here (the L6 step below maps the position after L5 to S1)
        offset = (anatomy.vertebra_label("L6") if a == anatomy.vertebra_label("S1") else a) - anchored
        # numbered from the top (C1) the ends are checked against that numbering; from the
        # sacrum only against the network's own run, whose absolute index may be levels off on
        # real CT (totalseg_example: 5-8 levels low)
        if anchored == 0:
            run = offset
    keep = [i for i in range(n)
            if 0 < i < n - 1 or abs(m[i] - (run + i)) <= 2.5 or instances[i].anchor is not None]
    shift = 0
    fixed_by = None if anchored is None else anatomy.vertebra_name(instances[anchored].anchor)
    if use_ribs and hu is not None and reference is not None and anchored is None:
        scores = [rib_score(hu, reference, instances[i].centroid, slope=column_slope(instances, i)) for i in keep]
        ribs = rib_anchor([offset + i for i in keep], scores)
        shift, fixed_by = (0, None) if ribs is None else (ribs, "ribs")
    labels: list[int | None] = [None] * n
    for i in keep:
        lab = offset + i + shift
        if lab >= anatomy.vertebra_label("L6"):
            # after L5 comes S1: a transitional L6 is rare and never in the training phantoms, so
            # the network cannot tell it; the sacrum ends the run
            lab = anatomy.vertebra_label("S1") if lab == anatomy.vertebra_label("L6") else None
        if lab is not None and lab in anatomy.VERTEBRAE:
            labels[i] = lab
    return labels, shift, fixed_by


def joined_bone_columns(hu: np.ndarray, reference: Image, point: np.ndarray, slices, bone_hu: float = 200.0,
                        close_mm: float = 4.0, near_mm: float = 15.0) -> np.ndarray | None:
    """The array columns (x indices) held by the bone joined to the column at ``point`` (LPS mm,
    canonical grid ``reference``): bone above ``bone_hu`` in the axial maximum projection of the
    slices ``slices`` (an index or mask along z), gaps up to ``close_mm`` closed (a joint), the
    component nearest ``point``; None where no bone lies within ``near_mm`` of it. How far a
    rib or the ilia carry that bone to the sides tells ribs from transverse processes and the
    sacrum from a lumbar vertebra."""
    from scipy import ndimage

    sp = np.asarray(reference.spacing, float)
    ix, iy, _ = (int(round(v)) for v in reference.physical_to_index(point))
    bone = hu[slices].max(axis=0) > bone_hu
    r = max(1, int(round(close_mm / 2 / sp[0])))
    bone = ndimage.binary_closing(bone, structure=np.ones((2 * r + 1, 2 * r + 1), bool))
    yy, xx = np.nonzero(bone)
    if not len(yy):
        return None
    k = int(np.argmin((yy - iy) ** 2 + (xx - ix) ** 2))
    if (yy[k] - iy) ** 2 * sp[1] ** 2 + (xx[k] - ix) ** 2 * sp[0] ** 2 > near_mm ** 2:
        return None
    lab, _ = ndimage.label(bone)
    return np.flatnonzero((lab == lab[yy[k], xx[k]]).any(axis=0))


def air_beside(hu: np.ndarray, reference: Image, point: np.ndarray) -> float | None:
    """The fraction below -400 HU 40-120 mm to either side of ``point`` (+-30 mm front and back,
    +-10 mm in z): the lungs beside a thoracic vertebra, none beside the pelvis or the shoulder
    girdle's bone. None where that window is out of view."""
    xs, ys, zs = (np.abs(v) for v in axis_offsets(reference, hu.shape, point))
    win = hu[np.ix_(zs <= 10.0, ys <= 30.0, (xs >= 40.0) & (xs <= 120.0))]
    return float((win < -400.0).mean()) if win.size else None

