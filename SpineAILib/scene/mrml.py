"""MRML writing and reading. Coordinates: results are LPS mm (ITK); MRML nodes hold RAS mm.

Nodes are always added under a new unique name, so a user's existing node is never
overwritten; callers that want to update a node remove it first themselves.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from SpineAILib.errors import InputError
from SpineAILib.io.image import Image, lps_to_ras


def _slicer():
    try:
        import slicer
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "Writing MRML needs 3D Slicer or the PyPI package 'slicer-core' (pip install spineai[test])."
        ) from exc
    return slicer


def _vtk():
    import vtk

    return vtk


def new_scene():
    """A standalone MRML scene set up like Slicer's (markups, segmentations, tables, volumes
    logics registered; cache and data I/O managers for .mrb reading)."""
    slicer = _slicer()
    scene = slicer.vtkMRMLScene()
    cache = slicer.vtkCacheManager()
    cache.SetRemoteCacheDirectory(tempfile.mkdtemp(prefix="spineai-mrml-cache-"))
    dio = slicer.vtkDataIOManager()
    dio.SetCacheManager(cache)
    scene.SetCacheManager(cache)
    scene.SetDataIOManager(dio)
    # Measurements of line/angle markups look up the unit settings through the selection node.
    sel = slicer.vtkMRMLSelectionNode()
    sel.SetSingletonTag("Singleton")
    scene.AddNode(sel)
    logics = []
    for cls in (slicer.vtkSlicerMarkupsLogic, slicer.vtkSlicerSegmentationsModuleLogic,
                slicer.vtkSlicerTablesLogic, slicer.vtkSlicerVolumesLogic):
        logic = cls()
        logic.SetMRMLScene(scene)
        logics.append(logic)
    # The logics must live as long as the scene (they register node classes and observe it);
    # an attribute on the scene's Python wrapper ties their lifetime to it.
    scene._spineai_keepalive = logics + [cache, dio]
    return scene


def unique_name(scene, base: str) -> str:
    """``base`` if no node has that name yet, else Slicer's ``base_1``, ``base_2``, ..."""
    if scene.GetFirstNodeByName(base) is None:
        return base
    return scene.GenerateUniqueName(base)


def _vtk_matrix(m: np.ndarray):
    vtk = _vtk()
    out = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            out.SetElement(r, c, float(m[r, c]))
    return out


def _np_matrix(vm) -> np.ndarray:
    return np.array([[vm.GetElement(r, c) for c in range(4)] for r in range(4)])


def _vtk_image(array_kji: np.ndarray):
    """vtkImageData from a (k, j, i) array (copy)."""
    vtk = _vtk()
    from vtk.util import numpy_support

    arr = np.ascontiguousarray(array_kji)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    img = vtk.vtkImageData()
    img.SetDimensions(arr.shape[2], arr.shape[1], arr.shape[0])
    scalars = numpy_support.numpy_to_vtk(arr.ravel(), deep=True)
    img.GetPointData().SetScalars(scalars)
    return img


def add_volume(scene, image: Image, name: str = "Volume", labelmap: bool = False):
    """Add ``image`` as a scalar (or label map) volume node with its geometry in RAS."""
    img3 = image.as_3d()
    cls = "vtkMRMLLabelMapVolumeNode" if labelmap else "vtkMRMLScalarVolumeNode"
    node = scene.AddNewNodeByClass(cls, unique_name(scene, name))
    node.SetAndObserveImageData(_vtk_image(img3.array))
    node.SetIJKToRASMatrix(_vtk_matrix(img3.index_to_ras_matrix()))
    node.CreateDefaultDisplayNodes()
    return node


def image_from_volume_node(node) -> Image:
    """Read a volume node back into an :class:`Image` (RAS -> LPS). Single-slice volumes stay
    3D here; tasks call ``as_2d()``."""
    from vtk.util import numpy_support

    vtk = _vtk()
    img = node.GetImageData()
    if img is None:
        raise InputError(f"Volume '{node.GetName()}' holds no image data.")
    dims = img.GetDimensions()
    arr = numpy_support.vtk_to_numpy(img.GetPointData().GetScalars())
    ncomp = img.GetNumberOfScalarComponents()
    arr = arr.reshape(dims[2], dims[1], dims[0], ncomp) if ncomp > 1 else arr.reshape(dims[2], dims[1], dims[0])
    if ncomp >= 3:  # colour volume (e.g. an RGB radiograph loaded as vector volume)
        arr = 0.299 * arr[..., 0] + 0.587 * arr[..., 1] + 0.114 * arr[..., 2]
    vm = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(vm)
    ijk_to_lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ _np_matrix(vm)
    lin = ijk_to_lps[:3, :3]
    spacing = np.linalg.norm(lin, axis=0)
    direction = lin / spacing
    return Image(arr.copy(), tuple(spacing), tuple(ijk_to_lps[:3, 3]), direction,
                 {"source": f"MRML node {node.GetName()}"})


