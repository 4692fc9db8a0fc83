"""Bad input never gets a result, a traceback or a lost output: NIfTI files checked as stored,
output paths checked before the work and written atomically, option errors, the fracture
status rule, quiet C-library messages, and a corpus of bad files run through every command."""

from __future__ import annotations

import gzip
import json
import struct
import sys
import zipfile

import numpy as np
import pytest
import SimpleITK as sitk

from SpineAILib.cli import EXIT_INPUT, EXIT_MODEL, EXIT_OK, main
from SpineAILib.errors import InputError, InputWarning
from SpineAILib.io import read_image
from SpineAILib.io.output import atomic_file, check_output_folder, staged_folder

CT_COMMANDS = (["vertebrae"], ["vertebral-body", "--point", "0,0,0"], ["fracture"])
RADIOGRAPH_COMMANDS = (["cobb"], ["cervical"])


def _volume(path, array, spacing=(1.0, 1.2, 2.0)):
    img = sitk.GetImageFromArray(array)
    img.SetSpacing(spacing)
    sitk.WriteImage(img, str(path))
    return path


def _ct(shape=(20, 24, 28), seed=0):
    a = np.random.default_rng(seed).normal(0, 200, shape).astype(np.float32)
    a[8:12, 10:14, 12:16] = 900.0
    return a


# ----------------------------------------------------------------------------- NIfTI as stored


def test_truncated_nifti_is_refused(tmp_path):
    full = _volume(tmp_path / "ct.nii.gz", _ct())
    data = full.read_bytes()
    (tmp_path / "cut.nii.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="truncated"):
        read_image(tmp_path / "cut.nii.gz")
    raw = gzip.decompress(data)  # an uncompressed file cut short: the header announces more than is there
    (tmp_path / "cut.nii").write_bytes(raw[: len(raw) - 1000])
    with pytest.raises(InputError, match="truncated: its header announces"):
        read_image(tmp_path / "cut.nii")
    (tmp_path / "tiny.nii").write_bytes(raw[:100])
    with pytest.raises(InputError, match="too short for a NIfTI file"):
        read_image(tmp_path / "tiny.nii")
    assert read_image(full).size == (28, 24, 20)  # the complete file still reads


def test_nan_in_nifti_is_refused_as_stored(tmp_path):
    a = _ct()
    a[3, 4, 5] = np.nan
    with pytest.raises(InputError, match="1 of 13,440 voxels are NaN"):
        read_image(_volume(tmp_path / "nan.nii.gz", a))
    with pytest.raises(InputError, match="every voxel is NaN"):
        read_image(_volume(tmp_path / "allnan.nii", np.full((4, 5, 6), np.nan, np.float32)))


def test_nifti_check_streams_in_chunks(tmp_path):
    """The data is checked chunk by chunk: with voxels split across chunk boundaries the count
    of a float64 volume's NaN/inf voxels is exact for every chunk size."""
    from SpineAILib.io.nifti import check_nifti

    a = np.zeros((7, 11, 13), np.float64)
    a.ravel()[[0, 500, 1000]] = [np.nan, np.inf, -np.inf]
    path = _volume(tmp_path / "f64.nii", a)
    for chunk in (3, 8, 64, 1000, 1 << 20):
        with pytest.raises(InputError, match="3 of 1,001 voxels are NaN"):
            check_nifti(path, chunk)
    assert check_nifti(_volume(tmp_path / "ok.nii", np.ones((7, 11, 13), np.float32)), 5).dims == (13, 11, 7)


def _patch_sform(path, srow):
    raw = bytearray(path.read_bytes())
    struct.pack_into("<2h", raw, 252, 0, 2)  # no qform, a scanner sform
    struct.pack_into("<12f", raw, 280, *np.asarray(srow, np.float32).ravel())
    path.write_bytes(bytes(raw))


def test_nearly_orthonormal_nifti_is_read_with_a_warning(tmp_path):
    path = _volume(tmp_path / "ct.nii", _ct(), spacing=(0.8, 1.1, 2.5))
    a = np.radians(20)
    rot = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1.0]])
    spacing = np.array([0.8, 1.1, 2.5])
    skewed = rot.copy()
    skewed[0, 1] += 3e-4  # off orthonormal by about 1e-4, as some tools write them
    _patch_sform(path, np.concatenate([skewed * spacing, [[-10.0], [20.0], [30.0]]], axis=1))
    with pytest.raises(RuntimeError, match="orthonormal"):
        sitk.ReadImage(str(path))  # what SimpleITK alone does
    with pytest.warns(InputWarning, match="direction cosines off orthonormal by up to"):
        img = read_image(path)
    np.testing.assert_allclose(img.spacing, spacing, atol=1e-3)
    ras_to_lps = np.diag([-1.0, -1.0, 1.0])
    np.testing.assert_allclose(img.direction, ras_to_lps @ rot, atol=5e-4)
    np.testing.assert_allclose(img.direction.T @ img.direction, np.eye(3), atol=1e-6)
    np.testing.assert_allclose(img.origin, [10.0, -20.0, 30.0], atol=1e-4)


