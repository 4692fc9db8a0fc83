"""The Slicer modules themselves, loaded as Slicer's module factory loads them, on real MRML
(slicer-core): supported versions and the load-time gate, no torch at module load, each module's
own self-test, scene close, a second CT, the result readers, the click path, subject-hierarchy
placement, terminology, sample data, Cancel's process-tree kill and dependency version checks.
See Testing/slicer_harness.py for what is real and what stands in for the application."""

from __future__ import annotations

import ast
import importlib.metadata
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from slicer_harness import MODULE_NAMES, MODULES_DIR, REPO, Harness

from SpineAILib import anatomy, slicer_bridge
from SpineAILib.io.image import lps_to_ras


@pytest.fixture
def harness():
    h = Harness()
    yield h
    h.close()


def _small_ct():
    from SpineAILib.phantoms import CTPhantomConfig, ct_spine_phantom

    return ct_spine_phantom(CTPhantomConfig(first="L1", last="L3", spacing=(2.0, 2.0, 2.0), ribs=False))


# ------------------------------------------------------------------ versions and the load-time gate


def test_module_files_parse_as_python_39():
    """An unsupported Slicer (5.8: Python 3.9) must still load the modules to say why they cannot run."""
    files = sorted(MODULES_DIR.rglob("*.py"))
    assert len(files) >= len(MODULE_NAMES) + 4
    for f in files:
        tree = ast.parse(f.read_text(encoding="utf-8"), str(f), feature_version=(3, 9))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "zip":
                assert not any(k.arg == "strict" for k in node.keywords), f"zip(strict=...) in {f} (Python 3.10+)"


def test_compat_gate():
    import importlib.util

    # compat.py alone, as it runs before anything else on any Slicer
    path = MODULES_DIR / "SpineAI" / "SpineAICommon" / "compat.py"
    spec = importlib.util.spec_from_file_location("spineai_compat", path)
    compat = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(compat)
    assert compat.MIN_SLICER_VERSION == slicer_bridge.MIN_SLICER_VERSION
    assert compat.MIN_PYTHON_VERSION == slicer_bridge.MIN_PYTHON_VERSION
    requires = re.search(r'requires-python = ">=(\d+)\.(\d+)"', (REPO / "pyproject.toml").read_text()).groups()
    assert tuple(int(v) for v in requires) == compat.MIN_PYTHON_VERSION
    assert compat.unsupportedReason((3, 12), (5, 10)) is None
    assert compat.unsupportedReason((3, 12), (5, 11)) is None  # the preview
    assert compat.unsupportedReason((3, 12), None) is None
    old = compat.unsupportedReason((3, 9), (5, 8))
    assert "5.10" in old and "5.8" in old and "3.9" in old and "download.slicer.org" in old
    assert "Python 3.10" in compat.unsupportedReason((3, 9), None)


def test_readme_and_metadata_state_the_supported_slicer():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert re.search(r"Slicer 5\.10 or later", readme)
    cmake = (REPO / "CMakeLists.txt").read_text(encoding="utf-8")
    assert "Slicer 5.10 or later" in cmake


def test_unsupported_slicer_loads_and_says_why():
    h = Harness(version=(5, 8))
    try:
        _, _, parent = h.load("VertebralBody")
        import SpineAICommon

        assert SpineAICommon.UNSUPPORTED and "5.10" in SpineAICommon.UNSUPPORTED
        assert SpineAICommon.UNSUPPORTED in parent.helpText
        _, _, home = h.load("SpineAI")
        assert h.slicer.app.connections == []  # nothing registered on a Slicer that cannot run it
    finally:
        h.close()


