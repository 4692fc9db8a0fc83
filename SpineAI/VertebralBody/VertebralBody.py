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

import slicer
import vtk
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
        SpineAICommon.describeModule(
            self.parent, "Vertebral Body",
            "Select a CT, then click vertebral bodies with the point placement tool: each click segments that "
            "body and measures its volume, mean HU and anterior/middle/posterior heights (Genant grade from the "
            "heights). Select the Vertebra Labeling points to name the bodies and to run the fracture assessment. "
            "Each CT gets its own segmentation and table, in a folder named after it in the Data module. "
            "The shipped models were trained on synthetic CT phantoms: see the model cards.",
            "Methods: Klein et al., 'Metastatic vertebrae segmentation for use in a clinical pipeline', and Nicolaes "
            "et al., 'Detection of vertebral fractures in CT using 3D convolutional neural networks', CSI 2019.")


class VertebralBodyWidget(SpineAICommon.TaskWidgetMixin, ScriptedLoadableModuleWidget):
    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        if SpineAICommon.UNSUPPORTED:
            SpineAICommon.setupUnsupported(self)
            return
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/VertebralBody.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = VertebralBodyLogic()
        self._observed = None
        self._observerTag = None
        self.setupTaskControls()  # Apply = fracture assessment in the background
        self.ui.clickPointsSelector.connect("currentNodeChanged(vtkMRMLNode*)", self.onClickNodeChanged)
        self.ui.placeWidget.setMRMLScene(slicer.mrmlScene)
        self.ui.undoButton.connect("clicked(bool)", self.onUndo)
        self.onClickNodeChanged(self.ui.clickPointsSelector.currentNode())

    def cleanup(self):
        self._removeObserver()
        SpineAICommon.TaskWidgetMixin.cleanup(self)

    def onSceneStartClose(self, caller=None, event=None):
        self._removeObserver()  # the observed point list goes with the scene
        SpineAICommon.TaskWidgetMixin.onSceneStartClose(self, caller, event)

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

    @vtk.calldata_type(vtk.VTK_INT)
    def onPointAdded(self, caller, event, index):
        """A point was placed: segment at that point (the event says which point). Every failure,
        the dependency check included, is shown to the user and the point is removed."""
        try:
            if not SpineAICommon.ensureDependencies():
                caller.RemoveNthControlPoint(index)
                self.ui.statusLabel.text = "Not segmented: the packages SpineAI needs are not installed."
                return
            with slicer.util.WaitCursor():
                result = self.logic.segmentClickedPoint(self.ui.inputSelector.currentNode(), caller, index,
                                                        self.ui.labelPointsSelector.currentNode())
        except Exception as exc:  # noqa: BLE001 - shown; the point goes so the scene stays consistent
            SpineAICommon.showError(f"Could not segment the vertebral body: {exc}", exc)
            if 0 <= index < caller.GetNumberOfControlPoints():
                caller.RemoveNthControlPoint(index)
            return
        g = result.genant.label if result.genant else "not graded"
        self.ui.statusLabel.text = (f"{result.name}: {result.volume_ml:.1f} ml, heights "
                                    f"{result.heights['anterior']:.1f}/{result.heights['middle']:.1f}/"
                                    f"{result.heights['posterior']:.1f} mm, Genant {g} ({result.seconds:.1f} s)"
                                    + "".join(f"\n{w}" for w in result.warnings))

    def onUndo(self):
        try:
            node = self.ui.clickPointsSelector.currentNode()
            if node is not None and node.GetNumberOfControlPoints():
                node.RemoveNthControlPoint(node.GetNumberOfControlPoints() - 1)
            self.logic.undoLast(self.ui.inputSelector.currentNode())
            self.ui.statusLabel.text = "Last body removed."
        except Exception as exc:  # noqa: BLE001
            SpineAICommon.showError(f"Could not undo: {exc}", exc)

    def checkAndStart(self):
        volume = self.ui.inputSelector.currentNode()
        self.logic.checkInput(volume)
        if not SpineAICommon.ensureDependencies():
            return
        workDir = self.newWorkDir("fracture")
        inputPath = SpineAICommon.exportVolume(volume, workDir)
        args = [inputPath, "--output", workDir]
        labelPoints = self.ui.labelPointsSelector.currentNode()
        if labelPoints is not None:
            args += ["--centroids", self.logic.writeCentroids(labelPoints, workDir)]
        self.startTask("fracture", args, "Assessing fractures in the background...")

    def onTaskSucceeded(self, output):
        result = self.logic.readFractureResult(self._workDir, self._taskVolume)
        flagged = [f"{v.name} ({v.status})" for v in result.vertebrae if v.status != "normal"]
        self.ui.statusLabel.text = ((("Fractures: " + ", ".join(flagged)) if flagged else "No fracture found.")
                                    + "".join(f"\n{w}" for w in result.warnings))


