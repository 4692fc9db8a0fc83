"""Numbering from the sacrum (SpineAILib.vertebrae.sacrum): the posterior column line, the
straightened body band, disc valleys, the pelvis anchor -- exact answers on tiny synthetic
volumes -- and the real abdominal CT it was developed on."""

from __future__ import annotations

import numpy as np
import pytest

from SpineAILib import anatomy
from SpineAILib.io import Image
from SpineAILib.vertebrae.column import Instance, label_instances
from SpineAILib.vertebrae.predict import fuse
from SpineAILib.vertebrae.sacrum import (
    body_band,
    disc_valleys,
    pelvis_at,
    posterior_line,
    sacral_instances,
    straighten,
)

T = anatomy.vertebra_label


def _band(bodies, disc_mm, interior=120.0, endplate=320.0, disc_hu=80.0, rows=3):
    """Body-band lines sampled every 1 mm: bodies of the given heights (2 mm endplates at both
    ends, ``interior`` inside), discs of ``disc_mm`` between them. Returns the band and each
    disc's centre sample."""
    p, centres = [], []
    for k, h in enumerate(bodies):
        b = np.full(h, interior)
        b[:2] = b[-2:] = endplate
        p += list(b)
        if k < len(bodies) - 1:
            centres.append(len(p) + (disc_mm - 1) // 2)
            p += [disc_hu] * disc_mm
    return np.tile(np.array(p), (rows, 1)), centres


def test_disc_valleys_are_discs_between_endplates_not_body_middles():
    band, centres = _band([30, 28, 26, 24], disc_mm=9)  # lumbar-like: 9 mm discs, 24-30 mm bodies
    assert disc_valleys(band) == centres
    thin, centres = _band([22, 22, 22], disc_mm=3)  # thoracic-like thin discs
    assert disc_valleys(thin) == centres
    # osteoporotic: the cancellous bone (50 HU) darker than the discs (80 HU); the endplates
    # still flank every disc and the bodies' middles are too far from them to count
    porous, centres = _band([30, 28, 26], disc_mm=9, interior=50.0)
    assert disc_valleys(porous) == centres
    assert disc_valleys(np.full((3, 60), 200.0)) == []  # no endplates, no discs
    # at 2 mm samples the same discs (positions in samples)
    half, centres2 = _band([30, 28, 26, 24], disc_mm=9)
    assert disc_valleys(half[:, ::2], step_mm=2.0) == [c // 2 for c in centres2]


def _grid(shape=(60, 100, 140), spacing=(2.0, 2.0, 2.0), origin=(-139.0, -99.0, 0.0)):
    """An empty canonical grid (axes z, y, x; spacing and origin x, y, z in mm; soft tissue)."""
    return Image(np.full(shape, 40.0, np.float32), spacing, origin, np.eye(3))


def test_posterior_line_follows_the_spine_behind_a_larger_detection():
    ref = _grid()
    hu = ref.array.copy()
    prob = np.zeros_like(hu)
    prob[:, 20:50, 50:90] = 0.9  # the heart: large, in front
    prob[:, 70:80, 65:75] = 0.9  # the spine: behind it
    line = posterior_line(prob, hu, ref)
    assert np.allclose(line[:, 0], 69.5) and np.allclose(line[:, 1], 74.5)
    # merged with the aorta in front: only the back 35 mm of the component count
    prob[:, 50:70, 65:75] = 0.9
    merged = posterior_line(prob, hu, ref)
    assert np.allclose(merged[:, 1], np.mean(np.arange(62, 80)))  # rows >= 79 - 17.5
    assert np.isnan(posterior_line(np.zeros_like(hu), hu, ref)).all()


def test_straighten_resamples_every_mm_with_the_anatomical_directions():
    ref = _grid(spacing=(0.8, 1.1, 2.5), origin=(-50.0, 20.0, 7.0))
    line = np.full((60, 2), np.nan)
    z = np.arange(5, 55)
    line[z, 0], line[z, 1] = 70.0, 40.0  # straight up: exact after smoothing
    path = straighten(line, ref)
    assert len(path.points) == int(np.ceil(49 * 2.5)) and path.step_mm == 1.0
    assert np.allclose(path.points[0], [70 * 0.8 - 50, 40 * 1.1 + 20, 5 * 2.5 + 7.0])
    assert np.allclose(np.diff(path.points[:, 2]), 1.0)
    assert np.allclose(path.tangent, [0, 0, 1]) and np.allclose(path.lateral, [1, 0, 0])
    assert np.allclose(path.anterior, [0, -1, 0])  # LPS: the front is -y
    line[z, 1] = 40.0 + 0.4 * (z - 5)  # leaning back as it rises: 0.44 mm per 2.5 mm slice
    path = straighten(line, ref)
    assert abs(len(path.points) - 49 * np.hypot(2.5, 0.44)) <= 1.0
    mid = slice(40, -40)  # the smoothing (median over 9 slices, then Gaussian) bends the ends
    assert np.allclose(path.tangent[mid], np.array([0.0, 0.44, 2.5]) / np.hypot(2.5, 0.44), atol=1e-3)
    assert np.allclose(path.lateral[mid], [1.0, 0.0, 0.0], atol=1e-6)
    assert np.allclose(path.anterior[mid], np.array([0.0, -2.5, 0.44]) / np.hypot(2.5, 0.44), atol=1e-3)
    short = np.full((60, 2), np.nan)
    short[10:15] = 50.0
    assert straighten(short, ref) is None  # 12.5 mm: no column


def _pelvis_volume(lungs=False, gap_mm=4, reach_mm=120):
    """A column (20 x 20 mm) with, at z = 40-60 mm, a bone plate on each side separated from it
    by a ``gap_mm`` joint and reaching ``reach_mm`` from the midline; optionally air beside it."""
    ref = _grid()
    hu = ref.array.copy()
    cx, cy = 70, 60
    hu[:, cy - 5:cy + 5, cx - 5:cx + 5] = 400.0
    g = gap_mm // 2
    r = reach_mm // 2
    hu[20:30, cy - 3:cy + 3, cx + 5 + g:min(140, cx + r + 1)] = 500.0
    hu[20:30, cy - 3:cy + 3, max(0, cx - r):cx - 5 - g] = 500.0
    if lungs:
        hu[15:35, 30:90, cx + 25:cx + 60] = -800.0
        hu[15:35, 30:90, cx - 60:cx - 25] = -800.0
    point = ref.index_to_physical(np.array([[cx - 0.5, cy - 0.5, 25.0]]))[0]
    return ref, hu, point


def test_pelvis_at_needs_wide_connected_bone_without_air():
    ref, hu, point = _pelvis_volume()
    assert pelvis_at(hu, ref, point)
    assert not pelvis_at(hu, ref, point + [0.0, 0.0, 30.0])  # above the plates: a plain vertebra
    ref, hu, point = _pelvis_volume(reach_mm=80)  # transverse processes, not ilia
    assert not pelvis_at(hu, ref, point)
    ref, hu, point = _pelvis_volume(gap_mm=10)  # not joined to the column
    assert not pelvis_at(hu, ref, point)
    ref, hu, point = _pelvis_volume(lungs=True)  # ribs beside the lungs
    assert not pelvis_at(hu, ref, point)
    assert not pelvis_at(hu, ref, point + [0.0, 0.0, 1000.0])  # outside the image


def test_label_instances_numbers_up_from_the_sacrum_whatever_the_network_says():
    # five instances head first, the last anchored as S1; the network reads them 6 levels low
    inst = [Instance(np.array([k]), np.zeros(3), float(T("L2") - 6 + k), 0.9) for k in range(5)]
    inst[-1].anchor = T("S1")
    labels, shift, fixed_by = label_instances(inst)
    assert labels == [T("L2"), T("L3"), T("L4"), T("L5"), T("S1")] and shift == 0 and fixed_by == "S1"
    inst[-1].anchor = T("L5")  # the pelvis below the lowest instance: that one is L5
    assert label_instances(inst)[::2] == ([T("L1"), T("L2"), T("L3"), T("L4"), T("L5")], "L5")


def _lumbar_with_pelvis(pelvis=True, index_offset=-6.0):
    """A canonical 2 mm grid with a straight column S1 (bottom) .. L1 of 26 mm bodies (2 mm
    endplates) and 10 mm discs, detected; the identification network's index is the true label
    + ``index_offset``. With ``pelvis``, ilia 130 mm wide joined to S1 by a 4 mm joint."""
    labels = [T("S1"), T("L5"), T("L4"), T("L3"), T("L2"), T("L1")]  # feet first
    ref = _grid(shape=(110, 100, 140))
    hu = ref.array.copy()
    prob = np.zeros_like(hu)
    index = np.zeros_like(hu)
    cx, cy = 70, 60
    centres = {}
    z0 = 4
    for lab in labels:
        body = slice(z0, z0 + 13)
        hu[body, cy - 8:cy + 8, cx - 8:cx + 8] = 220.0
        hu[z0, cy - 8:cy + 8, cx - 8:cx + 8] = hu[z0 + 12, cy - 8:cy + 8, cx - 8:cx + 8] = 600.0
        hu[z0 + 13:z0 + 18, cy - 8:cy + 8, cx - 8:cx + 8] = 60.0  # the disc above
        prob[z0:z0 + 18, cy - 8:cy + 8, cx - 8:cx + 8] = 0.95
        index[z0:z0 + 18, cy - 8:cy + 8, cx - 8:cx + 8] = lab + index_offset
        centres[lab] = ref.index_to_physical(np.array([[cx - 0.5, cy - 0.5, z0 + 6.0]]))[0]
        if lab == T("S1") and pelvis:
            hu[z0 + 2:z0 + 11, cy - 4:cy + 4, cx + 10:cx + 66] = 500.0
            hu[z0 + 2:z0 + 11, cy - 4:cy + 4, cx - 66:cx - 10] = 500.0
        z0 += 18
    return ref, hu, prob, index, centres


def test_a_lumbar_column_above_a_pelvis_is_numbered_from_s1():
    ref, hu, prob, index, centres = _lumbar_with_pelvis()
    cents, conf, voted = fuse(prob, index, ref, hu=hu)
    assert set(cents) == set(centres)  # the network's T-level index (6 low) is overruled
    for lab, c in cents.items():
        assert np.linalg.norm(c - centres[lab]) < 6.0, anatomy.vertebra_name(lab)
    assert set(np.unique(voted)) == {0, *centres}
    # the labels come from the pelvis; the network (6 levels off) disagrees, so the confidence is the
    # detection probability halved
    assert all(abs(c - 0.95 / 2) < 1e-3 for c in conf.values())
    ref, hu, prob, index, _ = _lumbar_with_pelvis(pelvis=False)
    assert sacral_instances(hu, prob, index, ref) is None  # no pelvis: the disc/rib path
    cents, _, _ = fuse(prob, index, ref, hu=hu)
    assert T("S1") not in cents and min(cents) < T("L1")  # numbered by the network: 6 levels low


def test_body_band_samples_in_front_of_the_line():
    ref = _grid()
    hu = ref.array.copy()
    hu[:, 40:60, :] = 300.0  # y 40-59: a bone slab in front of (smaller y than) the line at y 60
    line = np.full((60, 2), np.nan)
    line[:, 0], line[:, 1] = 70.0, 60.0
    path = straighten(line, ref)
    inside = body_band(hu, ref, path, ap_mm=(2.0, 12.0), lateral_mm=4.0)
    behind = body_band(hu, ref, path, ap_mm=(-12.0, -4.0), lateral_mm=4.0)
    assert np.allclose(inside, 300.0) and np.allclose(behind, 40.0)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["totalseg_example"])
def test_real_abdominal_ct_numbered_from_the_sacrum(data_dir, name):
    """The phantom-trained networks read this CT's L1-S1 as T6-T8 (docs/history/ct_tasks.md); the
    pelvis anchor numbers it (developed on this case: a regression test, not an evaluation)."""
    from SpineAILib.vertebrae.data import shared_ct_cases
    from SpineAILib.vertebrae.evaluate import match
    from SpineAILib.vertebrae.predict import locate

    case = next(c for c in shared_ct_cases(data_dir) if c.name == name)
    result = locate(case.image, device="cpu")
    rows = match(result.centroids, case.centroids)
    assert sum(r["identified"] for r in rows) >= 5, rows
    assert anatomy.vertebra_label("S1") in result.centroids
    # numbered from the sacrum; the network reads T3-L1: the two disagree, which is said and halves
    # every confidence (the detection probability alone is above 0.6 here)
    assert result.numbering == "S1" and len(result.warnings) == 1
    assert "sacrum in view numbers the vertebrae +" in result.warnings[0] and "disagree" in result.warnings[0]
    assert 0.3 < min(result.confidence.values()) and max(result.confidence.values()) <= 0.5
    # the networks' vertebrae lie on the column the canal shows: theirs is the result, and the
    # segments are the column's bone cut at its discs (Dice against the pseudo masks 0.80-0.85)
    assert result.source == "networks"
    from SpineAILib.metrics import dice

    assert all(dice(result.labels.array == v, case.reference.array == v) > 0.7
               for v in (T("L1"), T("L2"), T("L3"), T("L4"), T("L5")))
