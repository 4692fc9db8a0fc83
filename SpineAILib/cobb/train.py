"""Headless training of the Cobb landmark model on an AASCE-layout folder.

    spineai train cobb --data $SPINEAI_DATA/aasce --output runs/cobb [--epochs 60]

Seeded; the config is saved as JSON beside the checkpoint; re-running the same command resumes
from ``last.pt`` (also with more ``--epochs``); AMP on CUDA; logs loss and validation SMAPE per
epoch to ``history.csv``; writes ``best_fp16.pt`` (best validation SMAPE) and ``last_fp16.pt``.
The split (seeded, by patient) is read from / written to ``--split`` so validation never
changes between runs. Cases with landmark-order errors are excluded (listed in the split).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from SpineAILib.cobb.angles import cobb_angles, smape
from SpineAILib.cobb.data import corner_order_problems, load_aasce, split_cases
from SpineAILib.cobb.model import N_OUT, STRIDE, build_landmark_net, decode
from SpineAILib.cobb.preprocess import CANVAS, to_canvas
from SpineAILib.device import autocast, describe_device
from SpineAILib.io import read_image
from SpineAILib.training import save_config
from SpineAILib.training.config import option, parse_config
from SpineAILib.training.loop import LoopSpec, one_cycle, run_training

REPO = Path(__file__).resolve().parents[2]
DEFAULT_SPLIT = REPO / "Resources" / "Splits" / "aasce_split.json"


@dataclass
class CobbTrainConfig:
    data: str = option("", "AASCE-layout folder (images/, labels/)", required=True)
    output: str = option("runs/cobb", "run folder (config, cache, history, last.pt, fp16 weights)")
    split: str = option(str(DEFAULT_SPLIT), "split JSON (created, seeded, if missing)")
    seed: int = option(0, "random seed (also of a new split)")
    val_fraction: float = option(0.2, "share of patients in a new split's validation set")
    epochs: int = option(60, "passes over the training cases")
    batch_size: int = option(8, "images per step")
    lr: float = option(2e-3, "AdamW one-cycle maximum learning rate")
    weight_decay: float = option(1e-4, "AdamW weight decay")
    widths: list[int] = option([16, 32, 64, 96, 128], "encoder widths")
    canvas: list[int] = option(list(CANVAS), "canvas rows,cols")
    rotate_deg: float = option(8.0, "largest augmentation rotation (degrees)")
    scale_range: list[float] = option([0.85, 1.1], "augmentation scale range")
    translate: float = option(0.05, "largest augmentation shift (fraction of the canvas)")
    flip: bool = option(True, "left-right flips (corners swapped)")
    device: str = option("auto", "auto, cpu, cuda, cuda:N or mps")
    threads: int = option(0, "CPU threads (0: every core)")
    val_every: int = option(2, "validate every N epochs (and after the last)")
    max_train_cases: int = option(0, "use only the first N training cases (0: all; smoke tests)")
    max_val_cases: int = option(0, "use only the first N validation cases (0: all)")


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

    out = Path(cfg.output)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.json")
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
    steps_per_epoch = math.ceil(len(tr_idx) / cfg.batch_size)
    h, w = cfg.canvas[0] // STRIDE, cfg.canvas[1] // STRIDE
    order: dict[str, np.ndarray] = {}

    def step(net, k, rng, device):
        if k % steps_per_epoch == 0:  # a new epoch: every training case once, in a new order
            order["perm"] = rng.permutation(tr_idx)
        s = k % steps_per_epoch
        b = order["perm"][s * cfg.batch_size:(s + 1) * cfg.batch_size]
        imgs = torch.as_tensor(cache["images"][b].astype(np.float32))[:, None]
        x, lm = augment(imgs, cache["landmarks"][b], cfg, rng)
        heat, reg, mask = (torch.as_tensor(a).to(device) for a in make_targets(lm, (h, w)))
        loss, focal, l1 = loss_fn(net(x.to(device)).float(), heat, reg, mask)
        return loss, {"focal": focal.item(), "l1": l1.item()}

    def validate(net, device) -> dict:
        pred, _ = predict_canvas(net, cache["images"][va_idx], device)
        return evaluate_canvas(pred, cache, va_idx, angles_by_name)

    spec = LoopSpec(output=cfg.output, steps=steps_per_epoch * cfg.epochs, torch_seed=cfg.seed, rng_seed=cfg.seed,
                    device=cfg.device, threads=cfg.threads, log_file="history.csv",
                    log_fields=["step", "epoch", "loss", "focal", "l1", "smape", "mae_main", "mae_upper", "mae_lower",
                                "landmark_px", "seconds"],
                    log_every=steps_per_epoch, checkpoint="last.pt", checkpoint_every=steps_per_epoch,
                    final_weights="last_fp16.pt", validate_every=cfg.val_every * steps_per_epoch, best_key="smape",
                    best_weights="best_fp16.pt", steps_per_epoch=steps_per_epoch)
    result = run_training(spec, lambda: build_landmark_net(tuple(cfg.widths)),
                          lambda net: torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay),
                          step, one_cycle(cfg.lr), validate)
    summary = {"best": result.best, "train_cases": len(train_names), "val_cases": len(val_names),
               "excluded_cases": len(split.get("excluded", {})), "device": describe_device(result.device),
               "train_seconds_this_run": result.seconds}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


def main(argv=None) -> int:
    cfg = parse_config(CobbTrainConfig, argv, "spineai train cobb", __doc__)
    print(json.dumps(train(cfg), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
