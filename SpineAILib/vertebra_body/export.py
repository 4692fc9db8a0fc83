"""Publish the trained click-to-segment and fracture networks as shipped models (fp16 weights +
model cards).

    spineai export vertebral-body vertebral-body --run runs/vertebral_body
    spineai export vertebral-body fracture --run runs/fracture
    spineai export vertebral-body metrics   # cards' evaluation from docs/benchmarks

``--metrics FILE`` (an evaluation report's JSON) is copied into the card's metrics.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from SpineAILib.models import ModelCard, default_models_dir, load_card, write_card
from SpineAILib.training.export import (
    DEFAULT_BENCHMARKS,
    PHANTOM_NOTE,
    publish,
    read_metrics_files,
    read_report,
    run_config,
    run_summary,
    without_rows,
)
from SpineAILib.vertebra_body.networks import BODY_KWARGS


def export_model(kind: str, run: str, models_dir: Path, metrics: dict) -> Path:
    """Publish the ``kind`` (\"vertebral-body\" or \"fracture\") network of a training run."""
    run_p = Path(run)
    cfg = run_config(run_p, "config.json")
    summ = run_summary(run_p, "summary.json")
    if kind == "vertebral-body":
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
            base = run_config(Path(cfg["init"]).parent.parent, "config.json")
            card.training["initialised_from"] = {"weights": cfg["init"], "steps": base.get("steps"),
                                                 "batch": base.get("batch"), "lr": base.get("lr")}
        return publish(run_p / "models" / "vertebral_body.pt", card, models_dir)
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
    if cfg.get("real"):  # real CTs joined the phantoms: their vertebrae as normal bodies
        card.training["real_ct"] = {
            "cases": [c for c in str(cfg["real"]).split(",") if c],
            "targets": "every vertebra of the masks normal (ellipsoid at the mask's body centre); none of these CTs "
                       "shows a fractured body",
            "sampling": f"each listed {cfg.get('real_repeat')} times among the phantoms",
            "held_out": "the other real CTs of the shared data (benchmarks/eval_real_fracture.py)"}
    if summ.get("initialised_from"):  # a fine-tuning run: what it started from, recorded at training
        card.training["initialised_from"] = summ["initialised_from"]
    return publish(run_p / "models" / "fracture_classifier.pt", card, models_dir)


def refresh_card_metrics(models_dir: Path, benchmarks: Path) -> list[Path]:
    """Rewrite ``metrics.evaluation`` of the vertebral body and fracture cards from the reports of
    ``benchmarks/eval_ct.py`` under ``benchmarks`` (machine/date/commit as ``measured``)."""
    out = []
    body = read_report(benchmarks, "vertebral_body/vertebral_body_eval.json")
    g48 = read_report(benchmarks, "vertebral_body_genant48/vertebral_body_eval.json")
    if body:
        card = load_card("vertebral_body", models_dir)
        card.metrics["evaluation"] = {
            "held_out_phantoms_conditions": {c: without_rows(d) for c, d in body.get("conditions", {}).items()},
            "genant": without_rows(body.get("genant", {})),
            "genant_48_phantoms": without_rows(g48.get("genant", {})),
            "real_crops": body.get("real"), "measured": body.get("machine", {}),
            "source": "docs/benchmarks/vertebral_body*/vertebral_body_eval.json"}
        out.append(write_card(card, models_dir))
    frac = read_report(benchmarks, "fracture/fracture_eval.json")
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
    p = argparse.ArgumentParser(prog="spineai export vertebral-body", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("kind", choices=("vertebral-body", "fracture", "metrics"),
                   help="the network to publish, or metrics: refresh the cards' evaluation")
    p.add_argument("--run", help="training output folder (vertebral-body, fracture)")
    p.add_argument("--metrics", action="append", default=[], help="evaluation JSON to record (repeatable)")
    p.add_argument("--benchmarks", default=str(DEFAULT_BENCHMARKS), help="reports of benchmarks/eval_ct.py (metrics)")
    p.add_argument("--models-dir", default=None, help="default: the shipped models folder")
    a = p.parse_args(argv)
    d = Path(a.models_dir) if a.models_dir else default_models_dir()
    if a.kind == "metrics":
        for path in refresh_card_metrics(d, Path(a.benchmarks)):
            print(path)
    else:
        if not a.run:
            p.error(f"{a.kind} needs --run (the training output folder)")
        print(export_model(a.kind, a.run, d, read_metrics_files(a.metrics)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
