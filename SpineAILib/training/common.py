"""Helpers every headless training script uses (nnU-Net style: the config is data saved
beside the checkpoint; a run resumes from its last checkpoint)."""

from __future__ import annotations

import csv
import json
import random
import subprocess
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np

from SpineAILib.models.registry import read_state_dict


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def git_commit(default: str = "unknown") -> str:
    try:
        root = Path(__file__).resolve().parents[2]
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=10)
        return out.stdout.strip() or default
    except (OSError, subprocess.SubprocessError):
        return default


def save_config(config: Any, path: str | Path) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    data = asdict(config) if is_dataclass(config) else dict(config)
    p.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    return p


def save_checkpoint(path: str | Path, **state: Any) -> None:
    import torch

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(p)  # atomic: a killed run never leaves a half-written checkpoint


def save_fp16_weights(state_dict: dict, path: str | Path) -> Path:
    """Save a state dict with floating-point tensors in fp16 (the shipped weights format;
    :func:`SpineAILib.models.load_model` loads them back as fp32)."""
    import torch

    p = Path(path)
    torch.save({k: v.half() if v.is_floating_point() else v for k, v in state_dict.items()}, p)
    return p


def load_fp16_weights(net, path: str | Path):
    """Load weights saved by :func:`save_fp16_weights` (or any state dict file) into ``net`` as
    fp32, on the CPU (``--init`` of the training scripts, calibration, the export's check), read
    as :func:`SpineAILib.models.load_model` reads shipped weights. Returns ``net``."""

    net.load_state_dict(read_state_dict(path))
    return net


def load_checkpoint(path: str | Path) -> dict | None:
    import torch

    p = Path(path)
    if not p.is_file():
        return None
    return torch.load(p, map_location="cpu", weights_only=False)


def resume(path: str | Path, net, optimizer, scheduler=None) -> dict | None:
    """Load the checkpoint at ``path`` (if any) into ``net``, ``optimizer`` and ``scheduler``
    (when given and saved) and return it, for the trainer's own counters (``step``, ``epoch``,
    ``best``); None when there is nothing to resume."""
    ck = load_checkpoint(path)
    if ck:
        net.load_state_dict(ck["model"])
        optimizer.load_state_dict(ck["optimizer"])
        if scheduler is not None and "scheduler" in ck:
            scheduler.load_state_dict(ck["scheduler"])
    return ck


class TrainingLog:
    """Appends one CSV row per epoch (and prints it)."""

    def __init__(self, path: str | Path, fields: list[str]) -> None:
        self.path = Path(path)
        self.fields = fields
        if not self.path.exists():
            with open(self.path, "w", newline="", encoding="utf-8") as f:
                csv.writer(f).writerow(fields)

    def write(self, **row: Any) -> None:
        with open(self.path, "a", newline="", encoding="utf-8") as f:
            csv.writer(f).writerow([row.get(k, "") for k in self.fields])
        print("  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True)