def test_modules_load_like_slicer_without_torch():
    """Module load (file import + module class) must not import torch, MONAI or SpineAILib's heavy parts."""
    code = (
        "import sys; sys.path.insert(0, 'Testing')\n"
        "from slicer_harness import Harness, MODULE_NAMES\n"
        "h = Harness()\n"
        "for n in MODULE_NAMES:\n"
        "    mod, inst, parent = h.load(n)\n"
        "    assert parent.title and 'SpineAI' in parent.categories, n\n"
        "    assert 'Documentation:' in parent.helpText, n\n"
        "    getattr(mod, n + 'Logic')()\n"
        "heavy = sorted(m for m in ('torch', 'monai', 'scipy', 'matplotlib') if m in sys.modules)\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "HEAVY []" in out.stdout, out.stdout


# ------------------------------------------------------------------ dependency versions


def test_version_ranges():
    vs = slicer_bridge.version_satisfies
    assert vs("2.13.0+cpu", ">=2.8,<3") and not vs("2.2.0", ">=2.8,<3") and not vs("3.0", ">=2.8,<3")
    assert vs("1.6.1rc2", "==1.6.1") and vs("1.10", ">1.9") and not vs("1.9.0", "!=1.9")
    assert vs("4.70.1", "") and slicer_bridge.parse_version("2.13.0+cu128") == (2, 13, 0)
    with pytest.raises(ValueError):
        vs("1.0", "~=1.0")


def test_requirement_problems_compare_versions():
    problems = slicer_bridge.requirement_problems(
        ("torch", "monai", "tqdm"), versions={"torch": "2.2.0", "monai": None, "tqdm": "4.70.1"})
    assert [(n, v) for n, v, _ in problems] == [("torch", "2.2.0"), ("monai", None)]
    text = slicer_bridge.describe_problems(problems)
    assert "torch 2.2.0 installed, SpineAI needs >=2.8,<3" in text and "monai not installed" in text
    # this environment (CI's pins) meets every range
    assert slicer_bridge.requirement_problems(tuple(slicer_bridge.SLICER_REQUIREMENTS)) == []


def test_slicer_ranges_hold_the_ci_pins_and_monai_s_torch():
    pins = dict(line.split("==") for line in (REPO / ".ci" / "constraints.txt").read_text().splitlines()
                if "==" in line and not line.startswith("#"))
    for name, spec in slicer_bridge.SLICER_REQUIREMENTS.items():
        assert slicer_bridge.version_satisfies(pins[name], spec), (name, pins[name], spec)
    # the torch range starts where the MONAI that pip installs requires it to
    monai_torch = next(r for r in importlib.metadata.requires("monai") if r.startswith("torch") and ";" not in r)
    need = re.search(r">=([\d.]+)", monai_torch).group(1)
    have = re.search(r">=([\d.]+)", slicer_bridge.SLICER_REQUIREMENTS["torch"]).group(1)
    assert slicer_bridge.version_satisfies(have, ">=" + need), (monai_torch, slicer_bridge.SLICER_REQUIREMENTS["torch"])


def test_install_plan_never_touches_slicer_packages():
    plan = slicer_bridge.install_plan(["torch", "monai", "numpy", "SimpleITK", "tqdm", "matplotlib", "other"])
    assert plan["torch"] == [">=2.8,<3"]
    assert plan["pip"] == ["monai>=1.5,<2 --no-deps", "tqdm>=4.64,<5 --no-deps", "matplotlib>=3.8,<4",
                           "other --no-deps"]
    assert plan["protected"] == ["numpy", "SimpleITK"]
    assert slicer_bridge.install_plan([("scipy", "1.9.0", ">=1.11,<2")])["pip"] == ["scipy>=1.11,<2 --no-deps"]


# ------------------------------------------------------------------ Cancel: the whole process tree


def _alive(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return False


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="checks liveness through /proc")
def test_cancel_kills_the_launcher_and_its_worker():
    """Like PythonSlicer (a launcher) starting python-real (the worker): killing the launcher
    alone leaves the worker computing; kill_process_tree stops both."""
    child = "import time; time.sleep(120)"
    launcher = (f"import subprocess, sys, time; p = subprocess.Popen([sys.executable, '-c', {child!r}]); "
                "print(p.pid, flush=True); time.sleep(120)")

    def start():
        proc = subprocess.Popen([sys.executable, "-c", launcher], stdout=subprocess.PIPE, text=True)
        return proc, int(proc.stdout.readline())

    proc, worker = start()
    try:
        assert slicer_bridge.child_pids(proc.pid) == [worker]
        proc.kill()
        proc.wait(10)
        time.sleep(0.2)
        assert _alive(worker), "the launcher's worker should outlive a kill of the launcher alone"
    finally:
        os.kill(worker, 9)
    proc, worker = start()
    killed = slicer_bridge.kill_process_tree(proc.pid)
    proc.wait(10)
    assert set(killed) == {proc.pid, worker}
    deadline = time.time() + 5
    while _alive(worker) and time.time() < deadline:
        time.sleep(0.05)
    assert not _alive(worker)


def test_work_dir_removed(tmp_path):
    d = tmp_path / "spineai-run"
    (d / "sub").mkdir(parents=True)
    (d / "input.nrrd").write_bytes(b"x" * 100)
    slicer_bridge.remove_work_dir(d)
    assert not d.exists()
    slicer_bridge.remove_work_dir(d)  # already gone: no error
    slicer_bridge.remove_work_dir(None)


def test_runner_deletes_the_work_dir_however_the_run_ends():
    """The Qt runner's end path (success, failure, cancel, failed start) goes through _end, whose
    finally deletes the folder; checked on the source so a refactor cannot drop it silently."""
    src = (MODULES_DIR / "SpineAI" / "SpineAICommon" / "gui.py").read_text(encoding="utf-8")
    end = src[src.index("    def _end("):src.index("DEVICES =")]
    assert "finally:" in end and "remove_work_dir(self.workDir)" in end.split("finally:")[1]
    for caller in ("def _finished", "def _failedToStart"):
        body = src[src.index(caller):].split("\n    def ")[0]
        assert "self._end(" in body
    cancel = src[src.index("    def cancel(self):"):].split("\n    def ")[0]
    assert "kill_process_tree" in cancel


# ------------------------------------------------------------------ subject hierarchy placement


def test_results_placed_in_one_folder_per_run(harness):
    import vtk

    from SpineAILib.scene.placement import folder_nodes, place_results, subject_hierarchy, volume_point

    scene = harness.scene
    volume = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "Patient CT")
    transform = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "Registration")
    m = vtk.vtkMatrix4x4()
    rot = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    for i in range(3):
        for j in range(3):
            m.SetElement(i, j, rot[i, j])
        m.SetElement(i, 3, [10.0, -5.0, 2.5][i])
    transform.SetMatrixTransformToParent(m)
    volume.SetAndObserveTransformNodeID(transform.GetID())
    points = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "centroids")
    table = scene.AddNewNodeByClass("vtkMRMLTableNode", "Patient CT table")
    folder = place_results(scene, {"points": points, "table": table}, volume, "vertebrae")
    sh = subject_hierarchy(scene)
    assert sh.GetItemName(folder) == "Patient CT vertebrae"
    assert [n.GetName() for n in folder_nodes(scene, folder)] == ["Patient CT centroids", "Patient CT table"]
    assert points.GetTransformNodeID() == transform.GetID()  # follows the CT's transform
    second = place_results(scene, [], volume, "vertebrae")
    assert sh.GetItemName(second) == "Patient CT vertebrae (2)" and second != folder
    # a world point back to the volume's own coordinates: inverse of the parent transform
    local = np.array([3.0, 4.0, 5.0])
    world = rot @ local + np.array([10.0, -5.0, 2.5])
    assert np.allclose(volume_point(volume, world), local, atol=1e-9)


