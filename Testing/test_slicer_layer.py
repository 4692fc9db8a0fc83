"""Static checks of the Slicer layer (Slicer itself cannot run here) and the non-GUI bridge.

* every module file compiles;
* every widget the code uses (self.ui.<name>) exists in the module's .ui file;
* every Python file and resource under SpineAI/ and every SpineAILib file is listed in CMake,
  and every module folder is added by the top-level CMakeLists.txt;
* Logic classes hold no Qt code;
* each module's self-test calls SpineAILib functions that this pytest suite also covers.
"""

from __future__ import annotations

import ast
import importlib
import py_compile
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from SpineAILib import slicer_bridge

REPO = Path(__file__).resolve().parents[1]
MODULE_DIRS = sorted(p.parent for p in (REPO / "SpineAI").glob("*/CMakeLists.txt"))
TESTING = REPO / "Testing"


def _module_id(d: Path) -> str:
    return d.name


def test_there_is_a_home_module():
    assert (REPO / "SpineAI" / "SpineAI" / "SpineAI.py").is_file()
    assert MODULE_DIRS


@pytest.mark.parametrize("module_dir", MODULE_DIRS, ids=_module_id)
def test_module_files_compile(module_dir, tmp_path):
    for py in module_dir.rglob("*.py"):
        py_compile.compile(str(py), cfile=str(tmp_path / "x.pyc"), doraise=True)


COMMON_GUI = REPO / "SpineAI" / "SpineAI" / "SpineAICommon" / "gui.py"


def _ui_names(source: str) -> set[str]:
    return set(re.findall(r"self\.ui\.(\w+)", source))


@pytest.mark.parametrize("module_dir", MODULE_DIRS, ids=_module_id)
def test_ui_widgets_exist(module_dir):
    name = module_dir.name
    ui = module_dir / "Resources" / "UI" / f"{name}.ui"
    assert ui.is_file(), f"{ui} missing"
    widgets = {w.get("name") for w in ET.parse(ui).iter("widget")}
    source = (module_dir / f"{name}.py").read_text(encoding="utf-8")
    used = _ui_names(source)
    if "TaskWidgetMixin" in source:  # the shared Apply/Cancel/progress code uses these widgets too
        mixin = ast.get_source_segment(COMMON_GUI.read_text(encoding="utf-8"), _classes(COMMON_GUI)["TaskWidgetMixin"])
        used |= _ui_names(mixin)
    missing = sorted(used - widgets)
    assert not missing, f"{name}.py uses widgets not in {ui.name}: {missing}"


@pytest.mark.parametrize("module_dir", MODULE_DIRS, ids=_module_id)
def test_module_cmake_lists_every_file(module_dir):
    cmake = (module_dir / "CMakeLists.txt").read_text(encoding="utf-8")
    name = module_dir.name
    cmake = cmake.replace("${MODULE_NAME}", name)
    assert "slicerMacroBuildScriptedModule" in cmake and "WITH_GENERIC_TESTS" in cmake
    ignored = {"Testing"}
    for f in module_dir.rglob("*"):
        rel = f.relative_to(module_dir)
        if f.is_dir() or rel.parts[0] in ignored or "__pycache__" in rel.parts or f.name == "CMakeLists.txt":
            continue
        assert rel.as_posix() in cmake, f"{rel} is not listed in {module_dir.name}/CMakeLists.txt"
    top = (REPO / "CMakeLists.txt").read_text(encoding="utf-8")
    assert f"add_subdirectory({module_dir.relative_to(REPO).as_posix()})" in top


def test_top_level_cmake_metadata():
    top = (REPO / "CMakeLists.txt").read_text(encoding="utf-8")
    for key in ("EXTENSION_NAME SpineAI", "EXTENSION_CATEGORY", "EXTENSION_CONTRIBUTORS", "EXTENSION_DESCRIPTION",
                "EXTENSION_ICONURL", "EXTENSION_SCREENSHOTURLS", 'EXTENSION_DEPENDS "PyTorch"',
                "find_package(Slicer REQUIRED)", "slicerMacroExtractRepositoryInfo", "Slicer_EXTENSION_CPACK",
                "add_subdirectory(SpineAILib)"):
        assert key in top, key


