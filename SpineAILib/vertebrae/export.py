"""Publish trained vertebra networks as shipped models (fp16 weights + model cards).

    spineai export vertebrae --detection-run runs/vertebrae --identification-run runs/vertebrae_id
    spineai export vertebrae --only identification --identification-run runs/id480
    spineai export vertebrae metrics        # cards' evaluation from docs/benchmarks

``--metrics FILE`` (an evaluation report's JSON) is copied into the cards' metrics.
"""

from __future__ import annotations

import argparse
import json
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
)
from SpineAILib.vertebrae.networks import DETECTION_KWARGS, IDENTIFICATION_KWARGS


def export_vertebrae(det_run: str, id_run: str, models_dir: Path, metrics: dict,
                     stages: tuple[str, ...] = ("detection", "identification")) -> list[Path]:
    """Publish the vertebra networks of ``stages``. A run started from ``--init`` weights records
    the card those weights were published with (``training.initialised_from``, read from
    ``models_dir`` before it is overwritten); an identification run's calibration
    (``summary_calibration.json``) becomes ``labels.index_offset``."""
    out = []
    for stage, run, arch, kwargs in (("detection", Path(det_run), "spineai.VertebraDetection3D", DETECTION_KWARGS),
                                     ("identification", Path(id_run), "spineai.VertebraIdentification2D",
                                      IDENTIFICATION_KWARGS)):
        if stage not in stages:
            continue
        cfg = run_config(run, f"config_{stage}.json")
        summ = run_summary(run, f"summary_{stage}.json")
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
        out.append(publish(run / "models" / f"vertebra_{stage}.pt", card, models_dir))
    return out


def refresh_card_metrics(models_dir: Path, benchmarks: Path) -> list[Path]:
    """Rewrite ``metrics.evaluation`` of the two vertebra cards from the reports of
    ``benchmarks/eval_ct.py`` under ``benchmarks`` (machine/date/commit as ``measured``): a
    post-processing change (fusion) changes the numbers without retraining."""
    out = []
    ph = read_report(benchmarks, "vertebrae_phantoms/vertebrae_eval.json")
    real = read_report(benchmarks, "vertebrae_real/vertebrae_eval.json")
    if ph:
        # keyed by the number of held-out phantoms (seeds 5000+)
        ev = {f"held_out_phantoms_{len(ph.get('cases', []))}": ph["summary"], "real_samples": _summaries(real),
              "measured": ph.get("machine", {}), "source": "docs/benchmarks/vertebrae_*/vertebrae_eval.json",
              "post_processing": "fusion mode 'discs' (SpineAILib.vertebrae.column)"}
        for name in ("vertebra_detection", "vertebra_identification"):
            card = load_card(name, models_dir)
            card.metrics["evaluation"] = ev
            out.append(write_card(card, models_dir))
    return out


def _summaries(report: dict) -> dict:
    return {c["case"]: c["summary"]["all"] for c in report.get("cases", [])}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="spineai export vertebrae", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("kind", nargs="?", choices=("models", "metrics"), default="models",
                   help="models: publish trained networks (default); metrics: refresh the cards' evaluation")
    p.add_argument("--detection-run", default="runs/vertebrae", help="training output folder of the detection stage")
    p.add_argument("--identification-run", default="runs/vertebrae",
                   help="training output folder of the identification stage")
    p.add_argument("--only", choices=("detection", "identification"), help="publish one network")
    p.add_argument("--metrics", action="append", default=[], help="evaluation JSON to record (repeatable)")
    p.add_argument("--benchmarks", default=str(DEFAULT_BENCHMARKS), help="reports of benchmarks/eval_ct.py (metrics)")
    p.add_argument("--models-dir", default=None, help="default: the shipped models folder")
    a = p.parse_args(argv)
    d = Path(a.models_dir) if a.models_dir else default_models_dir()
    if a.kind == "metrics":
        paths = refresh_card_metrics(d, Path(a.benchmarks))
    else:
        stages = (a.only,) if a.only else ("detection", "identification")
        paths = export_vertebrae(a.detection_run, a.identification_run, d, read_metrics_files(a.metrics), stages)
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
