"""Where a run's output nodes go in the scene, so a Slicer user finds them: one subject-hierarchy
folder per run ("<input volume> <task>") next to the input volume, node names that start with
the input volume's name, and transformable outputs under the input volume's parent transform
(the outputs are computed in the volume's own coordinates, so they must follow the same
transform to line up with it in the views)."""

from __future__ import annotations

from SpineAILib.scene.mrml import _slicer


def _nodes(nodes) -> list:
    if isinstance(nodes, dict):
        nodes = list(nodes.values())
    return [n for n in nodes if n is not None]


def subject_hierarchy(scene):
    return _slicer().vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)


def _item(sh, node) -> int:
    """The node's subject-hierarchy item; created when no SH logic made one (standalone scenes)."""
    item = sh.GetItemByDataNode(node)
    if not item:
        item = sh.CreateItem(sh.GetSceneItemID(), node)
    return item


def result_folder(scene, input_volume, task: str) -> int:
    """A new folder item "<input volume> <task>" (unique among its siblings) under the input
    volume's parent item (its study/patient, or the scene). Returns the item ID."""
    sh = subject_hierarchy(scene)
    parent = sh.GetSceneItemID()
    base = task
    if input_volume is not None:
        parent = sh.GetItemParent(_item(sh, input_volume)) or parent
        base = f"{input_volume.GetName()} {task}"
    siblings = {sh.GetItemName(sh.GetItemByPositionUnderParent(parent, i))
                for i in range(sh.GetNumberOfItemChildren(parent))}
    name, k = base, 1
    while name in siblings:
        k += 1
        name = f"{base} ({k})"
    return sh.CreateFolderItem(parent, name)


def place_results(scene, nodes, input_volume=None, task: str = "SpineAI", folder: int | None = None) -> int:
    """Put ``nodes`` (a list or the dict a scene writer returns) into ``folder`` (a new
    :func:`result_folder` when None), prefix names that do not start with the input volume's
    name, and observe the input volume's parent transform. Returns the folder item ID."""
    sh = subject_hierarchy(scene)
    if folder is None or not sh.GetItemName(folder):
        folder = result_folder(scene, input_volume, task)
    prefix = input_volume.GetName() if input_volume is not None else ""
    transform_id = input_volume.GetTransformNodeID() if input_volume is not None else None
    for node in _nodes(nodes):
        if prefix and not node.GetName().startswith(prefix):
            node.SetName(f"{prefix} {node.GetName()}")
        sh.SetItemParent(_item(sh, node), folder)
        if transform_id and node.IsA("vtkMRMLTransformableNode"):
            node.SetAndObserveTransformNodeID(transform_id)
    return folder


def folder_nodes(scene, folder: int) -> list:
    """The data nodes directly in a folder item (tests, and modules that update a run's nodes)."""
    sh = subject_hierarchy(scene)
    out = []
    for i in range(sh.GetNumberOfItemChildren(folder)):
        node = sh.GetItemDataNode(sh.GetItemByPositionUnderParent(folder, i))
        if node is not None:
            out.append(node)
    return out


def volume_point(input_volume, point_world_ras) -> list[float]:
    """A world RAS point (a click in the views) in the input volume's own RAS coordinates, where
    SpineAI computes: the inverse of the volume's parent transform, identity without one."""
    p = [float(v) for v in point_world_ras]
    transform = input_volume.GetParentTransformNode() if input_volume is not None else None
    if transform is None:
        return p
    import vtk

    from_world = vtk.vtkGeneralTransform()
    transform.GetTransformFromWorld(from_world)
    return list(from_world.TransformPoint(p))
