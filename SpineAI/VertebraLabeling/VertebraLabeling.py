"""Vertebra Labeling: a CT volume in; a point list with one point per vertebra ("C1".."L5",
"S1"), a segmentation with one segment per vertebra and a table (label, position, confidence) out.

Corrections re-run only what depends on them: move a point or rename it ("L1" -> "L2"), or shift
the whole column's labels from one point, then "Update segments and table" rebuilds the segments
and table from the points without running the networks again.

Console (blocking)::

    logic = slicer.util.getModuleLogic("VertebraLabeling")
    result = logic.process(slicer.util.getNode("CT"))
    result.names(), result.centroids_ras(), result.warnings
    logic.shiftLabels(pointsNode, "T12", "L1")      # the count was off by one
    logic.updateFromPoints(slicer.util.getNode("CT"), pointsNode)
"""

import tempfile

import slicer
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)

import SpineAICommon


class VertebraLabeling(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "Vertebra Labeling"
        self.parent.categories = ["SpineAI"]
        self.parent.dependencies = []
        self.parent.contributors = ["SpineAI developers"]
        self.parent.helpText = (
            "Select a CT volume and click Apply: SpineAI finds the vertebrae and labels them C1..L5/S1 "
            "(two-stage detection + identification CNNs, McCouat and Glocker). Results: a point per vertebra, a "
            "segment per vertebra and a table. Correct a label by renaming a point (or shift all labels from one "
            "point), move points, then click 'Update segments and table'. The shipped models were trained on "
            "synthetic CT phantoms and one real chest CT; see the model cards for what that means for accuracy."
        )
        self.parent.acknowledgementText = (
            "Method: McCouat and Glocker, 'Vertebrae detection and localization in CT with two-stage CNNs and "
            "dense annotations', MICCAI MSKI workshop 2019.")


class VertebraLabelingWidget(SpineAICommon.TaskWidgetMixin, ScriptedLoadableModuleWidget):
    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/VertebraLabeling.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = VertebraLabelingLogic()
        self._workDir = None
        self.setupTaskControls()
        self.ui.updateButton.connect("clicked(bool)", self.onUpdateFromPoints)
        self.ui.shiftButton.connect("clicked(bool)", self.onShiftLabels)

    def checkAndStart(self):
        volume = self.ui.inputSelector.currentNode()
        self.logic.checkInput(volume)
        if not SpineAICommon.ensureDependencies():
            return
        self._workDir = tempfile.mkdtemp(prefix="spineai-vertebrae-")
        inputPath = SpineAICommon.exportVolume(volume, self._workDir)
        self.startTask("vertebrae", [inputPath, "--output", self._workDir], "Labelling vertebrae in the background...")

    def onTaskSucceeded(self, output):
        nodes, result = self.logic.readResult(self._workDir, self.ui.inputSelector.currentNode())
        self.ui.pointsSelector.setCurrentNode(nodes["centroids"])
        found = result.names()
        numbered = {None: "the network alone", "ribs": "the ribs"}.get(result.numbering, result.numbering)
        self.ui.statusLabel.text = (f"{len(found)} vertebrae: {' '.join(found)} (numbered by {numbered})" if found
                                    else "No vertebrae found.")
        if result.warnings:
            slicer.util.warningDisplay("\n\n".join(result.warnings), windowTitle="Vertebra Labeling")

    def onUpdateFromPoints(self):
        try:
            self.logic.updateFromPoints(self.ui.inputSelector.currentNode(), self.ui.pointsSelector.currentNode())
            self.ui.statusLabel.text = "Segments and table updated from the points."
        except Exception as exc:  # noqa: BLE001 - shown to the user, Slicer keeps running
            SpineAICommon.showError("Could not update from the points.", exc)

    def onShiftLabels(self):
        try:
            self.logic.shiftLabels(self.ui.pointsSelector.currentNode(), self.ui.shiftFromLineEdit.text,
                                   self.ui.shiftToLineEdit.text)
            self.ui.statusLabel.text = "Labels shifted; click 'Update segments and table' to rebuild the segments."
        except Exception as exc:  # noqa: BLE001
            SpineAICommon.showError("Could not shift the labels.", exc)


class VertebraLabelingLogic(ScriptedLoadableModuleLogic):
    TASK = "Vertebra labelling"

    def checkInput(self, volumeNode):
        from SpineAILib.preprocessing import check_image
        from SpineAILib.scene import image_from_volume_node

        if volumeNode is None:
            raise ValueError("Select a CT volume first.")
        return check_image(image_from_volume_node(volumeNode), self.TASK, ndim=3, min_size=2)

    def process(self, volumeNode, device="auto"):
        """Blocking: locate the vertebrae and write points, segments and table. Returns the result."""
        from SpineAILib.vertebrae import locate
        from SpineAILib.vertebrae.scene import write_vertebrae_result

        image = self.checkInput(volumeNode)
        result = locate(image, device=device)
        write_vertebrae_result(slicer.mrmlScene, result, volumeNode, f"{volumeNode.GetName()} vertebra")
        return result

    def readResult(self, workDir, volumeNode):
        """Load the background process's files (centroids.json, report.json, vertebrae.nii.gz) into
        the scene. Returns (nodes, result)."""
        from SpineAILib.tasks import get_task
        from SpineAILib.vertebrae.scene import write_vertebrae_result

        result = get_task("vertebrae").read_outputs(workDir)
        nodes = write_vertebrae_result(slicer.mrmlScene, result, volumeNode, f"{volumeNode.GetName()} vertebra")
        return nodes, result

    @staticmethod
    def centroidsFromPoints(pointsNode):
        """{VerSe label: LPS mm} from a point list whose points are named "C1".."L5"/"S1"."""
        from SpineAILib import anatomy
        from SpineAILib.io.image import lps_to_ras
        from SpineAILib.scene import fiducials_ras

        if pointsNode is None:
            raise ValueError("Select the vertebra point list first.")
        names, ras = fiducials_ras(pointsNode)
        out = {}
        for name, p in zip(names, ras, strict=True):
            lab = anatomy.vertebra_label(name)
            if lab in out:
                raise ValueError(f"Two points are named {name}; every vertebra name may appear once.")
            out[lab] = lps_to_ras(p)  # RAS <-> LPS is its own inverse
        return out

    def updateFromPoints(self, volumeNode, pointsNode):
        """Downstream of the points only: new segments and table from the (corrected) points."""
        from SpineAILib.vertebrae import segments_from_centroids
        from SpineAILib.vertebrae.predict import VertebraResult
        from SpineAILib.vertebrae.scene import write_vertebrae_result

        image = self.checkInput(volumeNode)
        cents = self.centroidsFromPoints(pointsNode)
        labels = segments_from_centroids(image, cents)
        result = VertebraResult(cents, {lab: 1.0 for lab in cents}, labels, [])
        nodes = write_vertebrae_result(slicer.mrmlScene, result, volumeNode,
                                       f"{volumeNode.GetName()} vertebra (corrected)")
        slicer.mrmlScene.RemoveNode(nodes.pop("centroids"))  # the user's edited point list stays the one to use
        return nodes

    def shiftLabels(self, pointsNode, fromName, toName):
        """Rename every point so that ``fromName`` becomes ``toName`` (the others follow in order)."""
        from SpineAILib import anatomy
        from SpineAILib.vertebrae import shift_labels

        cents = self.centroidsFromPoints(pointsNode)
        shifted = shift_labels(cents, anatomy.vertebra_label(fromName), anatomy.vertebra_label(toName))
        old_to_new = dict(zip(sorted(cents, key=anatomy.ORDER.index), sorted(shifted, key=anatomy.ORDER.index), strict=True))
        for i in range(pointsNode.GetNumberOfControlPoints()):
            lab = anatomy.vertebra_label(pointsNode.GetNthControlPointLabel(i))
            pointsNode.SetNthControlPointLabel(i, anatomy.vertebra_name(old_to_new[lab]))
        return shifted


class VertebraLabelingTest(ScriptedLoadableModuleTest):
    """Runs inside Slicer; the same SpineAILib functions are covered by Testing/test_vertebrae.py."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_phantom()

    def test_phantom(self):
        from SpineAILib.phantoms import CTPhantomConfig, ct_spine_phantom
        from SpineAILib.scene import add_volume

        ph = ct_spine_phantom(CTPhantomConfig(first="T10", last="L3", spacing=(1.5, 1.5, 2.0)))
        volume = add_volume(slicer.mrmlScene, ph.image, "CT phantom")
        logic = VertebraLabelingLogic()
        result = logic.process(volume, device="cpu")
        self.assertGreaterEqual(len(result.centroids), 4)
        points = slicer.mrmlScene.GetFirstNodeByName("CT phantom vertebra centroids")
        self.assertEqual(points.GetNumberOfControlPoints(), len(result.centroids))
        names = [points.GetNthControlPointLabel(i) for i in range(points.GetNumberOfControlPoints())]
        logic.shiftLabels(points, names[0], names[1])
        nodes = logic.updateFromPoints(volume, points)
        self.assertIsNotNone(nodes["segmentation"])
        self.delayDisplay("Vertebra Labeling OK")
