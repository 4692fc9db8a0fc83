"""The task registry and each task's output writer/reader: what a background process writes, the
Slicer module (or any reader) gets back, exactly, on hand-made results (no model runs)."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from SpineAILib import anatomy
from SpineAILib.io import Image
from SpineAILib.tasks import TASKS, get_task, with_entry


def test_registry_lists_every_task_once_with_its_pieces():
    assert list(TASKS) == ["cobb", "cervical", "vertebrae", "vertebral-body", "fracture", "xray-vertebrae"]
    for name, task in TASKS.items():
        assert task.name == name and task.input in ("ct", "radiograph")
        assert hasattr(task.result_type, "to_dict") and hasattr(task.result_type, "from_dict"), name
        p = argparse.ArgumentParser()
        task.add_arguments(p)
        assert p.parse_args(["x"]).input == "x"  # every task takes its input first
        for kind in ("trainer", "evaluator", "exporter"):
            assert callable(task.entry(kind)), (name, kind)
    assert with_entry("trainer") == list(TASKS)
    assert get_task("fracture").report_key == "fracture" and get_task("vertebral-body").report_key == "vertebral_body"
    with pytest.raises(ValueError, match="available: cobb, cervical"):
        get_task("nope")


def test_cli_has_one_command_per_task():
    from SpineAILib.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert set(TASKS) <= set(sub.choices)
    assert {"demo", "info", "train", "evaluate", "export"} <= set(sub.choices)


def _cobb_result():
    from SpineAILib.cobb.angles import cobb_angles
    from SpineAILib.cobb.predict import CobbResult
    from SpineAILib.phantoms import ap_radiograph_phantom

    ap = ap_radiograph_phantom()
    lm = ap.landmarks.astype(float)
    h, w = ap.image.array.shape
    return CobbResult(lm, cobb_angles(lm, float(h)), np.linspace(0.3, 0.9, 17), 0.71, ["a warning"], (w, h),
                      (0.5, 0.5))


def test_cobb_outputs_round_trip(tmp_path):
    from SpineAILib.cobb.outputs import CSV_HEADER, csv_row, read_outputs, write_csv, write_outputs
    from SpineAILib.errors import InputError

    r = _cobb_result()
    write_outputs(r, tmp_path, "x.png")
    back = read_outputs(tmp_path, "x.png")
    np.testing.assert_array_equal(back.landmarks, r.landmarks)
    np.testing.assert_array_equal(back.vertebra_scores, r.vertebra_scores)
    assert back.values == r.values and back.warnings == r.warnings and back.image_size == r.image_size
    assert back.pixel_spacing == r.pixel_spacing and back.confidence == r.confidence
    assert back.to_dict() == r.to_dict()
    rows = [csv_row("x.png", r), csv_row("bad.png", InputError("unreadable"))]
    text = write_csv(tmp_path / "out.csv", rows).read_text(encoding="utf-8").splitlines()
    assert text[0] == ",".join(CSV_HEADER)
    assert text[1].startswith(f"x.png,{r.values[0]:.3f},") and text[2] == "bad.png,,,,,,,,,,error: unreadable"
    with pytest.raises(InputError, match="Cannot read the Cobb result"):
        read_outputs(tmp_path, "missing.png")


def test_cervical_outputs_round_trip(tmp_path):
    from SpineAILib.cervical.outputs import read_outputs, write_outputs
    from SpineAILib.cervical.predict import CervicalResult

    region = np.zeros((40, 30), bool)
    region[10:30, 12:18] = True
    prob = np.where(region, 0.8, 0.1).astype(np.float32)
    r = CervicalResult(prob, region, np.array([[12.0, 10], [17, 10], [17, 29], [12, 29]]), np.array([0.0, 1.0]),
                       0.0, 2, 0.8, ["w"])
    write_outputs(r, tmp_path / "a", "img.png")
    back = read_outputs(tmp_path / "a")
    np.testing.assert_array_equal(back.region, region)
    np.testing.assert_array_equal(back.probability, region.astype(np.float32))  # no probability.png: the region
    assert back.to_dict() == r.to_dict()
    write_outputs(r, tmp_path / "b", "img.png", probability=True)
    back = read_outputs(tmp_path / "b")
    np.testing.assert_allclose(back.probability, prob, atol=0.5 / 255)


def _ct(shape=(12, 14, 16)):
    d = np.array([[0.0, 1, 0], [-1, 0, 0], [0, 0, 1]])
    return Image(np.zeros(shape, np.float32), (0.8, 1.1, 2.5), (-20.0, 35.5, 100.0), d)


def test_vertebrae_outputs_round_trip(tmp_path):
    from SpineAILib.vertebrae.outputs import OUTPUT_FILES, read_outputs, write_outputs
    from SpineAILib.vertebrae.predict import VertebraResult

    ct = _ct()
    lab = np.zeros(ct.array.shape, np.uint8)
    lab[2:6] = anatomy.vertebra_label("L1")
    lab[7:11] = anatomy.vertebra_label("L2")
    cents = {20: ct.index_to_physical(np.array([8.0, 7, 4])), 21: ct.index_to_physical(np.array([8.0, 7, 9]))}
    r = VertebraResult(cents, {20: 0.9, 21: 0.625}, ct.with_array(lab), ["check the count"], {"total": 1.5},
                       ["vertebra_detection"], "ribs")
    paths = write_outputs(r, ct, tmp_path, source="ct.nii.gz")
    assert set(OUTPUT_FILES) <= set(paths)
    back = read_outputs(tmp_path)
    assert back.names() == ["L1", "L2"] and back.numbering == "ribs" and back.warnings == r.warnings
    assert back.confidence == r.confidence and back.seconds == r.seconds and back.models == r.models
    for k in cents:
        np.testing.assert_allclose(back.centroids[k], cents[k], atol=1e-3)  # centroids.json keeps 3 decimals
    np.testing.assert_array_equal(back.labels.array, lab)
    np.testing.assert_allclose(back.labels.direction, ct.direction)
    assert VertebraResult.from_dict(r.to_dict(), r.labels).to_dict() == r.to_dict()


def test_body_outputs_round_trip(tmp_path):
    from SpineAILib.vertebra_body.genant import genant
    from SpineAILib.vertebra_body.outputs import read_body_outputs, write_body_outputs
    from SpineAILib.vertebra_body.predict import BodyResult

    ct = _ct()
    m1 = np.zeros(ct.array.shape, bool)
    m1[2:6, 3:9, 4:10] = True
    m2 = np.zeros(ct.array.shape, bool)
    m2[5:10, 3:9, 4:10] = True  # overlaps the first: the first click keeps the shared voxels
    h = {"anterior": 18.0, "middle": 22.5, "posterior": 25.0}
    r1 = BodyResult("L1 vertebral body", 20, np.array([1.0, 2.0, 3.0]), m1, 21.7, 175.0, h,
                    genant(18.0, 22.5, 25.0), 0.91, ["w"])
    r2 = BodyResult("Vertebral body 2", None, np.array([1.0, 2.0, -9.0]), m2, 20.0, 160.0, h, None, 0.5, [])
    write_body_outputs([r1, r2], ct, tmp_path, "ct.nii.gz")
    b1, b2 = read_body_outputs(tmp_path)
    assert b1.to_dict() == r1.to_dict() and b1.genant == r1.genant
    np.testing.assert_array_equal(b1.mask, m1)
    np.testing.assert_array_equal(b2.mask, m2 & ~m1)
    assert b2.genant is None and b2.label is None and b2.name == "Vertebral body 2"


def test_fracture_outputs_round_trip(tmp_path):
    from SpineAILib.vertebra_body.fracture import FractureResult, VertebraFracture
    from SpineAILib.vertebra_body.genant import genant
    from SpineAILib.vertebra_body.outputs import read_fracture_outputs, write_fracture_outputs

    v1 = VertebraFracture(20, np.array([1.0, -2.0, 3.5]), 0.875, genant(15.0, 22.0, 25.0),
                          {"anterior": 15.0, "middle": 22.0, "posterior": 25.0}, "")
    v2 = VertebraFracture(21, np.array([1.0, -2.0, -30.0]), 0.75, None, None, "body not segmented")
    r = FractureResult([v1, v2], True, [{"volume_mm3": 800.0, "centre_index_zyx": [1.0, 2.0, 3.0],
                                         "max_probability": 0.9}], ["w"], {"total": 2.0})
    paths = write_fracture_outputs(r, tmp_path, "ct.nii.gz")
    back = read_fracture_outputs(tmp_path)
    assert back.to_dict() == r.to_dict()
    assert [v.status for v in back.vertebrae] == ["moderate", "fracture"]  # Genant; the classifier alone
    rows = paths["fracture.csv"].read_text(encoding="utf-8").splitlines()
    assert rows[0].startswith("vertebra,fracture_probability") and rows[1].startswith("L1,0.875,2,moderate,wedge")


def test_fracture_task_labels_first_only_without_centroids(monkeypatch):
    """The registry's fracture run composes labelling and assessment; with centroids given the
    labelling is not run."""
    import SpineAILib.vertebra_body as vb
    import SpineAILib.vertebrae as vt
    from SpineAILib.vertebra_body.fracture import FractureResult
    from SpineAILib.vertebrae.predict import VertebraResult

    calls = []

    def fake_assess(image, centroids, *args, **kwargs):
        calls.append(("assess", sorted(centroids)))
        return FractureResult([], False, [], ["assess warning"], {"classifier": 1.0, "total": 1.0})

    def fake_locate(image, **kwargs):
        calls.append(("locate",))
        return VertebraResult({20: np.zeros(3)}, {20: 1.0}, image, ["locate warning"], {"total": 3.0})

    monkeypatch.setattr(vb, "assess_fractures", fake_assess)
    monkeypatch.setattr(vt, "locate", fake_locate)
    ct = _ct()
    ct.array[5, 5, 5] = 400.0  # not constant: the input check passes
    get_task("fracture").run(ct, {21: np.zeros(3)})
    assert calls == [("assess", [21])]
    calls.clear()
    r = get_task("fracture").run(ct)
    assert calls == [("locate",), ("assess", [20])]
    assert r.warnings == ["locate warning", "assess warning"]
    assert list(r.seconds) == ["vertebra_labelling", "classifier", "total"] and r.seconds["vertebra_labelling"] == 3.0
