"""Numbering the column found from the image (:mod:`SpineAILib.ctcolumn.canal`) from what the
CT shows at each vertebra, jointly with the spacing of real spines
(:func:`SpineAILib.vertebrae.levels.assign_levels`).

Evidence per vertebra (log-likelihoods per level; 0 = no opinion):

* **ribs** (:func:`rib_reach`, :func:`rib_emission`): a vertebra whose bone reaches far to the
  side beside the lungs is T1-T10 (T11/T12, whose floating ribs are short, are mildly
  penalised, C7/L1 more); a vertebra whose bone ends within 50 mm is not T2-T10;
* **pelvis** (:func:`SpineAILib.vertebrae.sacrum.pelvis_at`, 90 mm to both sides): the lowest
  vertebrae joined to the ilia are S1 (or the sacrum below it); a vertebra not joined to them is
  not S1;
* **skull** (:func:`skull_above`): where the column ends under the skull, its top is C1 and C2
  (one bone along the canal: the 18 mm below the skull's bottom (:func:`skull_bottom`; the canal
  line runs on into the foramen magnum) are C1's, the rest down to the next disc at least 12 mm
  lower C2's; :func:`atlas_axis_split`).

Where the anchors (ribs, pelvis, skull) and the spacing leave two numberings close, the margin
is small; the caller warns and lowers the confidence.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from SpineAILib import anatomy
from SpineAILib.ctcolumn.canal import Column, Piece, body_centre
from SpineAILib.ctcolumn.path import Path
from SpineAILib.io.image import Image
from SpineAILib.vertebrae.column import air_beside, axis_offsets, joined_bone_columns
from SpineAILib.vertebrae.labels import nominal_dimensions
from SpineAILib.vertebrae.levels import BELOW_S1, LEVEL_NAMES, N_STATES, assign_levels, huber, level_index
from SpineAILib.vertebrae.sacrum import pelvis_at

S1_STATE = level_index("S1")
PELVIS_REACH_MM = 90.0  # the phantoms, which have no pelvis, reach at most 82 mm
C1_MM = 18.0  # C1's share of the canal below the skull (its anterior arch and the dens tip)
C2_MIN_MM = 12.0  # C2's body below C1's share: 14-20 mm down to the C2/C3 disc


def skull_above(hu: np.ndarray, reference: Image, top: np.ndarray, min_fraction: float = 0.2,
                min_width_mm: float = 90.0, bone_hu: float = 200.0) -> bool:
    """Whether the skull base lies right above the column's top ``top`` (LPS mm on the canonical
    grid): at least ``min_fraction`` of the box 0-10 mm above it (+-50 mm to the sides and front
    and back) is bone, spread over at least ``min_width_mm`` sideways (the occiput and the
    mastoids; a vertebra's arch above a canal that was merely lost is narrower and sparser).
    False where the box is outside the image."""
    xs, ys, zs = axis_offsets(reference, hu.shape, top)
    zsel = (zs > 0.0) & (zs <= 10.0)
    if not zsel.any():
        return False
    box = hu[np.ix_(zsel, np.abs(ys) <= 50.0, np.abs(xs) <= 50.0)] > bone_hu
    if not box.size or float(box.mean()) < min_fraction:
        return False
    cols = np.flatnonzero(box.any(axis=(0, 1)))
    return bool(len(cols)) and float((cols[-1] - cols[0]) * reference.spacing[0]) >= min_width_mm


def skull_bottom(hu: np.ndarray, reference: Image, path: Path, max_mm: float = 40.0) -> int:
    """The index of the lowest sample of ``path`` (feet first) with the skull right above it
    (:func:`skull_above`), walking down from the top at most ``max_mm``: the canal line runs on
    into the foramen magnum (20-30 mm into the skull base on a real neck CT), so its top is not
    C1. The top sample's index where the skull is not above it."""
    n = len(path.points)
    k = n - 1
    floor = max(0, n - 1 - int(round(max_mm / path.step_mm)))
    while k > floor and skull_above(hu, reference, path.points[k - 1]):
        k -= 1
    return k


def atlas_axis_split(hu: np.ndarray, reference: Image, column: Column, top: int | None = None) -> list[Piece]:
    """The column's pieces (feet first) with its top re-cut as C1 over C2: the ``C1_MM`` of the
    path below ``top`` (a path index: where the skull ends, :func:`skull_bottom`; default the
    path's top) are C1, C2 reaches down to the first cut at least ``C2_MIN_MM`` below that.
    Pieces above ``top`` (inside the skull base) are dropped."""
    path = column.path
    n = len(path.points) if top is None else top + 1
    c1_start = max(0, n - int(round(C1_MM / path.step_mm)))
    c2_floor = c1_start - int(round(C2_MIN_MM / path.step_mm))
    below = [p for p in column.pieces if p.stop <= c2_floor + 1]
    c2_start = below[-1].stop if below else 0
    out = list(below)
    for a, b in ((c2_start, c1_start), (c1_start, n)):
        if b - a < 3:
            continue
        found = body_centre(hu, reference, path, a, b)
        centre = found[0] if found is not None else path.points[(a + b) // 2]
        out.append(Piece(a, b, centre, found[1] if found is not None else 0.0))
    return out


@dataclass
class Numbering:
    """Labels of the column's pieces (head first; None = dropped or sacrum below S1), each
    piece's margin (log-likelihood; small = uncertain), what fixed the numbering, and notes on
    the evidence."""

    pieces: list[Piece]
    labels: list[int | None]
    margins: list[float]
    anchors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def rib_reach(hu: np.ndarray, reference: Image, centre: np.ndarray, z_mm: tuple[float, float] = (-5.0, 10.0),
              bone_hu: float = 200.0, close_mm: float = 4.0) -> tuple[float, float, float] | None:
    """How far (mm, to the patient's left and right of ``centre``) the bone joined to a vertebra
    reaches, and the fraction of air beside it; None where no bone lies within 15 mm of the
    centre or the slab is out of view.

    Bone above ``bone_hu`` in the axial maximum projection of the slab ``z_mm`` around the body's
    centre (ribs leave at the upper half of their vertebra), gaps up to ``close_mm`` closed (the
    costovertebral joints). A rib carries that bone 100 mm and more to the side; transverse
    processes end within about 45 mm (real CT: T1-T10 reach 80-150 mm on at least one side,
    C2-C6 and L1-L5 24-45 mm; the floating ribs of T11-T12 often leave the slab). Air: the
    fraction below -400 HU 40-120 mm to either side (+-30 mm front and back, +-10 mm in z):
    the lungs beside a thoracic vertebra, none beside the pelvis or the shoulder girdle's bone."""
    xs, ys, zs = axis_offsets(reference, hu.shape, centre)
    zsel = (zs >= z_mm[0]) & (zs <= z_mm[1])
    if not zsel.any():
        return None
    cols = joined_bone_columns(hu, reference, centre, zsel, bone_hu, close_mm)
    if cols is None:
        return None
    air = air_beside(hu, reference, centre)
    return float(max(0.0, xs[cols].max())), float(max(0.0, -xs[cols].min())), 0.0 if air is None else air


def rib_emission(reaches: list[tuple[float, float, float] | None], rib_mm: float = 70.0, none_mm: float = 50.0,
                 min_air: float = 0.05, against: float = 5.0, soft: float = 2.0) -> tuple[np.ndarray, bool]:
    """(N, S) log-likelihoods from the pieces' :func:`rib_reach`, and whether a rib was seen.

    A rib: bone reaching ``rib_mm`` or more to one side with at least ``min_air`` of air beside
    the vertebra (the lungs; the ilia and the shoulder girdle reach as far without it): T1-T10
    free, T11/T12 ``soft / 2`` (their floating ribs are short), C7/L1 ``soft`` (a cervical or
    lumbar rib, or the neighbour's), any other level ``against``. No rib: at most ``none_mm``
    on both sides: T2-T10 ``against``, T1 ``soft`` (its short first rib); T11/T12 free.
    In between, or out of view: no opinion."""
    em = np.zeros((len(reaches), N_STATES))
    seen = False
    ribs_free = [level_index(f"T{i}") for i in range(1, 11)]
    for j, r in enumerate(reaches):
        if r is None:
            continue
        far = max(r[0], r[1])
        if far >= rib_mm and r[2] >= min_air:
            seen = True
            em[j] -= against
            em[j, ribs_free] = 0.0
            em[j, [level_index("T11"), level_index("T12")]] = -soft / 2.0
            em[j, [level_index("C7"), level_index("L1")]] = -soft
        elif far <= none_mm:
            em[j, [level_index(f"T{i}") for i in range(2, 11)]] = -against
            em[j, level_index("T1")] = -soft
    return em, seen


def depth_emission(depths_mm: list[float], spread: float = 0.25, min_mm: float = 10.0) -> np.ndarray:
    """(N, S) log-likelihoods from each body's measured antero-posterior depth against the
    published depth of each level (:func:`SpineAILib.vertebrae.labels.nominal_dimensions`: about
    16 mm in the neck, 17-28 mm in the thorax, 30-35 mm in the lumbar spine), a Huber loss on
    the log ratio with ``spread``; no opinion below ``min_mm`` (a body cut by the field of view)
    or for the sacrum below S1."""
    nominal = np.log([nominal_dimensions(anatomy.vertebra_label(n))["depth"] for n in LEVEL_NAMES])
    em = np.zeros((len(depths_mm), N_STATES))
    for j, d in enumerate(depths_mm):
        if d is None or d < min_mm:
            continue
        z = np.abs(np.log(d) - nominal) / spread
        em[j, :len(LEVEL_NAMES)] = -huber(z)
    return em


def number_column(hu: np.ndarray, reference: Image, column: Column) -> Numbering:
    """Label the pieces of ``column`` (on the canonical grid ``reference``) from ribs, pelvis,
    skull and spacing; see the module docstring."""
    path = column.path
    pieces = list(column.pieces)
    anchors: list[str] = []
    notes: list[str] = []
    skull = skull_above(hu, reference, path.points[-1])
    if skull:
        pieces = atlas_axis_split(hu, reference, column, skull_bottom(hu, reference, path))
        anchors.append("C1")
    pieces = pieces[::-1]  # head first from here on
    n = len(pieces)
    if n == 0:
        return Numbering([], [], [], anchors, notes)
    centres = np.array([p.centre for p in pieces])
    em = np.zeros((n, N_STATES))
    em[:, BELOW_S1] = -4.0
    em[:, S1_STATE] = -4.0  # S1 without the pelvis joined to it: unusual, but the test can miss
    ribs, seen = rib_emission([rib_reach(hu, reference, p.centre) for p in pieces])
    em += depth_emission([p.depth_mm for p in pieces])
    # pelvis: the lowest six pieces (sacral pieces below S1 come first from the feet); under a
    # skull only 400 mm or more below the column's top (C1-S1 is about 600 mm: the shoulder
    # girdle beside C7-T2 can pass the test)
    pelvis = []
    top = path.points[-1]
    for i in range(max(0, n - 6), n):
        if skull and np.linalg.norm(pieces[i].centre - top) < 400.0:
            continue
        # at the body's centre and a third of the way to either end (a piece that also holds
        # part of its neighbour has its centre off the sacrum)
        p = pieces[i]
        for f in (0.5, 0.33, 0.67):
            k = min(int(p.start + f * (p.stop - p.start)), len(path.points) - 1)
            point = p.centre + (path.points[k] - path.points[(p.start + p.stop) // 2]) + 5.0 * path.anterior[k]
            # the sacrum joined to the ilia 90 mm or more to both sides (at 1 mm grids the
            # sacroiliac joints of totalseg_example open a little: 100 mm missed its S1)
            if pelvis_at(hu, reference, point, min_lateral_mm=PELVIS_REACH_MM):
                pelvis.append(i)
                break
    if pelvis:
        anchors.append("S1")
        ribs[pelvis] = 0.0  # the ilia, not ribs
    em += ribs
    if ribs.any() and seen:
        anchors.append("ribs")
    if pelvis:
        for i in pelvis:
            em[i, :] -= 8.0
            em[i, S1_STATE] = 0.0
            em[i, BELOW_S1] = 0.0
    if skull:
        em[0, :] -= 8.0
        em[0, level_index("C1")] = 0.0
        if n > 1:
            em[1, :] -= 8.0
            em[1, level_index("C2")] = 0.0
    result = assign_levels(centres, em)
    if not anchors:
        notes.append("No skull, rib or pelvis in view: the levels come from the vertebrae's spacing alone.")
    return Numbering(pieces, result.labels, result.margins, anchors, notes)
