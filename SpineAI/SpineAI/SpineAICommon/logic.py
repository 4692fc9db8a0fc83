"""Non-GUI helpers shared by the SpineAI module logics: per-volume output nodes kept in the
module's parameter node, results placed where a Slicer user finds them, clicks converted to the
volume's coordinates, terminology and sample data registration. No Qt here: the pytest layer
runs these on slicer-core's real MRML. SpineAILib is imported inside the functions, so this file
loads on every Slicer (see compat)."""

import slicer


class OutputNodesMixin:
    """State of a ScriptedLoadableModuleLogic kept in its parameter node, per input volume.

    References are stored under roles "<role>:<volume node ID>", so a second CT gets its own
    outputs, a node the user deleted is no longer returned (MRML drops references to removed
    nodes) and File > Close Scene forgets everything (the parameter node goes with the scene).
    Every lookup also checks that the node is in the current scene.
    """

    def _role(self, volumeNode, role):
        return f"{role}:{volumeNode.GetID()}"

    def outputNode(self, volumeNode, role):
        if volumeNode is None or volumeNode.GetScene() is not slicer.mrmlScene:
            return None
        node = self.getParameterNode().GetNodeReference(self._role(volumeNode, role))
        if node is None or node.GetScene() is not slicer.mrmlScene:
            return None
        return node

    def setOutputNode(self, volumeNode, role, node):
        self.getParameterNode().SetNodeReferenceID(self._role(volumeNode, role), node.GetID() if node else None)

    def outputFolder(self, volumeNode, task):
        """The subject-hierarchy folder of this volume's current outputs (0 when none)."""
        if volumeNode is None:
            return 0
        value = self.getParameterNode().GetParameter(self._role(volumeNode, f"folder {task}"))
        item = int(value) if value else 0
        from SpineAILib.scene.placement import subject_hierarchy

        sh = subject_hierarchy(slicer.mrmlScene)
        return item if item and sh.GetItemName(item) else 0

    def placeResults(self, nodes, volumeNode, task, reuseFolder=False):
        """One subject-hierarchy folder per run (``reuseFolder``: keep adding to the volume's
        current folder, as clicks on the same CT do). Returns the folder item ID."""
        from SpineAILib.scene.placement import place_results

        folder = self.outputFolder(volumeNode, task) if reuseFolder else None
        folder = place_results(slicer.mrmlScene, nodes, volumeNode, task, folder or None)
        if volumeNode is not None:
            self.getParameterNode().SetParameter(self._role(volumeNode, f"folder {task}"), str(folder))
        return folder


def clickedPointInVolume(markupsNode, index, volumeNode):
    """Control point ``index`` of ``markupsNode`` (world RAS) in ``volumeNode``'s own RAS, where
    SpineAI computes (the two may sit under different transforms)."""
    if index < 0 or index >= markupsNode.GetNumberOfControlPoints():
        raise ValueError(f"There is no point {index + 1} in '{markupsNode.GetName()}'.")
    from SpineAILib.scene.placement import volume_point

    p = [0.0, 0.0, 0.0]
    markupsNode.GetNthControlPointPositionWorld(index, p)
    return volume_point(volumeNode, p)


def loadTerminology(terminologiesLogic=None):
    """Load the "Segmentation category and type - SpineAI" context into Slicer's terminologies
    (at startup), so the segment terminology selector knows SpineAI's segments. Returns its name."""
    from SpineAILib.scene.terminology import load_terminology

    if terminologiesLogic is None:
        terminologiesLogic = slicer.modules.terminologies.logic()
    return load_terminology(terminologiesLogic)


SAMPLE_CATEGORY = "SpineAI"


def loadPhantomSample(name, scene=None):
    """Build the named phantom (SpineAILib.phantoms.samples) and add it as a volume node."""
    from SpineAILib.phantoms.samples import SAMPLES
    from SpineAILib.scene import add_volume

    sample = next((s for s in SAMPLES if s.name == name), None)
    if sample is None:
        raise ValueError(f"No SpineAI sample named '{name}'; there are: {', '.join(s.name for s in SAMPLES)}.")
    return add_volume(scene or slicer.mrmlScene, sample.build(), sample.name)


def registerSampleData(sampleDataLogic, iconPath):
    """Register every phantom in the Sample Data module (built on request, nothing downloaded).
    ``sampleDataLogic`` is SampleData.SampleDataLogic. Returns the names registered."""
    from SpineAILib.phantoms.samples import SAMPLES

    for sample in SAMPLES:
        sampleDataLogic.registerCustomSampleDataSource(
            category=SAMPLE_CATEGORY, sampleName=sample.name, nodeNames=[sample.name],
            thumbnailFileName=iconPath(sample.module),
            customDownloader=lambda source, name=sample.name: loadPhantomSample(name))
    return [s.name for s in SAMPLES]