def test_spineailib_files_listed_in_cmake():
    cmake = (REPO / "SpineAILib" / "CMakeLists.txt").read_text(encoding="utf-8")
    listed = set(re.findall(r"^\s+(\S+\.py)$", cmake, flags=re.M))
    actual = {p.relative_to(REPO / "SpineAILib").as_posix() for p in (REPO / "SpineAILib").rglob("*.py")
              if "__pycache__" not in p.parts}
    assert actual == listed, ("run python tools/update_cmake_lists.py; "
                              f"unlisted: {sorted(actual - listed)}, stale: {sorted(listed - actual)}")


def _classes(py: Path) -> dict[str, ast.ClassDef]:
    return {n.name: n for n in ast.parse(py.read_text(encoding="utf-8")).body if isinstance(n, ast.ClassDef)}


@pytest.mark.parametrize("module_dir", MODULE_DIRS, ids=_module_id)
def test_module_structure_and_logic_without_qt(module_dir):
    name = module_dir.name
    classes = _classes(module_dir / f"{name}.py")
    for suffix in ("", "Widget", "Logic", "Test"):
        assert f"{name}{suffix}" in classes, f"{name}.py lacks class {name}{suffix}"
    logic = classes[f"{name}Logic"]
    names = {n.id for n in ast.walk(logic) if isinstance(n, ast.Name)}
    attrs = {n.attr for n in ast.walk(logic) if isinstance(n, ast.Attribute)}
    assert not names & {"qt", "ctk"}, f"{name}Logic uses Qt"
    assert not attrs & {"errorDisplay", "confirmOkCancelDisplay", "messageBox", "delayDisplay"}


def _spineailib_refs(node: ast.AST) -> set[tuple[str, str]]:
    """(module, name) pairs imported from SpineAILib inside ``node``."""
    refs = set()
    for n in ast.walk(node):
        if isinstance(n, ast.ImportFrom) and n.module and n.module.startswith("SpineAILib"):
            refs |= {(n.module, a.name) for a in n.names}
    return refs


@pytest.mark.parametrize("module_dir", MODULE_DIRS, ids=_module_id)
def test_self_test_uses_functions_covered_by_pytest(module_dir):
    name = module_dir.name
    test_cls = _classes(module_dir / f"{name}.py")[f"{name}Test"]
    refs = _spineailib_refs(test_cls)
    assert refs, f"{name}Test calls no SpineAILib function"
    suite = "\n".join(p.read_text(encoding="utf-8") for p in TESTING.glob("test_*.py"))
    for module, attr in refs:
        assert hasattr(importlib.import_module(module), attr), f"{module}.{attr} does not exist"
        assert re.search(rf"\b{attr}\b", suite), f"{module}.{attr} (used by {name}Test) is not covered by pytest"


def test_bridge_command_and_environment():
    argv = slicer_bridge.cli_command("/opt/Slicer/bin/PythonSlicer", "demo", ["--output", "/tmp/x"], "cpu")
    assert argv == ["/opt/Slicer/bin/PythonSlicer", "-m", "SpineAILib.cli", "demo", "--output", "/tmp/x",
                    "--device", "cpu", "--machine-progress"]
    env = slicer_bridge.cli_environment({"PYTHONPATH": "/other"})
    assert env["PYTHONPATH"].split(":")[0] == str(REPO) and env["PYTHONPATH"].endswith("/other")
    assert (Path(env["PYTHONPATH"].split(":")[0]) / "SpineAILib" / "__init__.py").is_file()
    assert env["PYTHONUNBUFFERED"] == "1"
