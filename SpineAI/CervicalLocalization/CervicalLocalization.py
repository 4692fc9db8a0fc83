"""Cervical Localization: a lateral cervical radiograph in, a segment "Cervical spine C3-C7
region" on it (and the probability map as a volume if asked).

Console (blocking)::

    logic = slicer.util.getModuleLogic("CervicalLocalization")
    result = logic.process(slicer.util.getNode("LateralXray"), probabilityVolume=True)
    result.found, result.axis_angle_deg, result.warnings
"""

import slicer
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)

import SpineAICommon


class CervicalLocalization(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        SpineAICommon.describeModule(
            self.parent, "Cervical Localization",
            "Select a lateral cervical or whole-spine radiograph and click Apply: SpineAI segments the region of "
            "the C3-C7 vertebrae. The X-ray vertebra labelling finds the neck, and the region joins the one drawn "
            "from its C3-C7 corners with the localisation network's (Al Arif et al.), both trained on real "
            "lateral radiographs.",
            "Method: Al Arif, Knapp and Slabaugh, DLMIA 2017.")


class CervicalLocalizationWidget(SpineAICommon.TaskWidgetMixin, ScriptedLoadableModuleWidget):
    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        if SpineAICommon.UNSUPPORTED:
            SpineAICommon.setupUnsupported(self)
            return
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/CervicalLocalization.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = CervicalLocalizationLogic()
        self.setupTaskControls()

    def checkAndStart(self):
        volume = self.ui.inputSelector.currentNode()
        self.logic.checkInput(volume)
        if not SpineAICommon.ensureDependencies():
            return
        self.newWorkDir("cervical")
        inputPath = SpineAICommon.exportVolume(volume, self._workDir)
        self.startTask("cervical", [inputPath, "--output", self._workDir, "--probability"],
                       "Localising in the background...")

    def onTaskSucceeded(self, output):
        result = self.logic.readResult(self._workDir, self._taskVolume,
                                       self.ui.probabilityCheckBox.checked)
        self.ui.statusLabel.text = "Found." if result.found else "No cervical spine found."
        if result.warnings:
            slicer.util.warningDisplay("\n\n".join(result.warnings), windowTitle="Cervical Localization")


class CervicalLocalizationLogic(SpineAICommon.OutputNodesMixin, ScriptedLoadableModuleLogic):
    FOLDER = "cervical spine"

    def checkInput(self, volumeNode):
        from SpineAILib.preprocessing import check_image
        from SpineAILib.scene import image_from_volume_node

        if volumeNode is None:
            raise ValueError("Select a lateral cervical radiograph first.")
        return check_image(image_from_volume_node(volumeNode), "Cervical spine localisation", ndim=2)

    def process(self, volumeNode, device="auto", probabilityVolume=False):
        """Blocking: localise and write the segment (and probability volume). Returns the result."""
        from SpineAILib.cervical.scene import write_cervical_result
        from SpineAILib.tasks import get_task

        image = self.checkInput(volumeNode)
        # the registry's run: the lateral vertebra labelling's C3-C7 corners on real radiographs,
        # else the region-aware FCN
        result = get_task("cervical").run(image, device=device)
        nodes = write_cervical_result(slicer.mrmlScene, image, result, volumeNode, f"{volumeNode.GetName()} cervical",
                                      probabilityVolume)
        self.placeResults(nodes, volumeNode, self.FOLDER)
        return result

    def readResult(self, workDir, volumeNode, probabilityVolume=False):
        """Load the background process's mask (and probability) onto the input's geometry."""
        from SpineAILib.cervical.scene import write_cervical_result
        from SpineAILib.tasks import get_task

        image = self.checkInput(volumeNode)
        result = get_task("cervical").read_outputs(workDir)
        nodes = write_cervical_result(slicer.mrmlScene, image, result, volumeNode, f"{volumeNode.GetName()} cervical",
                                      probabilityVolume)
        self.placeResults(nodes, volumeNode, self.FOLDER)
        return result


class CervicalLocalizationTest(ScriptedLoadableModuleTest):
    """Runs inside Slicer; the same SpineAILib functions are covered by Testing/test_cervical.py."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        if SpineAICommon.torchMissing():
            self.delayDisplay("CervicalLocalization test skipped: PyTorch is not installed.")
            return
        self.setUp()
        self.test_phantom()

    def test_phantom(self):
        from SpineAILib.phantoms import lateral_cervical_phantom
        from SpineAILib.scene import add_volume

        ph = lateral_cervical_phantom()
        volume = add_volume(slicer.mrmlScene, ph.image, "Lateral phantom")
        result = CervicalLocalizationLogic().process(volume, device="cpu", probabilityVolume=True)
        self.assertTrue(result.found)
        seg = slicer.mrmlScene.GetFirstNodeByName("Lateral phantom cervical localization")
        self.assertEqual(seg.GetSegmentation().GetNthSegment(0).GetName(), "Cervical spine C3-C7 region")
        self.delayDisplay("Cervical Localization OK")
