"""Cobb angles: the AASCE rule on hand-made spines and on the real 481 cases, the loader, the
canvas mapping, the scene output, the shipped model on real images, the CLI and bad inputs."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from SpineAILib import anatomy
from SpineAILib.cobb.angles import cobb_angles, endplate_midpoints, is_s_curve, smape
from SpineAILib.cobb.data import corner_order_problems, fix_corner_order, load_aasce, split_cases
from SpineAILib.cobb.preprocess import CANVAS, to_canvas
from SpineAILib.errors import InputError
from SpineAILib.io import Image


def spine_from_tilts(tilts_deg, height=40.0, width=60.0, gap=10.0, x0=500.0, y0=100.0) -> np.ndarray:
    """68 landmarks of rectangles with the given tilts, stacked along the curve they imply
    (each vertebra's axis follows its tilt), AASCE corner order."""
    pts, c = [], np.array([x0, y0])
    for i, t in enumerate(np.radians(tilts_deg)):
        ex = np.array([np.cos(t), -np.sin(t)])  # endplate direction (x right, y down)
        ey = np.array([np.sin(t), np.cos(t)])  # column direction, downwards
        if i > 0:
            c = c + (height + gap) * ey
        pts += [c - width / 2 * ex - height / 2 * ey, c + width / 2 * ex - height / 2 * ey,
                c - width / 2 * ex + height / 2 * ey, c + width / 2 * ex + height / 2 * ey]
    return np.array(pts)


def test_straight_spine_is_zero():
    a = cobb_angles(spine_from_tilts(np.zeros(17)), 2000)
    assert a.values == pytest.approx((0.0, 0.0, 0.0), abs=1e-6)
    assert not a.s_curve


def test_single_c_curve():
    tilts = np.linspace(15, -15, 17)  # T1 tilted one way, L5 the other: one C curve
    a = cobb_angles(spine_from_tilts(tilts), 2000)
    assert not a.s_curve
    assert a.main.angle_deg == pytest.approx(30.0, abs=1e-4)
    assert (a.main.upper_end, a.main.lower_end) == ("T1", "L5")
    assert a.upper.angle_deg == pytest.approx(0.0, abs=1e-4) and a.lower.angle_deg == pytest.approx(0.0, abs=1e-4)
    assert a.main.apex in anatomy.AASCE_VERTEBRAE[6:11]  # apex near the middle of the C
    np.testing.assert_allclose(a.vertebra_tilts_deg, tilts, atol=1e-9)


def test_s_curve_upper_and_lower_branches():
    i = np.arange(17)
    tilts = 20 * np.sin(2 * np.pi * i / 16)  # +20 at T5, -20 at L1: an S
    lm = spine_from_tilts(tilts)
    assert is_s_curve(endplate_midpoints(lm))
    # Main curve in the upper half of a tall image: curves above and below the main one.
    a = cobb_angles(lm, image_height=5000)
    assert a.s_curve
    assert a.main.angle_deg == pytest.approx(40.0, abs=1e-4)
    assert (a.main.upper_end, a.main.lower_end) == ("T5", "L1")
    assert a.upper.angle_deg == pytest.approx(20.0, abs=1e-4) and (a.upper.upper_end, a.upper.lower_end) == ("T1", "T5")
    assert a.lower.angle_deg == pytest.approx(20.0, abs=1e-4) and (a.lower.upper_end, a.lower.lower_end) == ("L1", "L5")
    # Main curve in the lower half: the third angle is the curve above the upper one.
    b = cobb_angles(lm, image_height=100)
    assert b.main.angle_deg == pytest.approx(40.0, abs=1e-4)
    assert b.upper.angle_deg == pytest.approx(20.0, abs=1e-4)
    assert b.lower.angle_deg == pytest.approx(0.0, abs=1e-4)


def test_angle_rule_bad_input():
    with pytest.raises(InputError, match=r"\(68, 2\)"):
        cobb_angles(np.zeros((60, 2)), 100)
    lm = spine_from_tilts(np.zeros(17))
    lm[5] = np.nan
    with pytest.raises(InputError, match="NaN"):
        cobb_angles(lm, 100)


def test_smape_formula():
    assert smape([[10, 5, 5]], [[10, 5, 5]]) == 0.0
    assert smape([[12, 4, 4], [0, 0, 0]], [[10, 5, 5], [0, 0, 0]]) == pytest.approx((4 / 40 * 100 + 0) / 2)


def test_phantom_landmarks_give_the_phantom_cobb():
    from SpineAILib.phantoms import APPhantomConfig, ap_radiograph_phantom

    ph = ap_radiograph_phantom(APPhantomConfig(amplitudes_px=(40.0, 25.0)))
    a = cobb_angles(ph.landmarks, ph.image.array.shape[0])
    assert a.main.angle_deg == pytest.approx(ph.cobb_main_deg, abs=1e-6)
    assert {a.main.upper_end, a.main.lower_end} == set(ph.main_end_vertebrae)


@pytest.fixture(scope="module")
def aasce(data_dir):
    return load_aasce(data_dir / "aasce")


def test_rule_reproduces_reference_angles_on_481_cases(aasce):
    import SimpleITK as sitk

    assert len(aasce) == 481
    preds, truths = [], []
    for c in aasce:
        r = sitk.ImageFileReader()
        r.SetFileName(str(c.image_path))
        r.ReadImageInformation()
        preds.append(cobb_angles(c.landmarks, r.GetSize()[1]).values)
        truths.append(c.angles)
    assert smape(preds, truths) < 0.5
    assert np.abs(np.array(preds) - np.array(truths)).max() < 0.01  # degrees


def test_loader_mat_and_csv_agree(data_dir, aasce):
    csv_cases = load_aasce(data_dir / "aasce", source="csv")
    for a, b in zip(aasce[:20], csv_cases[:20], strict=True):
        assert a.name == b.name
        # landmarks.csv stores 5 significant digits of the 0-1 scaled coordinates
        assert np.abs(a.landmarks - b.landmarks).max() < 0.5
        np.testing.assert_allclose(a.angles, b.angles)


def test_corner_order_errors_detected_and_fixed(aasce):
    lm = spine_from_tilts(np.linspace(10, -10, 17))
    assert corner_order_problems(lm) == []
    broken = lm.copy()
    broken[[8, 10]] = broken[[10, 8]]  # vertebra 3: TL <-> BL
    assert corner_order_problems(broken) == ["vertebra 3: top corners not above bottom corners"]
    np.testing.assert_allclose(fix_corner_order(broken), lm)
    within = [c.name for c in aasce if any("corners" in p for p in corner_order_problems(c.landmarks))]
    assert len(within) == 6  # the data README: 475 of 481 follow the corner order exactly


def test_split_is_seeded_by_patient_and_stored(aasce):
    from SpineAILib.cobb.train import DEFAULT_SPLIT

    names = [c.name for c in aasce]
    s1, s2 = split_cases(names, 0.2, 0), split_cases(names, 0.2, 0)
    assert s1 == s2 and not set(s1["train"]) & set(s1["val"])
    assert set(s1["train"]) | set(s1["val"]) == set(names)
    stored = json.loads(DEFAULT_SPLIT.read_text(encoding="utf-8"))
    assert not set(stored["train"]) & set(stored["val"]) and stored["seed"] == 0
    assert len(stored["train"]) + len(stored["val"]) + len(stored["excluded"]) == 481


def test_canvas_mapping_back_to_original_pixels():
    rng = np.random.default_rng(0)
    arr = rng.uniform(0, 50, (2500, 1000)).astype(np.float32)
    arr[1200:1210, 600:610] = 255  # bright marker around pixel (604.5, 1204.5)
    canvas, rec = to_canvas(arr)
    assert canvas.shape == CANVAS and 0 <= canvas.min() and canvas.max() <= 1
    pts = rng.uniform(0, 999, (68, 2))
    np.testing.assert_allclose(rec.to_original(rec.to_canvas(pts)), pts, atol=1e-9)
    cy, cx = np.unravel_index(np.argmax(canvas), canvas.shape)
    np.testing.assert_allclose(rec.to_original(np.array([cx, cy])), [604.5, 1204.5], atol=1.0 / rec.scale)


# ------------------------------------------------------------------ the shipped model
@pytest.fixture(scope="module")
def val_cases(aasce):
    from SpineAILib.cobb.train import DEFAULT_SPLIT

    val = set(json.loads(DEFAULT_SPLIT.read_text(encoding="utf-8"))["val"])
    return [c for c in aasce if c.name in val][:6]


def test_shipped_model_on_real_validation_images(val_cases):
    from SpineAILib.cobb import estimate

    preds, truths, errs = [], [], []
    for c in val_cases:
        r = estimate(c.image_path, device="cpu")
        preds.append(r.values)
        truths.append(c.angles)
        errs.append(np.linalg.norm(r.landmarks - c.landmarks, axis=1).mean())
    assert smape(preds, truths) < 25.0  # sane ceiling on 6 images; the full split is in the model card
    assert np.median(errs) < 60.0  # pixels on ~1000 x 2500 images


def test_shipped_model_card_is_verified_and_honest():
    from SpineAILib.models import load_card
    from SpineAILib.models.registry import verify_weights

    card = load_card("cobb_landmarks")
    verify_weights(card)
    assert card.task == "cobb" and "AASCE" in card.training["data"]
    val = card.metrics["validation_split"]
    assert val["cases"] >= 70 and 0 < val["smape"] < 100
    assert card.commit and card.date


def test_estimate_rejects_a_ct_volume(random_volume):
    from SpineAILib.cobb import estimate

    with pytest.raises(InputError, match="expects a 2D radiograph, but got a 3D volume"):
        estimate(random_volume, device="cpu")
    with pytest.raises(InputError, match="constant"):
        estimate(Image(np.zeros((300, 100), np.uint8), (1.0, 1.0)), device="cpu")


def test_non_spine_images_are_flagged_low_confidence():
    from SpineAILib.cobb import estimate
    from SpineAILib.phantoms import lateral_cervical_phantom

    noise = Image(np.random.default_rng(0).uniform(0, 255, (1200, 500)).astype(np.uint8), (1.0, 1.0))
    for image in (noise, lateral_cervical_phantom().image):
        r = estimate(image, device="cpu")
        # flagged by the model's own detection scores, not only by the shape check
        assert r.low_confidence and any(w.startswith("Low confidence") for w in r.warnings)


def test_real_lateral_radiographs_are_flagged_with_a_low_confidence(data_dir):
    """The real sagittal radiographs are not AP views: each is flagged, and the weak-detection
    ones (the flag meant for non-AP views) carry a confidence of at most 0.2."""
    from SpineAILib.cobb import estimate
    from SpineAILib.cobb.predict import WEAK_DETECTION_CONFIDENCE

    files = sorted((data_dir / "xray_lateral" / "images").glob("*.png"))
    assert len(files) >= 20
    results = [estimate(f, device="cpu") for f in files]
    assert all(r.low_confidence for r in results)
    weak = [r for r in results if any(w.startswith("Low confidence") for w in r.warnings)]
    assert len(weak) >= 0.9 * len(files)
    assert all(r.confidence <= WEAK_DETECTION_CONFIDENCE for r in weak)


def test_scene_output_on_radiograph_with_pixel_spacing(val_cases):
    pytest.importorskip("slicer")
    from SpineAILib.cobb import estimate
    from SpineAILib.cobb.scene import write_cobb_result
    from SpineAILib.io import read_image
    from SpineAILib.scene import add_volume, fiducials_ras, new_scene, table_columns

    img = read_image(val_cases[0].image_path, expect_ndim=2)
    img = Image(img.array, (0.143, 0.143), (-70.0, 20.0), np.eye(2))  # a typical detector pixel size
    result = estimate(img, device="cpu")
    scene = new_scene()
    add_volume(scene, img, "AP")
    nodes = write_cobb_result(scene, img, result, prefix="AP Cobb")
    labels, ras = fiducials_ras(nodes["landmarks"])
    assert len(labels) == 68 and labels[0] == "T1-TL" and labels[-1] == "L5-BR"
    expected = np.stack([-(-70.0 + 0.143 * result.landmarks[:, 0]), -(20.0 + 0.143 * result.landmarks[:, 1]),
                         np.zeros(68)], -1)
    np.testing.assert_allclose(ras, expected, atol=1e-9)
    table = table_columns(nodes["table"])
    assert table["Angle"] == ["Main curve", "Upper curve", "Lower curve"]
    np.testing.assert_allclose(table["Value (deg)"], np.round(result.values, 2))
    for key, value in zip(("main", "upper", "lower"), result.values, strict=True):
        if value > 0:  # markup value (physical space, anisotropy-free here) equals the reported angle
            # (to float32 rounding: the reported angle comes from float32 landmarks, the markup's
            # from double positions; 1.04e-6 degrees apart on one CPU, and the table shows 0.01)
            assert nodes[f"{key}_angle"].GetAngleDegrees() == pytest.approx(value, abs=1e-4)


def test_cli_batch_csv_and_landmarks(tmp_path, val_cases):
    import shutil

    from SpineAILib.cli import EXIT_OK, main
    from SpineAILib.cobb.outputs import read_outputs

    folder = tmp_path / "xrays"
    folder.mkdir()
    for c in val_cases[:2]:
        shutil.copy(c.image_path, folder / c.image_path.name)
    (folder / "broken.png").write_bytes(b"not a png")
    out_csv = tmp_path / "out.csv"
    code = main(["cobb", str(folder), "--csv", str(out_csv), "--landmarks", str(tmp_path / "lm"), "--device", "cpu",
                 "--quiet"])
    assert code == EXIT_OK
    rows = list(csv.reader(open(out_csv, encoding="utf-8")))
    assert rows[0][:4] == ["image", "main", "upper", "lower"]
    assert len(rows) == 4
    bad = next(r for r in rows if r[0] == "broken.png")
    assert bad[1] == "" and bad[-1].startswith("error:")
    good = next(r for r in rows if r[0] == val_cases[0].image_path.name)
    data = json.loads((tmp_path / "lm" / f"{val_cases[0].image_path.name}.json").read_text(encoding="utf-8"))
    assert data["image"] == val_cases[0].image_path.name
    back = read_outputs(tmp_path / "lm", val_cases[0].image_path.name)
    np.testing.assert_allclose(back.values, [float(v) for v in good[1:4]], atol=1e-3)
    assert main(["cobb", str(tmp_path / "missing"), "--device", "cpu", "--quiet"]) == 2


def test_plausibility_checks_on_hand_made_spines():
    from SpineAILib.cobb.predict import plausibility_warnings

    good = spine_from_tilts(np.linspace(10, -10, 17))
    assert plausibility_warnings(good, np.full(17, 0.8)) == []
    weak = plausibility_warnings(good, np.full(17, 0.3))
    assert len(weak) == 1 and weak[0].startswith("Low confidence")
    off = good.copy()
    off[4 * 8:4 * 8 + 4, 0] += 120  # vertebra 9 found two widths to the side (on a rib)
    assert any("off the column" in w for w in plausibility_warnings(off, np.full(17, 0.8)))
    doubled = good.copy()
    doubled[4 * 9:4 * 9 + 4] = doubled[4 * 8:4 * 8 + 4] + [0, 2]  # the same vertebra twice
    assert any("irregularly spaced" in w for w in plausibility_warnings(doubled, np.full(17, 0.8)))


def test_training_script_runs_and_resumes(tmp_path, data_dir, capsys):
    """A tiny seeded run on real data: config saved, history logged with validation SMAPE,
    fp16 weights written, and a second call continues from the checkpoint."""
    import csv as _csv

    from SpineAILib.cobb.train import main as train_main

    args = ["--data", str(data_dir / "aasce"), "--output", str(tmp_path / "run"), "--split",
            str(tmp_path / "split.json"), "--max-train-cases", "4", "--max-val-cases", "3", "--batch-size", "2",
            "--val-every", "1", "--device", "cpu"]
    assert train_main([*args, "--epochs", "1"]) == 0
    assert json.loads((tmp_path / "run" / "config.json").read_text(encoding="utf-8"))["seed"] == 0
    assert (tmp_path / "run" / "best_fp16.pt").is_file() and (tmp_path / "run" / "last.pt").is_file()
    assert train_main([*args, "--epochs", "2"]) == 0
    assert "resumed at step 2" in capsys.readouterr().out  # 4 cases, batch 2: one epoch is 2 steps
    rows = list(_csv.DictReader(open(tmp_path / "run" / "history.csv", encoding="utf-8")))
    assert [r["epoch"] for r in rows] == ["0", "1"] and all(float(r["smape"]) >= 0 for r in rows)


def test_upside_down_radiographs_are_flagged(val_cases):
    """The vertebrae are found more clearly in an upside-down radiograph turned back: flagged from
    the model's own scores, and never on the same radiographs upright."""
    from SpineAILib.cobb.predict import estimate, orientation_warning
    from SpineAILib.io import read_image

    assert orientation_warning(0.8, 0.7) == [] and "upside down" in orientation_warning(0.6, 0.7)[0]
    for c in val_cases[:3]:
        img = read_image(c.image_path, expect_ndim=2)
        upright = estimate(img, device="cpu")
        turned = estimate(img.with_array(img.array[::-1, ::-1].copy()), device="cpu")
        assert not any("upside down" in w for w in upright.warnings), c.name
        assert any("upside down" in w for w in turned.warnings) and turned.low_confidence, c.name


def test_vertebrae_in_view_counts_what_a_cut_leaves(val_cases):
    """The estimated number of T1-L5 vertebrae in view: near 17 on complete radiographs, and on
    the same radiographs cut by 30 % at the top within two of the vertebra centres left, with the
    count in the cut-off warning."""
    from SpineAILib.cobb.predict import estimate
    from SpineAILib.io import read_image

    for c in val_cases[:3]:
        img = read_image(c.image_path, expect_ndim=2)
        full = estimate(img, device="cpu")
        assert full.quality["vertebrae_in_view"] >= 15, c.name
        cut = int(0.3 * img.array.shape[0])
        left = int((c.landmarks.reshape(17, 4, 2).mean(1)[:, 1] >= cut).sum())
        assert left <= 14, c.name
        res = estimate(Image(img.array[cut:].copy(), img.spacing), device="cpu")
        n = res.quality["vertebrae_in_view"]
        assert abs(n - left) <= 2, (c.name, n, left)
        assert any(f"About {n} of the 17" in w for w in res.warnings), res.warnings


# ------------------------------------------------------------------ quality: confidence and cut-off flags


def _ap_landmarks():
    from SpineAILib.phantoms import ap_radiograph_phantom

    ph = ap_radiograph_phantom()
    return ph.landmarks.astype(float), float(ph.image.array.shape[0])


def test_quality_features_do_not_depend_on_pixel_size():
    from SpineAILib.cobb import quality

    lm, h = _ap_landmarks()
    mirrored = lm + np.array([1.5, -0.5])
    scores = np.linspace(0.9, 0.6, 17)
    a = quality.features(lm, lm, mirrored, scores, 0.1, h)
    b = quality.features(2 * lm, 2 * lm, 2 * mirrored, scores, 0.1, 2 * h)
    assert a.keys() == b.keys()
    for k in a:
        assert a[k] == pytest.approx(b[k], rel=1e-9, abs=1e-9), k
    assert a["jitter_angle_deg"] > 0 and a["flip_lm"] > 0
    assert quality.jitter_angle(lm, h) == quality.jitter_angle(lm, h)  # fixed seed


def test_confidence_falls_with_disagreement_and_straight_spines():
    from SpineAILib.cobb import quality

    cal = {"error_model": {"intercept": 3.0, "flip_angle_deg": 0.5, "jitter_angle_deg": 0.2},
           "confidence_model": {"intercept": 6.0, "slope": -2.5}}
    f = {"flip_angle_deg": 1.0, "jitter_angle_deg": 2.0, "angle_sum_deg": 60.0}
    # expected error 3 + 0.5 + 0.4 = 3.9 degrees over 2 * 60 -> 3.25 % SMAPE
    assert quality.expected_smape(f, cal) == pytest.approx(100 * 3.9 / 120)
    base = quality.confidence(f, cal)
    assert 0 < base < 1
    assert quality.confidence({**f, "flip_angle_deg": 10.0}, cal) < base
    assert quality.confidence({**f, "angle_sum_deg": 10.0}, cal) < base


def test_cut_off_flags_and_logistic_fit():
    from SpineAILib.cobb import quality

    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 2))
    y = (x[:, 0] - 0.5 * x[:, 1] > 0).astype(float)
    m = quality.fit_logistic(x, y, ("a", "b"))
    w = np.array(m["weights"]) / np.array(m["std"])
    assert w[0] > 0 > w[1] and abs(w[1] / w[0] + 0.5) < 0.2  # the direction that separates them
    m["threshold"] = 0.0
    cal = {"cut_top": m, "cut_bottom": {**m, "threshold": 1e9}}
    assert quality.cut_off_ends({"a": 3.0, "b": 0.0}, cal) == ["top"]
    assert quality.cut_off_ends({"a": -3.0, "b": 0.0}, cal) == []
    assert "cut off at the top" in quality.cut_off_warning(["top"])[0]
    assert quality.cut_off_warning([]) == []


