"""Evaluate the shipped cervical model (or another model card) on held-out phantoms or on a
folder of real radiographs with C3-C7 masks; prints the paper's Table 1 metrics, mean +- std.

    spineai evaluate cervical [--data FOLDER] [--n 60] [--model cervical_fcn]
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from SpineAILib.cervical.data import folder_samples, phantom_samples
from SpineAILib.cervical.predict import MODEL_NAME, get_model
from SpineAILib.cervical.train import evaluate_samples, predict_maps
from SpineAILib.device import resolve_device


def evaluate(data: str = "", n: int = 60, model: str = "", device: str = "cpu", seed: int = 100_000) -> dict:
    dev = resolve_device(device)
    net, card = get_model(dev, name=model or MODEL_NAME)
    samples = folder_samples(data) if data else phantom_samples(n, seed=seed, keep_masks=True)
    probs = predict_maps(net, np.stack([s.canvas for s in samples]), dev)
    return {"model": card.name, "cases": len(samples), "data": data or f"phantoms seeds {seed}..{seed + n - 1}",
            "metrics": evaluate_samples(probs, samples)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="spineai evaluate cervical", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="")
    p.add_argument("--n", type=int, default=60)
    p.add_argument("--model", default="")
    p.add_argument("--device", default="cpu")
    a = p.parse_args(argv)
    print(json.dumps(evaluate(a.data, a.n, a.model, a.device), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
