"""Shared bits of the benchmark scripts: machine description and result files."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks"


def machine() -> dict:
    import torch

    from SpineAILib.training import git_commit

    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"date": dt.datetime.now().isoformat(timespec="minutes"), "commit": git_commit(), "cpu": cpu,
            "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def save(name: str, data: dict) -> Path:
    DOCS.mkdir(parents=True, exist_ok=True)
    p = DOCS / f"{name}.json"
    p.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(data, indent=2))
    return p


def write_report(folder: str | os.PathLike, stem: str, report: dict, title: str, intro: str, lines: list[str]) -> Path:
    """``report`` (with its ``machine``) as ``<stem>.json`` and a Markdown page ``<stem>.md``: the
    title, a line naming the machine, commit and date followed by ``intro``, then ``lines``."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    m = report["machine"]
    md = [f"# {title}", "", f"Machine {m['cpu']}, commit {m['commit']}, {m['date']}. {intro}", "", *lines]
    (out / f"{stem}.md").write_text("\n".join(md) + "\n", encoding="utf-8")
    return out / f"{stem}.md"