def test_shipped_card_has_a_calibration_and_results_carry_it():
    from SpineAILib.cobb.predict import estimate
    from SpineAILib.models import load_card
    from SpineAILib.phantoms import ap_radiograph_phantom

    cal = load_card("cobb_landmarks").calibration
    assert {"error_model", "confidence_model", "cut_top", "cut_bottom", "validation"} <= set(cal)
    assert all(v >= 0 for k, v in cal["error_model"].items())
    res = estimate(ap_radiograph_phantom().image, device="cpu")
    assert 0.0 <= res.confidence <= 1.0
    assert set(res.quality) == {"expected_smape", "cut_off", "detection_score", "vertebrae_in_view"}
    assert res.quality["detection_score"] == pytest.approx(float(res.vertebra_scores.mean()), abs=1e-4)
    back = type(res).from_dict(res.to_dict())
    assert back.quality == res.quality and back.confidence == res.confidence


def test_level_targets_name_each_centre_and_the_extrapolated_neighbours():
    """The level map's training target reads each vertebra's index at its centre, -1 one step
    above T1 (C7) and 17 one step below L5 (S1); off the column it is masked out."""
    from SpineAILib.cobb.model import STRIDE
    from SpineAILib.cobb.train import level_targets, with_neighbours

    lm = spine_from_tilts(np.zeros(17), height=16.0, width=24.0, gap=4.0, x0=128.0, y0=60.0)
    level, mask = level_targets(lm[None], (128, 64))
    ext = with_neighbours(lm.reshape(17, 4, 2)).mean(1)
    assert np.allclose(ext[0], [128.0, 60.0 - 0.9 * 20.0]) and np.allclose(ext[-1], [128.0, 60.0 + 17 * 20.0])
    ij = np.round((ext - (STRIDE - 1) / 2) / STRIDE).astype(int)
    assert [level[0, y, x] for x, y in ij] == list(range(-1, 18))
    assert mask[0][ij[:, 1], ij[:, 0]].all() and mask[0, :, :10].sum() == 0