def test_output_references_follow_the_scene(harness):
    _, _, _ = harness.load("VertebralBody")
    from slicer.ScriptedLoadableModule import ScriptedLoadableModuleLogic

    import SpineAICommon

    class ProbeLogic(SpineAICommon.OutputNodesMixin, ScriptedLoadableModuleLogic):
        pass

    logic = ProbeLogic()
    scene = harness.scene
    a = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "A")
    b = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "B")
    ta = scene.AddNewNodeByClass("vtkMRMLTableNode", "A table")
    logic.setOutputNode(a, "Table", ta)
    assert logic.outputNode(a, "Table").GetID() == ta.GetID() and logic.outputNode(b, "Table") is None
    scene.RemoveNode(ta)  # the user deleted it
    assert logic.outputNode(a, "Table") is None
    logic.setOutputNode(a, "Table", scene.AddNewNodeByClass("vtkMRMLTableNode", "A table 2"))
    scene.Clear(0)  # File > Close Scene
    a2 = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "A")
    assert a2.GetID() == a.GetID()  # IDs are reused after a close ...
    assert logic.outputNode(a2, "Table") is None  # ... but the old outputs are not


# ------------------------------------------------------------------ Vertebral Body: scene life cycle, click path


def test_vertebral_body_scene_close_and_second_ct(harness):
    from SpineAILib.scene import add_volume

    mod, _, _ = harness.load("VertebralBody")
    logic = mod.VertebralBodyLogic()
    scene = harness.scene
    ph = _small_ct()
    ct1 = add_volume(scene, ph.image, "CT one")
    logic.segmentPoint(ct1, lps_to_ras(ph.body_centers[21]), device="cpu")
    old_seg = logic.outputNode(ct1, "BodySegmentation")
    assert old_seg.GetSegmentation().GetNumberOfSegments() == 1

    scene.Clear(0)  # File > Close Scene, then a new CT and a click
    ct1b = add_volume(scene, ph.image, "CT one")
    logic.segmentPoint(ct1b, lps_to_ras(ph.body_centers[21]), device="cpu")
    seg = logic.outputNode(ct1b, "BodySegmentation")
    assert seg is not None and seg.GetScene() is scene and seg is not old_seg
    assert seg.GetSegmentation().GetNumberOfSegments() == 1
    assert old_seg.GetScene() is None

    ct2 = add_volume(scene, ph.image, "CT two")  # a click on a second CT gets its own outputs
    logic.segmentPoint(ct2, lps_to_ras(ph.body_centers[20]), device="cpu")
    logic.segmentPoint(ct2, lps_to_ras(ph.body_centers[22]), device="cpu")
    seg2, table2 = logic.outputNode(ct2, "BodySegmentation"), logic.outputNode(ct2, "BodyTable")
    table1 = logic.outputNode(ct1b, "BodyTable")
    assert seg2.GetID() != seg.GetID() and table2.GetID() != table1.GetID()
    assert seg2.GetName().startswith("CT two") and table2.GetName().startswith("CT two")
    assert (table1.GetNumberOfRows(), table2.GetNumberOfRows()) == (1, 2)
    assert seg2.GetSegmentation().GetNumberOfSegments() == 2
    logic.undoLast(ct2)
    assert seg2.GetSegmentation().GetNumberOfSegments() == 1 and table2.GetNumberOfRows() == 1
    assert table1.GetNumberOfRows() == 1  # the first CT is untouched
    from SpineAILib.scene.placement import folder_nodes

    folder = logic.outputFolder(ct2, logic.FOLDER)
    assert {n.GetID() for n in folder_nodes(scene, folder)} == {seg2.GetID(), table2.GetID()}


