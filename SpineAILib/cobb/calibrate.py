"""Fit the Cobb quality models (:mod:`SpineAILib.cobb.quality`) on the training split and store
them in the landmark model's card; report how they do on the validation split.

    python -m SpineAILib.cobb.calibrate --data $SPINEAI_DATA/aasce [--write]

Training images: each radiograph as given (its SMAPE and features fit the error and confidence
models) and cut 15 % from the top and from the bottom (those with a vertebra centre outside the
cut are the positives of the cut-off models). Validation (reported, never fitted): the same, and
each radiograph turned by 90 degrees and upside down.

The error model is a non-negative least-squares fit of the summed absolute angle error (degrees)
on the flip and jitter disagreements; the confidence is a logistic model of SMAPE <= 15 % on the
log of the expected SMAPE; each cut-off model is a logistic regression whose threshold flags
2.5 % of the complete training radiographs. Deterministic (no random sampling but the jitter's
fixed seed).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

from SpineAILib.cobb import quality
from SpineAILib.cobb.angles import smape
from SpineAILib.cobb.data import load_aasce
from SpineAILib.cobb.evaluate import DEFAULT_SPLIT
from SpineAILib.cobb.predict import MODEL_NAME, get_model, predict_landmarks, quality_features
from SpineAILib.cobb.preprocess import to_canvas
from SpineAILib.io.readers import read_image
from SpineAILib.metrics import roc_auc, spearman

CUT_FRACTION = 0.15
FLAG_RATE_COMPLETE = 0.025


def _variants(arr: np.ndarray, landmarks: np.ndarray, with_robustness: bool):
    """(kind, array, vertebrae whose centre the cut removes) for one radiograph."""
    h = arr.shape[0]
    cy = landmarks.reshape(17, 4, 2)[:, :, 1].mean(1)
    cut = int(round(CUT_FRACTION * h))
    yield "full", arr, 0
    yield "cut_top", arr[cut:], int((cy < cut).sum())
    yield "cut_bottom", arr[: h - cut], int((cy > h - cut).sum())
    if with_robustness:
        yield "rotated_90", np.ascontiguousarray(np.rot90(arr)), 0
        yield "upside_down", np.ascontiguousarray(arr[::-1, ::-1]), 0


def collect(data: str, split: str | Path = DEFAULT_SPLIT, device: str = "cpu", limit: int = 0,
            progress=None) -> list[dict]:
    """One row per (radiograph, variant): features, angles, SMAPE (complete images), warnings."""
    import torch

    from SpineAILib.cobb.angles import cobb_angles
    from SpineAILib.cobb.predict import orientation_warning, plausibility_warnings

    names = json.loads(Path(split).read_text(encoding="utf-8"))
    subset = {n: k for k in ("train", "val") for n in names[k]}
    cases = [c for c in load_aasce(data) if c.name in subset]
    if limit:
        cases = cases[:limit]
    net, _ = get_model(device)
    rows = []
    for i, c in enumerate(cases):
        arr = read_image(c.image_path).as_2d("Cobb calibration").array
        variants = list(_variants(arr, c.landmarks, subset[c.name] == "val"))
        canvases = [to_canvas(a) for _, a, _ in variants]
        x = torch.as_tensor(np.stack([cv for cv, _ in canvases]))[:, None].to(device)
        raws = predict_landmarks(net, x)
        for (kind, a, missing), (_, rec), raw in zip(variants, canvases, raws, strict=True):
            lm = rec.to_original(raw.landmarks)
            f = quality_features(raw, rec, float(a.shape[0]))
            angles = np.array(cobb_angles(lm, float(a.shape[0])).values)
            warn = orientation_warning(raw.upright, raw.turned) + plausibility_warnings(lm, raw.scores)
            rows.append({"name": c.name, "split": subset[c.name], "kind": kind, "missing": missing, "features": f,
                         "error_deg": float(np.abs(angles - c.angles).sum()) if kind == "full" else math.nan,
                         "smape": float(smape([angles], [c.angles])) if kind == "full" else math.nan,
                         "other_warnings": len(warn)})
        if progress:
            progress((i + 1) / len(cases), c.name)
    return rows


def fit(rows: list[dict]) -> dict:
    """The calibration dict stored in the card, from the training rows."""
    from scipy.optimize import nnls

    full = [r for r in rows if r["split"] == "train" and r["kind"] == "full"]
    a = np.array([[1.0, r["features"]["flip_angle_deg"], r["features"]["jitter_angle_deg"]] for r in full])
    e = np.array([r["error_deg"] for r in full])
    w, _ = nnls(a, e)
    cal: dict = {"error_model": {"intercept": float(w[0]), "flip_angle_deg": float(w[1]),
                                 "jitter_angle_deg": float(w[2])}}
    xs = np.array([[math.log(max(quality.expected_smape(r["features"], cal), 1e-3))] for r in full])
    y = np.array([r["smape"] <= quality.SMAPE_LIMIT for r in full], float)
    m = quality.fit_logistic(xs, y, ("log_expected_smape",), l2=0.0)
    cal["confidence_model"] = {"intercept": m["intercept"] - m["weights"][0] * m["mean"][0] / m["std"][0],
                               "slope": m["weights"][0] / m["std"][0]}
    for end in ("top", "bottom"):
        sel = [r for r in rows if r["split"] == "train"
               and (r["kind"] == "full" or (r["kind"] == f"cut_{end}" and r["missing"] > 0))]
        x = np.array([[r["features"][k] for k in quality.CUT_FEATURES] for r in sel])
        y = np.array([r["kind"] != "full" for r in sel], float)
        model = quality.fit_logistic(x, y, quality.CUT_FEATURES)
        logits = np.array([quality._logit(model, r["features"]) for r in sel])
        model["threshold"] = float(np.quantile(logits[y == 0], 1.0 - FLAG_RATE_COMPLETE))
        cal[f"cut_{end}"] = model
    cal["fitted_on"] = {"subset": "train", "complete_images": len(full), "cut_fraction": CUT_FRACTION,
                        "flag_rate_complete": FLAG_RATE_COMPLETE, "smape_limit": quality.SMAPE_LIMIT}
    return cal


def report(rows: list[dict], cal: dict, subset: str = "val") -> dict:
    """Validation figures of a calibration: confidence vs SMAPE, cut-off flags, other flags."""
    full = [r for r in rows if r["split"] == subset and r["kind"] == "full"]
    conf = np.array([quality.confidence(r["features"], cal) for r in full])
    sm = np.array([r["smape"] for r in full])
    big = sm > quality.SMAPE_LIMIT
    out = {"images": len(full), "images_smape_over_15": int(big.sum()),
           "confidence_auc_smape_over_15": roc_auc(-conf, big), "confidence_spearman_vs_smape": spearman(conf, sm),
           "detection_score_auc_smape_over_15": roc_auc(-np.array([r["features"]["score_mean"] for r in full]), big),
           "mean_confidence": float(conf.mean()), "share_smape_at_most_15": float((~big).mean())}

    def flagged(r):
        return bool(quality.cut_off_ends(r["features"], cal)) or r["other_warnings"] > 0

    out["complete_flagged_cut_off"] = float(np.mean([bool(quality.cut_off_ends(r["features"], cal)) for r in full]))
    out["complete_flagged_any"] = float(np.mean([flagged(r) for r in full]))
    for kind in ("cut_top", "cut_bottom"):
        sel = [r for r in rows if r["split"] == subset and r["kind"] == kind and r["missing"] > 0]
        out[f"{kind}_images"] = len(sel)
        out[f"{kind}_flagged_cut_off"] = float(np.mean([bool(quality.cut_off_ends(r["features"], cal)) for r in sel]))
        out[f"{kind}_flagged_any"] = float(np.mean([flagged(r) for r in sel]))
    for kind in ("rotated_90", "upside_down"):
        sel = [r for r in rows if r["split"] == subset and r["kind"] == kind]
        if sel:
            out[f"{kind}_flagged_any"] = float(np.mean([flagged(r) for r in sel]))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m SpineAILib.cobb.calibrate", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="AASCE folder (images/, labels/)")
    p.add_argument("--split", default=str(DEFAULT_SPLIT))
    p.add_argument("--device", default="cpu")
    p.add_argument("--limit", type=int, default=0)
    p.add_argument("--rows", default=None, help="cache of the per-image rows (JSON); read if it exists")
    p.add_argument("--write", action="store_true", help="store the calibration in the model card")
    a = p.parse_args(argv)
    if a.rows and Path(a.rows).is_file():
        rows = json.loads(Path(a.rows).read_text(encoding="utf-8"))
    else:
        from tqdm import tqdm

        bar = tqdm(total=100, unit="%")

        def prog(f, m):
            bar.n = round(100 * f, 1)
            bar.refresh()

        rows = collect(a.data, a.split, a.device, a.limit, prog)
        bar.close()
        if a.rows:
            Path(a.rows).write_text(json.dumps(rows), encoding="utf-8")
    cal = fit(rows)
    rep = {"train": report(rows, cal, "train"), "val": report(rows, cal, "val")}
    cal["validation"] = rep["val"]
    print(json.dumps({"calibration": {k: v for k, v in cal.items() if k != "validation"}, **rep}, indent=2))
    if a.write:
        from SpineAILib.models import default_models_dir

        card_path = default_models_dir() / f"{MODEL_NAME}.json"
        card = json.loads(card_path.read_text(encoding="utf-8"))
        import datetime
        import subprocess

        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).resolve().parent).stdout.strip()
        cal["fitted_on"].update(date=datetime.date.today().isoformat(), commit=commit,
                                script="python -m SpineAILib.cobb.calibrate --write")
        card["calibration"] = cal
        card_path.write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
        print(f"calibration written to {card_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
