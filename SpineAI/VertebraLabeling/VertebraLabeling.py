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
        SpineAICommon.describeModule(
            self.parent, "Vertebra Labeling",
            "Select a CT volume and click Apply: SpineAI finds the vertebrae and labels them C1..L5/S1 "
            "(two-stage detection + identification CNNs, McCouat and Glocker). Results: a point per vertebra, a "
            "segment per vertebra and a table, in a folder named after the CT in the Data module. Correct a label "
            "by renaming a point (or shift all labels from one point), move points, then click 'Update segments "
            "and table' (it updates that CT's corrected segments and table). The shipped models were trained on "
            "synthetic CT phantoms and one real chest CT; see the model cards for what that means for accuracy.",
            "Method: McCouat and Glocker, 'Vertebrae detection and localization in CT with two-stage CNNs and "
            "dense annotations', MICCAI MSKI workshop 2019.")


class VertebraLabelingWidget(SpineAICommon.TaskWidgetMixin, ScriptedLoadableModuleWidget):
    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        if SpineAICommon.UNSUPPORTED:
            SpineAICommon.setupUnsupported(self)
            return
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/VertebraLabeling.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = VertebraLabelingLogic()
        self.setupTaskControls()
        self.ui.updateButton.connect("clicked(bool)", self.onUpdateFromPoints)
        self.ui.shiftButton.connect("clicked(bool)", self.onShiftLabels)

    def checkAndStart(self):
        volume = self.ui.inputSelector.currentNode()
        self.logic.checkInput(volume)
        if not SpineAICommon.ensureDependencies():
            return
        workDir = self.newWorkDir("vertebrae")
        inputPath = SpineAICommon.exportVolume(volume, workDir)
        self.startTask("vertebrae", [inputPath, "--output", workDir], "Labelling vertebrae in the background...")

    def onTaskSucceeded(self, output):
        nodes, result = self.logic.readResult(self._workDir, self._taskVolume)
        self.ui.pointsSelector.setCurrentNode(nodes["centroids"])
        found = result.names()
        numbered = result.numbered_by
        self.ui.statusLabel.text = (f"{len(found)} vertebrae: {' '.join(found)} (numbered by {numbered})" if found
                                    else "No vertebrae found.")
        if result.warnings:
            slicer.util.warningDisplay("\n\n".join(result.warnings), windowTitle="Vertebra Labeling")

    def onUpdateFromPoints(self):
        try:
            with slicer.util.WaitCursor():
                self.logic.updateFromPoints(self.ui.inputSelector.currentNode(), self.ui.pointsSelector.currentNode())
            self.ui.statusLabel.text = "Segments and table updated from the points."
        except Exception as exc:  # noqa: BLE001 - shown to the user, Slicer keeps running
            SpineAICommon.showError(f"Could not update from the points: {exc}", exc)

    def onShiftLabels(self):
        try:
            self.logic.shiftLabels(self.ui.pointsSelector.currentNode(), self.ui.shiftFromLineEdit.text,
                                   self.ui.shiftToLineEdit.text)
            self.ui.statusLabel.text = "Labels shifted; click 'Update segments and table' to rebuild the segments."
        except Exception as exc:  # noqa: BLE001
            SpineAICommon.showError(f"Could not shift the labels: {exc}", exc)


