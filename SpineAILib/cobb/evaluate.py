"""Evaluate the Cobb pipeline end to end (file -> angles) on an AASCE-layout folder.

    spineai evaluate cobb --data $SPINEAI_DATA/aasce --subset val --csv val.csv

Reports SMAPE (the AASCE formula), MAE per angle (degrees), the clinical agreement per angle
(ICC(2,1), Bland-Altman bias and 95 % limits, share within 5 and 10 degrees), severity-class
agreement of the main curve, whether the confidence picks the images with SMAPE > 15 % (ROC AUC,
Spearman correlation), mean landmark error (pixels), the levels (:func:`level_shift`: share of
images whose whole spine is named one or more levels off; end vertebrae of the main curve, and
of all three curves, the same as the reference landmarks' by the same rule), and writes one CSV
row per image.
``--subset`` picks cases from the split file (default: our fixed validation split); "all"
evaluates every case of the folder.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np

from SpineAILib.cobb.angles import CobbAngles, cobb_angles, severity, smape
from SpineAILib.cobb.data import load_aasce
from SpineAILib.cobb.predict import estimate
from SpineAILib.metrics import agreement, roc_auc, spearman

DEFAULT_SPLIT = Path(__file__).resolve().parents[2] / "Resources" / "Splits" / "aasce_split.json"


def level_shift(pred: np.ndarray, truth: np.ndarray) -> int:
    """Whole-spine naming shift (levels) of predicted landmarks (68, 2) against the reference:
    the median over reference vertebrae of (index of the nearest predicted centre - own index).
    +1: every vertebra is called by the name of the one below it (T1 found on C7)."""
    pc = np.asarray(pred, float).reshape(17, 4, 2).mean(1)
    tc = np.asarray(truth, float).reshape(17, 4, 2).mean(1)
    nearest = np.linalg.norm(tc[:, None] - pc[None], axis=2).argmin(1)
    return int(np.median(nearest - np.arange(17)))


def same_ends(pred: CobbAngles, truth: CobbAngles, curves=("main",)) -> bool:
    """True when every named curve has the same upper and lower end vertebrae in both."""
    return all((getattr(pred, k).upper_end, getattr(pred, k).lower_end)
               == (getattr(truth, k).upper_end, getattr(truth, k).lower_end) for k in curves)


def evaluate(data: str, subset: str = "val", split: str | Path = DEFAULT_SPLIT, device: str = "auto",
             csv_path: str | None = None, models_dir: str | None = None, limit: int = 0, progress=None) -> dict:
    cases = load_aasce(data)
    if subset != "all":
        names = set(json.loads(Path(split).read_text(encoding="utf-8"))[subset])
        cases = [c for c in cases if c.name in names]
    if limit:
        cases = cases[:limit]
    rows, preds, truths, lm_err, secs, levels = [], [], [], [], [], []
    for i, c in enumerate(cases):
        t0 = time.perf_counter()
        res = estimate(c.image_path, device=device, models_dir=models_dir)
        secs.append(time.perf_counter() - t0)
        err = float(np.linalg.norm(res.landmarks - c.landmarks, axis=1).mean())
        preds.append(res.values)
        truths.append(c.angles)
        lm_err.append(err)
        ref = cobb_angles(c.landmarks, float(res.image_size[1]))
        levels.append((level_shift(res.landmarks, c.landmarks), same_ends(res.angles, ref),
                       same_ends(res.angles, ref, ("main", "upper", "lower"))))
        rows.append([c.name, *(f"{v:.3f}" for v in res.values), *(f"{v:.3f}" for v in c.angles), f"{err:.2f}",
                     f"{res.confidence:.3f}", int(res.low_confidence)])
        if progress:
            progress((i + 1) / len(cases), c.name)
    preds, truths = np.array(preds), np.array(truths)
    mae = np.abs(preds - truths).mean(0)
    per_image = np.array([smape([p], [t]) for p, t in zip(preds, truths, strict=True)])
    conf = np.array([float(r[-2]) for r in rows])
    main_classes = [(severity(p[0]), severity(t[0])) for p, t in zip(preds, truths, strict=True)]
    report = {"cases": len(cases), "subset": subset, "smape": smape(preds, truths),
              "mae_deg": {"main": float(mae[0]), "upper": float(mae[1]), "lower": float(mae[2])},
              # clinical agreement with the reference angles (degrees)
              "agreement": {k: agreement(preds[:, j], truths[:, j]) for j, k in enumerate(("main", "upper", "lower"))},
              "main_severity_agreement": float(np.mean([a == b for a, b in main_classes])),
              # does the confidence say which images are wrong? (low confidence = high error)
              "confidence_vs_error": {"auc_smape_over_15": roc_auc(-conf, per_image > 15.0),
                                      "spearman": spearman(conf, per_image),
                                      "images_smape_over_15": int((per_image > 15.0).sum())},
              "levels": {"shift_rate": float(np.mean([lv[0] != 0 for lv in levels])),
                         "shifted_up": int(sum(lv[0] > 0 for lv in levels)),
                         "shifted_down": int(sum(lv[0] < 0 for lv in levels)),
                         "main_ends_exact": float(np.mean([lv[1] for lv in levels])),
                         "all_ends_exact": float(np.mean([lv[2] for lv in levels]))},
              "landmark_error_px": {"mean": float(np.mean(lm_err)), "median": float(np.median(lm_err))},
              "low_confidence_cases": int(sum(r[-1] for r in rows)),
              "seconds_per_image": {"mean": float(np.mean(secs)), "median": float(np.median(secs))}}
    if csv_path:
        with open(csv_path, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["image", "main", "upper", "lower", "gt_main", "gt_upper", "gt_lower", "landmark_error_px",
                        "confidence", "low_confidence", "smape", "main_severity", "gt_main_severity", "level_shift",
                        "main_ends_exact"])
            w.writerows(row + [f"{e:.3f}", *cls, lv[0], int(lv[1])]
                        for row, e, cls, lv in zip(rows, per_image, main_classes, levels, strict=True))
    return report


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="spineai evaluate cobb", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True)
    p.add_argument("--subset", default="val", help="val, train (from the split file) or all")
    p.add_argument("--split", default=str(DEFAULT_SPLIT))
    p.add_argument("--device", default="auto")
    p.add_argument("--csv", default=None, help="per-image results")
    p.add_argument("--limit", type=int, default=0)
    a = p.parse_args(argv)
    from tqdm import tqdm

    bar = tqdm(total=100, unit="%")

    def prog(f, m):
        bar.n = round(100 * f, 1)
        bar.refresh()

    report = evaluate(a.data, a.subset, a.split, a.device, a.csv, limit=a.limit, progress=prog)
    bar.close()
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