def test_totalsegmentator_nifti_reads(data_dir):
    with pytest.warns(InputWarning, match="orthonormal"):
        img = read_image(data_dir / "ct" / "totalseg_s0002" / "ct.nii.gz")
    assert img.size == (185, 128, 101)
    np.testing.assert_allclose(img.spacing, 1.5, atol=1e-4)


# --------------------------------------------------------------------------------- outputs


def test_output_folder_checks_and_atomic_writes(tmp_path):
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(InputError, match="is a file; expected a folder"):
        check_output_folder(tmp_path / "a_file")
    with pytest.raises(InputError, match="Cannot write into --output"):
        check_output_folder(tmp_path / "a_file" / "sub")
    folder, created = check_output_folder(tmp_path / "new" / "out")
    assert created and folder.is_dir()
    (folder / "old.json").write_text("previous result")
    with pytest.raises(RuntimeError), staged_folder(folder) as stage:
        (stage / "old.json").write_text("half of a new result")
        raise RuntimeError("the work fails while writing")
    assert [p.name for p in folder.iterdir()] == ["old.json"] and (folder / "old.json").read_text() == "previous result"
    with staged_folder(folder) as stage:
        (stage / "old.json").write_text("new")
        (stage / "sub").mkdir()
        (stage / "sub" / "b.txt").write_text("b")
    assert sorted(p.name for p in folder.iterdir()) == ["old.json", "sub"]
    assert (folder / "old.json").read_text() == "new"
    with pytest.raises(RuntimeError), atomic_file(tmp_path / "t.csv") as tmp:
        tmp.write_text("partial")
        raise RuntimeError
    assert not (tmp_path / "t.csv").exists() and not list(tmp_path.glob(".t.csv*"))


def test_output_problems_exit_2_before_the_work(tmp_path, monkeypatch, capsys):
    import SpineAILib.vertebrae as vertebrae

    def never(*a, **k):
        raise AssertionError("the computation ran although the output cannot be written")

    monkeypatch.setattr(vertebrae, "locate", never)
    ct = _volume(tmp_path / "ct.nii.gz", _ct())
    (tmp_path / "a_file").write_text("x")
    for output in (tmp_path / "a_file", tmp_path / "a_file" / "sub"):
        assert main(["vertebrae", str(ct), "--output", str(output), "--quiet"]) == EXIT_INPUT
    err = capsys.readouterr().err
    assert "is a file; expected a folder" in err and "Cannot write into --output" in err and "Traceback" not in err
    png = tmp_path / "x.png"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((64, 64), np.uint8)), str(png))
    assert main(["cobb", str(png), "--csv", str(tmp_path), "--quiet"]) == EXIT_INPUT
    assert main(["cobb", str(png), "--landmarks", str(tmp_path / "a_file"), "--quiet"]) == EXIT_INPUT
    err = capsys.readouterr().err
    assert "--csv" in err and "is a folder; expected a file path" in err and "--landmarks" in err


def test_a_failed_run_leaves_no_output(tmp_path, monkeypatch, capsys):
    """Work that fails after the check leaves neither a half-written result nor a new empty folder."""
    import SpineAILib.vertebrae as vertebrae

    def fails(*a, **k):
        raise InputError("no vertebrae in this test")

    monkeypatch.setattr(vertebrae, "locate", fails)
    ct = _volume(tmp_path / "ct.nii.gz", _ct())
    assert main(["vertebrae", str(ct), "--output", str(tmp_path / "out"), "--quiet"]) == EXIT_INPUT
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------------- options


