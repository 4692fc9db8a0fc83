"""SpineAI home module: status (versions, device), installed models, demo and about.

Thin Widget + Logic + Test: the Logic only calls SpineAILib and holds no Qt code; the Widget
gathers inputs and shows progress; the Test runs inside Slicer on the same SpineAILib
functions the pytest suite covers.
"""

import logging
import os

import slicer
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)

import SpineAICommon

ABOUT = (
    "SpineAI brings spine-imaging AI to 3D Slicer: Cobb angles from AP radiographs, CT vertebra "
    "labelling, click-to-segment vertebral bodies with fracture grading, and cervical spine "
    "localisation. All computation lives in the pure-Python SpineAILib, usable from the Python "
    "console and the 'spineai' command line."
)


class SpineAI(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        SpineAICommon.describeModule(
            self.parent, "SpineAI",
            ABOUT + " See the documentation for the console and CLI API.",
            "Uses PyTorch, MONAI, SimpleITK and VTK. Phantoms are synthetic; real-data models cite their data sets "
            "in their model cards.")
        if not SpineAICommon.UNSUPPORTED:
            # Slicer's Terminologies and Sample Data modules are ready only once startup completes.
            slicer.app.connect("startupCompleted()", self.registerWithSlicer)

    def registerWithSlicer(self):
        """Load the SpineAI terminology context and register the phantoms as sample data. A
        failure is logged and leaves the modules usable."""
        try:
            SpineAICommon.loadTerminology()
        except Exception as exc:  # noqa: BLE001 - the segments then keep their codes without a context
            logging.warning(f"SpineAI: could not load the terminology: {exc}")
        try:
            import SampleData

            SpineAICommon.registerSampleData(SampleData.SampleDataLogic, self.iconPath)
        except Exception as exc:  # noqa: BLE001
            logging.warning(f"SpineAI: could not register the sample data: {exc}")

    def iconPath(self, moduleName):
        """A module's icon: Resources/Icons next to the modules (build/install tree) or in the
        module's own folder (source tree)."""
        here = os.path.dirname(self.parent.path)
        for path in (os.path.join(here, "Resources", "Icons", f"{moduleName}.png"),
                     os.path.join(here, "..", moduleName, "Resources", "Icons", f"{moduleName}.png")):
            if os.path.isfile(path):
                return os.path.abspath(path)
        return None


class SpineAIWidget(ScriptedLoadableModuleWidget):
    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        if SpineAICommon.UNSUPPORTED:
            SpineAICommon.setupUnsupported(self)
            return
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/SpineAI.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = SpineAILogic()
        self.runner = SpineAICommon.BackgroundCliRunner(self.onProgress, self.onFinished)
        self.ui.outputDirSelector.currentPath = os.path.join(slicer.app.temporaryPath, "spineai-demo")
        self.ui.deviceComboBox.addItems(["auto", "cpu", "cuda", "mps"])
        self.ui.refreshButton.connect("clicked(bool)", self.refreshStatus)
        self.ui.runDemoButton.connect("clicked(bool)", self.onRunDemo)
        self.ui.cancelButton.connect("clicked(bool)", self.runner.cancel)
        self.ui.aboutLabel.text = ABOUT
        self.ui.cancelButton.enabled = False
        self.ui.progressBar.setValue(0)
        self.refreshStatus()

    def refreshStatus(self):
        try:
            info = self.logic.info(self.ui.deviceComboBox.currentText)
        except Exception as exc:  # noqa: BLE001 - shown to the user
            SpineAICommon.showError(f"Could not read the SpineAI status: {exc}", exc)
            return
        versions = info["versions"]
        self.ui.versionLabel.text = f"SpineAI {versions['spineai']}"
        self.ui.torchLabel.text = f"torch {versions['torch']}, MONAI {versions['monai']}"
        self.ui.deviceLabel.text = info["device"]
        self.ui.modelsDirLabel.text = info["models_dir"]
        models = info["models"]
        self.ui.modelsTable.setRowCount(len(models))
        import qt

        for row, model in enumerate(models):
            for col, key in enumerate(("name", "task", "architecture")):
                self.ui.modelsTable.setItem(row, col, qt.QTableWidgetItem(str(model[key])))

    def onRunDemo(self):
        try:
            if not SpineAICommon.ensureDependencies(("torch", "monai", "tqdm", "scipy", "matplotlib")):
                return
            outputDir = self.ui.outputDirSelector.currentPath
            self.ui.statusLabel.text = "Running the demo in the background..."
            self.runner.start("demo", ["--output", outputDir], self.ui.deviceComboBox.currentText)
        except Exception as exc:  # noqa: BLE001 - every user action ends in a message, never only a traceback
            SpineAICommon.showError(f"Could not start the demo: {exc}", exc)
            return
        self.ui.runDemoButton.enabled = False
        self.ui.cancelButton.enabled = True

    def onProgress(self, fraction, message):
        self.ui.progressBar.setValue(int(round(100 * fraction)))
        self.ui.statusLabel.text = message

    def onFinished(self, ok, exitCode, output):
        self.ui.runDemoButton.enabled = True
        self.ui.cancelButton.enabled = False
        if self.runner.cancelled:
            self.ui.statusLabel.text = "Cancelled."
            return
        if not ok:
            self.ui.statusLabel.text = "Failed."
            SpineAICommon.showError(f"The demo failed (exit code {exitCode}).\n\n{output[-2000:]}")
            return
        try:
            self.logic.loadDemoScene(self.ui.outputDirSelector.currentPath)
            self.ui.statusLabel.text = "Demo scene loaded."
        except Exception as exc:  # noqa: BLE001
            SpineAICommon.showError(f"Could not load the demo scene: {exc}", exc)


class SpineAILogic(ScriptedLoadableModuleLogic):
    """Console API (blocking, scriptable)::

        logic = slicer.util.getModuleLogic("SpineAI")
        logic.info()
        report = logic.runDemo("/tmp/spineai-demo")   # writes the .mrb, PNG, report
        logic.loadDemoScene("/tmp/spineai-demo")
    """

    def info(self, device="auto"):
        from SpineAILib.info import info

        return info(device)

    def runDemo(self, outputDir, device="auto", progress=None):
        from SpineAILib.demo import run_demo

        return run_demo(outputDir, device=device, progress=progress)

    def loadDemoScene(self, outputDir):
        """Add the demo bundle's nodes to the current scene (existing nodes are kept)."""
        path = os.path.join(outputDir, "spineai-demo.mrb")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"No demo scene at {path}; run the demo first.")
        return slicer.util.loadScene(path, {"clear": False})


