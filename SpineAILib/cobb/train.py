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
from SpineAILib.cobb.model import LEVEL, N_OUT, STRIDE, build_landmark_net, decode
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
    levels: bool = option(False, "add the level map (vertebra index around each centre, C7 = -1 .. S1 = 17)")
    level_weight: float = option(0.1, "weight of the level map's L1 loss (per level)")
    cut_prob: float = option(0.0, "share of training samples taken from a copy cut at the top or bottom "
                                  "(10 to 35 percent of the rows; vertebrae cut away get no target)")
    init: str = option("", "start from these weights (.pt); output channels the file lacks start fresh")


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


def cut_rows(n_rows: int, rng: np.random.Generator) -> tuple[int, int]:
    """A random cut of 10-35 % of a radiograph's rows at the top or the bottom: (first row,
    last row + 1) of what is kept."""
    frac = rng.uniform(0.10, 0.35)
    if rng.random() < 0.5:
        return int(round(frac * n_rows)), n_rows
    return 0, int(round((1 - frac) * n_rows))


def build_cache(cases, canvas, cache_file: Path, cut: bool = False, seed: int = 0) -> dict:
    """Canvas images (float16) and canvas landmarks for every case, cached on disk. With ``cut``
    each case is read as a copy cut at the top or the bottom (:func:`cut_rows`, seeded): the
    vertebrae cut away land outside the canvas and get no training target."""

    if cache_file.is_file():
        z = np.load(cache_file, allow_pickle=False)
        return {k: z[k] for k in z.files}
    imgs, lms, names, heights, recs = [], [], [], [], []
    rng = np.random.default_rng(seed)
    for i, c in enumerate(cases):
        img = read_image(c.image_path, expect_ndim=2)
        array, first = img.array, 0
        if cut:
            first, last = cut_rows(array.shape[0], rng)
            array = array[first:last]
        can, rec = to_canvas(array, tuple(canvas))
        imgs.append(can.astype(np.float16))
        lms.append(rec.to_canvas(c.landmarks - np.array([0.0, first])))
        names.append(c.name)
        heights.append(array.shape[0])
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
        # only the vertebrae on the canvas must stay on it (a cut copy has some off it)
        centres = lm.reshape(17, 4, 2).mean(1)
        seen = np.repeat((centres[:, 0] >= 0) & (centres[:, 0] < W) & (centres[:, 1] >= 0) & (centres[:, 1] < H), 4)
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
            if np.all(np.abs(uo[seen]) < 0.97):
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


def with_neighbours(corners: np.ndarray) -> np.ndarray:
    """(17, 4, 2) corners T1..L5 -> (19, 4, 2) with C7 and S1 added by extrapolation: C7 is T1
    moved up by 0.9 of the T1-T2 step (cervical bodies are smaller), S1 is L5 moved down by the
    L4-L5 step. Coarse (a fraction of a vertebra), enough for the level map's wide targets."""
    c7 = corners[0] - 0.9 * (corners[1].mean(0) - corners[0].mean(0))
    s1 = corners[16] + (corners[16].mean(0) - corners[15].mean(0))
    return np.concatenate([c7[None], corners, s1[None]])


def level_targets(landmarks: np.ndarray, out_hw: tuple[int, int]):
    """Level map (N, h, w) and its mask: around each vertebra centre (C7 .. S1, Gaussian weight
    above 0.3 with sigma = a third of the vertebra's height) the index of the nearest-weighted
    vertebra, T1 = 0 .. L5 = 16, C7 = -1, S1 = 17."""
    n = len(landmarks)
    h, w = out_hw
    level = np.zeros((n, h, w), np.float32)
    mask = np.zeros((n, h, w), np.float32)
    yy, xx = np.mgrid[0:h, 0:w]
    for k in range(n):
        p = (with_neighbours(landmarks[k].reshape(17, 4, 2)) - (STRIDE - 1) / 2) / STRIDE
        best = np.zeros((h, w), np.float32)
        for v in range(19):
            c = p[v].mean(0)
            sigma = max(1.0, np.linalg.norm(p[v, 2] - p[v, 0]) / 3)
            g = np.exp(-((xx - c[0]) ** 2 + (yy - c[1]) ** 2) / (2 * sigma ** 2))
            upd = (g > best) & (g > 0.3)
            level[k][upd] = v - 1
            best = np.maximum(best, g)
        mask[k] = best > 0.3
    return level, mask


