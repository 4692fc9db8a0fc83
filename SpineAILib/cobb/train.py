"""Headless training of the Cobb landmark model on an AASCE-layout folder.

    python -m SpineAILib.cobb.train --data $SPINEAI_DATA/aasce --output runs/cobb [--epochs 60]

Seeded; the config is saved as JSON beside the checkpoint; re-running the same command resumes
from ``last.pt``; AMP on CUDA; logs loss and validation SMAPE per epoch to ``history.csv``.
The split (seeded, by patient) is read from / written to ``--split`` so validation never
changes between runs. Cases with landmark-order errors are excluded (listed in the split).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from SpineAILib.cobb.angles import cobb_angles, smape
from SpineAILib.cobb.data import corner_order_problems, load_aasce, split_cases
from SpineAILib.cobb.model import N_OUT, STRIDE, build_landmark_net, decode
from SpineAILib.cobb.preprocess import CANVAS, to_canvas

REPO = Path(__file__).resolve().parents[2]
DEFAULT_SPLIT = REPO / "Resources" / "Splits" / "aasce_split.json"


@dataclass
class CobbTrainConfig:
    data: str = ""
    output: str = "runs/cobb"
    split: str = str(DEFAULT_SPLIT)
    seed: int = 0
    val_fraction: float = 0.2
    epochs: int = 60
    batch_size: int = 8
    lr: float = 2e-3
    weight_decay: float = 1e-4
    widths: list[int] = field(default_factory=lambda: [16, 32, 64, 96, 128])
    canvas: list[int] = field(default_factory=lambda: list(CANVAS))
    rotate_deg: float = 8.0
    scale_range: list[float] = field(default_factory=lambda: [0.85, 1.1])
    translate: float = 0.05
    flip: bool = True
    device: str = "auto"
    val_every: int = 2
    max_train_cases: int = 0  # 0 = all (smaller for smoke tests)
    max_val_cases: int = 0  # 0 = all


# ------------------------------------------------------------------------------- data
def make_split(cases, path: Path, seed: int, val_fraction: float) -> dict:
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    excluded = {c.name: corner_order_problems(c.landmarks) for c in cases}
    excluded = {k: v for k, v in excluded.items() if v}
    names = [c.name for c in cases if c.name not in excluded]
    split = split_cases(names, val_fraction, seed)
    data = {"seed": seed, "val_fraction": val_fraction, "by": "patient", **split,
            "excluded": {k: "; ".join(v) for k, v in sorted(excluded.items())}}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    return data


def build_cache(cases, canvas, cache_file: Path) -> dict:
    """Canvas images (float16) and canvas landmarks for every case, cached on disk."""
    from SpineAILib.io import read_image

    if cache_file.is_file():
        z = np.load(cache_file, allow_pickle=False)
        return {k: z[k] for k in z.files}
    imgs, lms, names, heights, recs = [], [], [], [], []
    for i, c in enumerate(cases):
        img = read_image(c.image_path, expect_ndim=2)
        can, rec = to_canvas(img.array, tuple(canvas))
        imgs.append(can.astype(np.float16))
        lms.append(rec.to_canvas(c.landmarks))
        names.append(c.name)
        heights.append(img.array.shape[0])
        recs.append([rec.scale, rec.shift[0], rec.shift[1]])
        if i % 50 == 0:
            print(f"cache {i}/{len(cases)}", flush=True)
    out = {"images": np.stack(imgs), "landmarks": np.stack(lms).astype(np.float32), "names": np.array(names),
           "heights": np.array(heights), "records": np.array(recs)}
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache_file, **out)
    return out


def augment(images, landmarks, cfg: CobbTrainConfig, rng: np.random.Generator):
    """Random affine (rotation, scale, shift; all vertebrae kept inside), left-right flip
    (corners swapped), gamma/contrast/noise. images (N, 1, H, W) torch, landmarks (N, 68, 2)
    numpy canvas pixels."""
    import torch
    import torch.nn.functional as F

    n, _, H, W = images.shape
    thetas, out_lm = [], []
    for k in range(n):
        lm = landmarks[k].copy()
        flip = cfg.flip and rng.random() < 0.5
        for _ in range(10):
            ang = np.radians(rng.uniform(-cfg.rotate_deg, cfg.rotate_deg))
            s = rng.uniform(*cfg.scale_range)
            t = rng.uniform(-cfg.translate, cfg.translate, 2) * 2
            # Normalised coords u in [-1, 1] (align_corners=False): u = (2x + 1) / W - 1.
            # Output -> input: u_in = A u_out + t, A = R(ang) / s (aspect handled in pixel space).
            c, si = np.cos(ang), np.sin(ang)
            R = np.array([[c, -si * H / W], [si * W / H, c]]) / s
            if flip:
                R = R @ np.diag([-1.0, 1.0])
            un = np.stack([(2 * lm[:, 0] + 1) / W - 1, (2 * lm[:, 1] + 1) / H - 1], -1)
            uo = (un - t) @ np.linalg.inv(R).T
            if np.all(np.abs(uo) < 0.97):
                break
        else:
            R, t = (np.diag([-1.0, 1.0]) if flip else np.eye(2)), np.zeros(2)
            un = np.stack([(2 * lm[:, 0] + 1) / W - 1, (2 * lm[:, 1] + 1) / H - 1], -1)
            uo = (un - t) @ np.linalg.inv(R).T
        new = np.stack([((uo[:, 0] + 1) * W - 1) / 2, ((uo[:, 1] + 1) * H - 1) / 2], -1)
        if flip:  # mirrored: left and right corners swap (TL<->TR, BL<->BR)
            new = new.reshape(17, 4, 2)[:, [1, 0, 3, 2]].reshape(68, 2)
        thetas.append(np.concatenate([R, t[:, None]], 1))
        out_lm.append(new)
    theta = torch.tensor(np.stack(thetas), dtype=torch.float32)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    x = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    gamma = torch.tensor(rng.uniform(0.7, 1.4, n), dtype=torch.float32).view(n, 1, 1, 1)
    x = x.clamp(0, 1) ** gamma
    x = x * torch.tensor(rng.uniform(0.8, 1.2, n), dtype=torch.float32).view(n, 1, 1, 1)
    x = x + torch.tensor(rng.uniform(-0.1, 0.1, n), dtype=torch.float32).view(n, 1, 1, 1)
    x = x + 0.03 * torch.rand(n, 1, 1, 1) * torch.randn_like(x)
    return x, np.stack(out_lm)


def make_targets(landmarks: np.ndarray, out_hw: tuple[int, int]):
    """Heatmap (N, h, w), offsets (N, 10, h, w) and mask (N, h, w) at stride 4."""
    n = len(landmarks)
    h, w = out_hw
    heat = np.zeros((n, h, w), np.float32)
    reg = np.zeros((n, N_OUT - 1, h, w), np.float32)
    mask = np.zeros((n, h, w), np.float32)
    yy, xx = np.mgrid[0:h, 0:w]
    for k in range(n):
        p = (landmarks[k].reshape(17, 4, 2) - (STRIDE - 1) / 2) / STRIDE  # output pixels
        for v in range(17):
            c = p[v].mean(0)
            ix, iy = int(round(c[0])), int(round(c[1]))
            if not (0 <= ix < w and 0 <= iy < h):
                continue
            height = np.linalg.norm(p[v, 2] - p[v, 0])
            sigma = max(0.8, height / 4)
            g = np.exp(-((xx - c[0]) ** 2 + (yy - c[1]) ** 2) / (2 * sigma ** 2))
            heat[k] = np.maximum(heat[k], g)
            heat[k, iy, ix] = 1.0
            reg[k, 0, iy, ix], reg[k, 1, iy, ix] = c[0] - ix, c[1] - iy
            reg[k, 2:, iy, ix] = (p[v] - np.array([ix, iy])).ravel()
            mask[k, iy, ix] = 1.0
    return heat, reg, mask


def loss_fn(out, heat, reg, mask):
    """CenterNet focal loss on the heatmap + L1 on offsets at the centre pixels."""
    import torch

    pred = torch.sigmoid(out[:, 0]).clamp(1e-4, 1 - 1e-4)
    pos = heat.eq(1).float()
    neg_w = (1 - heat) ** 4
    pos_loss = (torch.log(pred) * (1 - pred) ** 2 * pos).sum()
    neg_loss = (torch.log(1 - pred) * pred ** 2 * neg_w * (1 - pos)).sum()
    npos = pos.sum().clamp(min=1)
    focal = -(pos_loss + neg_loss) / npos
    m = mask[:, None]
    l1 = (torch.abs(out[:, 1:] - reg) * m).sum() / (m.sum() * (N_OUT - 1)).clamp(min=1)
    return focal + l1, focal.detach(), l1.detach()


# -------------------------------------------------------------------------- evaluation
def predict_canvas(net, images, device, batch_size: int = 16):
    """Landmarks (N, 68, 2) in canvas pixels and peak scores (N, 17)."""
    import torch

    from SpineAILib.device import autocast

    lms, scores = [], []
    net.eval()
    with torch.no_grad():
        for s in range(0, len(images), batch_size):
            x = torch.as_tensor(np.asarray(images[s:s + batch_size], np.float32))[:, None].to(device)
            with autocast(device):
                out = net(x)
            lm, sc = decode(out.float())
            lms.append(lm.cpu().numpy())
            scores.append(sc.cpu().numpy())
    return np.concatenate(lms), np.concatenate(scores)


def evaluate_canvas(pred_canvas, cache, idx, angles_by_name) -> dict:
    """SMAPE, per-angle MAE and landmark error (original pixels) for cached cases ``idx``."""
    preds, truths, lm_err = [], [], []
    for k, i in enumerate(idx):
        scale, sx, sy = cache["records"][i]
        shift = np.array([sx, sy])
        lm = (pred_canvas[k] - shift) / scale
        gt = (cache["landmarks"][i] - shift) / scale
        lm_err.append(np.linalg.norm(lm - gt, axis=1).mean())
        preds.append(cobb_angles(lm, float(cache["heights"][i])).values)
        truths.append(angles_by_name[str(cache["names"][i])])
    preds, truths = np.array(preds), np.array(truths)
    mae = np.abs(preds - truths).mean(0)
    return {"smape": smape(preds, truths), "mae_main": float(mae[0]), "mae_upper": float(mae[1]),
            "mae_lower": float(mae[2]), "landmark_px": float(np.mean(lm_err))}


# ------------------------------------------------------------------------------ train
def train(cfg: CobbTrainConfig) -> dict:
    import torch

    from SpineAILib.device import autocast, describe_device, resolve_device, set_cpu_threads
    from SpineAILib.training import (
        TrainingLog,
        resume,
        save_checkpoint,
        save_config,
        save_fp16_weights,
        seed_everything,
    )

    seed_everything(cfg.seed)
    out = Path(cfg.output)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.json")
    device = resolve_device(cfg.device)
    if device.type == "cpu":
        set_cpu_threads()
    print(f"device: {describe_device(device)}", flush=True)

    cases = load_aasce(cfg.data)
    split = make_split(cases, Path(cfg.split), cfg.seed, cfg.val_fraction)
    by_name = {c.name: c for c in cases}
    train_names = split["train"][: cfg.max_train_cases or None]
    val_names = split["val"][: cfg.max_val_cases or None]
    cache = build_cache([by_name[n] for n in train_names + val_names], cfg.canvas,
                        out / f"cache_{cfg.canvas[0]}x{cfg.canvas[1]}_{len(train_names)}_{len(val_names)}.npz")
    tr_idx = np.arange(len(train_names))
    va_idx = np.arange(len(train_names), len(train_names) + len(val_names))
    angles_by_name = {c.name: c.angles for c in cases}

    net = build_landmark_net(tuple(cfg.widths)).to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = math.ceil(len(tr_idx) / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda")
    state = resume(out / "last.pt", net, opt)  # the scheduler is rebuilt at the resumed step below
    start, best = 0, {"smape": float("inf")}
    if state is not None:
        start, best = state["epoch"] + 1, state["best"]
        print(f"resumed from epoch {start}", flush=True)
    # The one-cycle schedule is a function of the step; rebuilding it at the resumed step keeps
    # resuming correct even when --epochs was raised for the continuation.
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=total, pct_start=0.1,
                                                last_epoch=start * steps_per_epoch - 1)
    log = TrainingLog(out / "history.csv", ["epoch", "loss", "focal", "l1", "smape", "mae_main", "mae_upper",
                                            "mae_lower", "landmark_px", "seconds"])
    rng = np.random.default_rng(cfg.seed + start)
    h, w = cfg.canvas[0] // STRIDE, cfg.canvas[1] // STRIDE
    t_start = time.perf_counter()
    for epoch in range(start, cfg.epochs):
        t0 = time.perf_counter()
        net.train()
        perm = rng.permutation(tr_idx)
        sums = np.zeros(3)
        for s in range(steps_per_epoch):
            b = perm[s * cfg.batch_size:(s + 1) * cfg.batch_size]
            imgs = torch.as_tensor(cache["images"][b].astype(np.float32))[:, None]
            x, lm = augment(imgs, cache["landmarks"][b], cfg, rng)
            heat, reg, mask = (torch.as_tensor(a) for a in make_targets(lm, (h, w)))
            x, heat, reg, mask = x.to(device), heat.to(device), reg.to(device), mask.to(device)
            with autocast(device):
                o = net(x)
            loss, focal, l1 = loss_fn(o.float(), heat, reg, mask)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            sched.step()
            sums += [loss.item(), focal.item(), l1.item()]
        row = {"epoch": epoch, "loss": sums[0] / steps_per_epoch, "focal": sums[1] / steps_per_epoch,
               "l1": sums[2] / steps_per_epoch}
        if (epoch + 1) % cfg.val_every == 0 or epoch == cfg.epochs - 1:
            pred, _ = predict_canvas(net, cache["images"][va_idx], device)
            metrics = evaluate_canvas(pred, cache, va_idx, angles_by_name)
            row.update(metrics)
            if metrics["smape"] < best["smape"]:
                best = {**metrics, "epoch": epoch}
                save_fp16_weights(net.state_dict(), out / "best_fp16.pt")
        row["seconds"] = time.perf_counter() - t0
        log.write(**row)
        save_checkpoint(out / "last.pt", model=net.state_dict(), optimizer=opt.state_dict(), epoch=epoch,
                        best=best)
    summary = {"best": best, "train_cases": len(train_names), "val_cases": len(val_names),
               "excluded_cases": len(split.get("excluded", {})), "device": describe_device(device),
               "train_seconds_this_run": time.perf_counter() - t_start}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m SpineAILib.cobb.train", description=__doc__.split("\n\n")[0])
    defaults = CobbTrainConfig()
    p.add_argument("--data", required=True, help="AASCE-layout folder (images/, labels/)")
    p.add_argument("--output", default=defaults.output)
    p.add_argument("--split", default=defaults.split, help="split JSON (created, seeded, if missing)")
    p.add_argument("--epochs", type=int, default=defaults.epochs)
    p.add_argument("--batch-size", type=int, default=defaults.batch_size)
    p.add_argument("--lr", type=float, default=defaults.lr)
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--device", default=defaults.device)
    p.add_argument("--val-every", type=int, default=defaults.val_every)
    p.add_argument("--max-train-cases", type=int, default=0)
    p.add_argument("--max-val-cases", type=int, default=0)
    a = p.parse_args(argv)
    cfg = CobbTrainConfig(data=a.data, output=a.output, split=a.split, epochs=a.epochs, batch_size=a.batch_size,
                          lr=a.lr, seed=a.seed, device=a.device, val_every=a.val_every,
                          max_train_cases=a.max_train_cases, max_val_cases=a.max_val_cases)
    print(json.dumps(train(cfg), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