class _Label:
    text = ""


class _Selector:
    def __init__(self, node=None):
        self.node = node

    def currentNode(self):
        return self.node


def _click_widget(mod, logic, volume):
    """The widget without its Qt panel: the three selectors and the status label its click
    handler reads (the handler itself is the module's own code)."""
    widget = mod.VertebralBodyWidget.__new__(mod.VertebralBodyWidget)
    widget.logic = logic
    widget.ui = type("UI", (), {})()
    widget.ui.inputSelector = _Selector(volume)
    widget.ui.labelPointsSelector = _Selector(None)
    widget.ui.statusLabel = _Label()
    return widget


def test_click_uses_the_event_point_and_shows_every_error(harness, monkeypatch):
    import vtk

    from SpineAILib.scene import add_volume

    mod, _, _ = harness.load("VertebralBody")
    import SpineAICommon

    scene = harness.scene
    ph = _small_ct()
    ct = add_volume(scene, ph.image, "CT")
    transform = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "shift")
    m = vtk.vtkMatrix4x4()
    m.SetElement(0, 3, 25.0)
    transform.SetMatrixTransformToParent(m)
    ct.SetAndObserveTransformNodeID(transform.GetID())
    clicks = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "clicks")
    clicks.AddControlPoint(vtk.vtkVector3d(0.0, 0.0, 0.0))  # an earlier point: the new one is not the first
    logic = mod.VertebralBodyLogic()
    widget = _click_widget(mod, logic, ct)
    clicks.AddObserver(clicks.PointPositionDefinedEvent, widget.onPointAdded)

    # the dependency check fails: shown, the point removed
    def broken(*a, **k):
        raise RuntimeError("pip is not reachable")

    monkeypatch.setattr(SpineAICommon, "ensureDependencies", broken)
    centre_world = np.array(lps_to_ras(ph.body_centers[21])) + [25.0, 0.0, 0.0]
    clicks.AddControlPointWorld(vtk.vtkVector3d(*centre_world))
    assert any("pip is not reachable" in e for e in harness.errors)
    assert clicks.GetNumberOfControlPoints() == 1

    # a click outside the CT: shown, the point removed, no output node
    monkeypatch.setattr(SpineAICommon, "ensureDependencies", lambda *a, **k: True)
    clicks.AddControlPointWorld(vtk.vtkVector3d(5000.0, 0.0, 0.0))
    assert len(harness.errors) == 2 and clicks.GetNumberOfControlPoints() == 1
    assert logic.outputNode(ct, "BodySegmentation") is None

    # a good click in world coordinates on the transformed CT: the body under the click
    clicks.AddControlPointWorld(vtk.vtkVector3d(*centre_world))
    assert len(harness.errors) == 2, harness.errors
    assert clicks.GetNumberOfControlPoints() == 2
    assert clicks.GetNthControlPointLabel(1) == "Vertebral body 1"
    assert clicks.GetNthControlPointLabel(0) != "Vertebral body 1"
    seg = logic.outputNode(ct, "BodySegmentation")
    assert seg.GetTransformNodeID() == transform.GetID()
    rows = json.loads(logic.outputNode(ct, "BodyTable").GetAttribute(logic.RESULTS_ATTRIBUTE))
    assert np.allclose(rows[0]["result"]["point_ras_mm"], lps_to_ras(ph.body_centers[21]), atol=1e-3)
    assert "Vertebral body 1" in widget.ui.statusLabel.text


