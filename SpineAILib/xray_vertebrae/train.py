"""Headless training of the radiograph vertebra-labelling network (U-Net + residual corrector,
Bayat et al. Eq. 1-5) on images with COCO-keypoint endplate corners.

    spineai train xray-vertebrae --data $SPINEAI_DATA/xray_lateral --output runs/xrv \
        [--negatives $SPINEAI_DATA/aasce] [--no-corrector]

Loss: L_img = ||Y - Y~||^2 (summed over pixels, per vertebra) + CE(softmax(Y), softmax(Y~))
over the channels at each pixel; with the corrector, + a Huber loss on its corrected centres;
+ L1 on the corner offsets at the true centres. ``--no-corrector`` trains the U-Net-only ablation
(centres from the soft-argmax of the heatmaps). Augmentation: vertical crops (neck-only,
lumbar-only and cut-off views), rotation, scale, shift, left-right flip (names unchanged: a
lateral view may face either way), gamma/gain/offset/noise. Radiographs of another view
(``--negatives``, e.g. AP) are shown with empty targets so that the network's peaks on them stay
low. Seeded; the split is read from / written to ``--split``; resumes from ``last.pt``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from SpineAILib.anatomy import LATERAL_VERTEBRAE
from SpineAILib.device import autocast, describe_device
from SpineAILib.io import read_image
from SpineAILib.io.lateral_keypoints import load_coco_keypoints, split_names, vertebra_centroids
from SpineAILib.io.readers import list_images
from SpineAILib.training import save_config
from SpineAILib.training.config import option, parse_config
from SpineAILib.training.lateral_views import NECK_ROWS, neck_view_box
from SpineAILib.training.loop import LoopSpec, one_cycle, run_training
from SpineAILib.xray_vertebrae.model import (
    ID_TEMPERATURE,
    LEVEL,
    LEVEL_SCALE,
    N_DET,
    anatomical_corners,
    build_vertebra_net,
    corner_channels,
    facing_channel,
)
from SpineAILib.xray_vertebrae.predict import decode_maps
from SpineAILib.xray_vertebrae.preprocess import CANVAS, fit_matrix, prepare_source, sample_canvas, to_canvas_points

REPO = Path(__file__).resolve().parents[2]
V = len(LATERAL_VERTEBRAE)


@dataclass
class XrayVertebraeTrainConfig:
    data: str = option("", "folder with images/ and annotations.json (COCO keypoints)", required=True)
    output: str = option("runs/xray_vertebrae", "run folder (config, cache, history, last.pt, fp16 weights)")
    negatives: str = option("", "AASCE-layout folder of other-view radiographs shown with empty targets ('' none)")
    n_negatives: int = option(60, "how many negative radiographs to use")
    negative_rate: float = option(0.15, "share of samples that are negatives")
    split: str = option("", "split JSON to use ('': the seeded split derived from the image names)")
    n_val: int = option(6, "validation images in a new split")
    seed: int = option(0, "random seed (also of a new split)")
    steps: int = option(1500, "optimizer steps")
    batch_size: int = option(6, "images per step")
    lr: float = option(2e-3, "AdamW one-cycle maximum learning rate")
    weight_decay: float = option(1e-4, "AdamW weight decay")
    widths: list[int] = option([16, 32, 64, 96, 128], "encoder widths")
    out_stride: int = option(2, "output stride of the maps (2 or 4)")
    corrector: bool = option(True, "train the residual corrector (off: the U-Net-only ablation)")
    w_mse: float = option(0.1, "weight of the identity maps' squared error (summed over pixels, per vertebra)")
    w_ce: float = option(1.0, "weight of the channel cross-entropy")
    w_coord: float = option(10.0, "weight of the Huber loss on corrected centres (fractions of the map)")
    w_offset: float = option(1.0, "weight of the centre/corner offset L1 (map pixels)")
    w_level: float = option(0.5, "weight of the level map's L1 (levels)")
    crop_rate: float = option(0.5, "share of samples cropped to a vertical window")
    neck_rate: float = option(0.0, "share of samples cropped to a lateral cervical view (top to below T2, "
                                   "about square)")
    rotate_deg: float = option(10.0, "largest augmentation rotation (degrees)")
    scale_range: list[float] = option([0.85, 1.15], "augmentation scale range")
    translate: float = option(0.06, "largest shift (fraction of the canvas)")
    init: str = option("", "fp16 weights to start from; tensors whose shape differs are taken in part "
                           "(a head with channels added keeps the old ones)")
    device: str = option("auto", "auto, cpu, cuda, cuda:N or mps")
    threads: int = option(0, "CPU threads (0: every core)")
    val_every: int = option(100, "validate every N steps (and after the last)")


# ------------------------------------------------------------------------------- data
def make_split(names: list[str], path: str, n_val: int, seed: int) -> dict:
    """The split in ``path`` when given, else derived (seeded) from the image names."""
    if path:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    return split_names(names, n_val, seed)


def build_cache(cases, negatives: list[Path], cache_file: Path) -> dict:
    """Prepared sources (float16) and corners in source pixels, cached on disk."""
    if cache_file.is_file():
        z = np.load(cache_file, allow_pickle=True)
        return {k: z[k] for k in z.files}
    srcs, corners, names, scales, heights = [], [], [], [], []
    for c in cases:
        img = read_image(c.image_path, expect_ndim=2)
        src, s = prepare_source(img.array)
        srcs.append(src.astype(np.float16))
        corners.append(((c.corners + 0.5) * s - 0.5).astype(np.float32))
        names.append(c.name)
        scales.append(s)
        heights.append(img.array.shape[0])
    for p in negatives:
        img = read_image(p, expect_ndim=2)
        src, s = prepare_source(img.array)
        srcs.append(src.astype(np.float16))
        corners.append(np.full((V, 4, 2), np.nan, np.float32))
        names.append("neg:" + p.name)
        scales.append(s)
        heights.append(img.array.shape[0])
    sources = np.empty(len(srcs), object)
    sources[:] = srcs
    out = {"sources": sources, "corners": np.stack(corners), "names": np.array(names), "scales": np.array(scales),
           "heights": np.array(heights)}
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache_file, **out)
    return out


def random_matrix(shape: tuple[int, int], centroids: np.ndarray, cfg, rng: np.random.Generator,
                  canvas=CANVAS, box: list | None = None) -> np.ndarray:
    """Canvas -> source matrix of one augmented sample: an optional vertical crop window (at
    least about three vertebrae of the labelled ones, or any window for a negative), then
    rotation, scale, shift and flip about the canvas centre. A cervical view's source box
    (x0, x1, y0, y1) is appended to ``box`` (a real cervical radiograph has nothing outside it)."""
    h, w = shape
    window = columns = None
    ys = centroids[~np.isnan(centroids[:, 1]), 1]
    neck = centroids[NECK_ROWS]  # C3..T2
    if rng.random() < cfg.neck_rate and not np.isnan(neck).any():
        # a lateral cervical view: from the top to below T2, about as wide as high, around the neck
        x0, x1, top, bottom = neck_view_box(neck, shape, rng)
        window, columns = (top, bottom), (x0, x1)
        if box is not None:
            box.append((*columns, *window))
    elif rng.random() < cfg.crop_rate:
        if len(ys) >= 4:
            i0 = rng.integers(0, len(ys) - 3)
            i1 = rng.integers(i0 + 3, len(ys) + 1)
            gap = np.median(np.diff(ys))
            top = ys[i0] - rng.uniform(0.5, 4) * gap
            bottom = ys[i1 - 1] + rng.uniform(0.5, 4) * gap
            window = (max(-0.5, top), min(h - 0.5, bottom))
        else:
            frac = rng.uniform(0.3, 1.0)
            top = rng.uniform(-0.5, h - 0.5 - frac * h)
            window = (top, top + frac * h)
    m = fit_matrix(shape, canvas, window, columns)
    H, W = canvas
    ang = np.radians(rng.uniform(-cfg.rotate_deg, cfg.rotate_deg))
    s = rng.uniform(*cfg.scale_range)
    t = rng.uniform(-cfg.translate, cfg.translate, 2) * np.array([W, H])
    c, si = np.cos(ang), np.sin(ang)
    cc = np.array([(W - 1) / 2, (H - 1) / 2])
    # augmented canvas point q -> fitted canvas point p = R (q - cc - t) / s + cc (then flipped)
    a = np.array([[c, -si], [si, c]]) / s
    if rng.random() < 0.5:
        a = np.diag([-1.0, 1.0]) @ a
    aug = np.eye(3)
    aug[:2, :2] = a
    aug[:2, 2] = cc - a @ (cc + t)
    return m @ aug


def make_targets(corners_canvas: np.ndarray, map_hw: tuple[int, int], stride: int):
    """Targets at map resolution for N samples of (V, 4, 2) canvas corners (NaN = unknown):
    detection heatmap (N, h, w) (Gaussian, exactly 1 at each centre pixel), offsets (N, 10, h, w)
    and their mask (centre sub-pixel + the known corners, at the centre pixels only), identity
    maps (N, V + 1, h, w) (background = -max), centres (N, V, 2) as fractions of the map, and the
    mask of centres in view (N, V)."""
    n = len(corners_canvas)
    h, w = map_hw
    heat = np.zeros((n, h, w), np.float32)
    reg = np.zeros((n, LEVEL - 1, h, w), np.float32)
    reg_mask = np.zeros((n, LEVEL - 1, h, w), np.float32)
    ident = np.zeros((n, V + 1, h, w), np.float32)
    level = np.zeros((n, h, w), np.float32)
    facing = np.zeros((n,), np.float32)
    corner_heat = np.zeros((n, 4, h, w), np.float32)
    centres = np.zeros((n, V, 2), np.float32)
    present = np.zeros((n, V), np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    for k in range(n):
        pm = (corners_canvas[k] - (stride - 1) / 2) / stride  # map pixels (V, 4, 2)
        cen = vertebra_centroids(pm)
        # the way the patient faces (after flips): anterior corners to the right of posterior ones
        dx = np.nansum(pm[:, [1, 3], 0] - pm[:, [0, 2], 0])
        facing[k] = float(dx > 0)
        pm = anatomical_corners(pm, dx > 0)  # anatomical -> image order is the same swap
        ok = ~np.isnan(cen[:, 0]) & (cen[:, 0] >= -0.5) & (cen[:, 0] <= w - 0.5) & (cen[:, 1] >= -0.5) \
            & (cen[:, 1] <= h - 0.5)
        idx = np.flatnonzero(ok)
        for j, v in enumerate(idx):
            nb = [np.linalg.norm(cen[v] - cen[u]) for u in idx[max(0, j - 1):j + 2] if u != v]
            sigma = float(np.clip(0.3 * (min(nb) if nb else 8.0), 1.0, 4.0))
            g = np.exp(-((xx - cen[v, 0]) ** 2 + (yy - cen[v, 1]) ** 2) / (2 * sigma ** 2))
            ident[k, v] = g
            heat[k] = np.maximum(heat[k], g)
            ix, iy = min(w - 1, max(0, int(round(cen[v, 0])))), min(h - 1, max(0, int(round(cen[v, 1]))))
            heat[k, iy, ix] = 1.0
            reg[k, 0, iy, ix], reg[k, 1, iy, ix] = cen[v, 0] - ix, cen[v, 1] - iy
            reg_mask[k, :2, iy, ix] = 1.0
            for c in range(4):
                if not np.isnan(pm[v, c, 0]):
                    reg[k, 2 + 2 * c:4 + 2 * c, iy, ix] = pm[v, c] - (ix, iy)
                    reg_mask[k, 2 + 2 * c:4 + 2 * c, iy, ix] = 1.0
                    px, py = pm[v, c]
                    g = np.exp(-((xx - px) ** 2 + (yy - py) ** 2) / (2 * 1.0 ** 2))
                    corner_heat[k, c] = np.maximum(corner_heat[k, c], g)
                    jx, jy = int(round(px)), int(round(py))
                    if 0 <= jx < w and 0 <= jy < h:
                        corner_heat[k, c, jy, jx] = 1.0
            centres[k, v] = (cen[v, 0] + 0.5) / w, (cen[v, 1] + 0.5) / h
            present[k, v] = 1.0
        ident[k, V] = -ident[k, :V].max(0)
        level[k] = ident[k, :V].argmax(0) / LEVEL_SCALE
    return heat, reg, reg_mask, ident, level, facing, corner_heat, centres, present


def focal_loss(logits, target):
    """CenterNet focal loss of heatmap logits against Gaussian targets (exactly 1 at the points),
    normalised by the number of points."""
    import torch

    pred = torch.sigmoid(logits).clamp(1e-4, 1 - 1e-4)
    pos = target.eq(1).float()
    pos_loss = (torch.log(pred) * (1 - pred) ** 2 * pos).sum()
    neg_loss = (torch.log(1 - pred) * pred ** 2 * (1 - target) ** 4 * (1 - pos)).sum()
    return -(pos_loss + neg_loss) / pos.sum().clamp(min=1)


def loss_fn(out, targets, cfg):
    """Detection: CenterNet focal loss + L1 offsets. Identity (the paper's L_img): squared error
    of the identity maps (summed over pixels, per vertebra) + cross-entropy between the channel
    softmaxes of target and prediction (temperature ID_TEMPERATURE, weighted towards the
    vertebrae). Corrector: Huber loss on its centres (fractions of the map)."""
    import torch
    import torch.nn.functional as F

    maps, _raw, corrected = out
    heat, reg, reg_mask, ident, level, facing, corner_heat, centres, present = targets
    maps = maps.float()
    focal = focal_loss(maps[:, 0], heat)
    corner_focal = focal_loss(maps[:, corner_channels(V)], corner_heat)
    l1 = (torch.abs(maps[:, 1:LEVEL] - reg) * reg_mask).sum() / reg_mask.sum().clamp(min=1)
    near = (ident[:, :V].max(1)[0] > 0.3).float()  # level map: trained near the vertebrae only
    lv = (torch.abs(maps[:, LEVEL] - level) * near).sum() / near.sum().clamp(min=1) * LEVEL_SCALE
    fmap = maps[:, facing_channel(V)]
    fb = F.binary_cross_entropy_with_logits(fmap, facing.view(-1, 1, 1).expand_as(fmap), reduction="none")
    face = (fb * near).sum() / near.sum().clamp(min=1)
    y = maps[:, N_DET:N_DET + V + 1]
    mse = ((y - ident) ** 2).sum((1, 2, 3)).mean() / V
    weight = ident[:, :V].max(1)[0]  # near a vertebra 1, background 0
    ce_px = -(torch.softmax(ID_TEMPERATURE * ident, 1) * torch.log_softmax(ID_TEMPERATURE * y, 1)).sum(1)
    ce = (ce_px * weight).sum() / weight.sum().clamp(min=1)
    loss = focal + corner_focal + cfg.w_offset * l1 + cfg.w_level * lv + face + cfg.w_mse * mse + cfg.w_ce * ce
    logs = {"focal": focal.item(), "corners": corner_focal.item(), "offset": l1.item(), "level": lv.item(),
            "facing": face.item(), "mse": mse.item(), "ce": ce.item()}
    if cfg.corrector:
        hub = F.smooth_l1_loss(corrected.float(), centres, beta=0.005, reduction="none").sum(-1)
        coord = (hub * present).sum() / present.sum().clamp(min=1)
        loss = loss + cfg.w_coord * coord
        logs["coord"] = coord.item()
    return loss, logs


# -------------------------------------------------------------------------- evaluation
def predict_sources(net, sources, device, stride: int, canvas=CANVAS, decoding: str = "full"):
    """Fitted (no augmentation) prediction of each prepared source -> list of (names index per
    vertebra slot: centres (V, 2), corners (V, 4, 2), confidence (V,)) in source pixels, NaN /
    0 where a vertebra is not found; ``decoding`` as in :func:`assign_labels`."""
    import torch

    out = []
    net.eval()
    with torch.no_grad():
        for src in sources:
            m = fit_matrix(src.shape, canvas)
            x = sample_canvas([torch.as_tensor(np.asarray(src, np.float32))], [m], canvas)
            with autocast(device):
                maps, raw, corrected = net(x.to(device))
            out.append(decode_maps(maps[0].float(), (raw if decoding == "unet" else corrected)[0].float(), stride,
                                   m, decoding)[:3])
    return out


def _canvas_to_source(points: np.ndarray, m: np.ndarray) -> np.ndarray:
    return points @ m[:2, :2].T + m[:2, 2]


def identification(pred: np.ndarray, truth: np.ndarray, reported: np.ndarray | None = None) -> tuple[int, int, list]:
    """The paper's id rate: a true vertebra counts as identified when the closest reported
    prediction carries its label. -> (identified, total, distances of same-label predictions)."""
    reported = np.ones(len(pred), bool) if reported is None else reported
    ok, total, dist = 0, 0, []
    cand = np.flatnonzero(reported & ~np.isnan(pred[:, 0]))
    for v in np.flatnonzero(~np.isnan(truth[:, 0])):
        total += 1
        if len(cand) == 0:
            continue
        d = np.linalg.norm(pred[cand] - truth[v], axis=1)
        ok += int(cand[np.argmin(d)] == v)
        if reported[v]:
            dist.append(float(np.linalg.norm(pred[v] - truth[v])))
    return ok, total, dist


def validation_metrics(preds, cache, idx) -> dict:
    ok = total = 0
    dists = []
    for (cen, _cor, conf), i in zip(preds, idx, strict=True):
        truth = vertebra_centroids(cache["corners"][i])
        o, t, d = identification(cen, truth, conf > 0)
        ok, total = ok + o, total + t
        dists += [x / cache["sources"][i].shape[0] for x in d]
    return {"id_rate": ok / max(total, 1), "dist": float(np.mean(dists)) if dists else float("nan")}


# ------------------------------------------------------------------------------ train
def train(cfg: XrayVertebraeTrainConfig) -> dict:
    import torch

    out = Path(cfg.output)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.json")
    cases = load_coco_keypoints(cfg.data)
    split = make_split([c.name for c in cases], cfg.split, cfg.n_val, cfg.seed)
    by_name = {c.name: c for c in cases}
    negatives: list[Path] = []
    if cfg.negatives:
        negatives = list_images(Path(cfg.negatives) / "images")
        negatives = [negatives[i] for i in np.random.default_rng(cfg.seed).permutation(len(negatives))
                     [:cfg.n_negatives]]
    names = split["train"] + split["val"]
    cache = build_cache([by_name[n] for n in names], negatives,
                        out / f"cache_{len(split['train'])}_{len(split['val'])}_{len(negatives)}.npz")
    tr_idx = np.arange(len(split["train"]))
    va_idx = np.arange(len(split["train"]), len(names))
    neg_idx = np.arange(len(names), len(cache["names"]))
    srcs = [torch.as_tensor(s.astype(np.float32)) for s in cache["sources"]]
    h, w = CANVAS[0] // cfg.out_stride, CANVAS[1] // cfg.out_stride

    def step(net, k, rng, device):
        b = [int(rng.choice(neg_idx)) if len(neg_idx) and rng.random() < cfg.negative_rate
             else int(rng.choice(tr_idx)) for _ in range(cfg.batch_size)]
        mats, corners, boxes = [], [], []
        for i in b:
            cor = cache["corners"][i].copy()
            box: list = []
            m = random_matrix(srcs[i].shape, vertebra_centroids(cor), cfg, rng, box=box)
            if box:  # a cervical view: vertebrae outside it are not in view
                x0, x1, y0, y1 = box[0]
                cen = vertebra_centroids(cor)
                out = ~((cen[:, 0] >= x0) & (cen[:, 0] <= x1) & (cen[:, 1] >= y0) & (cen[:, 1] <= y1))
                cor[out] = np.nan
            mats.append(m)
            boxes.append(box[0] if box else None)
            corners.append(to_canvas_points(cor, m))
        x = sample_canvas([srcs[i] for i in b], mats)
        for k, (m, bx) in enumerate(zip(mats, boxes, strict=True)):
            if bx is not None:  # blank what lies outside the cervical view, as its padding would be
                yy, xx = np.mgrid[0:x.shape[2], 0:x.shape[3]]
                sx = m[0, 0] * xx + m[0, 1] * yy + m[0, 2]
                sy = m[1, 0] * xx + m[1, 1] * yy + m[1, 2]
                inside = (sx >= bx[0]) & (sx <= bx[1]) & (sy >= bx[2]) & (sy <= bx[3])
                x[k, 0] *= torch.as_tensor(inside, dtype=x.dtype)
        x = x.clamp(0, 1) ** torch.tensor(rng.uniform(0.6, 1.6, len(b)), dtype=torch.float32).view(-1, 1, 1, 1)
        x = x * torch.tensor(rng.uniform(0.8, 1.2, len(b)), dtype=torch.float32).view(-1, 1, 1, 1)
        x = x + torch.tensor(rng.uniform(-0.1, 0.1, len(b)), dtype=torch.float32).view(-1, 1, 1, 1)
        x = x + 0.04 * torch.rand(len(b), 1, 1, 1) * torch.randn_like(x)
        targets = [torch.as_tensor(a).to(device) for a in make_targets(np.stack(corners), (h, w), cfg.out_stride)]
        return loss_fn(net(x.to(device)), targets, cfg)

    def validate(net, device) -> dict:
        srcs_val = [cache["sources"][i] for i in va_idx]
        out = validation_metrics(predict_sources(net, srcs_val, device, cfg.out_stride), cache, va_idx)
        rc = validation_metrics(predict_sources(net, srcs_val, device, cfg.out_stride, decoding="unet_rc"), cache,
                                va_idx)
        return {**out, "id_unet_rc": rc["id_rate"], "dist_unet_rc": rc["dist"]}

    spec = LoopSpec(output=cfg.output, steps=cfg.steps, torch_seed=cfg.seed, rng_seed=cfg.seed, device=cfg.device,
                    threads=cfg.threads, log_file="history.csv",
                    log_fields=["step", "loss", "focal", "corners", "offset", "level", "facing", "mse", "ce", "coord",
                                "id_rate",
                                "dist",
                                "id_unet_rc", "dist_unet_rc", "seconds"],
                    log_every=25, checkpoint="last.pt", checkpoint_every=100, final_weights="last_fp16.pt",
                    validate_every=cfg.val_every, best_key="", best_weights=None)
    def build():
        net = build_vertebra_net(V, tuple(cfg.widths), 64, cfg.out_stride, cfg.corrector)
        if cfg.init:
            load_partly(net, cfg.init)
        return net

    result = run_training(spec, build,
                          lambda net: torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay),
                          step, one_cycle(cfg.lr), validate)
    summary = {"train_cases": len(tr_idx), "val_cases": len(va_idx), "negatives": len(neg_idx),
               "device": describe_device(result.device), "train_seconds_this_run": result.seconds}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


def load_partly(net, path: str) -> None:
    """Load fp16 weights; a tensor whose leading size differs (an output layer with channels
    added) gets the old values in its first rows."""
    import torch

    from SpineAILib.models.registry import read_state_dict

    old = read_state_dict(path)
    state = net.state_dict()
    with torch.no_grad():
        for k, v in state.items():
            if k not in old:
                continue
            o = old[k].float()
            if o.shape == v.shape:
                v.copy_(o)
            elif o.shape[1:] == v.shape[1:] and o.shape[0] < v.shape[0]:
                v[: o.shape[0]].copy_(o)
    net.load_state_dict(state)


def main(argv=None) -> int:
    cfg = parse_config(XrayVertebraeTrainConfig, argv, "spineai train xray-vertebrae", __doc__)
    print(json.dumps(train(cfg), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
