"""Train and compare the six localisation variants (FCN, DeConvNet, UNet, each with and without
the region-aware term "-R") on phantoms or on a folder of real radiographs with masks.

    python -m SpineAILib.cervical.train --output runs/cervical [--variants FCN-R,UNet] [--data FOLDER]

As in the paper: rigid rotations from 5 to 355 degrees in 5 degree steps, RMSprop, batch 10,
from scratch, equal weights of the two loss terms (configurable). Writes per variant the fp16
weights, its config and history, and ``table.json`` / ``table.md``: the six-row comparison
(pixel accuracy, Dice, sensitivity, specificity at 100 x 100; sensitivity/specificity at the
original resolution against the vertebra masks; predicted regions per image), mean +- std.
"""

from __future__ import annotations

import argparse
import json
import pickle
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from SpineAILib.cervical.data import Sample, folder_samples, phantom_samples
from SpineAILib.cervical.losses import localisation_loss
from SpineAILib.cervical.metrics import binary_metrics, n_regions, summarize
from SpineAILib.cervical.networks import build, count_parameters

VARIANTS = ("FCN", "FCN-R", "DeConvNet", "DeConvNet-R", "UNet", "UNet-R")


@dataclass
class CervicalTrainConfig:
    output: str = "runs/cervical"
    data: str = ""  # folder of real images + masks; empty = phantoms
    variants: list[str] = field(default_factory=lambda: list(VARIANTS))
    n_train: int = 400
    n_test: int = 60
    steps: int = 100
    batch_size: int = 10
    lr: float = 1e-3
    region_weight: float = 1.0  # weight of L_r in the -R variants (log loss weight is 1)
    n_t: int = 1
    seed: int = 0
    device: str = "auto"


def rotate_batch(x, y, rng):
    """Rigid rotation of images (N,1,H,W) and targets (N,H,W) by a random angle from
    {0, 5, ..., 355} degrees (nearest neighbour for the targets)."""
    import torch
    import torch.nn.functional as F

    n = x.shape[0]
    ang = np.radians(rng.integers(0, 72, n) * 5.0)
    c, s = np.cos(ang), np.sin(ang)
    theta = torch.tensor(np.stack([np.stack([c, -s, np.zeros(n)], 1), np.stack([s, c, np.zeros(n)], 1)], 1),
                         dtype=torch.float32)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    xr = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    yr = F.grid_sample(y[:, None].float(), grid, mode="nearest", padding_mode="zeros", align_corners=False)
    return xr, yr[:, 0].long()


def predict_maps(net, canvases: np.ndarray, device, batch: int = 20) -> np.ndarray:
    """Spine probabilities (N, 100, 100)."""
    import torch

    net.eval()
    out = []
    with torch.no_grad():
        for s in range(0, len(canvases), batch):
            x = torch.as_tensor(canvases[s:s + batch], dtype=torch.float32)[:, None].to(device)
            out.append(torch.softmax(net(x), 1)[:, 1].cpu().numpy())
    return np.concatenate(out)


def evaluate_samples(probs: np.ndarray, samples: list[Sample]) -> dict:
    from SpineAILib.preprocessing import map_from_canvas

    rows = []
    for p, s in zip(probs, samples, strict=True):
        pred = p > 0.5
        m = binary_metrics(pred, s.target > 0)
        row = {**m, "regions": float(n_regions(pred))}
        if s.mask is not None:
            full = map_from_canvas(p, s.record, "linear") > 0.5
            mo = binary_metrics(full, s.mask)
            row["sensitivity_original"] = mo["sensitivity"]
            row["specificity_original"] = mo["specificity"]
        rows.append(row)
    return summarize(rows)