class SpineAITest(ScriptedLoadableModuleTest):
    """Runs inside Slicer (WITH_GENERIC_TESTS / slicer_add_python_unittest). Uses the same
    SpineAILib functions as Testing/test_scene.py and test_phantoms.py."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_scene_writers()
        self.test_info()
        self.test_terminology()

    def test_terminology(self):
        from SpineAILib.scene.terminology import CONTEXT_NAME

        self.assertEqual(SpineAICommon.loadTerminology(), CONTEXT_NAME)
        self.delayDisplay("Terminology OK")

    def test_scene_writers(self):
        import numpy as np

        from SpineAILib.io.image import lps_to_ras
        from SpineAILib.phantoms import CTPhantomConfig, ct_spine_phantom
        from SpineAILib.scene import add_volume, fiducials_ras
        from SpineAILib.scene.spine import write_centroids, write_vertebra_labels

        ph = ct_spine_phantom(CTPhantomConfig(first="L1", last="L3", spacing=(2.0, 2.0, 2.0), ribs=False))
        volume = add_volume(slicer.mrmlScene, ph.image, "SpineAI test CT")
        seg = write_vertebra_labels(slicer.mrmlScene, ph.labels, volume)
        self.assertEqual(seg.GetSegmentation().GetNumberOfSegments(), 3)
        points = write_centroids(slicer.mrmlScene, ph.centroids)
        labels, ras = fiducials_ras(points)
        self.assertEqual(labels, ["L1", "L2", "L3"])
        expected = lps_to_ras(np.array([ph.centroids[20], ph.centroids[21], ph.centroids[22]]))
        self.assertTrue(np.allclose(ras, expected, atol=1e-6))
        self.delayDisplay("Scene writers OK")

    def test_info(self):
        info = SpineAILogic().info("cpu")
        self.assertIn("spineai", info["versions"])
        self.delayDisplay("Info OK")
