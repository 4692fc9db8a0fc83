"""X-ray Vertebrae: spine radiograph -> vertebrae named C2..S1 (lateral) or T1..L5 (AP) as a point
list, the endplate lines and angle markups of the sagittal alignment (C2-C7 lordosis, T4-T12
kyphosis, L1-S1 lordosis, sacral slope), and a table.

Console (blocking)::

    logic = slicer.util.getModuleLogic("XrayVertebrae")
    result = logic.process(slicer.util.getNode("MyXray"), view="auto")   # SpineAILib XrayVertebraeResult
    result.view, result.names(), result.alignment.t4_t12_kyphosis, result.warnings
"""

import slicer
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)

import SpineAICommon

VIEWS = ("auto", "lateral", "ap")


class XrayVertebrae(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        SpineAICommon.describeModule(
            self.parent, "X-ray Vertebrae",
            "Select a spine radiograph (2D, one slice) and click Apply. In a lateral view SpineAI names the "
            "vertebrae C2 to L5 and the S1 plate, finds their endplate corners and measures the sagittal alignment "
            "(C2-C7 lordosis, T4-T12 kyphosis, L1-S1 lordosis, sacral slope; Cobb method on the endplates). In an "
            "AP view it names T1 to L5. The view is detected automatically unless chosen. Warnings say when the "
            "result should not be trusted (upside down, vertebrae missed, no spine found).",
            "Lateral model trained by SpineAI on an open collection of sagittal whole-spine radiographs "
            "(vertebrae_detection test set); AP labels from the Cobb Angle module's model (AASCE 2019 training "
            "data). Method after Bayat et al., CSI 2019 (U-Net + residual corrector). Research use only.")


class XrayVertebraeWidget(SpineAICommon.TaskWidgetMixin, ScriptedLoadableModuleWidget):
    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        if SpineAICommon.UNSUPPORTED:
            SpineAICommon.setupUnsupported(self)
            return
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/XrayVertebrae.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        for view in VIEWS:
            self.ui.viewComboBox.addItem(view)
        self.logic = XrayVertebraeLogic()
        self.setupTaskControls()

    def checkAndStart(self):
        volume = self.ui.inputSelector.currentNode()
        self.logic.checkInput(volume)
        if not SpineAICommon.ensureDependencies():
            return
        self.newWorkDir("xrv")
        inputPath = SpineAICommon.exportVolume(volume, self._workDir)
        self.startTask("xray-vertebrae", self.logic.cliArguments(inputPath, self._workDir,
                                                                 self.ui.viewComboBox.currentText),
                       "Labelling vertebrae in the background...")

    def onTaskSucceeded(self, output):
        result = self.logic.readResult(self._workDir)
        self.logic.writeResult(self._taskVolume, result)
        names = result.names()
        text = f"{result.view} view: {len(names)} vertebrae" + (f" ({names[0]}-{names[-1]})" if names else "")
        if result.alignment is not None:
            angles = [f"{k.replace('_', ' ')} {v:.1f}°" for k, v in result.alignment.angles().items() if v is not None]
            text += "; " + ", ".join(angles)
        self.ui.statusLabel.text = text
        if result.warnings:
            slicer.util.warningDisplay("\n\n".join(result.warnings), windowTitle="X-ray Vertebrae: warnings")


class XrayVertebraeLogic(SpineAICommon.OutputNodesMixin, ScriptedLoadableModuleLogic):
    """GUI-free: usable from the Python console; the Widget only adds the background process."""

    FOLDER = "X-ray vertebrae"

    TASK = "X-ray vertebra labelling"

    def checkInput(self, volumeNode):
        """Raise ValueError (with the reason) for inputs the model cannot take."""
        from SpineAILib.preprocessing import check_image
        from SpineAILib.scene import image_from_volume_node

        if volumeNode is None:
            raise ValueError("Select a spine radiograph first.")
        return check_image(image_from_volume_node(volumeNode), self.TASK, ndim=2)

    def process(self, volumeNode, view="auto", device="auto", progress=None):
        """Blocking: label and write the result into the scene. Returns the XrayVertebraeResult."""
        from SpineAILib.xray_vertebrae import label

        image = self.checkInput(volumeNode)
        result = label(image, view=view, device=device, progress=progress)
        self.writeResult(volumeNode, result)
        return result

    def writeResult(self, volumeNode, result):
        from SpineAILib.scene import image_from_volume_node
        from SpineAILib.xray_vertebrae.scene import write_xray_vertebrae_result

        image = image_from_volume_node(volumeNode).as_2d(self.TASK)
        nodes = write_xray_vertebrae_result(slicer.mrmlScene, image, result, prefix=f"{volumeNode.GetName()}")
        self.placeResults(nodes, volumeNode, self.FOLDER)
        return nodes

    # Background-process plumbing (the CLI is the same code path as process()).
    def cliArguments(self, inputPath, workDir, view="auto"):
        return [inputPath, "--output", workDir, "--view", view]

    def readResult(self, workDir):
        """The background process's result (``input.json``, see ``cliArguments``)."""
        from SpineAILib.tasks import get_task

        return get_task("xray-vertebrae").read_outputs(workDir, "input.nrrd")


class XrayVertebraeTest(ScriptedLoadableModuleTest):
    """Runs inside Slicer; the same SpineAILib functions are covered by Testing/test_xray_vertebrae.py."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        if SpineAICommon.torchMissing():
            self.delayDisplay("XrayVertebrae test skipped: PyTorch is not installed.")
            return
        self.setUp()
        self.test_lateral_phantom()

    def test_lateral_phantom(self):
        from SpineAILib.phantoms import lateral_spine_phantom
        from SpineAILib.scene import add_volume

        # The shipped model is trained on real radiographs and finds little on this simple
        # phantom; the test checks the pipeline and the scene, not the accuracy.
        ph = lateral_spine_phantom()
        volume = add_volume(slicer.mrmlScene, ph.image, "Lateral phantom")
        result = XrayVertebraeLogic().process(volume, view="lateral", device="cpu")
        self.assertEqual(result.view, "lateral")
        self.assertIsNotNone(slicer.mrmlScene.GetFirstNodeByName("Lateral phantom table"))
        points = slicer.mrmlScene.GetFirstNodeByName("Lateral phantom vertebrae")
        if result.vertebrae:
            self.assertEqual(points.GetNumberOfControlPoints(), len(result.vertebrae))
        self.delayDisplay("X-ray Vertebrae OK")