class VertebraLabelingLogic(SpineAICommon.OutputNodesMixin, ScriptedLoadableModuleLogic):
    TASK = "Vertebra labelling"
    FOLDER = "vertebrae"

    def checkInput(self, volumeNode):
        from SpineAILib.preprocessing import check_image
        from SpineAILib.scene import image_from_volume_node

        if volumeNode is None:
            raise ValueError("Select a CT volume first.")
        return check_image(image_from_volume_node(volumeNode), self.TASK, ndim=3, min_size=2)

    def _write(self, result, volumeNode):
        from SpineAILib.vertebrae.scene import write_vertebrae_result

        nodes = write_vertebrae_result(slicer.mrmlScene, result, volumeNode, f"{volumeNode.GetName()} vertebra")
        self.placeResults(nodes, volumeNode, self.FOLDER)
        return nodes

    def process(self, volumeNode, device="auto"):
        """Blocking: locate the vertebrae and write points, segments and table (one new folder
        per run). Returns the result."""
        from SpineAILib.vertebrae import locate

        image = self.checkInput(volumeNode)
        result = locate(image, device=device)
        self._write(result, volumeNode)
        return result

    def readResult(self, workDir, volumeNode):
        """Load the background process's files (centroids.json, report.json, vertebrae.nii.gz) into
        the scene. Returns (nodes, result)."""
        from SpineAILib.tasks import get_task

        result = get_task("vertebrae").read_outputs(workDir)
        return self._write(result, volumeNode), result

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
        for name, p in zip(names, ras):
            lab = anatomy.vertebra_label(name)
            if lab in out:
                raise ValueError(f"Two points are named {name}; every vertebra name may appear once.")
            out[lab] = lps_to_ras(p)  # RAS <-> LPS is its own inverse
        return out

    def updateFromPoints(self, volumeNode, pointsNode):
        """Downstream of the points only: this CT's corrected segments and table from the (edited)
        points. The first call makes them; later calls update the same two nodes."""
        from SpineAILib.scene import add_table
        from SpineAILib.scene.spine import write_vertebra_labels
        from SpineAILib.vertebrae import segments_from_centroids
        from SpineAILib.vertebrae.predict import VertebraResult
        from SpineAILib.vertebrae.scene import result_table

        image = self.checkInput(volumeNode)
        cents = self.centroidsFromPoints(pointsNode)
        labels = segments_from_centroids(image, cents)
        result = VertebraResult(cents, {lab: 1.0 for lab in cents}, labels, [])
        name = f"{volumeNode.GetName()} vertebra (corrected)"
        segmentation = write_vertebra_labels(slicer.mrmlScene, labels, volumeNode, f"{name} segments",
                                             self.outputNode(volumeNode, "CorrectedSegmentation"))
        table = add_table(slicer.mrmlScene, f"{name} table", result_table(result),
                          self.outputNode(volumeNode, "CorrectedTable"))
        self.setOutputNode(volumeNode, "CorrectedSegmentation", segmentation)
        self.setOutputNode(volumeNode, "CorrectedTable", table)
        self.placeResults([segmentation, table], volumeNode, self.FOLDER, reuseFolder=True)
        return {"segmentation": segmentation, "table": table}

    def shiftLabels(self, pointsNode, fromName, toName):
        """Rename every point so that ``fromName`` becomes ``toName`` (the others follow in order)."""
        from SpineAILib import anatomy
        from SpineAILib.vertebrae import shift_labels

        cents = self.centroidsFromPoints(pointsNode)
        shifted = shift_labels(cents, anatomy.vertebra_label(fromName), anatomy.vertebra_label(toName))
        old_to_new = dict(zip(sorted(cents, key=anatomy.ORDER.index), sorted(shifted, key=anatomy.ORDER.index)))
        for i in range(pointsNode.GetNumberOfControlPoints()):
            lab = anatomy.vertebra_label(pointsNode.GetNthControlPointLabel(i))
            pointsNode.SetNthControlPointLabel(i, anatomy.vertebra_name(old_to_new[lab]))
        return shifted


class VertebraLabelingTest(ScriptedLoadableModuleTest):
    """Runs inside Slicer; the same SpineAILib functions are covered by Testing/test_vertebrae.py.
    Skipped (with a message) when PyTorch is not installed."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        if SpineAICommon.torchMissing():
            self.delayDisplay("Vertebra Labeling test skipped: PyTorch is not installed.")
            return
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
        again = logic.updateFromPoints(volume, points)  # updates, adds no node
        self.assertEqual(again["segmentation"].GetID(), nodes["segmentation"].GetID())
        self.assertEqual(again["table"].GetID(), nodes["table"].GetID())
        self.delayDisplay("Vertebra Labeling OK")
