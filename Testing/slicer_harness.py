"""Load the SpineAI Slicer modules outside Slicer, the way Slicer's scripted-module factory does,
on real MRML from slicer-core.

What is real: the MRML scene and every MRML/VTK class (slicer-core), ``slicer.util`` (slicer-core
ships Slicer's own file), the terminologies logic, the module files as shipped.
What stands in for the application (no Qt here): ``qt``/``ctk`` modules whose names resolve to
inert classes (the module files only need them to exist at load time; nothing here creates a
widget), ``slicer.app`` (version numbers, testing mode, signal connections recorded), message
boxes recorded instead of shown, and ``slicer.ScriptedLoadableModule``: the base classes below
follow the behaviour of Slicer's Base/Python/slicer/ScriptedLoadableModule.py for everything the
logic and test classes use (module name from the class name, the singleton
vtkMRMLScriptedModuleNode parameter node with its ModuleName attribute, selfTests registration,
resourcePath, runTest dispatch, delayDisplay).
"""

from __future__ import annotations

import importlib.util
import logging
import sys
import types
import unittest
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODULES_DIR = REPO / "SpineAI"
MODULE_NAMES = sorted(p.parent.name for p in MODULES_DIR.glob("*/CMakeLists.txt"))


class _InertType(type):
    def __getattr__(cls, name):  # class-level names (qt.QApplication.setOverrideCursor, enums)
        if name.startswith("_"):
            raise AttributeError(name)
        return _Inert()


class _Inert(metaclass=_InertType):
    """Any Qt/CTK class: constructible, every attribute another inert object, callable."""

    def __init__(self, *args, **kwargs):
        pass

    def __call__(self, *args, **kwargs):
        return _Inert()

    def __getattr__(self, name):
        return _Inert()


def _stub_module(name: str) -> types.ModuleType:
    mod = types.ModuleType(name)

    def class_named(attr):
        if attr.startswith("_"):  # never pose as a package or answer the import machinery's questions
            raise AttributeError(attr)
        return type(attr, (_Inert,), {})

    mod.__getattr__ = class_named  # type: ignore[attr-defined]
    mod.__spineai_stub__ = True  # type: ignore[attr-defined]
    return mod


class App:
    """Stands in for slicer.app: what the modules read from it."""

    def __init__(self, version=(5, 10)):
        self.majorVersion, self.minorVersion = version
        self.connections: list[tuple[str, object]] = []
        self.temporaryPath = str(Path.home() / ".cache" / "spineai-slicer-harness")

    def connect(self, signal, slot):
        self.connections.append((signal, slot))

    def testingEnabled(self):
        return True

    def processEvents(self, *args):
        pass

    def setOverrideCursor(self, *args):
        pass

    def restoreOverrideCursor(self):
        pass


class Modules(types.SimpleNamespace):
    """slicer.modules: the terminologies module's logic is the real one."""


def _scripted_loadable_module(slicer) -> types.ModuleType:
    mod = types.ModuleType("slicer.ScriptedLoadableModule")

    class ScriptedLoadableModule:
        def __init__(self, parent):
            self.parent = parent
            self.moduleName = self.__class__.__name__
            parent.title = ""
            parent.categories = []
            parent.dependencies = []
            parent.contributors = []
            parent.helpText = ""
            parent.acknowledgementText = ""
            if not hasattr(slicer, "selfTests"):
                slicer.selfTests = {}
            slicer.selfTests[self.moduleName] = self.runTest

        def resourcePath(self, filename):
            return str(Path(self.parent.path).parent / "Resources" / filename)

        def runTest(self, msec=100, **kwargs):
            module = sys.modules[self.__module__]
            test = getattr(module, self.moduleName + "Test")()
            test.messageDelay = msec
            test.runTest(**kwargs)

    class ScriptedLoadableModuleWidget:
        def __init__(self, parent=None):
            self.moduleName = self.__class__.__name__.removesuffix("Widget")
            self.parent = parent
            self.layout = None

        def setup(self):
            pass

        def cleanup(self):
            pass

    class ScriptedLoadableModuleLogic:
        def __init__(self, parent=None):
            self.moduleName = self.__class__.__name__.removesuffix("Logic")
            self.isSingletonParameterNode = True

        def getParameterNode(self):
            scene = slicer.mrmlScene
            node = scene.GetSingletonNode(self.moduleName, "vtkMRMLScriptedModuleNode")
            if node is not None:
                if node.GetAttribute("ModuleName") != self.moduleName:
                    node.SetAttribute("ModuleName", self.moduleName)
                return node
            return scene.AddNode(self.createParameterNode())

        def createParameterNode(self):
            node = slicer.mrmlScene.CreateNodeByClass("vtkMRMLScriptedModuleNode")
            node.UnRegister(None)
            node.SetSingletonTag(self.moduleName)
            node.SetAttribute("ModuleName", self.moduleName)
            node.SetName(slicer.mrmlScene.GenerateUniqueName(self.moduleName))
            return node

    class ScriptedLoadableModuleTest(unittest.TestCase):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.messages: list[str] = []

        def delayDisplay(self, message, requestedDelay=None, msec=None):
            self.messages.append(message)
            slicer.util.delayDisplay(message)

        def runTest(self):
            pass

    for cls in (ScriptedLoadableModule, ScriptedLoadableModuleWidget, ScriptedLoadableModuleLogic,
                ScriptedLoadableModuleTest):
        cls.__module__ = mod.__name__
        setattr(mod, cls.__name__, cls)
    return mod