def test_option_errors_are_usage_errors(tmp_path, capsys):
    png = tmp_path / "x.png"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((64, 64), np.uint8)), str(png))
    with pytest.raises(SystemExit) as e:
        main(["cobb", str(png), "--batch-size", "0"])
    assert e.value.code == 2 and "is not a whole number >= 1" in capsys.readouterr().err
    for args in (["train", "--help"], ["evaluate", "--help"], ["export", "--help"], ["train", "cobb", "--help"]):
        with pytest.raises(SystemExit) as e:
            main(args)
        assert e.value.code == 0, args
    assert "cobb, cervical, vertebrae" in capsys.readouterr().out
    assert main(["train"]) == EXIT_INPUT and "Name the task" in capsys.readouterr().err
    (tmp_path / "a_file").write_text("x")
    assert main(["train", "vertebrae", "--output", str(tmp_path / "a_file"), "--phantoms", "0"]) == EXIT_INPUT
    assert "is a file; expected a folder" in capsys.readouterr().err
    for bad in ("nan,1,2", "1,2", "1,x,3", "inf,0,0"):
        assert main(["vertebral-body", str(png), "--point", bad, "--output", str(tmp_path / "o")]) == EXIT_INPUT
        err = capsys.readouterr().err
        assert "three finite numbers" in err and "np.float64" not in err


def test_device_fallback_is_one_clean_line(capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["info", "--device", "cuda"]) == EXIT_OK
    err = capsys.readouterr().err
    assert "spineai info: warning: Device 'cuda' requested but CUDA is not available" in err
    assert "RuntimeWarning" not in err and "warnings.warn" not in err


# ------------------------------------------------------------------------------ the models


def test_info_verifies_every_model_and_names_broken_ones(tmp_path, monkeypatch, capsys):
    import shutil

    from SpineAILib.models import check_models, default_models_dir

    src = default_models_dir()
    assert all(m["ok"] for m in check_models(src)) and len(check_models(src)) >= 6
    for f in src.glob("cobb_landmarks.*"):
        shutil.copy(f, tmp_path / f.name)
    (tmp_path / "cobb_landmarks.pt").write_bytes(b"not the weights")
    rows = check_models(tmp_path)
    assert rows[0]["ok"] is False and "sha256" in rows[0]["problem"]
    monkeypatch.setenv("SPINEAI_MODELS", str(tmp_path))
    assert main(["info", "--device", "cpu"]) == EXIT_MODEL
    out = capsys.readouterr()
    assert "cobb_landmarks" in out.out and "BROKEN" in out.out and "broken model(s): cobb_landmarks" in out.err
    monkeypatch.setenv("SPINEAI_MODELS", str(tmp_path / "nothing"))
    assert main(["info", "--device", "cpu"]) == EXIT_OK
    assert "set SPINEAI_MODELS" in capsys.readouterr().out


@pytest.mark.slow
def test_a_built_wheel_carries_the_models(tmp_path):
    import subprocess

    from SpineAILib.models import check_models

    repo = __import__("pathlib").Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(repo), "--no-deps", "-q", "-w", str(tmp_path)],
                   check=True, capture_output=True, timeout=600)
    wheel = next(tmp_path.glob("spineai-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        z.extractall(tmp_path / "site")
    rows = check_models(tmp_path / "site" / "SpineAILib" / "_models")
    assert len(rows) >= 6 and all(r["ok"] for r in rows), rows
    code = ("import SpineAILib.models as m; d = m.default_models_dir(); "
            "assert d.name == '_models' and d.parent.name == 'SpineAILib', d; print(len(m.check_models()))")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                         env={"PYTHONPATH": str(tmp_path / "site"), "PATH": "/usr/bin:/bin"}, timeout=120)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.strip()) == len(rows)
    term = tmp_path / "site" / "SpineAILib" / "_terminology" / "SegmentationCategoryTypeModifier-SpineAI.term.json"
    assert json.loads(term.read_text(encoding="utf-8"))["SegmentationCategoryTypeContextName"].endswith("SpineAI")


# ------------------------------------------------------------------ what is not there: fracture


