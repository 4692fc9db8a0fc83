"""Cervical localisation: network sizes, the region-aware term (exact), pre-processing round trip,
metrics, a short training run, the shipped model, scene output, CLI and bad inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from SpineAILib.cervical.data import region_target, to_canvas
from SpineAILib.cervical.losses import localisation_loss, region_aware_term, region_weights
from SpineAILib.cervical.networks import PAPER_PARAMS, build, count_parameters
from SpineAILib.errors import InputError
from SpineAILib.io import Image
from SpineAILib.metrics import binary_metrics, n_regions, summarize
from SpineAILib.phantoms import CervicalPhantomConfig, lateral_cervical_phantom


@pytest.mark.parametrize("name", ["FCN", "DeConvNet", "UNet"])
def test_network_sizes_and_output_shape(name):
    net = build(name)
    n = count_parameters(net)
    assert abs(n - PAPER_PARAMS[name]) / PAPER_PARAMS[name] < 0.02, (name, n)
    with torch.no_grad():
        assert net.eval()(torch.zeros(2, 1, 100, 100)).shape == (2, 2, 100, 100)


def test_region_weights_exact():
    m = np.zeros((20, 20), bool)
    m[0:5, 0:10] = True  # 50 px, the largest
    m[10:14, 0:5] = True  # 20 px
    m[10:12, 10:15] = True  # 10 px
    E = region_weights(m)
    # N_r = 3, N_t = 1: factor 2; E = 2 (A_max - A_q) / A_max inside the smaller regions
    assert np.all(E[0:5, 0:10] == 0)
    np.testing.assert_allclose(E[10:14, 0:5], 2 * (50 - 20) / 50)
    np.testing.assert_allclose(E[10:12, 10:15], 2 * (50 - 10) / 50)
    assert E[~m].max() == 0
    one = np.zeros((20, 20), bool)
    one[3:9, 3:9] = True
    assert not region_weights(one).any()  # one region: no penalty


def test_region_term_values_and_gradient():
    H = W = 8
    target = torch.zeros(1, H, W, dtype=torch.long)
    target[0, 0:4, 0:4] = 1  # the true spine
    # Prediction: the true region (16 px) plus a spurious 2 px region at background pixels.
    p_spine = torch.full((1, H, W), 0.1)
    p_spine[0, 0:4, 0:4] = 0.9
    p_spine[0, 6, 6:8] = 0.8
    logits = torch.stack([torch.log(1 - p_spine), torch.log(p_spine)], 1).requires_grad_(True)
    probs = torch.softmax(logits, 1)
    E = torch.as_tensor(region_weights((p_spine > 0.5).numpy()[0]))[None]
    expected_E = 1 * (16 - 2) / 16  # N_r - N_t = 1
    assert torch.allclose(E[0, 6, 6:8], torch.tensor(expected_E))
    value = region_aware_term(probs, target, E)
    # 2 spurious background pixels: 1/2 * E * (1 - p_background)^2 with p_background = 0.2
    assert value.item() == pytest.approx(0.5 * 2 * expected_E * 0.8 ** 2, rel=1e-5)
    value.backward()
    g = logits.grad[0]
    assert g[:, 6, 6:8].abs().sum() > 0  # gradient at the penalised pixels ...
    mask = torch.ones(H, W, dtype=bool)
    mask[6, 6:8] = False
    assert g[:, mask].abs().max() == 0  # ... and nowhere else: E is a constant weight map
    # A single predicted region: the term is exactly zero, the loss is the log loss alone.
    p_one = p_spine.clone()
    p_one[0, 6, 6:8] = 0.1
    lg = torch.stack([torch.log(1 - p_one), torch.log(p_one)], 1)
    total, ce, lr = localisation_loss(lg, target, region_weight=1.0)
    assert lr.item() == 0.0 and total.item() == pytest.approx(ce.item())


def test_preprocessing_round_trip_and_target():
    ph = lateral_cervical_phantom(CervicalPhantomConfig(size=300, rotation_deg=8))
    arr = ph.image.array[:, 40:260]  # a non-square radiograph (300 x 220)
    canvas, rec = to_canvas(arr)
    assert canvas.shape == (100, 100) and 0 <= canvas.min() and canvas.max() <= 1
    assert canvas[:, -5:].max() == 0  # zero padding on the right of a tall image
    pts = np.array([[0.0, 0.0], [219.0, 299.0], [100.5, 150.25]])
    np.testing.assert_allclose(rec.to_original(rec.to_canvas(pts)), pts, atol=1e-9)
    target = region_target(ph.region[:, 40:260], rec)
    assert n_regions(target) == 1
    from SpineAILib.preprocessing import map_from_canvas

    back = map_from_canvas(target.astype(np.float32), rec, "linear") > 0.5
    assert back.shape == arr.shape
    assert binary_metrics(back, ph.region[:, 40:260])["sensitivity"] > 0.9


def test_metrics_on_known_masks():
    t = np.zeros((10, 10), bool)
    t[:5] = True  # 50 positives
    p = np.zeros((10, 10), bool)
    p[:4] = True  # 40 TP
    p[9, :5] = True  # 5 FP
    m = binary_metrics(p, t)
    assert m == pytest.approx({"accuracy": 0.85, "dice": 80 / 95, "sensitivity": 0.8, "specificity": 0.9})
    assert n_regions(p) == 2
    s = summarize([{"a": 1.0}, {"a": 3.0}])
    assert s == {"a": {"mean": 2.0, "std": 1.0}}


def test_short_training_run_decreases_the_loss():
    from SpineAILib.cervical.data import phantom_samples

    torch.manual_seed(0)
    samples = phantom_samples(4, seed=7, size=256)
    x = torch.as_tensor(np.stack([s.canvas for s in samples]))[:, None]
    y = torch.as_tensor(np.stack([s.target for s in samples]).astype(np.int64))
    net = build("FCN")
    opt = torch.optim.RMSprop(net.parameters(), lr=1e-3)
    losses = []
    for _ in range(8):
        loss, _, _ = localisation_loss(net(x), y, region_weight=1.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]


# ------------------------------------------------------------------- shipped model
def test_shipped_model_on_held_out_phantoms():
    from SpineAILib.cervical.evaluate import evaluate
    from SpineAILib.models import load_card

    card = load_card("cervical_fcn")
    assert "REAL" in card.training["data"] and "phantoms" in card.training["data"]  # what it was trained on
    report = evaluate(n=8, device="cpu", seed=200_000)
    assert report["metrics"]["dice"]["mean"] > 0.7
    assert report["metrics"]["specificity"]["mean"] > 0.95


def test_localize_result_geometry():
    from SpineAILib.cervical import localize

    ph = lateral_cervical_phantom(CervicalPhantomConfig(seed=123, rotation_deg=15))
    r = localize(ph.image, device="cpu")
    assert r.found and r.region.shape == ph.image.array.shape
    assert binary_metrics(r.region, ph.region)["sensitivity"] > 0.6
    assert r.polygon.shape == (4, 2) and r.axis[1] > 0
    # The column leans like the phantom's rotation (image y down: positive rotation leans left).
    assert abs(abs(r.axis_angle_deg) - 15) < 15
    d = r.to_dict()
    assert d["found"] and d["image_size"] == [ph.image.array.shape[1], ph.image.array.shape[0]]


def test_bad_inputs(random_volume):
    from SpineAILib.cervical import localize

    with pytest.raises(InputError, match="expects a 2D radiograph"):
        localize(random_volume, device="cpu")
    with pytest.raises(InputError, match="constant"):
        localize(Image(np.full((64, 64), 9, np.uint8), (1.0, 1.0)), device="cpu")
    empty = localize(Image(np.random.default_rng(1).uniform(0, 5, (200, 200)).astype(np.float32), (1.0, 1.0)),
                     device="cpu")
    if not empty.found:
        assert "No cervical spine found" in empty.warnings[0]


def test_scene_and_cli(tmp_path):
    pytest.importorskip("slicer")
    import SimpleITK as sitk

    from SpineAILib.cervical import localize
    from SpineAILib.cervical.scene import SEGMENT_NAME, write_cervical_result
    from SpineAILib.cli import EXIT_OK, main
    from SpineAILib.io import write_image
    from SpineAILib.scene import add_volume, load_mrb, new_scene, save_mrb, segment_arrays

    ph = lateral_cervical_phantom(CervicalPhantomConfig(seed=5))
    img = Image(ph.image.array, (0.15, 0.15), (10.0, -5.0))
    r = localize(img, device="cpu")
    scene = new_scene()
    vol = add_volume(scene, img, "Lateral")
    write_cervical_result(scene, img, r, vol, probability_volume=True)
    loaded = load_mrb(save_mrb(scene, tmp_path / "c.mrb"))
    seg = loaded.GetFirstNodeByName("Cervical localization")
    masks = segment_arrays(seg, img)
    np.testing.assert_array_equal(masks[SEGMENT_NAME][0], r.region)
    assert loaded.GetFirstNodeByName("Cervical probability") is not None

    path = write_image(ph.image, tmp_path / "lateral.png")
    assert main(["cervical", str(path), "--output", str(tmp_path / "out"), "--device", "cpu", "--quiet"]) == EXIT_OK
    mask = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "out" / "localization.png")))
    assert mask.shape == ph.image.array.shape and set(np.unique(mask)) <= {0, 255}
    info = json.loads((tmp_path / "out" / "localization.json").read_text(encoding="utf-8"))
    assert info["found"] == bool(mask.any()) and len(info["bounding_polygon_px"]) in (0, 4)


def test_ap_views_are_reported_not_found(data_dir):
    """An AP radiograph (phantom and real AASCE images) is not a lateral cervical view:
    `spineai cervical`'s pipeline says no cervical spine was found instead of inventing a region
    (the lateral labelling places no neck in them)."""
    from SpineAILib.io import read_image
    from SpineAILib.phantoms import ap_radiograph_phantom
    from SpineAILib.tasks import localize_cervical

    files = sorted((data_dir / "aasce" / "images").glob("*.jpg"))
    for img in (ap_radiograph_phantom().image, *(read_image(f, expect_ndim=2) for f in files[3:6])):
        r = localize_cervical(img, device="cpu")
        assert not r.found and r.region.shape == img.array.shape
        assert r.warnings[0].startswith("No cervical spine found")


def test_training_script_takes_a_folder_of_real_images(tmp_path):
    """A user with annotated radiographs trains with the same script: images/ + masks/."""
    from SpineAILib.cervical.data import folder_samples
    from SpineAILib.cervical.train import CervicalTrainConfig, run
    from SpineAILib.io import write_image

    (tmp_path / "data" / "images").mkdir(parents=True)
    (tmp_path / "data" / "masks").mkdir()
    for k in range(5):
        ph = lateral_cervical_phantom(CervicalPhantomConfig.random(50 + k, size=160))
        write_image(ph.image, tmp_path / "data" / "images" / f"case{k}.png")
        write_image(ph.image.with_array(ph.region.astype(np.uint8) * 255), tmp_path / "data" / "masks" / f"case{k}.png")
    samples = folder_samples(tmp_path / "data")
    assert len(samples) == 5 and all(s.target.any() and s.mask is not None for s in samples)
    results = run(CervicalTrainConfig(output=str(tmp_path / "run"), data=str(tmp_path / "data"), variants=["FCN-R"],
                                      steps=2, batch_size=2, device="cpu"))
    assert results[0]["variant"] == "FCN-R" and "dice" in results[0]["metrics"]
    assert (tmp_path / "run" / "FCN-R_fp16.pt").is_file() and (tmp_path / "run" / "table.md").is_file()
    (tmp_path / "data" / "masks" / "case0.png").unlink()
    with pytest.raises(InputError, match="No mask for case0.png"):
        folder_samples(tmp_path / "data")


def test_polygon_mask_and_c3_c7_polygon_exact():
    """The reference region: pixel centres inside the polygon down the posterior corners and up
    the anterior ones; NaN corners are skipped."""
    from SpineAILib.cervical.data import c3_c7_polygon, polygon_mask

    square = polygon_mask(np.array([[1.5, 1.5], [5.5, 1.5], [5.5, 4.5], [1.5, 4.5]]), (8, 10))
    expect = np.zeros((8, 10), bool)
    expect[2:5, 2:6] = True
    np.testing.assert_array_equal(square, expect)
    assert not polygon_mask(np.zeros((2, 2)), (4, 4)).any()
    # two stacked vertebrae facing right: posterior x = 10, anterior x = 30 (corner order
    # top posterior, top anterior, bottom posterior, bottom anterior)
    corners = np.array([[[10, 0], [30, 0], [10, 8], [30, 8]], [[10, 10], [30, 10], [10, 18], [np.nan, np.nan]]],
                       float)
    poly = c3_c7_polygon(corners)
    np.testing.assert_array_equal(poly, [[10, 0], [10, 8], [10, 10], [10, 18], [30, 10], [30, 8], [30, 0]])


def test_missing_c3_is_placed_by_its_neighbours():
    """The region runs from C3's top to C7's bottom: a C3 the labelling did not name is placed
    one level above C4 (the step of the line through the named centres)."""
    from SpineAILib.anatomy import LATERAL_CORNERS
    from SpineAILib.tasks import c3_c7_corners, cervical_region_from_labels
    from SpineAILib.xray_vertebrae.predict import VertebraFinding, XrayVertebraeResult

    def vertebra(name, k):  # level k: 40 px per level down, 2 px per level to the right
        x, y = 100 + 2 * k, 100 + 40 * k
        pts = dict(zip(LATERAL_CORNERS, [(x, y - 15), (x + 30, y - 15), (x, y + 15), (x + 30, y + 15)], strict=True))
        return VertebraFinding(name, (x + 15, y), pts, 0.9)

    names = ["C2", "C3", "C4", "C5", "C6", "C7", "T1"]
    full = XrayVertebraeResult("lateral", [vertebra(n, k) for k, n in enumerate(names)], None)
    gap = XrayVertebraeResult("lateral", [vertebra(n, k) for k, n in enumerate(names) if n != "C3"], None)
    np.testing.assert_allclose(c3_c7_corners(gap), c3_c7_corners(full), atol=1e-6)
    a, _ = cervical_region_from_labels(full, (600, 400))
    b, used = cervical_region_from_labels(gap, (600, 400))
    assert used == ["C4", "C5", "C6", "C7"] and np.array_equal(a, b)
    assert a[130, 120] and a[310, 125] and not a[110, 120] and not a[325, 125]  # C3 top 125, C7 bottom 315
    too_few = XrayVertebraeResult("lateral", [vertebra(n, k) for k, n in enumerate(names) if n in ("C2", "C4", "T1")],
                                  None)
    assert cervical_region_from_labels(too_few, (600, 400))[0] is None


def test_real_lateral_views_and_coco_training(tmp_path, data_dir):
    """Views cut from the real whole-spine radiographs keep the C3-C7 reference region whole
    (lateral cervical views) or hold none of it (views below T2); the training script
    takes a COCO-keypoint collection."""
    from SpineAILib.cervical.data import c3_c7_region, has_neck, lateral_views
    from SpineAILib.cervical.train import CervicalTrainConfig, run
    from SpineAILib.io.lateral_keypoints import load_coco_keypoints

    case = next(c for c in load_coco_keypoints(data_dir / "xray_lateral") if has_neck(c))
    region = c3_c7_region(case)
    assert region.shape == (case.size[1], case.size[0]) and 5000 < region.sum() < 0.05 * region.size
    views = lateral_views(case, 3, np.random.default_rng(0), whole=True, lower_views=2)
    assert [n.removeprefix(case.name) for n, _, _ in views] == ["", "-neck0", "-neck1", "-neck2", "-lower0",
                                                                 "-lower1"]
    for name, img, mask in views:
        assert img.shape == mask.shape
        if "neck" in name:
            assert mask.sum() >= 0.98 * region.sum() and img.shape[0] < 0.5 * region.shape[0]
        elif "lower" in name:
            assert not mask.any()
    results = run(CervicalTrainConfig(output=str(tmp_path / "run"), coco=str(data_dir / "xray_lateral"),
                                      variants=["FCN"], views=1, lower_views=1, test_views=1, n_train=0,
                                      steps=2, batch_size=2, device="cpu"))
    assert results[0]["test_samples"] == 6  # one cervical view per validation radiograph
    assert 0 <= results[0]["metrics"]["sensitivity_original"]["mean"] <= 1


def test_neck_view_from_centres():
    """The view the FCN reads in a large radiograph: top of the image to 1.5 levels below T2, as
    wide as high, centred on C3-T2 (placed by a line through the known centres of C2-T2)."""
    from SpineAILib.cervical.data import neck_view_from_centres

    centres = np.full((8, 2), np.nan)  # C2..T2
    centres[2] = (400, 300)  # C4
    centres[5] = (400, 450)  # C7: 50 px per level, so T2 at y 550 and the bottom at 625
    x0, x1, y0, y1 = neck_view_from_centres(centres, (3000, 1200))
    assert y0 == 0 and y1 == 625 and x0 == pytest.approx(87.5, abs=1) and x1 == pytest.approx(712.5, abs=1)
    assert neck_view_from_centres(centres, (560, 600))[1:] == (600, 0, 560)  # clipped to the image
    centres[5] = np.nan
    assert neck_view_from_centres(centres, (3000, 1200)) is None