# ------------------------------------------------------------------ result readers


def test_vertebra_labeling_reader_and_update(harness, tmp_path):
    from SpineAILib.scene import add_volume
    from SpineAILib.scene.placement import folder_nodes, subject_hierarchy
    from SpineAILib.vertebrae.outputs import write_outputs
    from SpineAILib.vertebrae.predict import VertebraResult

    mod, _, _ = harness.load("VertebraLabeling")
    logic = mod.VertebraLabelingLogic()
    scene = harness.scene
    ph = _small_ct()
    ct = add_volume(scene, ph.image, "Spine CT")
    result = VertebraResult(dict(ph.centroids), {lab: 0.9 for lab in ph.centroids}, ph.labels, ["a warning"])
    write_outputs(result, ph.image, tmp_path)
    nodes, back = logic.readResult(str(tmp_path), ct)
    assert back.names() == ["L1", "L2", "L3"]
    points = nodes["centroids"]
    assert [points.GetNthControlPointLabel(i) for i in range(3)] == ["L1", "L2", "L3"]
    folder = subject_hierarchy(scene).GetItemParent(subject_hierarchy(scene).GetItemByDataNode(points))
    assert subject_hierarchy(scene).GetItemName(folder) == "Spine CT vertebrae"
    assert all(n.GetName().startswith("Spine CT") for n in folder_nodes(scene, folder))
    n_nodes = scene.GetNumberOfNodes()
    first = logic.updateFromPoints(ct, points)
    added = scene.GetNumberOfNodes() - n_nodes
    logic.shiftLabels(points, "L1", "T12")
    second = logic.updateFromPoints(ct, points)
    assert scene.GetNumberOfNodes() - n_nodes == added  # updated, nothing new
    assert second["segmentation"].GetID() == first["segmentation"].GetID()
    seg = second["segmentation"].GetSegmentation()
    names = sorted(seg.GetNthSegment(i).GetName() for i in range(seg.GetNumberOfSegments()))
    assert names == ["L1 vertebra", "L2 vertebra", "T12 vertebra"]


