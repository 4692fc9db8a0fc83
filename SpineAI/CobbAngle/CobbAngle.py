"""Cobb Angle: AP spine radiograph -> 68 vertebra-corner landmarks, the three AASCE Cobb angles
drawn as markups, and a table (angle, value, end vertebrae, apex).

Console (blocking)::

    logic = slicer.util.getModuleLogic("CobbAngle")
    result = logic.process(slicer.util.getNode("MyXray"))   # SpineAILib CobbResult
    result.values, result.angles.main.upper_end, result.warnings
"""

import slicer
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)

import SpineAICommon


class CobbAngle(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        SpineAICommon.describeModule(
            self.parent, "Cobb Angle",
            "Select an AP spine radiograph (2D, one slice) and click Apply. SpineAI detects the four corners of "
            "the 17 vertebrae T1-L5 and computes the three Cobb angles as the AASCE 2019 challenge defines them "
            "(main curve, the curve above and the curve below). A warning is shown when the detection is not "
            "trustworthy (wrong view, not a spine, vertebrae missed).",
            "Landmark model trained by SpineAI on the AASCE 2019 challenge training data (SpineWeb dataset 16, "
            "London Health Sciences Center; Wu et al., MICCAI 2017). Research use only.")


class CobbAngleWidget(SpineAICommon.TaskWidgetMixin, ScriptedLoadableModuleWidget):
    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        if SpineAICommon.UNSUPPORTED:
            SpineAICommon.setupUnsupported(self)
            return
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/CobbAngle.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = CobbAngleLogic()
        self.setupTaskControls()

    def checkAndStart(self):
        volume = self.ui.inputSelector.currentNode()
        self.logic.checkInput(volume)
        if not SpineAICommon.ensureDependencies():
            return
        self.newWorkDir("cobb")
        inputPath = SpineAICommon.exportVolume(volume, self._workDir)
        self.startTask("cobb", self.logic.cliArguments(inputPath, self._workDir),
                       "Detecting vertebrae in the background...")

    def onTaskSucceeded(self, output):
        result = self.logic.readResult(self._workDir)
        self.logic.writeResult(self._taskVolume, result)
        main, upper, lower = result.values
        self.ui.statusLabel.text = f"Main {main:.1f}°, upper {upper:.1f}°, lower {lower:.1f}° (confidence {result.confidence:.2f})"
        if result.warnings:
            slicer.util.warningDisplay("\n\n".join(result.warnings), windowTitle="Cobb Angle: low confidence")


class CobbAngleLogic(SpineAICommon.OutputNodesMixin, ScriptedLoadableModuleLogic):
    """GUI-free: usable from the Python console; the Widget only adds the background process."""

    FOLDER = "Cobb angles"

    def checkInput(self, volumeNode):
        """Raise ValueError (with the reason) for inputs the model cannot take."""
        from SpineAILib.preprocessing import check_image
        from SpineAILib.scene import image_from_volume_node

        if volumeNode is None:
            raise ValueError("Select an AP spine radiograph first.")
        return check_image(image_from_volume_node(volumeNode), "Cobb angle estimation", ndim=2)

    def process(self, volumeNode, device="auto", progress=None):
        """Blocking: estimate and write the result into the scene. Returns the CobbResult."""
        from SpineAILib.cobb import estimate

        image = self.checkInput(volumeNode)
        result = estimate(image, device=device, progress=progress)
        self.writeResult(volumeNode, result)
        return result

    def writeResult(self, volumeNode, result):
        from SpineAILib.cobb.scene import write_cobb_result
        from SpineAILib.scene import image_from_volume_node

        image = image_from_volume_node(volumeNode).as_2d("Cobb angle estimation")
        nodes = write_cobb_result(slicer.mrmlScene, image, result, prefix=f"{volumeNode.GetName()} Cobb")
        self.placeResults(nodes, volumeNode, self.FOLDER)
        return nodes

    # Background-process plumbing (the CLI is the same code path as process()).
    def cliArguments(self, inputPath, workDir):
        return [inputPath, "--output", workDir, "--landmarks", workDir]

    def readResult(self, workDir):
        """The background process's result (``input.nrrd.json``, see ``cliArguments``)."""
        from SpineAILib.tasks import get_task

        return get_task("cobb").read_outputs(workDir, "input.nrrd")


class CobbAngleTest(ScriptedLoadableModuleTest):
    """Runs inside Slicer; the same SpineAILib functions are covered by Testing/test_cobb.py."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        if SpineAICommon.torchMissing():
            self.delayDisplay("CobbAngle test skipped: PyTorch is not installed.")
            return
        self.setUp()
        self.test_rule_and_scene_on_phantom()

    def test_rule_and_scene_on_phantom(self):
        from SpineAILib.cobb.angles import cobb_angles
        from SpineAILib.phantoms import ap_radiograph_phantom
        from SpineAILib.scene import add_volume

        ph = ap_radiograph_phantom()
        angles = cobb_angles(ph.landmarks, ph.image.array.shape[0])
        self.assertAlmostEqual(angles.main.angle_deg, ph.cobb_main_deg, places=6)
        volume = add_volume(slicer.mrmlScene, ph.image, "AP phantom")
        result = CobbAngleLogic().process(volume, device="cpu")
        self.assertEqual(result.landmarks.shape, (68, 2))
        table = slicer.mrmlScene.GetFirstNodeByName("AP phantom Cobb angles")
        self.assertIsNotNone(table)
        self.assertEqual(table.GetNumberOfRows(), 3)
        self.delayDisplay("Cobb Angle OK")
