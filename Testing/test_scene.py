"""Scene output against real MRML (PyPI slicer-core): build, write, save .mrb, reload, check
node types, names, counts, terminology and positions in RAS millimetres."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("slicer", reason="scene tests need slicer-core (pip install -e .[test])")

from SpineAILib import anatomy  # noqa: E402
from SpineAILib.errors import InputError  # noqa: E402
from SpineAILib.io import Image  # noqa: E402
from SpineAILib.scene import (  # noqa: E402
    SegmentSpec,
    add_angle,
    add_fiducials,
    add_line,
    add_segmentation,
    add_table,
    add_volume,
    fiducials_ras,
    image_from_volume_node,
    load_mrb,
    new_scene,
    save_mrb,
    segment_arrays,
    segment_tag,
    table_columns,
)
from SpineAILib.scene.spine import landmark_names, write_centroids, write_landmarks_2d, write_vertebra_labels  # noqa: E402


@pytest.fixture
def labelled(random_volume):
    arr = np.zeros(random_volume.array.shape, np.int16)
    arr[1:4, 2:6, 3:9] = 20  # L1
    arr[5:9, 4:10, 2:7] = 21  # L2
    arr[9:11, 0:3, 10:16] = 8  # T1
    return random_volume.with_array(arr)


def test_volume_geometry_roundtrip_in_ras(random_volume):
    scene = new_scene()
    node = add_volume(scene, random_volume, "CT")
    back = image_from_volume_node(node)
    assert back.same_grid(random_volume, tol=1e-6)
    np.testing.assert_array_equal(back.array, random_volume.array)
    # Voxel (i, j, k) -> RAS by hand: flip x, y of the LPS position.
    ras = [0.0, 0.0, 0.0, 1.0]
    node.GetIJKToRASMatrix(m := __import__("vtk").vtkMatrix4x4())
    m.MultiplyPoint([3.0, 2.0, 1.0, 1.0], ras)
    lps = random_volume.index_to_physical(np.array([3.0, 2.0, 1.0]))
    np.testing.assert_allclose(ras[:3], [-lps[0], -lps[1], lps[2]], atol=1e-9)


def test_full_scene_saved_and_reloaded(tmp_path, random_volume, labelled):
    scene = new_scene()
    vol = add_volume(scene, random_volume, "CT")
    seg = write_vertebra_labels(scene, labelled, vol, "Vertebrae")
    centroids = {20: np.array([1.0, 2.0, 3.0]), 8: np.array([-4.0, 5.5, 60.0])}
    write_centroids(scene, centroids, "Centroids", descriptions={20: "confidence 0.9"})
    add_line(scene, "Endplate", [0, 0, 0], [10, 0, 0])
    add_angle(scene, "Cobb", [10, 0, 0], [0, 0, 0], [10 * np.cos(0.5), 10 * np.sin(0.5), 0])
    add_table(scene, "Heights", {"Vertebra": ["L1", "L2"], "Anterior (mm)": [20.5, 22.0]})
    assert seg.GetSegmentation().GetNumberOfSegments() == 3

    bundle = save_mrb(scene, tmp_path / "scene.mrb")
    loaded = load_mrb(bundle)
    counts = {cls: loaded.GetNodesByClass(cls).GetNumberOfItems() for cls in (
        "vtkMRMLScalarVolumeNode", "vtkMRMLSegmentationNode", "vtkMRMLMarkupsFiducialNode",
        "vtkMRMLMarkupsLineNode", "vtkMRMLMarkupsAngleNode", "vtkMRMLTableNode")}
    assert counts == dict.fromkeys(counts, 1)

    seg2 = loaded.GetFirstNodeByName("Vertebrae").GetSegmentation()
    names = [seg2.GetNthSegment(i).GetName() for i in range(seg2.GetNumberOfSegments())]
    assert sorted(names) == ["L1 vertebra", "L2 vertebra", "T1 vertebra"]
    l1 = next(seg2.GetNthSegment(i) for i in range(3) if seg2.GetNthSegment(i).GetName() == "L1 vertebra")
    assert "SCT^66794005^L1 vertebra" in segment_tag(l1, "TerminologyEntry")
    np.testing.assert_allclose(l1.GetColor(), anatomy.vertebra_color(20), atol=1e-6)
    masks = segment_arrays(loaded.GetFirstNodeByName("Vertebrae"), random_volume)
    for name, lab in (("L1 vertebra", 20), ("L2 vertebra", 21), ("T1 vertebra", 8)):
        np.testing.assert_array_equal(masks[name], labelled.array == lab)

    labels, ras = fiducials_ras(loaded.GetFirstNodeByName("Centroids"))
    assert labels == ["T1", "L1"]  # anatomical order
    np.testing.assert_allclose(ras, [[4.0, -5.5, 60.0], [-1.0, -2.0, 3.0]], atol=1e-9)
    assert loaded.GetFirstNodeByName("Centroids").GetNthControlPointDescription(1) == "confidence 0.9"
    assert loaded.GetFirstNodeByName("Cobb").GetAngleDegrees() == pytest.approx(np.degrees(0.5))
    assert loaded.GetFirstNodeByName("Endplate").GetLineLengthWorld() == pytest.approx(10.0)
    assert table_columns(loaded.GetFirstNodeByName("Heights")) == {"Vertebra": ["L1", "L2"],
                                                                    "Anterior (mm)": [20.5, 22.0]}


def test_radiograph_landmarks_with_non_unit_pixel_spacing():
    """68 corner points on a radiograph with 0.3 x 0.2 mm pixels and an origin land at the
    RAS positions Slicer would show for those pixels."""
    scene = new_scene()
    xr = Image(np.zeros((100, 50), np.uint8), (0.3, 0.2), (5.0, -7.0))
    node = add_volume(scene, xr, "AP")
    rng = np.random.default_rng(0)
    pts = rng.uniform(0, 49, (68, 2))
    marks = write_landmarks_2d(scene, xr, pts)
    labels, ras = fiducials_ras(marks)
    assert len(labels) == 68 and labels[:5] == ["T1-TL", "T1-TR", "T1-BL", "T1-BR", "T2-TL"]
    assert labels == landmark_names()
    expected = np.stack([-(5.0 + 0.3 * pts[:, 0]), -(-7.0 + 0.2 * pts[:, 1]), np.zeros(68)], -1)
    np.testing.assert_allclose(ras, expected, atol=1e-9)
    # The same through the volume node's own IJK->RAS.
    import vtk

    m = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(m)
    p = [0.0] * 4
    m.MultiplyPoint([pts[7, 0], pts[7, 1], 0.0, 1.0], p)
    np.testing.assert_allclose(ras[7], p[:3], atol=1e-9)


def test_existing_user_nodes_are_never_overwritten(random_volume):
    scene = new_scene()
    user = add_fiducials(scene, "Centroids", np.zeros((1, 3)), ["mine"])
    ours = write_centroids(scene, {20: np.array([1.0, 1.0, 1.0])}, "Centroids")
    assert ours.GetID() != user.GetID() and ours.GetName() != "Centroids"
    assert fiducials_ras(user)[0] == ["mine"]
    seg = add_segmentation(scene, random_volume.with_array(np.zeros(random_volume.array.shape, np.uint8)),
                           {1: SegmentSpec("x")}, "Empty")
    assert seg.GetSegmentation().GetNumberOfSegments() == 0


def test_scene_errors(tmp_path):
    scene = new_scene()
    with pytest.raises(InputError, match="one label per point"):
        add_fiducials(scene, "x", np.zeros((2, 3)), ["a"])
    with pytest.raises(InputError, match="different lengths"):
        add_table(scene, "t", {"a": [1], "b": [1, 2]})
    with pytest.raises(InputError, match="must end with .mrb"):
        save_mrb(scene, tmp_path / "scene.zip")
    with pytest.raises(InputError, match="not found"):
        load_mrb(tmp_path / "missing.mrb")
    (tmp_path / "bad.mrb").write_bytes(b"garbage")
    with pytest.raises(InputError, match="Could not read"):
        load_mrb(tmp_path / "bad.mrb")


def test_real_ct_labels_to_scene(tmp_path, data_dir):
    """TotalSegmentator pseudo-labels of the real sample -> VerSe numbers -> segmentation +
    centroids in the scene, reloaded from the .mrb at the same RAS positions."""
    from SpineAILib.io import read_image
    from SpineAILib.postprocessing import centers_of_mass, relabel

    d = data_dir / "ct" / "totalseg_example"
    ct = read_image(d / "ct.nii.gz")
    pseudo = read_image(d / "vertebrae_pseudo.nii.gz")
    # TotalSegmentator ids 26 = S1, 27 = L5 ... 31 = L1, 32 = T12, 33 = T11.
    verse = relabel(pseudo, {26: 26, 27: 24, 28: 23, 29: 22, 30: 21, 31: 20, 32: 19, 33: 18})
    scene = new_scene()
    vol = add_volume(scene, ct, "CT")
    write_vertebra_labels(scene, verse, vol)
    coms = centers_of_mass(verse)
    write_centroids(scene, coms)
    loaded = load_mrb(save_mrb(scene, tmp_path / "real.mrb"))
    labels, ras = fiducials_ras(loaded.GetFirstNodeByName("Vertebra centroids"))
    assert labels[0] == "T11" or labels[0] == "T12"
    assert labels[-1] in ("L5", "S1") and "L1" in labels
    expected = np.array([[-coms[anatomy.vertebra_label(n)][0], -coms[anatomy.vertebra_label(n)][1],
                          coms[anatomy.vertebra_label(n)][2]] for n in labels])
    np.testing.assert_allclose(ras, expected, atol=1e-6)
    # Vertebrae are stacked: superior (RAS z) decreases from the first to the last label.
    assert np.all(np.diff(ras[:, 2]) < 0)
    seg = loaded.GetFirstNodeByName("Vertebrae").GetSegmentation()
    assert seg.GetNumberOfSegments() == len(labels)