@dataclass
class SegmentSpec:
    """How one label of a label map becomes a segment."""

    name: str
    color: tuple[float, float, float] = (0.9, 0.6, 0.2)
    terminology: str = ""


def add_segmentation(scene, labelmap: Image, segments: dict[int, SegmentSpec], name: str = "Segmentation",
                     reference_volume=None, node=None):
    """One segment per label value present in ``labelmap`` and listed in ``segments``.

    Each segment's binary labelmap is cropped to its bounding box on the label map's grid;
    the reference geometry is the given volume node or the label map's grid. With ``node``
    (a segmentation node SpineAI made earlier) the segments are added to it instead of a new node.
    """
    slicer = _slicer()
    vtk = _vtk()
    lab = labelmap.as_3d()
    if node is None:
        node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", unique_name(scene, name))
        node.CreateDefaultDisplayNodes()
        if reference_volume is not None:
            node.SetReferenceImageGeometryParameterFromVolumeNode(reference_volume)
    ijk_to_ras = _vtk_matrix(lab.index_to_ras_matrix())
    arr = lab.array
    present = set(np.unique(arr).tolist())
    for value, spec in segments.items():
        if value not in present or value == 0:
            continue
        mask = arr == value
        ks, js, is_ = (np.flatnonzero(mask.any(axis=ax)) for ax in ((1, 2), (0, 2), (0, 1)))
        crop = mask[ks[0]:ks[-1] + 1, js[0]:js[-1] + 1, is_[0]:is_[-1] + 1].astype(np.uint8)
        oi = slicer.vtkOrientedImageData()
        oi.SetExtent(int(is_[0]), int(is_[-1]), int(js[0]), int(js[-1]), int(ks[0]), int(ks[-1]))
        oi.AllocateScalars(vtk.VTK_UNSIGNED_CHAR, 1)
        from vtk.util import numpy_support

        oi.GetPointData().GetScalars().DeepCopy(numpy_support.numpy_to_vtk(crop.ravel(), deep=True))
        oi.SetImageToWorldMatrix(ijk_to_ras)
        seg_id = node.GetSegmentation().AddEmptySegment("", spec.name, list(spec.color))
        slicer.vtkSlicerSegmentationsModuleLogic.SetBinaryLabelmapToSegment(
            oi, node, seg_id, slicer.vtkSlicerSegmentationsModuleLogic.MODE_REPLACE)
        segment = node.GetSegmentation().GetSegment(seg_id)
        segment.SetTag("SpineAI.LabelValue", str(value))
        if spec.terminology:
            segment.SetTag("TerminologyEntry", spec.terminology)
    return node


def segment_arrays(seg_node, reference: Image) -> dict[str, np.ndarray]:
    """Read every segment back as a boolean (z, y, x) mask on ``reference``'s grid (tests, QA)."""
    slicer = _slicer()
    from vtk.util import numpy_support

    ref = reference.as_3d()
    geom = slicer.vtkOrientedImageData()
    geom.SetExtent(0, ref.size[0] - 1, 0, ref.size[1] - 1, 0, ref.size[2] - 1)
    geom.SetImageToWorldMatrix(_vtk_matrix(ref.index_to_ras_matrix()))
    out = {}
    seg = seg_node.GetSegmentation()
    for n in range(seg.GetNumberOfSegments()):
        sid = seg.GetNthSegmentID(n)
        binary = slicer.vtkOrientedImageData()
        seg_node.GetBinaryLabelmapRepresentation(sid, binary)
        resampled = slicer.vtkOrientedImageData()
        slicer.vtkOrientedImageDataResample.ResampleOrientedImageToReferenceOrientedImage(
            binary, geom, resampled, False, True)
        dims = resampled.GetDimensions()
        arr = numpy_support.vtk_to_numpy(resampled.GetPointData().GetScalars()).reshape(dims[2], dims[1], dims[0])
        # GetBinaryLabelmapRepresentation extracts this segment alone (0/1), even from a shared layer.
        out[seg.GetSegment(sid).GetName()] = arr > 0
    return out


def segment_tag(segment, key: str) -> str:
    """A segment's tag value ("" if unset), e.g. ``segment_tag(s, "TerminologyEntry")``."""
    vtk = _vtk()
    value = vtk.reference("")
    segment.GetTag(key, value)
    return str(value)


def add_fiducials(scene, name: str, points_lps: np.ndarray, labels: list[str],
                  color: tuple[float, float, float] | None = None, descriptions: list[str] | None = None,
                  locked: bool = False):
    """A markups fiducial (point list) node with one named control point per row of ``points_lps``."""
    vtk = _vtk()
    pts = np.asarray(points_lps, dtype=float).reshape(-1, 3)
    if len(labels) != len(pts):
        raise InputError(f"{len(pts)} points but {len(labels)} labels; give one label per point.")
    node = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", unique_name(scene, name))
    node.CreateDefaultDisplayNodes()
    ras = lps_to_ras(pts)
    for i, (p, lab) in enumerate(zip(ras, labels, strict=True)):
        idx = node.AddControlPoint(vtk.vtkVector3d(*p), lab)
        if descriptions:
            node.SetNthControlPointDescription(idx, descriptions[i])
    if color is not None:
        node.GetDisplayNode().SetSelectedColor(*color)
        node.GetDisplayNode().SetColor(*color)
    node.SetLocked(bool(locked))
    return node