def train_variant(variant: str, train: list[Sample], test: list[Sample], cfg: CervicalTrainConfig, out: Path) -> dict:
    import torch

    from SpineAILib.device import resolve_device, set_cpu_threads
    from SpineAILib.training import TrainingLog, save_fp16_weights, seed_everything

    seed_everything(cfg.seed)
    dev = resolve_device(cfg.device)
    if dev.type == "cpu":
        set_cpu_threads()
    arch = variant.removesuffix("-R")
    region_weight = cfg.region_weight if variant.endswith("-R") else 0.0
    net = build(arch).to(dev)
    opt = torch.optim.RMSprop(net.parameters(), lr=cfg.lr)
    rng = np.random.default_rng(cfg.seed)
    X = torch.as_tensor(np.stack([s.canvas for s in train]))[:, None]
    Y = torch.as_tensor(np.stack([s.target for s in train]).astype(np.int64))
    log = TrainingLog(out / f"{variant}_history.csv", ["step", "loss", "log_loss", "region_term", "seconds"])
    t0 = time.perf_counter()
    sums = np.zeros(3)
    for step in range(cfg.steps):
        net.train()
        idx = rng.integers(0, len(train), cfg.batch_size)
        x, y = rotate_batch(X[idx], Y[idx], rng)
        loss, ce, lr_term = localisation_loss(net(x.to(dev)), y.to(dev), region_weight, 1.0, cfg.n_t)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sums += [loss.item(), ce.item(), lr_term.item()]
        if (step + 1) % 50 == 0 or step == cfg.steps - 1:
            k = (step % 50) + 1
            log.write(step=step + 1, loss=sums[0] / k, log_loss=sums[1] / k, region_term=sums[2] / k,
                      seconds=time.perf_counter() - t0)
            sums[:] = 0
    train_seconds = time.perf_counter() - t0
    probs = predict_maps(net, np.stack([s.canvas for s in test]), dev)
    metrics = evaluate_samples(probs, test)
    save_fp16_weights(net.state_dict(), out / f"{variant}_fp16.pt")
    return {"variant": variant, "parameters": count_parameters(net), "train_seconds": train_seconds,
            "steps": cfg.steps, "metrics": metrics}


def format_table(results: list[dict]) -> str:
    cols = [("accuracy", "Pixel acc."), ("dice", "Dice"), ("sensitivity", "Sens."), ("specificity", "Spec."),
            ("sensitivity_original", "Sens. (orig.)"), ("specificity_original", "Spec. (orig.)"),
            ("regions", "Regions/image")]
    lines = ["| Variant | Params | " + " | ".join(c[1] for c in cols) + " |",
             "|---|---|" + "---|" * len(cols)]
    for r in results:
        m = r["metrics"]
        cells = [f"{m[k]['mean']:.3f} ± {m[k]['std']:.3f}" if k in m else "-" for k, _ in cols]
        lines.append(f"| {r['variant']} | {r['parameters']:,} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def run(cfg: CervicalTrainConfig) -> list[dict]:
    from SpineAILib.training import save_config

    out = Path(cfg.output)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.json")
    if cfg.data:
        samples = folder_samples(cfg.data)
        rng = np.random.default_rng(cfg.seed)
        order = rng.permutation(len(samples))
        n_test = max(1, len(samples) // 5)
        test = [samples[i] for i in order[:n_test]]
        train = [samples[i] for i in order[n_test:]]
    else:
        # Disjoint seeds: training phantoms 0.., test phantoms from 100000 on. Cached, so that
        # variants trained in separate runs see the same phantoms.
        cache = out / f"phantoms_{cfg.n_train}_{cfg.n_test}_{cfg.seed}.pkl"
        if cache.is_file():
            train, test = pickle.loads(cache.read_bytes())
        else:
            train = phantom_samples(cfg.n_train, seed=cfg.seed)
            test = phantom_samples(cfg.n_test, seed=100_000 + cfg.seed, keep_masks=True)
            cache.write_bytes(pickle.dumps((train, test)))
    table = out / "table.json"
    done = {r["variant"]: r for r in json.loads(table.read_text(encoding="utf-8"))} if table.is_file() else {}
    for v in cfg.variants:
        if v not in VARIANTS:
            raise ValueError(f"Unknown variant {v}; expected one of {', '.join(VARIANTS)}")
        print(f"== {v}", flush=True)
        done[v] = train_variant(v, train, test, cfg, out)
        results = [done[k] for k in VARIANTS if k in done]
        table.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        (out / "table.md").write_text(format_table(results), encoding="utf-8")
    results = [done[k] for k in VARIANTS if k in done]
    print(format_table(results))
    return results


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m SpineAILib.cervical.train", description=__doc__.split("\n\n")[0])
    d = CervicalTrainConfig()
    p.add_argument("--output", default=d.output)
    p.add_argument("--data", default="", help="folder with images/ and masks/ (default: phantoms)")
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--steps", type=int, default=d.steps)
    p.add_argument("--n-train", type=int, default=d.n_train)
    p.add_argument("--n-test", type=int, default=d.n_test)
    p.add_argument("--region-weight", type=float, default=d.region_weight)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--device", default=d.device)
    a = p.parse_args(argv)
    run(CervicalTrainConfig(output=a.output, data=a.data, variants=a.variants.split(","), steps=a.steps,
                            n_train=a.n_train, n_test=a.n_test, region_weight=a.region_weight, lr=a.lr,
                            seed=a.seed, device=a.device))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
