"""The CT training scripts run end to end on tiny budgets (one or two steps) and write weights a
model card can be built from: vertebrae from a VerSe-layout folder, vertebral body, fracture."""

from __future__ import annotations

import numpy as np
import pytest

from SpineAILib.io import write_image
from SpineAILib.models import load_model


@pytest.mark.slow
def test_vertebrae_training_from_a_verse_folder_and_export(tmp_path):
    from SpineAILib.io.centroids import write_verse_centroids
    from SpineAILib.phantoms import CTPhantomConfig, ct_spine_phantom
    from SpineAILib.vertebrae.export import export_vertebrae
    from SpineAILib.vertebrae.train import main

    ph = ct_spine_phantom(CTPhantomConfig(first="L1", last="L4", spacing=(2.0, 2.0, 2.0), ribs=False))
    sub = tmp_path / "verse" / "sub-x"
    sub.mkdir(parents=True)
    write_image(ph.image, sub / "sub-x_ct.nii.gz")
    write_verse_centroids(sub / "sub-x_seg-subreg_ctd.json", ph.body_centers, ph.image)
    out = tmp_path / "run"
    assert main(["--output", str(out), "--data", str(tmp_path / "verse"), "--phantoms", "0", "--det-steps", "2",
                 "--id-steps", "2", "--id-batch", "2"]) == 0
    cached = np.load(out / "cache" / "real_sub-x.npz")
    assert set(np.unique(cached["dense"])) == {0, 20, 21, 22, 23}  # dense labels from the VerSe centroids
    models = tmp_path / "models"
    export_vertebrae(str(out), str(out), models, {"note": "smoke test"})
    net, card = load_model("vertebra_identification", "cpu", models)
    assert card.input["spacing_mm"] == 2.0 and card.training["steps"] == 2
    assert "none" not in card.training["data"].split("VerSe folders:")[1]


def test_scan_index_offset_is_the_mean_of_per_vertebra_medians():
    from SpineAILib.vertebrae.train import scan_index_offset

    dense = np.zeros((30, 4, 4), np.uint8)
    dense[0:10], dense[10:20], dense[20:25] = 5, 6, 26  # C5, C6 and S1 (left out: no one-level step)
    index = dense.astype(np.float32) + 0.5
    index[0:4] = 9.0  # outliers in C5 below half of its voxels do not move its median
    index[20:25] = 40.0
    assert scan_index_offset(index, dense) == pytest.approx(0.5)
    index[10:20] = 6.0 - 0.3
    assert scan_index_offset(index, dense) == pytest.approx((0.5 - 0.3) / 2)
    assert scan_index_offset(index, dense, min_voxels=10_000) is None  # too little labelled
    assert scan_index_offset(index, np.where(dense == 26, 26, 0).astype(np.uint8)) is None


@pytest.mark.slow
def test_identification_calibration_and_export(tmp_path):
    """--stage calibration measures the offset of the run's identification network on the
    phantoms after the training seeds; the export writes it into the card, which inference
    reads, and records the card of the --init weights."""
    import json

    import torch

    from SpineAILib.models import load_card
    from SpineAILib.networks import build_network
    from SpineAILib.training import save_config, save_fp16_weights
    from SpineAILib.vertebrae.export import export_vertebrae
    from SpineAILib.vertebrae.networks import IDENTIFICATION_KWARGS
    from SpineAILib.vertebrae.train import VertebraeTrainConfig, main

    run = tmp_path / "run"
    net = build_network("spineai.VertebraIdentification2D", **IDENTIFICATION_KWARGS)
    with torch.no_grad():  # a network whose output is a constant 0: offset = -(mean label) per scan
        for prm in net.parameters():
            prm.zero_()
    (run / "models").mkdir(parents=True)
    save_fp16_weights(net.state_dict(), run / "models" / "vertebra_identification.pt")
    # the run's training config decides the seeds (3 phantoms from 4000: calibration from 4003), not the flags
    save_config(VertebraeTrainConfig(output=str(run), phantoms=3, phantom_seed=4000, init="earlier.pt"),
                run / "config_identification.json")
    assert main(["--output", str(run), "--stage", "calibration", "--calibration-phantoms", "2"]) == 0
    calib = json.loads((run / "summary_calibration.json").read_text())
    assert calib["seeds"] == [4003, 4004] and len(calib["per_scan"]) == 2
    expected = []
    for seed in (4003, 4004):
        with np.load(run / "cache" / f"phantom_{seed}.npz") as z:
            labs = [v for v in np.unique(z["dense"]) if 0 < v <= 24]
        expected.append(-float(np.mean(labs)))
    assert calib["index_offset"] == pytest.approx(np.median(expected), abs=1e-3)
    models = tmp_path / "models"
    export_vertebrae(str(run), str(run), models, {}, stages=("identification",))
    card = load_card("vertebra_identification", models)
    assert card.labels["index_offset"] == calib["index_offset"]
    assert card.training["initialised_from"] == {"weights": "earlier.pt", "published_card": None}
    assert not (models / "vertebra_detection.json").exists()  # only the stage asked for


