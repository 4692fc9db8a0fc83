"""The import structure of SpineAILib: imports point down the layers only, no task package imports
another, and no module imports one that (directly or not) imports it back. Read from the source
(every ``import`` / ``from ... import`` of a SpineAILib module, at module level or inside a
function), so a new file is checked as soon as it exists."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "SpineAILib"

# Top-level modules and packages of SpineAILib by layer, lowest first. A module may import its
# own layer and the layers below it.
LAYERS: list[set[str]] = [
    {"SpineAILib", "errors", "progress"},
    {"anatomy", "device", "networks"},
    {"io", "models"},
    {"preprocessing", "postprocessing", "metrics", "inference", "scene", "render", "phantoms", "training",
     "ctcolumn"},
    {"cobb", "cervical", "vertebrae", "vertebra_body"},  # the task packages
    {"xray_vertebrae"},  # tasks that compose others (AP labelling reuses the Cobb landmarks)
    {"tasks", "info", "demo", "cli", "slicer_bridge"},  # the registry and what loops over it
]
TASK_PACKAGES = LAYERS[4]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in ROOT.rglob("*.py")}
    graph = {}
    for name, path in files.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets |= {a.name for a in node.names if a.name.split(".")[0] == "SpineAILib"}
            elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "SpineAILib":
                for a in node.names:  # "from pkg import submodule" imports the submodule
                    sub = f"{node.module}.{a.name}"
                    targets.add(sub if sub in files else node.module)
        graph[name] = {t for t in targets if t != name}
    return graph


GRAPH = _import_graph()


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _layer(module: str) -> int:
    top = _top(module)
    for i, layer in enumerate(LAYERS):
        if top in layer:
            return i
    raise AssertionError(f"{module} is in no layer of Testing/test_layering.py: add '{top}' to LAYERS")


def test_every_module_has_a_layer():
    for module in GRAPH:
        _layer(module)


def test_imports_point_down_only():
    up = [f"{m} -> {t}" for m, targets in GRAPH.items() for t in targets if _layer(t) > _layer(m)]
    assert not up, "imports from a lower layer to a higher one:\n" + "\n".join(sorted(up))


def test_no_task_package_imports_another():
    across = [f"{m} -> {t}" for m, targets in GRAPH.items() for t in targets
              if _top(m) in TASK_PACKAGES and _top(t) in TASK_PACKAGES and _top(t) != _top(m)]
    assert not across, "task packages importing each other (move what they share down):\n" + "\n".join(across)


def test_no_import_cycles():
    state: dict[str, int] = {}  # 1 on the current path, 2 done

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for t in sorted(GRAPH.get(m, ())):
            if state.get(t) == 1:
                cycle = path[path.index(t):] + [t]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if t in GRAPH and not state.get(t):
                visit(t, [*path, t])
        state[m] = 2

    for m in sorted(GRAPH):
        if not state.get(m):
            visit(m, [m])


def test_the_checks_catch_what_they_look_for(monkeypatch):
    """The rules above fail on a graph that breaks them (a check that cannot fail checks nothing)."""
    bad = {"SpineAILib.io.image": {"SpineAILib.cobb.predict"}, "SpineAILib.cobb.predict": {"SpineAILib.vertebrae"},
           "SpineAILib.vertebrae": {"SpineAILib.cobb.predict"}}
    monkeypatch.setitem(globals(), "GRAPH", bad)
    for check in (test_imports_point_down_only, test_no_task_package_imports_another, test_no_import_cycles):
        with pytest.raises((AssertionError, pytest.fail.Exception)):
            check()
