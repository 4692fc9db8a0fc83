"""Publish trained CT models as shipped models: fp16 weights copied into the models folder and a
model card written next to them (sha256 filled in).

    python -m SpineAILib.training.export vertebrae --detection-run runs/vertebrae --identification-run runs/vertebrae_id
    python -m SpineAILib.training.export vertebral-body --run runs/vertebral_body
    python -m SpineAILib.training.export fracture --run runs/fracture
    python -m SpineAILib.training.export metrics [--benchmarks docs/benchmarks]

``--metrics FILE`` (an evaluation report's JSON) is copied into the card's metrics. ``metrics``
refreshes the evaluation in the shipped CT cards from the latest ``benchmarks/eval_ct.py``
reports (weights, sha256 and training record untouched): a post-processing change (fusion,
height measurement) changes the numbers without retraining.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
from pathlib import Path

from SpineAILib.models import ModelCard, default_models_dir, write_card
from SpineAILib.training.common import git_commit, load_fp16_weights

PHANTOM_NOTE = ("SYNTHETIC CT phantoms (SpineAILib.phantoms.ct_spine_phantom: bodies with cortical shell, discs, "
                "posterior elements, ribs, HU ranges, random level range/curvature/field of view/spacing/orientation/"
                "noise)")


def _config(run: Path, name: str) -> dict:
    for cand in (run / name, run / "config_both.json", run / "config.json"):
        if cand.is_file():
            return json.loads(cand.read_text(encoding="utf-8"))
    return {}


def _summary(run: Path, name: str) -> dict:
    for p in (run / name, run / "summary_both.json"):  # a run of one stage, or of both
        if p.is_file():
            return json.loads(p.read_text(encoding="utf-8"))
    return {}


def _publish(src: Path, card: ModelCard, models_dir: Path) -> Path:
    from SpineAILib.fracture import network as _f  # noqa: F401 - register the architectures
    from SpineAILib.networks import build_network
    from SpineAILib.vertebra_body import networks as _b  # noqa: F401
    from SpineAILib.vertebrae import networks as _v  # noqa: F401

    models_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, models_dir / card.weights)
    net = build_network(card.architecture, **card.architecture_kwargs)
    card.training["parameters"] = int(sum(p.numel() for p in net.parameters()))
    load_fp16_weights(net, models_dir / card.weights)
    card.commit = git_commit()
    card.date = dt.date.today().isoformat()
    return write_card(card, models_dir)


def export_vertebrae(det_run: str, id_run: str, models_dir: Path, metrics: dict,
                     stages: tuple[str, ...] = ("detection", "identification")) -> list[Path]:
    """Publish the vertebra networks of ``stages``. A run started from ``--init`` weights records
    the card those weights were published with (``training.initialised_from``, read from
    ``models_dir`` before it is overwritten); an identification run's calibration
    (``summary_calibration.json``) becomes ``labels.index_offset``."""
    from SpineAILib.models import load_card
    from SpineAILib.vertebrae import networks as nets

    out = []
    for stage, run, arch, kwargs in (("detection", Path(det_run), "spineai.VertebraDetection3D", nets.DETECTION_KWARGS),
                                     ("identification", Path(id_run), "spineai.VertebraIdentification2D",
                                      nets.IDENTIFICATION_KWARGS)):
        if stage not in stages:
            continue
        cfg = _config(run, f"config_{stage}.json")
        summ = _summary(run, f"summary_{stage}.json")
        real = ", ".join(cfg.get("real_train", [])) or "none"
        card = ModelCard(
            name=f"vertebra_{stage}", task="vertebrae", architecture=arch, weights=f"vertebra_{stage}.pt", sha256="",
            architecture_kwargs=dict(kwargs),
            input={"spacing_mm": cfg.get("spacing", 2.0), "grid": "canonical axis-aligned LPS",
                   **({"patch_zyx": [80, 64, 64], "border_zyx": [20, 16, 16], "inference_patch_zyx": [160, 128, 128]}
                      if stage == "detection" else
                      {"sample": "8 sagittal slices x 80 (AP) x 320 (SI)", "output_slice": 4})},
            intensity={"type": "HU/1000 clipped to [-1, 2]"},
            labels={"0": "background", "1": "vertebra"} if stage == "detection" else
            {"value": "continuous VerSe vertebra index (1 = C1 ... 24 = L5, 26 = S1)"},
            training={"data": f"{PHANTOM_NOTE}: {cfg.get('phantoms', '?')} phantoms "
                              f"(seeds {cfg.get('phantom_seed')}+); real CT with pseudo-label centroids: {real}; "
                              f"VerSe folders: "
                              f"{', '.join(cfg.get('data', [])) or 'none'}",
                      "steps": summ.get(stage, {}).get("steps"), "seconds": summ.get(stage, {}).get("seconds"),
                      "optimizer": f"Adam one-cycle lr {cfg.get('lr')}", "seed": cfg.get("seed"),
                      "hardware": "2-core CPU", "loss": "weighted cross entropy 0.1/0.9" if stage == "detection"
                      else "masked L1 on the vertebra index", "split": "held-out phantoms use seeds 5000+"},
            metrics=metrics, description=f"McCouat & Glocker two-stage vertebra localisation: {stage} network.")
        if cfg.get("init"):
            try:
                prev = load_card(f"vertebra_{stage}", models_dir)
                before = {"sha256": prev.sha256, "commit": prev.commit, "date": prev.date, "training": prev.training}
            except Exception:  # noqa: BLE001 - no card published yet: record the weights file only
                before = None
            card.training["initialised_from"] = {"weights": cfg["init"], "published_card": before}
        calib = run / "summary_calibration.json"
        if stage == "identification" and calib.is_file():
            c = json.loads(calib.read_text(encoding="utf-8"))
            card.labels["index_offset"] = c["index_offset"]
            card.training["calibration"] = (
                f"index_offset = median per-scan offset (levels) on phantoms seeds {c['seeds'][0]}-{c['seeds'][1]} "
                f"(never trained on; {len(c['per_scan'])} scans), subtracted from the network's output at inference")
        out.append(_publish(run / "models" / f"vertebra_{stage}.pt", card, models_dir))
    return out


def export_single(kind: str, run: str, models_dir: Path, metrics: dict) -> Path:
    run_p = Path(run)
    cfg = _config(run_p, "config.json")
    summ = _summary(run_p, "summary.json")
    if kind == "vertebral-body":
        from SpineAILib.vertebra_body.networks import BODY_KWARGS

        card = ModelCard(
            name="vertebral_body", task="vertebral-body", architecture="spineai.BodySegmentation3D",
            weights="vertebral_body.pt", sha256="", architecture_kwargs=dict(BODY_KWARGS),
            input={"spacing_mm": 1.0, "crop_size_xyz": [128, 128, 64],
                   "channels": ["HU/1000 clipped to [-1, 2]", "Gaussian of the click, sigma 10 mm"]},
            intensity={"type": "HU/1000 clipped to [-1, 2]"}, labels={"1": "vertebral body at the click"},
            training={"data": f"{PHANTOM_NOTE}; bodies with random size (x0.85-1.15), wedge/biconcave/crush "
                              f"height loss 10-50 %, lytic/blastic lesions: {cfg.get('phantoms')} phantoms (seeds "
                              f"{cfg.get('phantom_seed')}+); "
                              + (f"then fine-tuned ({cfg.get('steps')} steps, half the samples) on real CT with "
                                 f"crude pseudo-label bodies (anterior 45 % of TotalSegmentator vertebra masks): "
                                 f"{', '.join(cfg['real_train'])}; " if cfg.get("real_train") else "")
                              + "the real crops with expert masks (tptbox_crop, spinefe_l2_crop) are for validation "
                                "only",
                      "steps": summ.get("steps"), "seconds": summ.get("seconds"), "batch": cfg.get("batch"),
                      "train_crop_zyx": [32, 64, 64], "loss": "negative soft Dice + binary cross entropy",
                      "augmentation": "click translation up to 8/8/5 mm, resampling to random 1-2 mm and back, "
                                      "intensity scale/shift, left-right flips",
                      "optimizer": f"Adam one-cycle lr {cfg.get('lr')}", "seed": cfg.get("seed"),
                      "hardware": "2-core CPU", "split": "held-out phantoms use seeds 6000+"},
            metrics=metrics, description="Click-to-segment vertebral body 3D U-Net (after Klein et al.).")
        if cfg.get("init"):  # a fine-tuning run: say what it started from
            base = _config(Path(cfg["init"]).parent.parent, "config.json")
            card.training["initialised_from"] = {"weights": cfg["init"], "steps": base.get("steps"),
                                                 "batch": base.get("batch"), "lr": base.get("lr")}
        return _publish(run_p / "models" / "vertebral_body.pt", card, models_dir)
    card = ModelCard(
        name="fracture_classifier", task="fracture", architecture="spineai.DualPathway3D",
        weights="fracture_classifier.pt", sha256="", architecture_kwargs={},
        input={"spacing_mm": 2.0, "grid": "canonical axis-aligned LPS", "normal_pathway": "out + 16 voxels",
               "subsampled_pathway": "3x average-pooled, out / 3 + 16 voxels"},
        intensity={"type": "HU/1000 clipped to [-1, 2]"},
        labels={"0": "background", "1": "normal vertebra", "2": "fractured vertebra (>= 20 % height loss)"},
        training={"data": f"{PHANTOM_NOTE}; 40 % of vertebrae with wedge/biconcave/crush height loss 10-50 %, "
                          f"acquired at random 1-2 mm: {cfg.get('phantoms')} phantoms "
                          f"(seeds {cfg.get('phantom_seed')}+); targets: ellipsoids from centroids, flattened by the "
                          "height loss",
                  "steps": summ.get("steps"), "seconds": summ.get("seconds"), "batch": cfg.get("batch"),
                  "loss": "cross entropy", "optimizer": f"RMSprop lr {cfg.get('lr')} (x0.3 at 60 % and 85 %)",
                  "augmentation": "left-right and head-feet flips, intensity noise", "seed": cfg.get("seed"),
                  "hardware": "2-core CPU", "split": "held-out phantoms use seeds 7000+"},
        metrics=metrics, description="Dual-pathway 3D voxel classifier (Nicolaes et al.).")
    return _publish(run_p / "models" / "fracture_classifier.pt", card, models_dir)


def _without_rows(d: dict) -> dict:
    """A report section without its per-case rows (they stay in docs/benchmarks)."""
    return {k: v for k, v in d.items() if k != "rows"}


def _summaries(report: dict) -> dict:
    return {c["case"]: c["summary"]["all"] for c in report.get("cases", [])}


def refresh_card_metrics(models_dir: Path, benchmarks: Path) -> list[Path]:
    """Rewrite ``metrics.evaluation`` of the vertebra, vertebral body and fracture cards from
    the reports under ``benchmarks`` (each with its machine/date/commit as ``measured``)."""
    from SpineAILib.models import load_card

    def read(rel: str) -> dict:
        f = benchmarks / rel
        return json.loads(f.read_text(encoding="utf-8")) if f.is_file() else {}

    out = []
    ph, real = read("vertebrae_phantoms/vertebrae_eval.json"), read("vertebrae_real/vertebrae_eval.json")
    if ph:
        # keyed by the number of held-out phantoms (20 until session 12, then 100: seeds 5000-5099)
        ev = {f"held_out_phantoms_{len(ph.get('cases', []))}": ph["summary"], "real_samples": _summaries(real),
              "measured": ph.get("machine", {}), "source": "docs/benchmarks/vertebrae_*/vertebrae_eval.json",
              "post_processing": "fusion mode 'discs' (SpineAILib.vertebrae.column)"}
        for name in ("vertebra_detection", "vertebra_identification"):
            card = load_card(name, models_dir)
            card.metrics["evaluation"] = ev
            out.append(write_card(card, models_dir))
    body = read("vertebral_body/vertebral_body_eval.json")
    g48 = read("vertebral_body_genant48/vertebral_body_eval.json")
    if body:
        card = load_card("vertebral_body", models_dir)
        card.metrics["evaluation"] = {
            "held_out_phantoms_conditions": {c: _without_rows(d) for c, d in body.get("conditions", {}).items()},
            "genant": _without_rows(body.get("genant", {})),
            "genant_48_phantoms": _without_rows(g48.get("genant", {})),
            "real_crops": body.get("real"), "measured": body.get("machine", {}),
            "source": "docs/benchmarks/vertebral_body*/vertebral_body_eval.json"}
        out.append(write_card(card, models_dir))
    frac = read("fracture/fracture_eval.json")
    if frac:
        card = load_card("fracture_classifier", models_dir)
        card.metrics["evaluation"] = {
            **{k: frac[k] for k in ("n_vertebrae", "n_fractured", "vertebra_auc", "patient_auc",
                                    "patient_component_rule", "genant_sensitivity", "genant_specificity")
               if k in frac},
            "measured": frac.get("machine", {}), "source": "docs/benchmarks/fracture/fracture_eval.json"}
        out.append(write_card(card, models_dir))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m SpineAILib.training.export", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("kind", choices=("vertebrae", "vertebral-body", "fracture", "metrics"))
    p.add_argument("--benchmarks", default=str(Path(__file__).resolve().parents[2] / "docs" / "benchmarks"),
                   help="reports of benchmarks/eval_ct.py (metrics)")
    p.add_argument("--run", help="training output folder (vertebral-body, fracture)")
    p.add_argument("--detection-run", default="runs/vertebrae")
    p.add_argument("--identification-run", default="runs/vertebrae")
    p.add_argument("--only", choices=("detection", "identification"), help="vertebrae: publish one network")
    p.add_argument("--metrics", action="append", default=[], help="evaluation JSON to record (repeatable)")
    p.add_argument("--models-dir", default=None)
    a = p.parse_args(argv)
    metrics = {}
    for m in a.metrics:
        data = json.loads(Path(m).read_text(encoding="utf-8"))
        metrics[Path(m).stem] = data
    d = Path(a.models_dir) if a.models_dir else default_models_dir()
    if a.kind == "metrics":
        for path in refresh_card_metrics(d, Path(a.benchmarks)):
            print(path)
    elif a.kind == "vertebrae":
        stages = (a.only,) if a.only else ("detection", "identification")
        for path in export_vertebrae(a.detection_run, a.identification_run, d, metrics, stages):
            print(path)
    else:
        print(export_single(a.kind, a.run, d, metrics))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
