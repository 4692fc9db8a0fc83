"""The shipped lateral labelling model end to end: real validation radiographs (names, positions,
alignment), the CLI contract on a folder with a bad file, views, bad input, and the scene."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
import SimpleITK as sitk

from SpineAILib.anatomy import LATERAL_VERTEBRAE
from SpineAILib.cli import EXIT_INPUT, EXIT_OK, main
from SpineAILib.errors import InputError
from SpineAILib.io import Image, read_image
from SpineAILib.xray_vertebrae import label
from SpineAILib.xray_vertebrae.evaluate import C3_L5, identify


@pytest.fixture(scope="module")
def val_cases(data_dir):
    from SpineAILib.io.lateral_keypoints import default_split, load_coco_keypoints

    cases = load_coco_keypoints(data_dir / "xray_lateral")
    val = default_split(cases)["val"]
    return [c for c in cases if c.name in val]


@pytest.fixture(scope="module")
def val_results(val_cases):
    return [label(c.image_path, view="lateral", device="cpu") for c in val_cases]


def test_validation_radiographs_are_labelled(val_cases, val_results):
    ok = total = 0
    dists = []
    for c, r in zip(val_cases, val_results, strict=True):
        truth = {n: p for n, p in zip(LATERAL_VERTEBRAE, c.centroids, strict=True) if not np.isnan(p[0])}
        o, t, d, shift = identify(r, truth, C3_L5)
        ok, total = ok + o, total + t
        dists += [x / c.size[1] for x in d]
        assert shift == 0, c.name  # no whole-spine level shift
        assert r.view == "lateral" and len(r.vertebrae) >= 18
        ys = [v.centroid[1] for v in r.vertebrae]
        assert ys == sorted(ys)  # names in anatomical order top to bottom
    # measured with the shipped model: see the model card; a regression below these fails
    assert ok / total >= 0.75  # 0.894 with the shipped model
    assert np.mean(dists) < 0.015  # under 1.5 % of the image height


def test_alignment_is_measured_on_validation_radiographs(val_cases, val_results):
    from SpineAILib.xray_vertebrae.alignment import sagittal_alignment

    errors = []
    for c, r in zip(val_cases, val_results, strict=True):
        gt = sagittal_alignment(c.corners)
        if r.alignment is not None and r.alignment.t4_t12_kyphosis is not None:
            errors.append(abs(r.alignment.t4_t12_kyphosis - gt.t4_t12_kyphosis))
        # corners are anatomical: the anterior corners lie on the side the patient faces (right here)
        for v in r.vertebrae:
            if {"top_posterior", "top_anterior"} <= set(v.corners):
                assert v.corners["top_anterior"][0] > v.corners["top_posterior"][0], (c.name, v.name)
    assert len(errors) >= 4
    assert np.median(errors) < 10.0  # MAE 5.2 degrees with the shipped model


def test_cli_folder_contract_with_a_bad_file(tmp_path, val_cases, capsys):
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(val_cases[0].image_path, src / "lat.png")
    (src / "broken.png").write_bytes(b"not a png")
    out = tmp_path / "out"
    assert main(["xray-vertebrae", str(src), "--output", str(out), "--device", "cpu", "--quiet"]) == EXIT_OK
    assert "broken.png" in capsys.readouterr().err
    data = json.loads((out / "lat.json").read_text())
    assert data["image"] == "lat.png" and data["view"] == "lateral"
    names = [v["name"] for v in data["vertebrae"]]
    assert "L3" in names and all(set(v) == {"name", "centroid", "corners", "confidence"} for v in data["vertebrae"])
    assert set(data["alignment"]) >= {"c2_c7_lordosis", "t4_t12_kyphosis", "l1_s1_lordosis", "sacral_slope"}
    assert json.loads((out / "broken.json").read_text())["error"]
    with open(out / "alignment.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["image", "c2_c7_lordosis", "t4_t12_kyphosis", "l1_s1_lordosis", "sacral_slope"]
    by_name = {r[0]: r for r in rows[1:]}
    assert by_name["broken.png"] == ["broken.png", "", "", "", ""]
    assert float(by_name["lat.png"][2]) > 0


def test_ct_volume_is_refused(tmp_path, capsys):
    vol = sitk.GetImageFromArray(np.random.default_rng(0).normal(0, 100, (20, 64, 64)).astype(np.float32))
    sitk.WriteImage(vol, str(tmp_path / "ct.nii.gz"))
    assert main(["xray-vertebrae", str(tmp_path / "ct.nii.gz"), "--output", str(tmp_path / "o"), "--quiet"]) \
        == EXIT_INPUT
    assert "expects" in capsys.readouterr().err
    with pytest.raises(InputError, match="view"):
        label(Image(np.ones((64, 64)), (1.0, 1.0)), view="sideways")


def test_auto_view_on_an_ap_radiograph(data_dir):
    aasce = json.loads(open(__file__.replace("Testing/test_xray_vertebrae_model.py",
                                             "Resources/Splits/aasce_split.json"), encoding="utf-8").read())
    r = label(data_dir / "aasce" / "images" / aasce["val"][0], view="auto", device="cpu")
    assert r.view == "ap"
    assert r.names() == [f"T{i}" for i in range(1, 13)] + [f"L{i}" for i in range(1, 6)]
    assert set(r.vertebrae[0].corners) == {"top_left", "top_right", "bottom_left", "bottom_right"}
    assert r.alignment is None and "cobb_main" in r.alignment_dict()


def test_upside_down_and_noise_get_warnings(val_cases):
    img = read_image(val_cases[0].image_path)
    turned = img.with_array(np.ascontiguousarray(img.array[::-1, ::-1]))
    r = label(turned, view="lateral", device="cpu")
    assert any("upside down" in w for w in r.warnings)
    upright = label(img, view="lateral", device="cpu")
    assert not any("upside down" in w for w in upright.warnings)
    noise = Image(np.random.default_rng(1).integers(0, 255, (800, 400)).astype(np.uint8), (1.0, 1.0))
    r = label(noise, view="auto", device="cpu")
    assert len(r.vertebrae) < 4 or r.warnings


def test_scene_markups_match_the_result(val_results, val_cases):
    from SpineAILib.scene import new_scene
    from SpineAILib.xray_vertebrae.scene import write_xray_vertebrae_result

    r = val_results[0]
    img = read_image(val_cases[0].image_path)
    scene = new_scene()
    nodes = write_xray_vertebrae_result(scene, img, r, prefix="Lat")
    assert nodes["vertebrae"].GetNumberOfControlPoints() == len(r.vertebrae)
    assert nodes["vertebrae"].GetNthControlPointLabel(0) == r.vertebrae[0].name
    for key, value in r.alignment.angles().items():
        if value is not None and key != "sacral_slope":
            # the endplate lines are stored to 0.01 px, the angle unrounded
            assert nodes[f"{key}_angle"].GetAngleDegrees() == pytest.approx(value, abs=0.05)


def test_cervical_region_from_the_vertebra_labels(val_cases):
    from SpineAILib.cervical.data import c3_c7_region
    from SpineAILib.metrics import binary_metrics
    from SpineAILib.phantoms import lateral_cervical_phantom
    from SpineAILib.tasks import localize_cervical

    sens, spec = [], []
    for c in val_cases:
        img = read_image(c.image_path)
        r = localize_cervical(img, device="cpu")
        assert "cervical_fcn on the neck view" in r.model and "C3-C7 corners" in r.model and r.found
        m = binary_metrics(r.region, c3_c7_region(c))  # the expert corners' C3-C7 region
        sens.append(m["sensitivity"])
        spec.append(m["specificity"])
    # mean 0.92 / min 0.997 with the shipped models (0.76 from the named vertebrae's corners alone)
    assert np.mean(sens) > 0.88 and min(spec) > 0.99
    # where the labelling places no neck (the simple phantom: it knows real radiographs only)
    # the FCN alone answers, confidently
    r = localize_cervical(lateral_cervical_phantom().image, device="cpu")
    assert r.found and r.model == "cervical_fcn" and r.confidence >= 0.7
