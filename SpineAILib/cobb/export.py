"""Publish a trained run as a shipped model: fp16 weights + model card in Resources/Models.

    spineai export cobb --run runs/cobb --data $SPINEAI_DATA/aasce

The card records data, split, seed, training config and time, the validation metrics of the
whole pipeline (file -> angles, measured by SpineAILib.cobb.evaluate), commit and date.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import shutil
from pathlib import Path

from SpineAILib.cobb.evaluate import evaluate
from SpineAILib.cobb.predict import MODEL_NAME
from SpineAILib.models import ModelCard, default_models_dir, write_card
from SpineAILib.training import git_commit


def init_from(path: str) -> dict:
    """What a fine-tuning run started from: the weights file's name and sha256 (and the card's
    name when the file is a shipped model)."""
    import hashlib

    p = Path(path)
    out = {"weights": p.name}
    if p.is_file():
        out["sha256"] = hashlib.sha256(p.read_bytes()).hexdigest()
        card = p.with_suffix(".json")
        if card.is_file():
            meta = json.loads(card.read_text(encoding="utf-8"))
            out.update(model=meta.get("name"), commit=meta.get("commit"), date=meta.get("date"))
    return out


def export(run: str, data: str, models_dir: str | None = None, name: str = MODEL_NAME,
           weights: str = "last") -> Path:
    """``weights`` "last" (the final epoch; no choice made on the validation split, so its
    validation numbers are not selection-biased) or "best" (the epoch with the best validation
    SMAPE during training)."""
    run_dir = Path(run)
    out = Path(models_dir or default_models_dir())
    out.mkdir(parents=True, exist_ok=True)
    cfg = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
    summary_file = run_dir / "summary.json"
    summary = json.loads(summary_file.read_text(encoding="utf-8")) if summary_file.is_file() else {}
    with open(run_dir / "history.csv", encoding="utf-8") as f:
        history = list(csv.DictReader(f))
    train_seconds = sum(float(r["seconds"]) for r in history if r.get("seconds"))
    # read before the copy: a fine-tuning run may start from the very file it replaces
    init = {"initialised_from": init_from(cfg["init"])} if cfg.get("init") else {}
    shutil.copyfile(run_dir / f"{weights}_fp16.pt", out / f"{name}.pt")
    card = ModelCard(
        name=name, task="cobb", architecture="spineai.CobbLandmarkNet", weights=f"{name}.pt", sha256="",
        architecture_kwargs={"widths": cfg["widths"], "head_width": 64,
                             **({"levels": True} if cfg.get("levels") else {})},
        input={"canvas_rows_cols": cfg["canvas"], "fit": "uniform scale + centred zero padding",
               "channels": 1, "output_stride": 4},
        intensity={"type": "percentile", "low": 1, "high": 99},
        labels={"heatmap": "vertebra centres T1..L5", "offsets": "centre sub-pixel (2) + corners TL,TR,BL,BR (8)",
                **({"level_map": "vertebra index around each centre (C7 -1, T1 0 .. L5 16, S1 17; C7 and S1 "
                                 "extrapolated); an auxiliary training target, not used for decoding"}
                   if cfg.get("levels") else {})},
        training={"data": "AASCE 2019 challenge training set (SpineWeb dataset 16), 481 AP radiographs",
                  "split": "Resources/Splits/aasce_split.json (seeded by patient; cases with landmark-order "
                           "errors excluded)", "train_cases": summary.get("train_cases"),
                  "val_cases": summary.get("val_cases"), "excluded_cases": summary.get("excluded_cases"),
                  "seed": cfg["seed"], "epochs": cfg["epochs"], "batch_size": cfg["batch_size"], "lr": cfg["lr"],
                  "augmentation": {"rotate_deg": cfg["rotate_deg"], "scale": cfg["scale_range"],
                                   "translate": cfg["translate"], "flip": cfg["flip"], "intensity": "gamma, gain, "
                                   "offset, noise"},
                  "cut_copies": {"share": cfg.get("cut_prob", 0.0), "rows_cut": "10-35 % at the top or bottom"},
                  "loss": "CenterNet focal loss on centre heatmap + L1 on offsets"
                          + (f" + {cfg.get('level_weight')} x L1 on the level map" if cfg.get("levels") else ""),
                  "optimizer": "AdamW, one-cycle",
                  **init,
                  "hardware": summary.get("device", ""), "train_seconds": round(train_seconds, 1),
                  "weights": f"{weights} epoch" + ("" if weights == "last" else
                                                   f" (after {summary.get('best', {}).get('step')} steps)"),
                  "inference": "flip test-time augmentation (chosen on the validation split)"},
        metrics={}, commit=git_commit(), date=dt.date.today().isoformat(),
        description="Vertebra-focused landmark detector (centre heatmap + corner offsets) for the 68 AASCE corner "
                    "landmarks T1-L5 of AP spine radiographs.",
    )
    write_card(card, out)
    if data:
        report = evaluate(data, "val", models_dir=str(out), device="cpu")
        card = json.loads((out / f"{name}.json").read_text(encoding="utf-8"))
        card["metrics"] = {"validation_split": report}
        (out / f"{name}.json").write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    return out / f"{name}.json"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="spineai export cobb")
    p.add_argument("--run", required=True)
    p.add_argument("--data", default="", help="AASCE folder: evaluate on the validation split for the card")
    p.add_argument("--models-dir", default=None)
    p.add_argument("--weights", choices=("last", "best"), default="last")
    a = p.parse_args(argv)
    print(export(a.run, a.data, a.models_dir, weights=a.weights))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