@pytest.mark.slow
def test_body_and_fracture_training_smoke(tmp_path):
    from SpineAILib.vertebra_body.export import export_model
    from SpineAILib.vertebra_body.train import main as body_main
    from SpineAILib.vertebra_body.train_fracture import main as fracture_main

    assert body_main(["--output", str(tmp_path / "vb"), "--phantoms", "1", "--steps", "2", "--batch", "1"]) == 0
    assert fracture_main(["--output", str(tmp_path / "fx"), "--phantoms", "1", "--steps", "2", "--batch", "3"]) == 0
    for kind, run, name in (("vertebral-body", "vb", "vertebral_body"), ("fracture", "fx", "fracture_classifier")):
        export_model(kind, str(tmp_path / run), tmp_path / "models", {})
        net, card = load_model(name, "cpu", tmp_path / "models")
        assert card.training["steps"] == 2 and card.sha256


def test_resume_restores_model_optimizer_and_schedule(tmp_path):
    import torch

    from SpineAILib.training import resume, save_checkpoint

    def make():
        net = torch.nn.Linear(3, 2)
        opt = torch.optim.Adam(net.parameters(), lr=0.1)
        return net, opt, torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=10)

    net, opt, sched = make()
    for _ in range(3):
        opt.zero_grad()
        net(torch.ones(1, 3)).sum().backward()
        opt.step()
        sched.step()
    path = tmp_path / "checkpoint.pt"
    assert resume(path, *make()) is None  # nothing saved yet
    save_checkpoint(path, model=net.state_dict(), optimizer=opt.state_dict(), scheduler=sched.state_dict(), step=3)
    net2, opt2, sched2 = make()
    ck = resume(path, net2, opt2, sched2)
    assert ck["step"] == 3
    torch.testing.assert_close(net2.weight, net.weight)
    assert opt2.state_dict()["state"][0]["step"] == opt.state_dict()["state"][0]["step"]
    assert sched2.last_epoch == 3 and opt2.param_groups[0]["lr"] == pytest.approx(opt.param_groups[0]["lr"])


def test_fracture_training_takes_real_cts_as_normal_bodies(data_dir, tmp_path):
    from SpineAILib.errors import InputError
    from SpineAILib.vertebra_body.train_fracture import _real_arrays, real_cases

    with pytest.raises(InputError, match="no_such_case"):
        real_cases("tptbox_crop,no_such_case", str(data_dir))
    (case,) = real_cases("tptbox_crop", str(data_dir))
    arrays = _real_arrays(case, tmp_path)
    assert arrays["x"].shape == arrays["y"].shape
    assert set(np.unique(arrays["y"]).tolist()) == {0, 1}  # its vertebrae as normal bodies, no fracture class
    assert (arrays["y"] == 1).sum() > 1000  # 3 bodies of about 20 ml at 2 mm voxels (8 mm^3): >= 2500 voxels
    assert (tmp_path / "real_tptbox_crop.npz").is_file()  # cached for the next run
