"""Shared pieces of publishing a trained model: fp16 weights copied into the models folder, the
architecture rebuilt from the card and the weights loaded into it as a check, the parameter
count, commit and date filled in, and the card written next to the weights (sha256 filled in).

Each task's ``export`` module builds its card (data, split, training record) and calls
:func:`publish`; ``spineai export TASK ...`` runs it.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

from SpineAILib.models import ModelCard, write_card
from SpineAILib.networks import build_network
from SpineAILib.training.common import git_commit, load_fp16_weights

PHANTOM_NOTE = ("SYNTHETIC CT phantoms (SpineAILib.phantoms.ct_spine_phantom: bodies with cortical shell, discs, "
                "posterior elements, ribs, HU ranges, random level range/curvature/field of view/spacing/orientation/"
                "noise)")


def run_config(run: Path, name: str) -> dict:
    """A training run's saved config (``name``, else the one of a run of both stages, else
    ``config.json``); {} when none."""
    for cand in (run / name, run / "config_both.json", run / "config.json"):
        if cand.is_file():
            return json.loads(cand.read_text(encoding="utf-8"))
    return {}


def run_summary(run: Path, name: str) -> dict:
    """A training run's summary (a run of one stage, or of both); {} when none."""
    for p in (run / name, run / "summary_both.json"):
        if p.is_file():
            return json.loads(p.read_text(encoding="utf-8"))
    return {}


def publish(src: Path, card: ModelCard, models_dir: Path) -> Path:
    """Copy the weights ``src`` to ``models_dir/card.weights`` and write the card. The card's
    architecture must be registered (the caller imports its task's networks module)."""
    models_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, models_dir / card.weights)
    net = build_network(card.architecture, **card.architecture_kwargs)
    card.training["parameters"] = int(sum(p.numel() for p in net.parameters()))
    load_fp16_weights(net, models_dir / card.weights)
    card.commit = git_commit()
    card.date = dt.date.today().isoformat()
    return write_card(card, models_dir)


def read_metrics_files(paths: list[str]) -> dict:
    """{file stem: JSON content} of evaluation reports to record in a card (``--metrics``)."""
    return {Path(m).stem: json.loads(Path(m).read_text(encoding="utf-8")) for m in paths}


def read_report(benchmarks: Path, rel: str) -> dict:
    """A benchmark report's JSON under ``benchmarks`` ({} when absent)."""
    f = benchmarks / rel
    return json.loads(f.read_text(encoding="utf-8")) if f.is_file() else {}


def without_rows(d: dict) -> dict:
    """A report section without its per-case rows (they stay in docs/benchmarks)."""
    return {k: v for k, v in d.items() if k != "rows"}


def _summaries(report: dict) -> dict:
    return {c["case"]: c["summary"]["all"] for c in report.get("cases", [])}


DEFAULT_BENCHMARKS = Path(__file__).resolve().parents[2] / "docs" / "benchmarks"
