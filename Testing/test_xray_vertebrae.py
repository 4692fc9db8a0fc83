"""Radiograph vertebra labelling: data loader, alignment geometry, label assignment, targets,
canvas geometry and the output contract on exact synthetic answers; the shipped lateral model on
the real validation radiographs (Testing/test_xray_vertebrae_model.py runs the model)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from SpineAILib.anatomy import LATERAL_VERTEBRAE
from SpineAILib.errors import InputError
from SpineAILib.io.lateral_keypoints import keypoint_slots, load_coco_keypoints, vertebra_centroids
from SpineAILib.phantoms import LateralSpinePhantomConfig, lateral_spine_phantom
from SpineAILib.xray_vertebrae.alignment import sagittal_alignment
from SpineAILib.xray_vertebrae.model import anatomical_corners, assign_labels, soft_argmax
from SpineAILib.xray_vertebrae.outputs import CSV_HEADER, csv_row, image_stem, read_outputs, write_outputs
from SpineAILib.xray_vertebrae.predict import VertebraFinding, XrayVertebraeResult, consistency_warnings
from SpineAILib.xray_vertebrae.preprocess import fit_matrix, sample_canvas, to_canvas_points

V = len(LATERAL_VERTEBRAE)


# ------------------------------------------------------------------------------- data
def test_keypoint_names_map_to_vertebra_and_corner():
    assert keypoint_slots(["C2BB", "C2BF", "L3TB", "L3TF", "L3BB", "L3BF", "S1TF"]) == [
        (0, 2), (0, 3), (20, 0), (20, 1), (20, 2), (20, 3), (23, 1)]
    with pytest.raises(InputError, match="Unknown keypoint name 'X1TB'"):
        keypoint_slots(["X1TB"])


def test_real_lateral_annotations_load(data_dir):
    cases = load_coco_keypoints(data_dir / "xray_lateral")
    assert len(cases) == 26
    whole = [c for c in cases if c.present.all()]
    assert len(whole) == 25
    c = whole[0]
    assert np.isnan(c.corners[0, :2]).all() and not np.isnan(c.corners[0, 2:]).any()  # C2: lower endplate
    assert np.isnan(c.corners[-1, 2:]).all() and not np.isnan(c.corners[-1, :2]).any()  # S1: plate
    lumbar = next(c for c in cases if not c.present.all())
    assert [LATERAL_VERTEBRAE[i] for i in np.flatnonzero(lumbar.present)] == LATERAL_VERTEBRAE[-7:]  # T12-S1
    # vertebrae run top to bottom
    assert np.all(np.diff(c.centroids[:, 1]) > 0)


def test_centroid_is_mean_of_known_corners():
    c = np.full((2, 4, 2), np.nan)
    c[0, 2:] = [[0, 0], [4, 2]]
    c[1] = [[0, 0], [2, 0], [0, 2], [2, 2]]
    np.testing.assert_allclose(vertebra_centroids(c), [[2, 1], [1, 1]])


# -------------------------------------------------------------------------- alignment
def test_alignment_exact_on_phantom_and_invariant_to_mirror_and_rotation():
    ph = lateral_spine_phantom(LateralSpinePhantomConfig(lordosis_c=12, kyphosis_t=44, lordosis_l=56))
    a = sagittal_alignment(ph.corners)
    # tilts are linear per region: C2 +6 .. C7 -6; T1 -22 .. T12 +22 (T4 at -10); L1 18 .. L5 -38,
    # sacral plate L5 - 20
    assert a.c2_c7_lordosis == pytest.approx(12.0, abs=1e-6)
    assert a.t4_t12_kyphosis == pytest.approx(22 + 22 - 44 * 3 / 11, abs=1e-6)
    assert a.l1_s1_lordosis == pytest.approx(18 + 38 + 20, abs=1e-6)
    assert a.sacral_slope == pytest.approx(58.0, abs=1e-6)
    mirrored = ph.corners.copy()
    mirrored[..., 0] = 1000 - mirrored[..., 0]
    m = sagittal_alignment(mirrored)
    for k, v in a.angles().items():
        assert getattr(m, k) == pytest.approx(v, abs=1e-9)
    th = np.radians(7.0)
    rot = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    r = sagittal_alignment(ph.corners @ rot.T)
    for k in ("c2_c7_lordosis", "t4_t12_kyphosis", "l1_s1_lordosis"):
        assert getattr(r, k) == pytest.approx(getattr(a, k), abs=1e-6)
    assert abs(r.sacral_slope - a.sacral_slope) == pytest.approx(7.0, abs=1e-6)


def test_alignment_heights_and_missing_endplates():
    c = np.full((V, 4, 2), np.nan)
    L3, L4 = LATERAL_VERTEBRAE.index("L3"), LATERAL_VERTEBRAE.index("L4")
    c[L3] = [[10, 0], [50, 0], [10, 30], [50, 24]]  # posterior height 30, anterior 24
    c[L4] = [[10, 38], [50, 36], [10, 70], [50, 70]]
    a = sagittal_alignment(c)
    assert a.vertebra_heights["L3"] == {"anterior": 24.0, "posterior": 30.0}
    assert a.disc_heights["L3-L4"] == {"anterior": 12.0, "posterior": 8.0}
    assert a.angles() == {"c2_c7_lordosis": None, "t4_t12_kyphosis": None, "l1_s1_lordosis": None,
                          "sacral_slope": None}
    # a vertebra marked as not found does not count
    ph = lateral_spine_phantom()
    found = np.ones(V, bool)
    found[LATERAL_VERTEBRAE.index("T12")] = False
    b = sagittal_alignment(ph.corners, found)
    assert b.t4_t12_kyphosis is None and b.l1_s1_lordosis is not None


# ---------------------------------------------------------------------- label assignment
def _dets(levels, ys, score=0.8, identity=None):
    return [{"centre": np.array([10.0, y]), "corners": np.zeros((4, 2)), "score": score,
             "identity": identity if identity is not None else np.full(V, 1.0 / (V + 1)), "level": lv}
            for lv, y in zip(levels, ys, strict=True)]


def test_assign_labels_follows_the_level_map_in_order():
    # T3..T9 with level estimates off by up to 0.8 and one false-order estimate
    true = list(range(8, 15))
    noisy = [8.4, 9.7, 9.8, 11.2, 12.0, 12.6, 14.3]
    dets = _dets(noisy, [20.0 * k for k in range(7)])
    labels = assign_labels(dets, None, 20.0, "full")
    assert labels == true
    # the same detections given in another order keep their names
    perm = [3, 0, 6, 1, 5, 2, 4]
    assert assign_labels([dets[i] for i in perm], None, 20.0, "full") == [true[i] for i in perm]


def test_assign_labels_skips_a_missed_vertebra_and_weak_detections():
    dets = _dets([0.1, 1.0, 3.1, 3.9], [0, 10, 30, 40]) + _dets([5.0], [50], score=0.05)
    assert assign_labels(dets, None, 10.0, "full") == [0, 1, 3, 4, -1]


def test_unet_decoding_uses_only_the_identity_maps():
    ident = np.full((3, V), 0.001)
    for k, v in enumerate((5, 6, 7)):
        ident[k, v] = 0.97
    dets = [{"centre": np.array([0.0, 10.0 * k]), "corners": np.zeros((4, 2)), "score": 0.9, "identity": ident[k],
             "level": 20.0} for k in range(3)]
    assert assign_labels(dets, None, 10.0, "unet") == [5, 6, 7]
    # the RC prior moves the names in the paper's U-Net + RC decoding when identity is flat
    flat = [{**d, "identity": np.full(V, 1.0 / V)} for d in dets]
    prior = np.array([[0.0, 10.0 * (i - 10)] for i in range(V)])  # vertebra i expected at y = 10 (i - 10)
    assert assign_labels(flat, prior, 10.0, "unet_rc") == [10, 11, 12]


def test_soft_argmax_finds_a_peak_exactly():
    import torch

    heat = torch.zeros(1, 2, 8, 16)
    heat[0, 0, 3, 5] = 1.0
    heat[0, 1, 6, 12] = 1.0
    xy = soft_argmax(heat, beta=60.0)[0].numpy()
    np.testing.assert_allclose(xy, [[5.5 / 16, 3.5 / 8], [12.5 / 16, 6.5 / 8]], atol=1e-6)


def test_consistency_warnings_name_missing_levels():
    names = ["T4", "T5", "T7"]
    w = consistency_warnings(names, np.array([[0, 0], [0, 10], [0, 30.0]]))
    assert any("T6" in m for m in w)
    w = consistency_warnings(["T4", "T5"], np.array([[0, 10], [0, 0.0]]))
    assert any("not in order" in m for m in w)


# ------------------------------------------------------------------- targets and canvas
def test_canvas_sampling_and_point_mapping_agree():
    import torch

    src = np.zeros((600, 120), np.float32)
    pts = np.array([[20.0, 40.0], [90.0, 500.0], [60.0, 300.0]])
    for x, y in pts.astype(int):
        src[y - 4:y + 5, x - 4:x + 5] = 1.0  # 9 x 9 bright squares centred on the points
    for window, inside in ((None, [True] * 3), ((150.0, 450.0), [False, False, True])):
        m = fit_matrix(src.shape, (128, 64), window)
        canvas = sample_canvas([torch.as_tensor(src)], [m], (128, 64))[0, 0].numpy()
        q = to_canvas_points(pts, m)
        for (x, y), keep in zip(q, inside, strict=True):
            on = 0 <= round(y) < 128 and 0 <= round(x) < 64
            assert on == keep
            if on:
                assert canvas[int(round(y)), int(round(x))] == pytest.approx(1.0)
        # and nothing else is bright: the canvas holds the squares' area (81 px each) at its scale
        assert canvas.sum() == pytest.approx(sum(inside) * 81 / m[0, 0] ** 2, rel=0.25)


def test_targets_peak_at_centres_and_offsets_rebuild_corners():
    from SpineAILib.xray_vertebrae.train import make_targets

    ph = lateral_spine_phantom(LateralSpinePhantomConfig(rows=512, cols=256))
    heat, reg, reg_mask, ident, level, facing, corner_heat, centres, present = make_targets(ph.corners[None],
                                                                                           (256, 128), 2)
    assert present[0].all()
    assert facing[0] == 0.0  # the phantom faces left: anterior corners at smaller x
    mirrored = ph.corners.copy()
    mirrored[..., 0] = 255 - mirrored[..., 0]
    assert make_targets(mirrored[None], (256, 128), 2)[5][0] == 1.0
    assert int((heat[0] == 1).sum()) == V
    pm = (ph.corners - 0.5) / 2
    cen = vertebra_centroids(pm)
    L2 = LATERAL_VERTEBRAE.index("L2")
    ix, iy = int(round(cen[L2, 0])), int(round(cen[L2, 1]))
    assert heat[0, iy, ix] == 1.0 and ident[0, L2, iy, ix] > 0.9
    assert level[0, iy, ix] * 10 == pytest.approx(L2)
    # corner heatmaps: 1 at each known corner's pixel, in image order (facing left: TL = top anterior)
    tax, tay = (int(round(v)) for v in pm[L2, 1])
    assert corner_heat[0, 0, tay, tax] == 1.0
    rebuilt = np.array([ix, iy]) + reg[0, 2:, iy, ix].reshape(4, 2)
    # offsets are in image order (TL, TR, BL, BR): facing left, the anterior corners are the left ones
    np.testing.assert_allclose(rebuilt, pm[L2][[1, 0, 3, 2]], atol=1e-5)
    np.testing.assert_allclose(anatomical_corners(rebuilt, False), pm[L2], atol=1e-5)
    # C2 has no top corners: their offsets are masked out
    c2 = vertebra_centroids(pm)[0]
    jx, jy = int(round(c2[0])), int(round(c2[1]))
    assert reg_mask[0, 2:6, jy, jx].sum() == 0 and reg_mask[0, 6:, jy, jx].all()


# ---------------------------------------------------------------------------- outputs
def _result() -> XrayVertebraeResult:
    ph = lateral_spine_phantom()
    found = []
    for i, name in enumerate(LATERAL_VERTEBRAE):
        keys = [k for k, p in zip(("top_posterior", "top_anterior", "bottom_posterior", "bottom_anterior"),
                                  ph.corners[i], strict=True) if not np.isnan(p[0])]
        found.append(VertebraFinding(name, tuple(ph.centroids[i]),
                                     {k: tuple(ph.corners[i][["top_posterior", "top_anterior", "bottom_posterior",
                                                               "bottom_anterior"].index(k)]) for k in keys}, 0.9))
    return XrayVertebraeResult("lateral", found, sagittal_alignment(ph.corners), ["a warning"], (460, 1100))


def test_outputs_round_trip_and_contract(tmp_path):
    r = _result()
    p = write_outputs(r, tmp_path, "case 1.nii.gz")
    assert p.name == "case 1.json"
    data = json.loads(p.read_text())
    assert set(data) >= {"image", "view", "vertebrae", "alignment", "warnings"}
    v = data["vertebrae"][5]
    assert set(v) == {"name", "centroid", "corners", "confidence"}
    assert set(v["corners"]) == {"top_posterior", "top_anterior", "bottom_posterior", "bottom_anterior"}
    assert set(data["vertebrae"][0]["corners"]) == {"bottom_posterior", "bottom_anterior"}
    back = read_outputs(tmp_path, "case 1.nii.gz")
    assert back.names() == r.names()
    for k, val in r.alignment.angles().items():
        assert getattr(back.alignment, k) == pytest.approx(val, abs=0.02)
    assert CSV_HEADER == ["image", "c2_c7_lordosis", "t4_t12_kyphosis", "l1_s1_lordosis", "sacral_slope"]
    row = csv_row("x.png", r)
    assert row[0] == "x.png" and float(row[2]) == pytest.approx(r.alignment.t4_t12_kyphosis, abs=0.01)
    assert csv_row("bad.png", InputError("broken")) == ["bad.png", "", "", "", ""]
    err = write_outputs(InputError("unreadable"), tmp_path, "bad.png")
    assert json.loads(err.read_text())["error"] == "unreadable"
    with pytest.raises(InputError, match="unreadable"):
        read_outputs(tmp_path, "bad.png")
    assert image_stem("a.b.png") == "a.b" and image_stem("scan.nii.gz") == "scan"
    with open(tmp_path / "t.csv", "w", newline="") as f:
        csv.writer(f).writerow(row)


def test_facing_from_the_sagittal_curves():
    from SpineAILib.xray_vertebrae.model import facing_from_curvature

    ph = lateral_spine_phantom()  # faces left: anterior corners at smaller x
    cen = ph.centroids
    assert facing_from_curvature(cen, LATERAL_VERTEBRAE) is False
    mirrored = cen.copy()
    mirrored[:, 0] = 500 - mirrored[:, 0]
    assert facing_from_curvature(mirrored, LATERAL_VERTEBRAE) is True
    few = np.full_like(cen, np.nan)
    few[5:8] = cen[5:8]
    assert facing_from_curvature(few, LATERAL_VERTEBRAE) is None  # no curve in view
    straight = cen.copy()
    straight[:, 0] = 100.0
    assert facing_from_curvature(straight, LATERAL_VERTEBRAE) is None


def test_real_annotations_face_the_way_their_curves_say(data_dir):
    from SpineAILib.xray_vertebrae.model import facing_from_curvature

    for c in load_coco_keypoints(data_dir / "xray_lateral"):
        right = np.nansum(c.corners[:, [1, 3], 0] - c.corners[:, [0, 2], 0]) > 0
        assert facing_from_curvature(c.centroids, LATERAL_VERTEBRAE) == right, c.name