def test_cobb_and_xray_readers_place_results(harness, tmp_path):
    from SpineAILib.phantoms import ap_radiograph_phantom
    from SpineAILib.scene import add_volume
    from SpineAILib.scene.placement import subject_hierarchy
    from SpineAILib.tasks import get_task

    cobb_mod, _, _ = harness.load("CobbAngle")
    logic = cobb_mod.CobbAngleLogic()
    ph = ap_radiograph_phantom()
    xray = add_volume(harness.scene, ph.image, "AP")
    task = get_task("cobb")
    result = task.run(ph.image, device="cpu")
    task.write_outputs(result, tmp_path, "input.nrrd")
    back = logic.readResult(str(tmp_path))
    nodes = logic.writeResult(xray, back)
    assert np.allclose(back.values, result.values, atol=0.05)
    sh = subject_hierarchy(harness.scene)
    folder = sh.GetItemParent(sh.GetItemByDataNode(nodes["table"]))
    assert sh.GetItemName(folder) == "AP Cobb angles"


# ------------------------------------------------------------------ each module's own self-test


@pytest.mark.parametrize("name", [pytest.param(n, marks=[] if n == "SpineAI" else [pytest.mark.slow])
                                  for n in MODULE_NAMES])
def test_module_self_test(harness, name):
    harness.load(name)
    harness.slicer.selfTests[name](msec=0)
    assert any(m.endswith("OK") for m in harness.displayed), harness.displayed
    assert not any("skipped" in m for m in harness.displayed)


def test_self_tests_skip_cleanly_without_torch(harness, monkeypatch):
    harness.load("VertebralBody")
    import SpineAICommon

    monkeypatch.setattr(SpineAICommon, "torchMissing", lambda: True)
    n = harness.scene.GetNumberOfNodes()
    harness.slicer.selfTests["VertebralBody"](msec=0)
    assert harness.displayed == ["Vertebral Body test skipped: PyTorch is not installed."]
    assert harness.scene.GetNumberOfNodes() == n


# ------------------------------------------------------------------ terminology and sample data


def test_terminology_file_is_generated_and_loads_in_slicer(harness):
    from SpineAILib.scene.terminology import CONTEXT_NAME, terminology_context, terminology_file

    path = terminology_file()
    assert path == REPO / "Resources" / "Terminology" / "SegmentationCategoryTypeModifier-SpineAI.term.json"
    assert json.loads(path.read_text(encoding="utf-8")) == terminology_context()
    _, home, _ = harness.load("SpineAI")
    signal, slot = harness.slicer.app.connections[0]
    assert signal == "startupCompleted()"
    slot()  # what Slicer runs once started: the context is loaded into the (real) terminologies logic
    logic = harness.terminologies
    assert logic.IsTerminologyContextLoaded(CONTEXT_NAME)
    import slicer

    category = slicer.vtkSlicerTerminologyCategory()
    assert logic.GetNthCategoryInTerminology(CONTEXT_NAME, 0, category)
    codes = set()
    for i in range(logic.GetNumberOfTypesInTerminologyCategory(CONTEXT_NAME, category)):
        t = slicer.vtkSlicerTerminologyType()
        logic.GetNthTypeInTerminologyCategory(CONTEXT_NAME, category, i, t)
        codes.add((t.GetCodeValue(), t.GetCodeMeaning()))
    used = set(anatomy.SNOMED.values()) | {anatomy.SPINE_REGION_CODE, anatomy.CERVICAL_REGION_CODE}
    assert used <= codes, used - codes
    # the entries SpineAI writes name this context
    tag = anatomy.vertebra_terminology("L2")
    assert tag.startswith(CONTEXT_NAME + "~") and "~SCT^14293000^L2 vertebra~" in tag