def make_targets(landmarks: np.ndarray, out_hw: tuple[int, int]):
    """Heatmap (N, h, w), offsets (N, 10, h, w) and mask (N, h, w) at stride 4; vertebrae whose
    centre is off the canvas get none."""
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
    l1 = (torch.abs(out[:, 1:N_OUT] - reg) * m).sum() / (m.sum() * (N_OUT - 1)).clamp(min=1)
    return focal + l1, focal.detach(), l1.detach()


def level_loss(out, level, mask):
    """Mean L1 (levels) of the level map inside its mask."""
    import torch

    return (torch.abs(out[:, LEVEL] - level) * mask).sum() / mask.sum().clamp(min=1)


def init_weights(net, path: str):
    """Load ``path`` into ``net``; output rows the file lacks (e.g. a new level channel) keep
    their fresh initialisation."""
    import torch

    from SpineAILib.training.common import read_state_dict

    own = net.state_dict()
    for k, v in read_state_dict(path).items():
        v = v.float()
        if own[k].shape == v.shape:
            own[k] = v
        elif own[k].shape[1:] == v.shape[1:] and own[k].shape[0] > v.shape[0]:
            own[k] = torch.cat([v, own[k][v.shape[0]:]])
        else:
            raise ValueError(f"{path}: {k} has shape {tuple(v.shape)}, the network {tuple(own[k].shape)}")
    net.load_state_dict(own)
    return net


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
    cut = None
    if cfg.cut_prob > 0:
        cut = build_cache([by_name[n] for n in train_names], cfg.canvas,
                          out / f"cache_cut_{cfg.canvas[0]}x{cfg.canvas[1]}_{len(train_names)}_{cfg.seed}.npz",
                          cut=True, seed=cfg.seed)
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
        use_cut = rng.random(len(b)) < cfg.cut_prob if cut is not None else np.zeros(len(b), bool)
        src_img = np.where(use_cut[:, None, None], cut["images"][b] if cut is not None else 0, cache["images"][b])
        src_lm = np.where(use_cut[:, None, None], cut["landmarks"][b] if cut is not None else 0,
                          cache["landmarks"][b])
        imgs = torch.as_tensor(src_img.astype(np.float32))[:, None]
        x, lm = augment(imgs, src_lm, cfg, rng)
        heat, reg, mask = (torch.as_tensor(a).to(device) for a in make_targets(lm, (h, w)))
        out_ = net(x.to(device)).float()
        loss, focal, l1 = loss_fn(out_, heat, reg, mask)
        metrics = {"focal": focal.item(), "l1": l1.item()}
        if cfg.levels:
            level, lmask = (torch.as_tensor(a).to(device) for a in level_targets(lm, (h, w)))
            lv = level_loss(out_, level, lmask)
            loss = loss + cfg.level_weight * lv
            metrics["level_l1"] = lv.item()
        return loss, metrics

    def validate(net, device) -> dict:
        pred, _ = predict_canvas(net, cache["images"][va_idx], device)
        return evaluate_canvas(pred, cache, va_idx, angles_by_name)

    spec = LoopSpec(output=cfg.output, steps=steps_per_epoch * cfg.epochs, torch_seed=cfg.seed, rng_seed=cfg.seed,
                    device=cfg.device, threads=cfg.threads, log_file="history.csv",
                    log_fields=["step", "epoch", "loss", "focal", "l1", "level_l1", "smape", "mae_main", "mae_upper",
                                "mae_lower", "landmark_px", "seconds"],
                    log_every=steps_per_epoch, checkpoint="last.pt", checkpoint_every=steps_per_epoch,
                    final_weights="last_fp16.pt", validate_every=cfg.val_every * steps_per_epoch, best_key="smape",
                    best_weights="best_fp16.pt", steps_per_epoch=steps_per_epoch)
    def build():
        net = build_landmark_net(tuple(cfg.widths), levels=cfg.levels)
        return init_weights(net, cfg.init) if cfg.init else net

    result = run_training(spec, build,
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