class VertebralBodyLogic(SpineAICommon.OutputNodesMixin, ScriptedLoadableModuleLogic):
    """GUI-free; all state is in the scene: per CT, its segmentation and table are referenced from
    the module's parameter node, and the table carries the bodies' results (attribute
    ``SpineAI.BodyResults``), so File > Close Scene and a second CT need no bookkeeping here."""

    TASK = "Vertebral body segmentation"
    FOLDER = "vertebral bodies"
    RESULTS_ATTRIBUTE = "SpineAI.BodyResults"

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
        return {anatomy.vertebra_label(n): lps_to_ras(p) for n, p in zip(names, ras)}

    def _bodies(self, tableNode):
        """[(result dict, segment ID)] of the bodies in a table this logic made."""
        if tableNode is None:
            return []
        text = tableNode.GetAttribute(self.RESULTS_ATTRIBUTE)
        return [(b["result"], b["segment"]) for b in json.loads(text)] if text else []

    def _writeTable(self, volumeNode, bodies, tableNode):
        import numpy as np

        from SpineAILib.scene import add_table
        from SpineAILib.vertebra_body.predict import BodyResult
        from SpineAILib.vertebra_body.scene import measurement_columns

        results = [BodyResult.from_dict(r, np.zeros((0, 0, 0), bool)) for r, _ in bodies]
        tableNode = add_table(slicer.mrmlScene, f"{volumeNode.GetName()} vertebral body measurements",
                              measurement_columns(results), tableNode)
        tableNode.SetAttribute(self.RESULTS_ATTRIBUTE, json.dumps([{"result": r, "segment": s} for r, s in bodies]))
        return tableNode

    def segmentPoint(self, volumeNode, pointRas, labelPointsNode=None, device="auto"):
        """Blocking: segment the body at ``pointRas`` (RAS mm in the volume's own coordinates),
        add its segment and table row to this CT's outputs. Returns the BodyResult."""
        from SpineAILib.vertebra_body import segment
        from SpineAILib.vertebra_body.scene import add_body_segment

        image = self.checkInput(volumeNode)
        centroids = self.centroidsFromPoints(labelPointsNode)
        segmentation = self.outputNode(volumeNode, "BodySegmentation")
        table = self.outputNode(volumeNode, "BodyTable")
        bodies = self._bodies(table)
        result = segment(image, pointRas, "RAS", centroids, device=device, index=len(bodies) + 1)
        segmentation, segId = add_body_segment(slicer.mrmlScene, image, result, volumeNode, segmentation,
                                               f"{volumeNode.GetName()} vertebral bodies")
        table = self._writeTable(volumeNode, bodies + [(result.to_dict(), segId)], table)
        self.setOutputNode(volumeNode, "BodySegmentation", segmentation)
        self.setOutputNode(volumeNode, "BodyTable", table)
        self.placeResults([segmentation, table], volumeNode, self.FOLDER, reuseFolder=True)
        return result

    def segmentClickedPoint(self, volumeNode, markupsNode, index, labelPointsNode=None, device="auto"):
        """The widget's click: control point ``index`` of ``markupsNode`` (placed in world
        coordinates) segmented in ``volumeNode``; the point is named after the body."""
        point = SpineAICommon.clickedPointInVolume(markupsNode, index, volumeNode)  # segmentPoint checks the CT
        result = self.segmentPoint(volumeNode, point, labelPointsNode, device)
        markupsNode.SetNthControlPointLabel(index, result.name)
        return result

    def undoLast(self, volumeNode):
        """Remove this CT's last body (segment and row)."""
        table = self.outputNode(volumeNode, "BodyTable")
        bodies = self._bodies(table)
        if not bodies:
            return
        _, segId = bodies.pop()
        segmentation = self.outputNode(volumeNode, "BodySegmentation")
        if segmentation is not None and segId:
            segmentation.GetSegmentation().RemoveSegment(segId)
        self._writeTable(volumeNode, bodies, table)

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
        nodes = write_fracture_result(slicer.mrmlScene, result, f"{volumeNode.GetName()} fracture")
        self.placeResults(nodes, volumeNode, "fracture")
        return result

    def readFractureResult(self, workDir, volumeNode):
        """The background process's fracture.json -> table and status-coloured points."""
        from SpineAILib.tasks import get_task
        from SpineAILib.vertebra_body.scene import write_fracture_result

        result = get_task("fracture").read_outputs(workDir)
        nodes = write_fracture_result(slicer.mrmlScene, result, f"{volumeNode.GetName()} fracture")
        self.placeResults(nodes, volumeNode, "fracture")
        return result


class VertebralBodyTest(ScriptedLoadableModuleTest):
    """Runs inside Slicer; the same SpineAILib functions are covered by Testing/test_vertebra_body.py.
    Skipped (with a message) when PyTorch is not installed, as on Slicer's test machines."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        if SpineAICommon.torchMissing():
            self.delayDisplay("Vertebral Body test skipped: PyTorch is not installed.")
            return
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
        segmentation = logic.outputNode(volume, "BodySegmentation")
        self.assertEqual(segmentation.GetSegmentation().GetNumberOfSegments(), 1)
        self.assertEqual(logic.outputNode(volume, "BodyTable").GetNumberOfRows(), 1)
        logic.undoLast(volume)
        self.assertEqual(segmentation.GetSegmentation().GetNumberOfSegments(), 0)
        self.assertEqual(logic.outputNode(volume, "BodyTable").GetNumberOfRows(), 0)
        self.delayDisplay("Vertebral Body OK")
