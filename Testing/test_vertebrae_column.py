"""Disc instances and the rib anchor of vertebra labelling ("discs" fusion): exact answers on
tiny synthetic profiles and columns (canonical 2 mm grids)."""

from __future__ import annotations

import numpy as np
import pytest

from SpineAILib import anatomy
from SpineAILib.io import Image
from SpineAILib.vertebrae.column import (
    atlas_axis_top,
    column_instances,
    column_mask,
    disc_dips,
    label_instances,
    rib_anchor,
    rib_score,
)
from SpineAILib.vertebrae.predict import fuse

T = anatomy.vertebra_label


def _profile(lengths, disc=3, body=300.0, endplate=500.0, disc_hu=90.0):
    """A column's slice profile: bodies of ``lengths`` slices (bright endplates at both ends, a
    shallow 260 HU dip in the middle), ``disc`` slices of disc between them. Returns the
    profile and each disc's first slice."""
    p, starts = [], []
    for k, n in enumerate(lengths):
        b = np.full(n, body)
        b[0] = b[-1] = endplate
        b[n // 2] = 260.0  # not a disc: only 13 % below the bodies
        p += list(b)
        if k < len(lengths) - 1:
            starts.append(len(p))
            p += [disc_hu] * disc
    return np.array(p), starts


def test_disc_dips_are_the_discs_not_dips_inside_a_body():
    prof, starts = _profile([8, 10, 12, 14, 16])
    assert disc_dips(prof, 2.0) == starts
    assert disc_dips(prof[::-1], 2.0) == sorted(len(prof) - 1 - (s + 2) for s in starts)  # flat bottom: first slice
    assert disc_dips(np.full(30, 300.0), 2.0) == []  # a column without discs (one body)
    weak, _ = _profile([10, 10], disc_hu=200.0)  # a disc only 33 % darker than the bodies: not split
    assert disc_dips(weak, 2.0) == []


def _column(labels_head_to_feet, index_offset=0.0, slip=None, ribs=(), size=(22, 60, 60)):
    """A canonical 2 mm grid with a straight column of 10-slice bodies and 3-slice discs, from
    the feet (z = 0) up; the detection covers the column and the identification network's
    index is the true label + ``index_offset`` (+ ``slip`` = {label: extra}). ``ribs``: labels
    that get a bone bar 50-80 mm to both sides, 10 mm below their centre."""
    n = len(labels_head_to_feet)
    nz = n * 13 + 6
    ref = Image(np.zeros((nz, size[1], size[2]), np.float32), (2.0, 2.0, 2.0), (-size[2] + 1.0, -60.0, 0.0))
    hu = np.full(ref.array.shape, -50.0, np.float32)
    prob = np.zeros_like(hu)
    index = np.zeros_like(hu)
    centres = {}
    cy, cx = 30, size[2] // 2
    for k, lab in enumerate(labels_head_to_feet[::-1]):  # feet first
        z0 = 3 + 13 * k
        body = slice(z0, z0 + 10)
        hu[body, cy - 6:cy + 6, cx - 6:cx + 6] = 300.0
        hu[z0, cy - 6:cy + 6, cx - 6:cx + 6] = hu[z0 + 9, cy - 6:cy + 6, cx - 6:cx + 6] = 600.0
        hu[z0 + 10:z0 + 13, cy - 6:cy + 6, cx - 6:cx + 6] = 90.0  # the disc above
        index[z0:z0 + 13, cy - 6:cy + 6, cx - 6:cx + 6] = lab + index_offset + (slip or {}).get(lab, 0.0)
        centres[lab] = ref.index_to_physical(np.array([[cx - 0.5, cy - 0.5, z0 + 4.5]]))[0]
        if lab in ribs:
            zr = z0 + 4 - 5
            hu[zr - 1:zr + 2, cy:cy + 10, :cx - 25] = 400.0
            hu[zr - 1:zr + 2, cy:cy + 10, cx + 25:] = 400.0
    top = 3 + 13 * (n - 1) + 10
    prob[3:top, cy - 6:cy + 6, cx - 6:cx + 6] = 0.9
    return ref, hu, prob, index, centres


def test_column_instances_one_per_vertebra_at_the_body_centres():
    labs = [T("L1"), T("L2"), T("L3"), T("L4")]
    ref, hu, prob, index, centres = _column(labs)
    inst, owner = column_instances(hu, prob, index, ref)
    assert len(inst) == 4
    for got, lab in zip(inst, labs, strict=True):  # head to feet
        np.testing.assert_allclose(got.centroid, centres[lab], atol=1.01)  # within half a slice (2 mm grid)
        assert got.median_index == pytest.approx(lab)
    assert set(np.unique(owner)) == {0, 1, 2, 3, 4}


def test_detections_beside_the_column_do_not_move_its_instances():
    """The detector also fires on a rib 50-90 mm lateral, more voxels than the column has in
    those slices and with a nonsense index (2.0): the column's instances, centroids and labels
    stay those of the clean detection."""
    labs = [T("T10"), T("T11"), T("T12"), T("L1")]
    ref, hu, prob, index, centres = _column(labs, size=(22, 60, 100))
    clean, _ = column_instances(hu, prob, index, ref)
    cx = 50
    rib = (slice(16, 30), slice(24, 36), slice(cx + 25, cx + 45))  # T12's slices, 12 x 20 voxels > 12 x 12
    prob[rib], index[rib], hu[rib] = 0.9, 2.0, 400.0
    kept = column_mask(prob > 0.5, ref)
    assert not kept[rib].any()
    beside = np.zeros(100, bool)
    beside[cx + 25:cx + 45] = True
    np.testing.assert_array_equal(kept, (prob > 0.5) & ~beside)  # the column whole, nothing else
    noisy, _ = column_instances(hu, prob, index, ref)
    assert len(noisy) == len(clean) == 4
    for a, b in zip(noisy, clean, strict=True):
        np.testing.assert_allclose(a.centroid, b.centroid)
        assert a.median_index == b.median_index
    cents = fuse(prob, index, ref, hu=hu)[0]
    assert sorted(cents) == sorted(labs)


def _cervical_top(first_index, atlas=True):
    """A 2 mm canonical grid, feet first: C5, C4, C3 (10-slice bodies, 3-slice discs), C2 and,
    with ``atlas``, C1 on top of it without a disc (5 slices: together 1.5 times C3, as on the
    phantoms), then soft tissue. The network's index is the truth + ``first_index`` - 1 (off by
    a level for 2.0)."""
    names = ["C5", "C4", "C3", "C2"]
    nz = 4 * 13 + 5 + 8
    ref = Image(np.zeros((nz, 40, 40), np.float32), (2.0, 2.0, 2.0), (-39.0, -40.0, -120.0))
    hu = np.full(ref.array.shape, -50.0, np.float32)
    prob = np.zeros_like(hu)
    index = np.zeros_like(hu)
    box = (slice(14, 26), slice(14, 26))
    centres, z = {}, 2
    for name in names + (["C1"] if atlas else []):
        lab = T(name)
        n = 5 if name == "C1" else 10
        hu[(slice(z, z + n),) + box] = 300.0
        hu[(slice(z, z + 1),) + box] = hu[(slice(z + n - 1, z + n),) + box] = 600.0
        index[(slice(z, z + n + 3),) + box] = lab + first_index - 1
        prob[(slice(z, z + n),) + box] = 0.9
        centres[lab] = ref.index_to_physical(np.array([[19.5, 19.5, z + (n - 1) / 2]]))[0]
        z += n
        if name not in ("C2", "C1"):  # no disc between C2 and C1
            hu[(slice(z, z + 3),) + box] = 90.0
            prob[(slice(z, z + 3),) + box] = 0.9
            z += 3
    return ref, hu, prob, index, centres


def test_c1_and_c2_at_the_top_of_the_column_fix_the_numbering():
    """C1 and C2 have no disc between them: at the top of a column that ends inside the field of
    view they make one instance 1.5 times longer than the next, which is split into C1 and C2
    and numbers the column, here against a network that reads every level one too high."""
    ref, hu, prob, index, centres = _cervical_top(2.0)
    inst, _ = column_instances(hu, prob, index, ref)
    assert [i.anchor for i in inst[:2]] == [T("C1"), T("C2")] and all(i.anchor is None for i in inst[2:])
    details = {}
    cents = fuse(prob, index, ref, hu=hu, details=details)[0]
    # the network reads one level high: the anchor moves it by -1, below the disagreement that is reported
    assert sorted(cents) == [T(n) for n in ("C1", "C2", "C3", "C4", "C5")]
    assert details == {"numbering": "C1", "disagreement": -1.0}
    for lab, c in centres.items():
        np.testing.assert_allclose(cents[lab], c, atol=2.1)  # C1/C2 cut in their nominal proportion


def test_a_small_c1_is_kept_by_the_disc_fusion_next_to_a_full_vertebra(monkeypatch):
    """C1 has no body: the detector covers less of it (here a 12 x 12 mm ring section, 2.6 ml
    of votes with the C2 slice the nominal cut gives it). The paper's 3000 mm^3 floor dropped
    such a C1 (8 of 80 validation phantoms); next to a vertebra that holds 3000 (C2), 1500 keep
    it. A column of small pieces only (a crop's fragments) keeps none."""
    from SpineAILib.vertebrae import predict

    ref, hu, prob, index, centres = _cervical_top(2.0)
    c1 = slice(51, 56)
    prob[c1] = 0.0
    prob[c1, 17:23, 17:23] = 0.9
    details = {}
    cents = fuse(prob, index, ref, hu=hu, details=details)[0]
    # the network reads one level high: the anchor moves it by -1, below the disagreement that is reported
    assert sorted(cents) == [T(n) for n in ("C1", "C2", "C3", "C4", "C5")]
    assert details == {"numbering": "C1", "disagreement": -1.0}
    # within two slices: the C2 slice in C1's nominal share holds four times a C1 slice's voxels
    np.testing.assert_allclose(cents[T("C1")], centres[T("C1")], atol=4.1)
    monkeypatch.setattr(predict, "NEIGHBOUR_MIN_VOTES_MM3", 3000.0)  # the paper's floor alone
    assert sorted(fuse(prob, index, ref, hu=hu)[0]) == [T(n) for n in ("C2", "C3", "C4", "C5")]
    monkeypatch.undo()
    thin = np.zeros_like(prob)
    thin[:, 17:22, 17:22] = prob[:, 17:22, 17:22]  # five pieces of 1.2-2.6 ml: none holds 3000
    assert fuse(prob=thin, index=index, reference=ref, hu=hu)[0] == {}


def test_no_c1_anchor_without_a_long_top_or_below_c3():
    """A column whose top is C2 alone keeps the network's numbering (and its error); so does a
    long top the network places below C3 (a missed disc lower down the spine), and a long top
    cut by the field of view."""
    ref, hu, prob, index, _ = _cervical_top(2.0, atlas=False)
    inst, _ = column_instances(hu, prob, index, ref)
    assert all(i.anchor is None for i in inst)
    details = {}
    assert sorted(fuse(prob, index, ref, hu=hu, details=details)[0]) == [T(n) for n in ("C3", "C4", "C5", "C6")]
    assert details == {"numbering": None, "disagreement": 0.0}  # the network alone: locate() warns
    ref, hu, prob, index, _ = _cervical_top(6.0)  # the network reads the top as C6/C5
    assert all(i.anchor is None for i in column_instances(hu, prob, index, ref)[0])
    found = [(np.arange(40, 55), np.arange(40, 60)), (np.arange(25, 35), np.arange(23, 38)),
             (np.arange(10, 20), np.arange(8, 23))]
    med = np.full(60, 2.0)
    assert atlas_axis_top(found, med, 61)
    assert not atlas_axis_top(found, med, 60)  # the top instance reaches the last slice: cut off


def test_consecutive_labels_undo_the_networks_offset_and_slips():
    """The network reads L1-L4 as 0.45 too high with L2 slipping by another 0.3 (per-vertebra
    rounding: L1 L3 L3 L4, L2 lost). The instances keep one label each, consecutively."""
    labs = [T("L1"), T("L2"), T("L3"), T("L4")]
    ref, hu, prob, index, centres = _column(labs, index_offset=0.45, slip={T("L2"): 0.3})
    slice_mode = fuse(prob, index, ref, mode="slice")[0]
    assert T("L2") not in slice_mode
    cents, conf, voted = fuse(prob, index, ref, hu=hu)
    assert sorted(cents) == sorted(labs)
    for lab in labs:
        np.testing.assert_allclose(cents[lab], centres[lab], atol=1.01)
    assert set(np.unique(voted)) - {0} == set(labs)
    assert all(0 <= c <= 1 for c in conf.values())
    with pytest.raises(ValueError, match="needs the CT"):
        fuse(prob, index, ref)


def test_ribs_fix_the_numbering_at_the_thoracolumbar_transition():
    """T10-L3 read one level too high everywhere (T11-L4): the ribs of T10-T12 and their absence
    on L1-L3 put the numbering back; with the ribs hidden the network's numbering stays."""
    labs = [T("T10"), T("T11"), T("T12"), T("L1"), T("L2"), T("L3")]
    ref, hu, prob, index, centres = _column(labs, index_offset=1.0, ribs={T("T10"), T("T11"), T("T12")},
                                            size=(0, 60, 120))
    details = {}
    cents = fuse(prob, index, ref, hu=hu, details=details)[0]
    assert sorted(cents) == sorted(labs) and details == {"numbering": "ribs", "disagreement": -1.0}
    ref, hu, prob, index, centres = _column(labs, index_offset=0.0, ribs={T("T10"), T("T11"), T("T12")},
                                            size=(0, 60, 120))
    fuse(prob, index, ref, hu=hu, details=details)
    assert details == {"numbering": "ribs", "disagreement": 0.0}  # the ribs confirm the network's numbering
    fuse(prob, index, ref, mode="slice", details=details)
    assert details == {"numbering": None, "disagreement": 0.0}  # the other modes use no landmark
    ref, hu, prob, index, centres = _column(labs, index_offset=1.0, size=(0, 60, 40))  # +-40 mm: windows unseen
    no_ribs = fuse(prob, index, ref, hu=hu, details=details)[0]
    assert details == {"numbering": None, "disagreement": 0.0}
    assert sorted(no_ribs) == sorted(lab + 1 for lab in labs)
    # the windows in view and no rib anywhere: six vertebrae without ribs can only be L1-S1
    ref, hu, prob, index, centres = _column(labs, index_offset=1.0, size=(0, 60, 120))
    ribless = fuse(prob, index, ref, hu=hu, details=details)[0]
    # the network read T11-L4 (one level high): moved two levels down, a disagreement that is reported
    assert details == {"numbering": "ribs", "disagreement": 2.0}
    assert sorted(ribless) == [T(n) for n in ("L1", "L2", "L3", "L4", "L5", "S1")]


def test_rib_anchor_only_for_a_clean_pattern():
    """Seven vertebrae that are really T10..L4 (ribs on the first three), numbered from
    ``first``: the shift that makes the ribs agree with T1-T12, within 2 levels, for one run;
    None where the ribs fix no numbering (0 would claim they confirmed it)."""
    r, o = 4000.0, 100.0
    flags = [r, r, r, o, o, o, o]

    def numbered(first):
        return list(range(T(first), T(first) + 7))

    assert rib_anchor(numbered("T10"), flags) == 0  # right already: confirmed
    assert rib_anchor(numbered("T9"), flags) == 1
    assert rib_anchor(numbered("T11"), flags) == -1
    assert rib_anchor(numbered("T8"), flags) == 2
    assert rib_anchor(numbered("T7"), flags) is None  # 3 levels off: beyond what the ribs may move
    assert rib_anchor(numbered("T9"), [r, o, r, o, o, o, o]) is None  # two runs (shoulder, pelvis): not ribs
    assert rib_anchor(numbered("T9"), [r] * 7) is None  # no transition in view
    assert rib_anchor(numbered("T9"), [o] * 7) is None
    assert rib_anchor(numbered("T9"), [None, None, r, o, None, None, None]) == 1  # unknowns do not vote
    assert rib_anchor(numbered("T9"), [None] * 7) is None
    assert rib_anchor(numbered("T9"), [50.0, 50.0, 10.0, 0, 0, 0, 0]) is None  # too little bone to be ribs
    # a partly seen rib (between 10 and 40 % of the highest) is undecided, not "no rib" (which
    # would need a shift of 3): T10 and T11 first both agree, and the undecided third is taken
    # for L1 (below)
    assert rib_anchor(numbered("T9"), [r, r, 0.25 * r, o, o, o, o]) == 2
    # ... so the third may be T12 or L1: T10 and T11 first both agree; a partial score is common
    # at L1 (T12's rib reaches into its window), rare at T12, so the shift naming it L1 wins
    assert rib_anchor(numbered("T10"), [r, r, 0.25 * r, o, o, o, o]) == 1
    assert rib_anchor(numbered("T10"), [r, r, r, o, o, o, o]) == 0  # a clean transition confirms it
    # where no agreeing shift names an undecided vertebra T1 or L1 (here the third is unknown:
    # cut by the field of view), and the network's own numbering is one of several that agree,
    # the ribs fixed nothing
    assert rib_anchor(numbered("T10"), [r, r, None, o, o, o, o]) is None
    # one rib-bearing level beside undecided ones: any of three shifts agrees; the ribs still rule
    # out the network's numbering (T11-L1 would put a rib on L1), so the nearest that agrees
    assert rib_anchor(numbered("T12"), [0.25 * r, r, 0.25 * r, o, o, o, o]) == -1
    # T11-L1 with ribs on T12 only: 0 and -1 agree; 0 makes the undecided third L1
    assert rib_anchor(numbered("T11"), [0.25 * r, r, 0.25 * r, o, o, o, o]) == 0
    # the cervicothoracic end: C6 without a rib, a partial one, then ribs. C6 C7 T1 .. and C7 T1
    # T2 .. both agree; a partial rib at T1 (its short first rib) is common, at C7 rare
    assert rib_anchor(list(range(T("C6"), T("C6") + 6)), [o, 0.25 * r, r, r, r, r]) == 1
    assert rib_anchor(list(range(T("C7"), T("C7") + 6)), [o, 0.25 * r, r, r, r, r]) == 0



def test_rib_anchor_reads_a_rib_less_vertebra_as_t1_only_where_the_network_is_two_levels_off():
    """C6 C7 T1 T2 .. really, T1's rib missed by the window (scored 0): the clean pattern puts
    T1 at the first rib (one level too low). Numbered two levels high by the network, the shift
    one up (naming the rib-less vertebra T1, its only disagreement) is taken; one level high,
    the ribs rule; at the thoracolumbar end nothing is read so."""
    r, o = 4000.0, 0.0
    scores = [o, o, o, r, r, r, r]

    def numbered(first):
        return list(range(T(first), T(first) + 7))

    assert rib_anchor(numbered("C7"), scores) == -1  # two levels off the ribs: the missed T1 read
    assert rib_anchor(numbered("C7"), scores, t1_missed_gap=3) == -2  # the rule off: T1 at the first rib
    assert rib_anchor(numbered("C6"), scores) == -1  # one level off: the ribs rule (T1 at the first rib)
    # at the thoracolumbar end one level less would put a rib on L1: not a missed T1 rib
    assert rib_anchor(numbered("T12"), [r, r, r, o, o, o, o]) == -2


def test_rib_anchor_moves_a_ribless_run_out_of_the_thorax_only_where_one_shift_is_left():
    none = [0.0] * 6

    def run(first, n=6):
        return list(range(T(first), T(first) + n))

    assert rib_anchor(run("T12"), none) == 1  # six vertebrae without ribs: L1-S1 (L6 is read as S1)
    assert rib_anchor(run("T11"), none) == 2
    assert rib_anchor(run("L1"), none) is None  # no rib-bearing label: nothing to move
    assert rib_anchor(run("T12", 4), [0.0] * 4) is None  # L1-L4 or L2-L5: the ribs do not tell
    assert rib_anchor(run("C4"), none) is None  # C2-C7 (T1's rib is not always seen): never moved up
    assert rib_anchor(run("T12"), [0.0, None, None, None, None, None]) is None  # one window in view
    assert rib_anchor(run("T12"), [600.0, 0, 0, 0, 0, 0]) == 0  # a rib after all: a clean transition


def test_rib_score_is_unknown_where_the_window_leaves_the_field_of_view():
    labs = [T("T11"), T("T12"), T("L1"), T("L2")]
    ref, hu, prob, index, centres = _column(labs, ribs={T("T11"), T("T12")}, size=(0, 60, 120))
    assert rib_score(hu, ref, centres[T("T12")]) > 500
    assert rib_score(hu, ref, centres[T("L1")]) == 0.0
    narrow = Image(hu[:, :, 36:84], ref.spacing, (ref.origin[0] + 72.0, ref.origin[1], ref.origin[2]))  # x +-48 mm
    assert rib_score(narrow.array, narrow, centres[T("T12")]) is None  # +-48 mm: the rib window starts at 45
    # off-centre: one side seen to 90 mm, the other to 30: scored on the side in view
    both = rib_score(hu, ref, centres[T("T12")])
    left = Image(hu[:, :, 45:], ref.spacing, (ref.origin[0] + 90.0, ref.origin[1], ref.origin[2]))
    assert rib_score(left.array, left, centres[T("T12")]) == both > 500  # the bars are symmetric
    assert rib_score(left.array, left, centres[T("L1")]) == 0.0
    # the window runs 30 mm below; 15 of them suffice (a vertebra's own rib lies 10-20 mm under it)
    assert rib_score(hu, ref, centres[T("L2")]) == 0.0  # 15 mm above the volume's bottom: scored
    assert rib_score(hu, ref, centres[T("T12")], seen_below_mm=30.0) > 500
    assert rib_score(hu, ref, centres[T("L2")], seen_below_mm=30.0) is None
    assert rib_score(hu, ref, centres[T("L2")] - np.array([0.0, 0.0, 2.0])) is None  # 13 mm: unknown


def test_label_instances_drops_a_fragment_beyond_the_column():
    labs = [T("L2"), T("L3"), T("L4")]
    ref, hu, prob, index, centres = _column(labs)
    inst, _ = column_instances(hu, prob, index, ref)
    inst[-1].median_index = 3.0  # the last "vertebra" reads as C3: not part of this run
    got, shift, fixed_by = label_instances(inst)
    assert got == [T("L2"), T("L3"), None] and shift == 0 and fixed_by is None  # no hu: the network alone


def test_after_l5_comes_s1_and_nothing_below():
    labs = [T("L4"), T("L5"), T("S1")]
    ref, hu, prob, index, centres = _column(labs)
    inst, _ = column_instances(hu, prob, index, ref)
    for k, v in enumerate((22.6, 23.6, 24.6)):  # the network's index ~0.4 low: L4 L5 L6 when rounded
        inst[k].median_index = v
    assert label_instances(inst)[0] == [T("L4"), T("L5"), T("S1")]
    for k, v in enumerate((24.0, 25.0, 26.0)):  # numbered L5 L6 S1: the sacrum ends the run
        inst[k].median_index = v
    assert label_instances(inst)[0] == [T("L5"), T("S1"), None]


def test_a_missed_disc_is_split_at_the_darkest_slice():
    """Bodies of 10 slices; between the 2nd and 3rd the disc is too faint for a dip (bridged):
    the 21-slice segment is twice its neighbours and is cut at that faint disc; a run of equal
    bodies is left alone."""
    from SpineAILib.vertebrae.column import split_long

    prof = np.full(60, 300.0)
    prof[30] = 250.0  # the faint disc between slices 20-29 and 31-40
    segs = [np.arange(0, 10), np.arange(10, 20), np.arange(20, 41), np.arange(41, 51), np.arange(51, 60)]
    out = split_long(segs, prof)
    assert [(int(s[0]), int(s[-1])) for s in out] == [(0, 9), (10, 19), (20, 29), (30, 40), (41, 50), (51, 59)]
    assert len(split_long(segs[:2] + segs[3:], prof)) == 4


def test_a_lone_segment_is_split_by_the_nominal_vertebra_size():
    """A run that is one segment (every disc too faint for a dip) has no neighbours to compare
    with: measured against the nominal body height and disc at its level instead. Four bodies
    of 10 slices with faint 3-slice discs (48 slices) are cut at those discs; one body with its
    disc halves (13 slices) is left alone, and without ``nominal`` nothing changes."""
    from SpineAILib.vertebrae.column import nominal_height_disc, split_long

    prof = np.full(49, 300.0)
    for d in (11, 24, 37):  # discs of slices 10-12, 23-25, 36-38 (darkest in the middle)
        prof[d - 1: d + 2] = (260.0, 240.0, 260.0)
    seg = np.arange(0, 49)
    nominal = lambda s: (10.0, 3.0)  # noqa: E731
    out = split_long([seg], prof, nominal=nominal)
    assert [int(p[0]) for p in out] == [0, 11, 24, 37]
    assert len(split_long([seg], prof)) == 1
    assert len(split_long([np.arange(0, 13)], prof, nominal=nominal)) == 1
    # T6: 19 mm body, 5 mm disc (the published dimensions the dense labels use) at 2 mm slices
    assert nominal_height_disc(anatomy.vertebra_label("T6") + 0.3, 2.0) == (9.5, 2.5)
    assert nominal_height_disc(40.0, 1.0) == nominal_height_disc(anatomy.vertebra_label("L5"), 1.0)


def test_a_vertebra_cut_by_a_dip_inside_it_is_merged_back():
    """Bodies of 10 slices; the third was cut by a dip inside it into 4 + 6 slices: the 4-slice
    piece (under 0.55 of its neighbours) joins its shorter neighbour, the 6 (together 10). A
    short first or last segment (a vertebra cut by the field of view) stays, and so does a short
    piece whose merge would be too long for one vertebra (5 + 10 > 1.4 x 10)."""
    from SpineAILib.vertebrae.column import merge_short

    prof = np.full(80, 300.0)

    def runs(*lengths):
        bounds = np.cumsum((0,) + lengths)
        return [np.arange(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]

    out = merge_short(runs(10, 10, 4, 6, 10, 10), prof)
    assert [len(s) for s in out] == [10, 10, 10, 10, 10]
    assert [int(s[0]) for s in out] == [0, 10, 20, 30, 40]
    assert [len(s) for s in merge_short(runs(3, 10, 10, 10, 4), prof)] == [3, 10, 10, 10, 4]
    assert [len(s) for s in merge_short(runs(10, 10, 5, 12, 10, 10), prof)] == [10, 10, 5, 12, 10, 10]


def test_four_vertebrae_over_three_missed_discs_are_split_into_four():
    """A 43-slice segment between bodies of 10 holds four bodies whose three faint discs made no
    dip: it is cut into four at those discs (at most three parts left two bodies together)."""
    from SpineAILib.vertebrae.column import split_long

    prof = np.full(83, 300.0)
    for d in (30, 41, 52):  # faint discs between the bodies of slices 20-29, 31-40, 42-51, 53-62
        prof[d] = 250.0
    segs = [np.arange(0, 10), np.arange(10, 20), np.arange(20, 63), np.arange(63, 73), np.arange(73, 83)]
    out = split_long(segs, prof)
    assert [(int(s[0]), int(s[-1])) for s in out][2:6] == [(20, 29), (30, 40), (41, 51), (52, 62)]
    assert len(split_long(segs, prof, max_parts=3)) == 7


def test_the_rib_window_tilts_with_the_column():
    """A rib 15 mm below a vertebra tilted by 0.6 (dz/dy: the column bowed forwards) lies 12-15
    mm above its centroid 45-50 mm behind it, outside the untilted window (30 mm below to 8
    above) but inside the tilted one; a rib 20 mm above the tilted plane (the level above's)
    is in neither. The slope comes from the neighbours' centroids."""
    from SpineAILib.vertebrae.column import Instance, column_slope

    ref = Image(np.zeros((61, 51, 101), np.float32), (2.0, 2.0, 2.0), (-100.0, -40.0, -60.0))
    x = np.arange(101) * 2.0 - 100.0
    y = np.arange(51) * 2.0 - 40.0
    z = np.arange(61) * 2.0 - 60.0
    zz, yy, xx = np.meshgrid(z, y, x, indexing="ij")
    bar = (np.abs(xx) >= 50) & (np.abs(xx) <= 80) & (yy >= 45) & (yy <= 50)

    def rib_at(perpendicular_mm):
        return np.where(bar & (np.abs(zz - 0.6 * yy - perpendicular_mm) <= 2.0), 600.0, 0.0).astype(np.float32)

    centre = np.zeros(3)
    own, above = rib_at(-15.0), rib_at(20.0)
    assert rib_score(own, ref, centre) == 0.0
    assert rib_score(own, ref, centre, slope=(0.0, 0.6)) > 500
    assert rib_score(above, ref, centre, slope=(0.0, 0.6)) == 0.0
    # a column running 0.6 mm forwards (-y) per mm upwards: its perpendicular plane rises backwards
    inst = [Instance(np.arange(3), np.array([0.0, -0.6 * dz, dz]), 0.0, 1.0) for dz in (20.0, 0.0, -20.0)]
    assert column_slope(inst, 1) == pytest.approx((0.0, 0.6))
    assert column_slope(inst, 0) == pytest.approx((0.0, 0.6))
    assert column_slope(inst[:1], 0) == (0.0, 0.0)
