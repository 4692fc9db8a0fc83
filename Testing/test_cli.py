"""The spineai CLI: info, demo end to end (scene loads with slicer-core), exit codes, progress."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from SpineAILib.cli import EXIT_INPUT, EXIT_OK, main
from SpineAILib.progress import parse_machine_progress


def test_info_json(capsys):
    assert main(["info", "--json", "--device", "cpu"]) == EXIT_OK
    data = json.loads(capsys.readouterr().out)
    assert data["versions"]["spineai"]
    assert data["device"].startswith("cpu")
    assert data["models_dir"].endswith("Models")


def test_bad_device_and_missing_command(capsys):
    assert main(["info", "--device", "gpu0"]) == EXIT_INPUT
    assert "Unknown device 'gpu0'; expected one of auto, cpu" in capsys.readouterr().err
    assert main([]) == EXIT_INPUT


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    code = main(["demo", "--output", str(out), "--device", "cpu", "--quiet"])
    return code, out


@pytest.mark.slow
def test_demo_writes_scene_png_report(demo_run):
    code, out = demo_run
    assert code == EXIT_OK
    assert (out / "overview.png").stat().st_size > 10_000
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert set(report) >= {"tasks", "versions", "device"}
    rt = report["tasks"]["scene_roundtrip"]
    assert rt["metrics"]["centroid_max_error_mm"] < 1e-6
    assert rt["metrics"]["landmark_max_error_mm"] < 1e-6
    assert rt["metrics"]["vertebra_segment_min_dice"] == 1.0
    assert rt["metrics"]["cobb_angle_markup_deg"] == pytest.approx(rt["metrics"]["cobb_angle_phantom_deg"], abs=1e-6)
    assert isinstance(rt["seconds"], float)
    # CT tasks on the phantom (T11-L4, L1 wedge 30 %, L3 crush 30 %)
    assert report["tasks"]["vertebrae"]["metrics"]["found"]
    bodies = report["tasks"]["vertebral_body"]["metrics"]
    assert set(bodies) == {"T11", "T12", "L1", "L2", "L3", "L4"}
    assert min(b["dice"] for b in bodies.values()) > 0.9
    assert bodies["L1"]["genant"] in ("moderate", "severe") and bodies["L2"]["genant"] == "normal"
    fx = report["tasks"]["fracture"]["metrics"]
    assert fx["L1"]["probability"] > fx["L2"]["probability"]


@pytest.mark.slow
def test_demo_scene_loads_with_slicer_core(demo_run):
    pytest.importorskip("slicer")
    from SpineAILib.scene import fiducials_ras, load_mrb

    _, out = demo_run
    scene = load_mrb(out / "spineai-demo.mrb")
    # CT, AP, lateral cervical and lateral whole-spine phantoms
    assert scene.GetNodesByClass("vtkMRMLScalarVolumeNode").GetNumberOfItems() == 4
    lat_labels, _ = fiducials_ras(scene.GetFirstNodeByName("Phantom lateral vertebrae (ground truth)"))
    assert lat_labels[0] == "C2" and lat_labels[-1] == "S1" and len(lat_labels) == 24
    assert scene.GetFirstNodeByName("Predicted lateral table") is not None
    # ground truth vertebrae + cervical region; predicted cervical region, vertebra segments, bodies
    assert scene.GetNodesByClass("vtkMRMLSegmentationNode").GetNumberOfItems() == 5
    assert scene.GetFirstNodeByName("Predicted vertebra centroids").GetNumberOfControlPoints() > 0
    assert scene.GetFirstNodeByName("Predicted vertebral body segments").GetSegmentation().GetNumberOfSegments() == 6
    assert scene.GetFirstNodeByName("Predicted vertebral body measurements") is not None
    assert scene.GetFirstNodeByName("Predicted fracture assessment") is not None
    assert scene.GetFirstNodeByName("Predicted Cobb landmarks").GetNumberOfControlPoints() == 68
    assert scene.GetFirstNodeByName("Predicted Cobb angles") is not None
    assert scene.GetFirstNodeByName("Predicted cervical localization") is not None
    labels, ras = fiducials_ras(scene.GetFirstNodeByName("Phantom centroids (ground truth)"))
    assert labels == ["T11", "T12", "L1", "L2", "L3", "L4"]
    assert np.all(np.diff(ras[:, 2]) < 0)
    corners = scene.GetFirstNodeByName("Phantom corners (ground truth)")
    assert corners.GetNumberOfControlPoints() == 68
    cerv = scene.GetFirstNodeByName("Phantom cervical region (ground truth)").GetSegmentation()
    assert cerv.GetNthSegment(0).GetName() == "Cervical spine C3-C7 region"


@pytest.mark.slow
def test_machine_progress_in_subprocess(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "SpineAILib.cli", "demo", "--output", str(tmp_path / "d"),
                           "--device", "cpu", "--machine-progress"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    steps = [parse_machine_progress(line) for line in proc.stdout.splitlines()]
    fractions = [s[0] for s in steps if s is not None]
    assert len(fractions) >= 5 and fractions == sorted(fractions) and fractions[-1] == 1.0
    bad = subprocess.run([sys.executable, "-m", "SpineAILib.cli", "demo", "--device", "tpu"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == EXIT_INPUT and "Unknown device 'tpu'" in bad.stderr


def test_library_import_is_light():
    """Importing the library, the CLI and the scene layer must not import torch (Slicer
    module load) or slicer."""
    code = ("import sys, SpineAILib, SpineAILib.cli, SpineAILib.scene, SpineAILib.io, SpineAILib.models, "
            "SpineAILib.phantoms, SpineAILib.slicer_bridge, SpineAILib.tasks; "
            "print('torch' in sys.modules, 'slicer' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