def test_sample_data_phantoms(harness):
    _, home, _ = harness.load("SpineAI")
    import SpineAICommon

    class Registry:  # records what the Sample Data module is asked to register
        calls: list[dict] = []

        @classmethod
        def registerCustomSampleDataSource(cls, **kwargs):
            cls.calls.append(kwargs)

    names = SpineAICommon.registerSampleData(Registry, home.iconPath)
    assert len(names) == 4 and [c["sampleName"] for c in Registry.calls] == names
    assert all(c["category"] == "SpineAI" and Path(c["thumbnailFileName"]).is_file() for c in Registry.calls)
    dims = {}
    for call in Registry.calls:
        node = call["customDownloader"](None)  # Sample Data calls it with the source
        assert node.GetScene() is harness.scene and node.GetName() == call["sampleName"]
        dims[call["sampleName"]] = node.GetImageData().GetDimensions()
    assert dims["SpineAI CT phantom"][2] > 1  # a CT volume
    assert dims["SpineAI AP radiograph phantom"][2] == 1  # radiographs are single slices
    with pytest.raises(ValueError, match="No SpineAI sample"):
        SpineAICommon.logic.loadPhantomSample("nothing")


def test_models_and_terminology_copied_to_the_build_tree():
    cmake = (REPO / "SpineAILib" / "CMakeLists.txt").read_text(encoding="utf-8")
    for what in ("Models", "Terminology"):
        assert re.search(rf"file\(COPY \$\{{SPINEAI_{what.upper().rstrip('S')}[A-Z_]*FILES\}}\s+DESTINATION "
                         rf"\$\{{CMAKE_BINARY_DIR\}}/\$\{{Slicer_QTSCRIPTEDMODULES_LIB_DIR\}}/Resources/{what}\)",
                         cmake), what
        assert f"${{Slicer_INSTALL_QTSCRIPTEDMODULES_LIB_DIR}}/Resources/{what}" in cmake


def test_extension_catalog_entry():
    entry = json.loads((REPO / "ExtensionsIndex" / "SpineAI.json").read_text(encoding="utf-8"))
    assert entry["$schema"].endswith("slicer-extension-catalog-entry-schema-v1.0.1.json#")
    assert entry["scm_url"].startswith("https://github.com/") and entry["category"] == "Segmentation"
    assert "PyTorch" in entry["build_dependencies"] and entry["tier"] in (1, 3, 5)
    assert set(entry) <= {"$schema", "build_dependencies", "build_subdirectory", "category", "scm_revision",
                          "scm_url", "tier"}


# Widget slots that run on a user's action; each must end in a message box on any exception.
_INTERNAL_SLOTS = {"onProgress", "onRunnerFinished", "onTaskSucceeded", "onSceneStartClose", "onSceneEndClose",
                   "onInputChanged", "onClickNodeChanged", "onFinished"}


@pytest.mark.parametrize("name", MODULE_NAMES)
def test_every_user_action_shows_its_errors(name):
    tree = ast.parse((MODULES_DIR / name / f"{name}.py").read_text(encoding="utf-8"))
    widget = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == f"{name}Widget")
    slots = [f for f in widget.body if isinstance(f, ast.FunctionDef) and f.name.startswith("on")
             and f.name not in _INTERNAL_SLOTS]
    for slot in slots:
        tries = [t for t in ast.walk(slot) if isinstance(t, ast.Try)]
        shown = [h for t in tries for h in t.handlers
                 if (h.type is None or ast.unparse(h.type) == "Exception")
                 and "showError" in ast.unparse(h)]
        assert shown, f"{name}Widget.{slot.name} lets an exception escape without showing it"
