"""Publish a trained lateral run as the shipped model: fp16 weights + model card in Resources/Models.

    spineai export xray-vertebrae --run runs/xray_vertebrae [--metrics report.json]

The card records data, split, seed, training config and time, the evaluation report (written by
``spineai evaluate xray-vertebrae --output``), commit and date. The weights are the last step's
(no choice made on the validation split).
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

from SpineAILib.anatomy import LATERAL_VERTEBRAE
from SpineAILib.models import ModelCard, default_models_dir
from SpineAILib.training.export import publish, read_metrics_files
from SpineAILib.xray_vertebrae import model as _model  # noqa: F401  (registers the architecture)
from SpineAILib.xray_vertebrae.predict import MODEL_NAME
from SpineAILib.xray_vertebrae.preprocess import CANVAS, SOURCE_ROWS


def _history(run_dir: Path) -> tuple[int, float]:
    """(steps, seconds) of a run's history.csv."""
    with open(run_dir / "history.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return (int(rows[-1]["step"]) if rows else 0), sum(float(r["seconds"]) for r in rows if r.get("seconds"))


def export(run: str, models_dir: str | None = None, name: str = MODEL_NAME, metrics: list[str] | None = None,
           earlier: list[str] | None = None) -> Path:
    """``earlier``: the runs this one was initialised from (``--init``), oldest first, recorded
    as training stages with their steps and time."""
    run_dir = Path(run)
    cfg = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
    summary_file = run_dir / "summary.json"
    summary = json.loads(summary_file.read_text(encoding="utf-8")) if summary_file.is_file() else {}
    stages = []
    for r in [*(earlier or []), run]:
        steps, secs = _history(Path(r))
        stages.append({"run": Path(r).name, "steps": steps, "seconds": round(secs, 1)})
    train_seconds = sum(s["seconds"] for s in stages)
    card = ModelCard(
        name=name, task="xray-vertebrae", architecture="spineai.XrayVertebraNet", weights=f"{name}.pt", sha256="",
        architecture_kwargs={"n_vertebrae": len(LATERAL_VERTEBRAE), "widths": cfg["widths"], "head_width": 64,
                             "out_stride": cfg["out_stride"], "corrector": cfg["corrector"]},
        input={"canvas_rows_cols": list(CANVAS), "source_rows": SOURCE_ROWS,
               "fit": "uniform scale + centred zero padding", "channels": 1, "output_stride": cfg["out_stride"]},
        intensity={"type": "percentile", "low": 1, "high": 99},
        labels={"vertebrae": LATERAL_VERTEBRAE,
                "corners": "top_posterior, top_anterior, bottom_posterior, bottom_anterior (C2: bottom only, "
                           "S1: top only)",
                "maps": "centre heatmap, centre offset (2), corner offsets (8), level map, 24 identity maps, "
                        "background"},
        training={"data": "26 real sagittal radiographs with expert endplate corners (shared data xray_lateral: "
                          "open test set of the vertebrae_detection collection, 25 whole-spine + 1 lumbar); "
                          f"{summary.get('negatives', cfg.get('n_negatives'))} AASCE AP radiographs as negatives "
                          "(empty targets)",
                  "split": "seeded from the image names: io.lateral_keypoints.default_split (seed 0, 6 validation "
                           "images; one image per patient)",
                  "train_cases": summary.get("train_cases"), "val_cases": summary.get("val_cases"),
                  "seed": cfg["seed"], "steps": cfg["steps"], "batch_size": cfg["batch_size"], "lr": cfg["lr"],
                  "augmentation": {"crop_rate": cfg["crop_rate"], "rotate_deg": cfg["rotate_deg"],
                                   "scale": cfg["scale_range"], "translate": cfg["translate"], "flip": True,
                                   "intensity": "gamma, gain, offset, noise"},
                  "loss": "CenterNet focal + L1 offsets + L1 level map + Bayat et al. L_img (squared error + "
                          "channel cross-entropy of the identity maps) + Huber on the corrector's centres",
                  "loss_weights": {k: cfg[k] for k in ("w_mse", "w_ce", "w_coord", "w_offset", "w_level")},
                  "optimizer": "AdamW, one-cycle", "hardware": summary.get("device", ""),
                  "train_seconds": round(train_seconds, 1), "stages": stages,
                  "weights": "last step of the last stage"},
        metrics=read_metrics_files(metrics or []),
        description="Vertebra labelling in lateral radiographs (C2-L5 and the S1 plate) with endplate corners: "
                    "U-Net with identity maps + residual corrector (Bayat et al. 2019), a centre/corner detector "
                    "and a level map; detections named in anatomical order.",
    )
    return publish(run_dir / "last_fp16.pt", card, Path(models_dir or default_models_dir()))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="spineai export xray-vertebrae")
    p.add_argument("--run", required=True)
    p.add_argument("--models-dir", default=None)
    p.add_argument("--metrics", nargs="*", default=[], help="evaluation report JSON files to record in the card")
    p.add_argument("--earlier", nargs="*", default=[], help="runs this one was initialised from, oldest first")
    a = p.parse_args(argv)
    print(export(a.run, a.models_dir, metrics=a.metrics, earlier=a.earlier))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
