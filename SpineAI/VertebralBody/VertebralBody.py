"""Vertebral Body: click a vertebral body in a CT with the markups place tool; each new point
segments that body (a segment named "L2 vertebral body" when vertebra labelling points are
selected, else "Vertebral body N") and adds its measurements (volume, mean HU, anterior/middle/
posterior heights, Genant grade) to a table. "Undo last" removes the last point, its segment and
its row. The "Fracture assessment" section grades every labelled vertebra in the background
(voxel classifier + Genant) and colours the vertebra points by status.

Console (blocking)::

    logic = slicer.util.getModuleLogic("VertebralBody")
    result = logic.segmentPoint(ctNode, [12.0, -40.0, 310.0])         # RAS mm
    result.name, result.volume_ml, result.heights, result.genant.label
    fracture = logic.assessFractures(ctNode, labelPointsNode)         # centroids from Vertebra Labeling
"""

import json
import os
import tempfile

import slicer
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)

import SpineAICommon


class VertebralBody(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "Vertebral Body"
        self.parent.categories = ["SpineAI"]
        self.parent.dependencies = []
        self.parent.contributors = ["SpineAI developers"]
        self.parent.helpText = (
            "Select a CT, then click vertebral bodies with the point placement tool: each click segments that "
            "body and measures its volume, mean HU and anterior/middle/posterior heights (Genant grade from the "
            "heights). Select the Vertebra Labeling points to name the bodies and to run the fracture assessment. "
            "The shipped models were trained on synthetic CT phantoms: see the model cards."
        )
        self.parent.acknowledgementText = (
            "Methods: Klein et al., 'Metastatic vertebrae segmentation for use in a clinical pipeline', and Nicolaes "
            "et al., 'Detection of vertebral fractures in CT using 3D convolutional neural networks', CSI 2019.")


class VertebralBodyWidget(SpineAICommon.TaskWidgetMixin, ScriptedLoadableModuleWidget):
    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/VertebralBody.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = VertebralBodyLogic()
        self._workDir = None
        self._observed = None
        self._observerTag = None
        self.setupTaskControls()  # Apply = fracture assessment in the background
        self.ui.clickPointsSelector.connect("currentNodeChanged(vtkMRMLNode*)", self.onClickNodeChanged)
        self.ui.placeWidget.setMRMLScene(slicer.mrmlScene)
        self.ui.undoButton.connect("clicked(bool)", self.onUndo)
        self.onClickNodeChanged(self.ui.clickPointsSelector.currentNode())

    def cleanup(self):
        self._removeObserver()

    def _removeObserver(self):
        if self._observed is not None and self._observerTag is not None:
            self._observed.RemoveObserver(self._observerTag)
        self._observed, self._observerTag = None, None

    def onClickNodeChanged(self, node):
        self._removeObserver()
        self.ui.placeWidget.setCurrentNode(node)
        if node is not None:
            self._observed = node
            self._observerTag = node.AddObserver(slicer.vtkMRMLMarkupsNode.PointPositionDefinedEvent, self.onPointAdded)

    def onPointAdded(self, caller, event):
        volume = self.ui.inputSelector.currentNode()
        index = caller.GetNumberOfControlPoints() - 1
        p = [0.0, 0.0, 0.0]
        caller.GetNthControlPointPosition(index, p)
        try:
            if not SpineAICommon.ensureDependencies():
                return
            with slicer.util.tryWithErrorDisplay("Could not segment the vertebral body.", waitCursor=True):
                result = self.logic.segmentPoint(volume, p, self.ui.labelPointsSelector.currentNode())
                caller.SetNthControlPointLabel(index, result.name)
                g = result.genant.label if result.genant else "not graded"
                self.ui.statusLabel.text = (f"{result.name}: {result.volume_ml:.1f} ml, heights "
                                            f"{result.heights['anterior']:.1f}/{result.heights['middle']:.1f}/"
                                            f"{result.heights['posterior']:.1f} mm, Genant {g} ({result.seconds:.1f} s)"
                                            + "".join(f"\n{w}" for w in result.warnings))
        except Exception:  # noqa: BLE001 - the error was shown; keep the scene consistent
            caller.RemoveNthControlPoint(index)

    def onUndo(self):
        node = self.ui.clickPointsSelector.currentNode()
        if node is not None and node.GetNumberOfControlPoints():
            node.RemoveNthControlPoint(node.GetNumberOfControlPoints() - 1)
        self.logic.undoLast()
        self.ui.statusLabel.text = "Last body removed."

    def checkAndStart(self):
        volume = self.ui.inputSelector.currentNode()
        self.logic.checkInput(volume)
        if not SpineAICommon.ensureDependencies():
            return
        self._workDir = tempfile.mkdtemp(prefix="spineai-fracture-")
        inputPath = SpineAICommon.exportVolume(volume, self._workDir)
        args = [inputPath, "--output", self._workDir]
        labelPoints = self.ui.labelPointsSelector.currentNode()
        if labelPoints is not None:
            args += ["--centroids", self.logic.writeCentroids(labelPoints, self._workDir)]
        self.startTask("fracture", args, "Assessing fractures in the background...")

    def onTaskSucceeded(self, output):
        result = self.logic.readFractureResult(self._workDir, self.ui.inputSelector.currentNode())
        flagged = [f"{v.name} ({v.status})" for v in result.vertebrae if v.status != "normal"]
        self.ui.statusLabel.text = ((("Fractures: " + ", ".join(flagged)) if flagged else "No fracture found.")
                                    + "".join(f"\n{w}" for w in result.warnings))


class VertebralBodyLogic(ScriptedLoadableModuleLogic):
    TASK = "Vertebral body segmentation"

    def __init__(self):
        ScriptedLoadableModuleLogic.__init__(self)
        self.results = []
        self.segmentIds = []
        self.segmentationNode = None
        self.tableNode = None

    def checkInput(self, volumeNode):
        from SpineAILib.preprocessing import check_image
        from SpineAILib.scene import image_from_volume_node

        if volumeNode is None:
            raise ValueError("Select a CT volume first.")
        return check_image(image_from_volume_node(volumeNode), self.TASK, ndim=3, min_size=2)

    @staticmethod
    def centroidsFromPoints(pointsNode):
        """{VerSe label: LPS mm} from Vertebra Labeling's point list (points named C1..L5/S1)."""
        from SpineAILib import anatomy
        from SpineAILib.io.image import lps_to_ras
        from SpineAILib.scene import fiducials_ras

        if pointsNode is None:
            return None
        names, ras = fiducials_ras(pointsNode)
        return {anatomy.vertebra_label(n): lps_to_ras(p) for n, p in zip(names, ras, strict=True)}

    def segmentPoint(self, volumeNode, pointRas, labelPointsNode=None, device="auto"):
        """Blocking: segment the body at ``pointRas``, add its segment and table row. Returns it."""
        from SpineAILib.scene import add_table
        from SpineAILib.vertebra_body import segment
        from SpineAILib.vertebra_body.scene import add_body_segment, measurement_columns

        image = self.checkInput(volumeNode)
        centroids = self.centroidsFromPoints(labelPointsNode)
        result = segment(image, pointRas, "RAS", centroids, device=device, index=len(self.results) + 1)
        self.segmentationNode, segId = add_body_segment(slicer.mrmlScene, image, result, volumeNode,
                                                        self.segmentationNode, f"{volumeNode.GetName()} vertebral bodies")
        self.results.append(result)
        self.segmentIds.append(segId)
        self.tableNode = add_table(slicer.mrmlScene, f"{volumeNode.GetName()} vertebral body measurements",
                                   measurement_columns(self.results), self.tableNode)
        return result

    def undoLast(self):
        if not self.results:
            return
        self.results.pop()
        segId = self.segmentIds.pop()
        if self.segmentationNode is not None and segId:
            self.segmentationNode.GetSegmentation().RemoveSegment(segId)
        if self.tableNode is not None:
            from SpineAILib.scene import add_table
            from SpineAILib.vertebra_body.scene import measurement_columns

            add_table(slicer.mrmlScene, "", measurement_columns(self.results), self.tableNode)

    def writeCentroids(self, pointsNode, workDir):
        from SpineAILib.io.centroids import centroids_json

        path = os.path.join(workDir, "centroids.json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump(centroids_json(self.centroidsFromPoints(pointsNode)), f)
        return path

    def assessFractures(self, volumeNode, labelPointsNode=None, device="auto"):
        """Blocking fracture assessment (finds the vertebrae first when no points are given)."""
        from SpineAILib.tasks import get_task
        from SpineAILib.vertebra_body.scene import write_fracture_result

        image = self.checkInput(volumeNode)
        result = get_task("fracture").run(image, self.centroidsFromPoints(labelPointsNode), device=device)
        write_fracture_result(slicer.mrmlScene, result, f"{volumeNode.GetName()} fracture")
        return result

    def readFractureResult(self, workDir, volumeNode):
        """The background process's fracture.json -> table and status-coloured points."""
        from SpineAILib.tasks import get_task
        from SpineAILib.vertebra_body.scene import write_fracture_result

        result = get_task("fracture").read_outputs(workDir)
        write_fracture_result(slicer.mrmlScene, result, f"{volumeNode.GetName()} fracture")
        return result


class VertebralBodyTest(ScriptedLoadableModuleTest):
    """Runs inside Slicer; the same SpineAILib functions are covered by Testing/test_vertebra_body.py."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_click()

    def test_click(self):
        from SpineAILib.io.image import lps_to_ras
        from SpineAILib.phantoms import CTPhantomConfig, ct_spine_phantom
        from SpineAILib.scene import add_volume

        ph = ct_spine_phantom(CTPhantomConfig(first="L1", last="L3", height_loss={"L2": ("wedge", 0.3)}))
        volume = add_volume(slicer.mrmlScene, ph.image, "CT phantom")
        logic = VertebralBodyLogic()
        result = logic.segmentPoint(volume, lps_to_ras(ph.body_centers[21]), device="cpu")
        self.assertGreater(result.volume_ml, 5.0)
        self.assertEqual(logic.segmentationNode.GetSegmentation().GetNumberOfSegments(), 1)
        logic.undoLast()
        self.assertEqual(logic.segmentationNode.GetSegmentation().GetNumberOfSegments(), 0)
        self.delayDisplay("Vertebral Body OK")