def fiducials_ras(node) -> tuple[list[str], np.ndarray]:
    """(labels, N x 3 RAS mm) of a markups node's control points."""
    n = node.GetNumberOfControlPoints()
    pts = np.zeros((n, 3))
    labels = []
    for i in range(n):
        p = [0.0, 0.0, 0.0]
        node.GetNthControlPointPosition(i, p)
        pts[i] = p
        labels.append(node.GetNthControlPointLabel(i))
    return labels, pts


def add_line(scene, name: str, p0_lps, p1_lps, color: tuple[float, float, float] | None = None):
    """A two-point line markup (e.g. an endplate line)."""
    vtk = _vtk()
    node = scene.AddNewNodeByClass("vtkMRMLMarkupsLineNode", unique_name(scene, name))
    node.CreateDefaultDisplayNodes()
    for p in lps_to_ras(np.array([p0_lps, p1_lps], dtype=float)):
        node.AddControlPoint(vtk.vtkVector3d(*p))
    if color is not None:
        node.GetDisplayNode().SetSelectedColor(*color)
    return node


def add_angle(scene, name: str, p0_lps, vertex_lps, p1_lps, color: tuple[float, float, float] | None = None):
    """A three-point angle markup; its measured value is the angle at ``vertex_lps``."""
    vtk = _vtk()
    node = scene.AddNewNodeByClass("vtkMRMLMarkupsAngleNode", unique_name(scene, name))
    node.CreateDefaultDisplayNodes()
    for p in lps_to_ras(np.array([p0_lps, vertex_lps, p1_lps], dtype=float)):
        node.AddControlPoint(vtk.vtkVector3d(*p))
    if color is not None:
        node.GetDisplayNode().SetSelectedColor(*color)
    return node


def add_table(scene, name: str, columns: dict[str, list], node=None):
    """A table node; a column of numbers becomes a double column, anything else strings. With
    ``node`` (a table SpineAI made earlier) its content is replaced instead of making a new node."""
    vtk = _vtk()
    lengths = {len(v) for v in columns.values()}
    if len(lengths) > 1:
        raise InputError(f"Table columns have different lengths {sorted(lengths)}.")
    if node is None:
        node = scene.AddNewNodeByClass("vtkMRMLTableNode", unique_name(scene, name))
    table = node.GetTable()
    while table.GetNumberOfColumns():
        table.RemoveColumn(0)
    for col_name, values in columns.items():
        numeric = all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
                      for v in values) and len(values) > 0
        arr = vtk.vtkDoubleArray() if numeric else vtk.vtkStringArray()
        arr.SetName(col_name)
        for v in values:
            if numeric:
                arr.InsertNextValue(float(v))
            else:
                arr.InsertNextValue("" if v is None else str(v))
        table.AddColumn(arr)
    node.Modified()
    return node


def table_columns(node) -> dict[str, list]:
    """Read a table node into {column name: list of values} (tests, CLI)."""
    table = node.GetTable()
    out = {}
    for c in range(table.GetNumberOfColumns()):
        col = table.GetColumn(c)
        out[col.GetName()] = [col.GetValue(r) for r in range(table.GetNumberOfRows())]
    return out


@contextlib.contextmanager
def _restore_cwd():
    """MRML's zip code changes the working directory and, when unzipping fails, does not change
    it back; keep the caller's working directory whatever happens."""
    cwd = os.getcwd()
    try:
        yield
    finally:
        os.chdir(cwd)


def save_mrb(scene, path: str | os.PathLike) -> Path:
    """Save the whole scene as a Medical Reality Bundle (.mrb, a zip of the .mrml and data)."""
    p = Path(path).resolve()
    if p.suffix.lower() != ".mrb":
        raise InputError(f"Scene bundles must end with .mrb, got {p.name}.")
    p.parent.mkdir(parents=True, exist_ok=True)
    for i in range(scene.GetNumberOfNodes()):
        node = scene.GetNthNode(i)
        if node.IsA("vtkMRMLStorableNode") and node.GetStorageNode() is None:
            node.AddDefaultStorageNode()
    with _restore_cwd():
        ok = scene.WriteToMRB(str(p))
    if not ok:
        raise OSError(f"Writing the scene bundle {p} failed.")
    return p


def load_mrb(path: str | os.PathLike):
    """Read a .mrb into a new standalone scene."""
    p = Path(path).resolve()
    if not p.is_file():
        raise InputError(f"Scene bundle not found: {p}")
    scene = new_scene()
    scene.SetURL(str(p))
    with _restore_cwd():
        ok = scene.ReadFromMRB(str(p))
    if not ok:
        raise InputError(f"Could not read the scene bundle {p} (corrupt or not an .mrb).")
    return scene
