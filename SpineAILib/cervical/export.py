"""Publish one trained variant as the shipped cervical model (fp16 weights + model card).

    spineai export cervical --run runs/cervical --variant FCN-R
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
from pathlib import Path

from SpineAILib.cervical.networks import WIDTHS
from SpineAILib.cervical.predict import MODEL_NAME
from SpineAILib.models import ModelCard, default_models_dir, write_card
from SpineAILib.training import git_commit


def _data_description(cfg: dict) -> str:
    if cfg.get("coco"):
        return (f"REAL lateral radiographs with endplate corners (the {Path(cfg['coco']).name} collection): the "
                f"training images of the seeded split (io.lateral_keypoints.default_split), {cfg['views']} lateral "
                f"cervical views cut from each at random framings and {cfg['lower_views']} views below the neck "
                "(empty targets); "
                f"{cfg['n_train']} lateral cervical phantoms; "
                + (f"{cfg['n_negatives']} radiographs of other views from {Path(cfg['negatives']).name} "
                   "(empty targets); " if cfg.get("negatives") else "")
                + f"tested on {cfg['test_views']} fixed cervical views of each validation image")
    if cfg.get("data"):
        return cfg["data"]
    return ("SYNTHETIC lateral cervical phantoms only (SpineAILib.phantoms.lateral_cervical_phantom, random size/"
            "rotation/curvature/contrast/noise/implants); no real radiographs were available")


def export(run: str, variant: str = "FCN-R", models_dir: str | None = None, name: str = MODEL_NAME) -> Path:
    run_dir = Path(run)
    out = Path(models_dir or default_models_dir())
    cfg = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
    table = {r["variant"]: r for r in json.loads((run_dir / "table.json").read_text(encoding="utf-8"))}
    res = table[variant]
    shutil.copyfile(run_dir / f"{variant}_fp16.pt", out / f"{name}.pt")
    arch = variant.removesuffix("-R")
    card = ModelCard(
        name=name, task="cervical", architecture="spineai.CervicalLocalizer", weights=f"{name}.pt", sha256="",
        architecture_kwargs={"variant": arch, "widths": list(WIDTHS[arch])},
        input={"canvas_rows_cols": [100, 100], "fit": "zero-pad to a square (bottom/right), bicubic resize",
               "channels": 1},
        intensity={"type": "minmax", "range": [0, 1]},
        labels={"0": "background", "1": "cervical spine C3-C7 region"},
        training={"data": _data_description(cfg), "initialised_from": cfg.get("init") or None,
                  "variant": variant, "region_aware_weight": cfg["region_weight"] if variant.endswith("-R") else 0,
                  "n_train": cfg["n_train"], "n_test": cfg["n_test"], "steps": res["steps"],
                  "batch_size": cfg["batch_size"], "optimizer": f"RMSprop lr {cfg['lr']}",
                  "augmentation": "rigid rotations 0-355 degrees in 5 degree steps", "seed": cfg["seed"],
                  "train_seconds": round(res["train_seconds"], 1), "parameters": res["parameters"]},
        metrics={("held_out_real_neck_views" if cfg.get("coco") else "held_out_phantoms"): res["metrics"]},
        commit=git_commit(), date=dt.date.today().isoformat(),
        description=("Region-aware cervical spine localisation (Al Arif et al.), trained on real lateral cervical "
                     "views, phantoms and views of other kinds." if cfg.get("coco") else
                     "Region-aware cervical spine localisation (Al Arif et al.), trained on phantoms: expect it to "
                     "need retraining on real lateral radiographs (spineai train cervical --coco FOLDER)."),
    )
    return write_card(card, out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="spineai export cervical", description=__doc__.split("\n\n")[0])
    p.add_argument("--run", required=True)
    p.add_argument("--variant", default="FCN-R")
    p.add_argument("--models-dir", default=None)
    a = p.parse_args(argv)
    print(export(a.run, a.variant, a.models_dir))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