def test_fracture_status_follows_one_rule():
    from SpineAILib.vertebra_body.fracture import STATUSES, VertebraFracture
    from SpineAILib.vertebra_body.genant import genant

    assert VertebraFracture(20, np.zeros(3), 0.56).status == "fracture"  # classifier alone: no grade
    assert VertebraFracture(20, np.zeros(3), 0.49).status == "normal"
    assert VertebraFracture(20, np.zeros(3), 0.9, genant(24.0, 24.0, 25.0)).status == "normal"  # Genant decides
    assert VertebraFracture(20, np.zeros(3), 0.1, genant(14.0, 24.0, 25.0)).status == "severe"
    assert {"normal", "fracture", "severe"} <= set(STATUSES)


def test_fracture_refuses_centroids_outside_the_ct(tmp_path, capsys):
    import json

    from SpineAILib.phantoms import CTPhantomConfig, ct_spine_phantom
    from SpineAILib.vertebra_body import assess_fractures

    ph = ct_spine_phantom(CTPhantomConfig(first="L1", last="L2", spacing=(2.0, 2.0, 2.0), ribs=False))
    far = {20: ph.body_centers[20] + [0.0, 0.0, 500.0], 21: ph.body_centers[21] + [0.0, 0.0, 600.0]}
    with pytest.raises(InputError, match="Every centroid lies outside the CT: L1 \\(RAS"):
        assess_fractures(ph.image, far, device="cpu", genant=False)
    r = assess_fractures(ph.image, {20: ph.body_centers[20], 21: far[21]}, device="cpu", genant=False)
    assert [v.name for v in r.vertebrae] == ["L1"] and any("outside the CT, not assessed: L2" in w for w in r.warnings)
    from SpineAILib.io import write_image
    from SpineAILib.io.centroids import centroids_json

    write_image(ph.image, tmp_path / "ct.nii.gz")
    (tmp_path / "c.json").write_text(json.dumps(centroids_json(far)))
    assert main(["fracture", str(tmp_path / "ct.nii.gz"), "--centroids", str(tmp_path / "c.json"), "--output",
                 str(tmp_path / "fx"), "--quiet", "--device", "cpu"]) == EXIT_INPUT
    assert "outside the CT" in capsys.readouterr().err and not (tmp_path / "fx").exists()


def test_a_body_cut_by_the_field_of_view_is_not_graded():
    from SpineAILib.io import Image
    from SpineAILib.phantoms import CTPhantomConfig, ct_spine_phantom
    from SpineAILib.vertebra_body import segment
    from SpineAILib.vertebra_body.predict import touches_border

    assert touches_border(np.pad(np.ones((2, 2, 2), bool), ((0, 3), (1, 1), (1, 1))))
    assert not touches_border(np.pad(np.ones((2, 2, 2), bool), 1))
    ph = ct_spine_phantom(CTPhantomConfig(first="L1", last="L3", ribs=False))
    centre = ph.body_centers[22]  # L3, the last: cut the CT through its body
    k = int(round(ph.image.physical_to_index(centre)[2]))
    cut = Image(ph.image.array[k:], ph.image.spacing, ph.image.index_to_physical(np.array([0.0, 0.0, k])),
                ph.image.direction)
    whole = segment(ph.image, centre, "LPS", ph.body_centers, device="cpu")
    part = segment(cut, centre + ph.image.direction[:, 2] * 4.0, "LPS", ph.body_centers, device="cpu")
    assert whole.genant is not None
    assert part.genant is None and any("cut by the CT's field of view" in w for w in part.warnings)


# --------------------------------------------------------------------- quiet input surprises


def test_quiet_reading_of_truncated_jpeg_and_empty_folders(tmp_path, data_dir, capfd):
    first = sorted((data_dir / "aasce" / "images").glob("*.jpg"))[0]
    (tmp_path / "cut.jpg").write_bytes(first.read_bytes()[:60000])
    assert main(["cobb", str(tmp_path / "cut.jpg"), "--output", str(tmp_path / "o"), "--quiet"]) == EXIT_INPUT
    out, err = capfd.readouterr()
    assert "Premature end of JPEG" not in out + err and "truncated (premature end of the JPEG data)" in err
    (tmp_path / "empty").mkdir()
    assert main(["vertebrae", str(tmp_path / "empty"), "--output", str(tmp_path / "o2"), "--quiet"]) == EXIT_INPUT
    out, err = capfd.readouterr()
    assert "WARNING" not in out + err and "no DICOM series" in err
    series = data_dir / "ct" / "totalseg_dicom" / "ct_dicom"
    assert main(["cobb", str(series), "--output", str(tmp_path / "o3"), "--quiet"]) == EXIT_INPUT
    assert "DICOM series of 20 slices: a volume such as a CT, not radiographs" in capfd.readouterr().err