class Harness:
    """Installs the stand-ins, loads modules, and removes everything again on ``close``."""

    def __init__(self, version=(5, 10)):
        import slicer
        import slicer.util

        from SpineAILib.scene import new_scene
        from SpineAILib.scene.mrml import _slicer

        self.slicer = slicer
        self._saved_modules = {k: sys.modules.get(k) for k in
                               ("qt", "ctk", "slicer.ScriptedLoadableModule", "SpineAICommon",
                                "SpineAICommon.compat", "SpineAICommon.gui", "SpineAICommon.logic",
                                *MODULE_NAMES)}
        self._saved_attrs = {k: getattr(slicer, k, None) for k in ("mrmlScene", "app", "modules", "selfTests",
                                                                     "ScriptedLoadableModule")}
        self._saved_util = {k: getattr(slicer.util, k) for k in ("errorDisplay", "warningDisplay", "delayDisplay",
                                                                   "confirmOkCancelDisplay")}
        self._saved_path = list(sys.path)
        self.errors: list[str] = []
        self.warnings: list[str] = []
        self.displayed: list[str] = []
        sys.modules["qt"] = _stub_module("qt")
        sys.modules["ctk"] = _stub_module("ctk")
        slm = _scripted_loadable_module(slicer)
        sys.modules["slicer.ScriptedLoadableModule"] = slm
        slicer.ScriptedLoadableModule = slm
        slicer.mrmlScene = new_scene()
        slicer.app = App(version)
        self.terminologies = _slicer().vtkSlicerTerminologiesModuleLogic()
        slicer.modules = Modules(terminologies=types.SimpleNamespace(logic=lambda: self.terminologies))
        slicer.util.errorDisplay = lambda text, *a, **k: self.errors.append(text)
        slicer.util.warningDisplay = lambda text, *a, **k: self.warnings.append(text)
        slicer.util.delayDisplay = lambda text, *a, **k: self.displayed.append(text)
        slicer.util.confirmOkCancelDisplay = lambda *a, **k: False
        for name in [k for k in sys.modules if k.startswith("SpineAICommon")] + MODULE_NAMES:
            sys.modules.pop(name, None)
        # Slicer puts every scripted module's folder on sys.path; SpineAICommon sits in SpineAI/SpineAI.
        sys.path.insert(0, str(MODULES_DIR / "SpineAI"))
        self.loaded: dict[str, tuple[types.ModuleType, object, types.SimpleNamespace]] = {}

    @property
    def scene(self):
        return self.slicer.mrmlScene

    def load(self, name: str):
        """Import SpineAI/<name>/<name>.py as Slicer's factory does (by file path, under the
        module's name) and instantiate the module class with a parent that has the file's path.
        Returns (python module, module instance, parent)."""
        if name in self.loaded:
            return self.loaded[name]
        path = MODULES_DIR / name / f"{name}.py"
        sys.path.insert(0, str(path.parent))
        spec = importlib.util.spec_from_file_location(name, path)
        pymod = importlib.util.module_from_spec(spec)
        sys.modules[name] = pymod
        spec.loader.exec_module(pymod)
        parent = types.SimpleNamespace(path=str(path))
        instance = getattr(pymod, name)(parent)
        self.loaded[name] = (pymod, instance, parent)
        return self.loaded[name]

    def close(self):
        slicer = self.slicer
        for k, v in self._saved_modules.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
        for k, v in self._saved_attrs.items():
            if v is None:
                if hasattr(slicer, k):
                    delattr(slicer, k)
            else:
                setattr(slicer, k, v)
        for k, v in self._saved_util.items():
            setattr(slicer.util, k, v)
        sys.path[:] = self._saved_path
        logging.getLogger(__name__).debug("slicer harness closed")