def test_level_shift_and_end_vertebrae_scores():
    """The evaluation's level figures: a spine named one level high (every landmark moved down
    by one vertebra, T1's name on the true T2 ... ) is a shift of -1, one named one level low +1."""
    from SpineAILib.cobb.evaluate import level_shift, same_ends

    tilts = [0, 3, 6, 9, 12, 12, 9, 6, 3, 0, -3, -6, -9, -12, -9, -6, -3]
    lm = spine_from_tilts(tilts)
    step = np.array([0.0, 50.0])
    assert level_shift(lm, lm) == 0
    assert level_shift(lm + step, lm) == -1 and level_shift(lm - step, lm) == 1
    a = cobb_angles(lm, 2000.0)
    assert same_ends(a, a, ("main", "upper", "lower"))
    b = cobb_angles(spine_from_tilts(np.roll(tilts, 2)), 2000.0)
    assert (b.main.upper_end, b.main.lower_end) != (a.main.upper_end, a.main.lower_end)
    assert not same_ends(b, a)


def test_level_channel_starts_from_weights_without_it(tmp_path):
    """--init on a network with the new level channel: the first 11 output rows are the old
    ones, the level row keeps its fresh start; a shape that cannot be extended is refused."""
    import torch

    from SpineAILib.cobb.model import build_landmark_net
    from SpineAILib.cobb.train import init_weights
    from SpineAILib.training.common import save_fp16_weights

    old = build_landmark_net((4, 8, 8, 8, 8), head_width=8)
    save_fp16_weights(old.state_dict(), tmp_path / "old.pt")
    new = init_weights(build_landmark_net((4, 8, 8, 8, 8), head_width=8, levels=True), str(tmp_path / "old.pt"))
    w_old, w_new = old.state_dict()["head.2.weight"], new.state_dict()["head.2.weight"]
    assert w_new.shape[0] == 12 and torch.allclose(w_new[:11], w_old.half().float())
    assert float(new.state_dict()["head.2.bias"][11]) == 8.0
    with pytest.raises(ValueError, match="shape"):
        init_weights(build_landmark_net((4, 8, 8, 8, 16), head_width=8), str(tmp_path / "old.pt"))


def test_training_with_levels_and_cut_copies(tmp_path, data_dir):
    """One tiny epoch with the level map and only cut copies: the level loss is logged, and the
    cut cache holds canvases whose cut-away vertebrae lie off the canvas."""
    import csv as _csv

    from SpineAILib.cobb.train import main as train_main

    run = tmp_path / "run"
    assert train_main(["--data", str(data_dir / "aasce"), "--output", str(run), "--split", str(tmp_path / "s.json"),
                       "--max-train-cases", "4", "--max-val-cases", "2", "--batch-size", "2", "--epochs", "1",
                       "--device", "cpu", "--levels", "--cut-prob", "1"]) == 0
    rows = list(_csv.DictReader(open(run / "history.csv", encoding="utf-8")))
    assert float(rows[-1]["level_l1"]) > 0
    cut = np.load(next(run.glob("cache_cut_*.npz")))
    cy = cut["landmarks"].reshape(-1, 17, 4, 2).mean(2)[..., 1]
    assert ((cy < 0) | (cy >= 512)).any(axis=1).all()  # every copy lost a vertebra