def test_no_progress_bar_frames_when_stderr_is_not_a_terminal(tmp_path, capsys):
    from SpineAILib.phantoms import lateral_cervical_phantom

    ph = lateral_cervical_phantom()
    sitk.WriteImage(sitk.GetImageFromArray(ph.image.array.astype(np.uint8)), str(tmp_path / "lat.png"))
    assert main(["cervical", str(tmp_path / "lat.png"), "--output", str(tmp_path / "o"), "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert "%|" not in err and "\r" not in err


# ------------------------------------------------------------------ a corpus of bad files


def _corpus(d):
    """name -> (path, which commands it is for: 'ct', 'radiograph' or 'both')."""
    d.mkdir()
    files = {}
    (d / "empty.nii.gz").write_bytes(b"")
    files["empty NIfTI"] = (d / "empty.nii.gz", "ct")
    (d / "empty.png").write_bytes(b"")
    files["empty PNG"] = (d / "empty.png", "radiograph")
    (d / "text.nii.gz").write_text("this is not an image")
    files["text named .nii.gz"] = (d / "text.nii.gz", "ct")
    (d / "text.jpg").write_text("this is not an image")
    files["text named .jpg"] = (d / "text.jpg", "radiograph")
    (d / "notes.txt").write_text("x")
    files["unsupported suffix"] = (d / "notes.txt", "both")
    full = _volume(d / "full.nii.gz", _ct()).read_bytes()
    (d / "truncated.nii.gz").write_bytes(full[: len(full) // 2])
    files["truncated NIfTI"] = (d / "truncated.nii.gz", "ct")
    a = _ct()
    a[5, 5, 5] = np.nan
    files["NaN NIfTI"] = (_volume(d / "nan.nii.gz", a), "ct")
    files["all NaN NIfTI"] = (_volume(d / "allnan.nii.gz", np.full((6, 7, 8), np.nan, np.float32)), "ct")
    files["4D NIfTI"] = (_volume(d / "4d.nii.gz", np.zeros((2, 5, 6, 7), np.int16), (1.0, 1.0, 1.0, 1.0)), "both")
    files["constant CT"] = (_volume(d / "constant.nii.gz", np.full((8, 9, 10), 40, np.int16)), "ct")
    files["2D image given as a CT"] = (_volume(d / "flat.png", np.full((32, 32), 9, np.uint8), (1.0, 1.0)), "ct")
    files["3D volume given as a radiograph"] = (d / "full.nii.gz", "radiograph")
    raw = bytearray(gzip.decompress(full))
    struct.pack_into("<8h", raw, 40, 3, 30000, 30000, 30000, 1, 1, 1, 1)  # a header announcing 27 G voxels
    (d / "huge.nii").write_bytes(bytes(raw))
    files["huge (header only)"] = (d / "huge.nii", "ct")
    files["missing file"] = (d / "missing.nii.gz", "both")
    return files


@pytest.mark.parametrize("command", [*CT_COMMANDS, *RADIOGRAPH_COMMANDS], ids=lambda c: c[0])
def test_every_command_refuses_every_bad_file(command, tmp_path, capfd):
    ct = command in CT_COMMANDS
    for name, (path, kind) in _corpus(tmp_path / "corpus").items():
        if kind != "both" and (kind == "ct") != ct:
            continue
        out_dir = tmp_path / "out" / name.replace(" ", "_")
        code = main([*command[:1], str(path), *command[1:], "--output", str(out_dir), "--quiet", "--device", "cpu"])
        out, err = capfd.readouterr()
        assert code == EXIT_INPUT, (command[0], name, code, err)
        assert "Traceback" not in out + err and "error" in err, (command[0], name, err)
        written = [p for p in out_dir.rglob("*") if p.is_file()] if out_dir.exists() else []
        if command[0] == "cobb" and written:  # a batch writes its CSV: here one error row, no angles
            rows = written[0].read_text(encoding="utf-8").splitlines()
            assert [p.name for p in written] == ["cobb_angles.csv"] and len(rows) == 2 and "error: " in rows[1]
        else:
            assert not written, (command[0], name, written)
