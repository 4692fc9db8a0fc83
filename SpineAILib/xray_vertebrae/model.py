"""Vertebra labelling network for radiographs, after Bayat et al. (CSI 2019): a U-Net predicts one
2D Gaussian per vertebra plus a background channel (the identity maps), the soft-argmax gives the
coordinates of every vertebra, and a residual corrector (RC), fully connected layers that see all
2 x N coordinates at once, adds a correction so that the whole spine's shape constrains every label.

Added to the paper's heads, on the same U-Net: a class-agnostic centre heatmap with a sub-pixel
offset and the four endplate-corner offsets (the vertebra-focused detector of the Cobb task), and
a level map (the vertebra's index as a number). Decoding (:func:`assign_labels`) names the
detected centres with the level map, the identity maps and the RC's coordinates, keeping the
names in anatomical order; detections give the precise positions and the corners.

Tensor layout: input (N, 1, H, W) canvas; ``forward`` returns
- maps (N, 12 + V + 6, H / s, W / s): channel 0 centre heatmap logit, 1-2 centre sub-pixel offset,
  3-10 corner offsets (x, y per corner, map pixels) in image order (top-left, top-right,
  bottom-left, bottom-right: which of left/right is anterior depends on the way the patient
  faces, which a local offset cannot know), 11 the level map (the vertebra's index in C2..S1 /
  LEVEL_SCALE, near each vertebra: an ordinal code, so that a mistake is a near level), then V
  identity maps (target: Gaussian, peak 1), the background map (target -max of the identity
  targets), the facing logit (anterior is to the image right) and four class-agnostic corner
  heatmaps (TL, TR, BL, BR: where the offsets only guess a corner, its heatmap finds it;
  regressed offsets pull endplate tilts towards the mean),
- raw (N, V, 2) soft-argmax centres of the identity maps, (x, y) as fractions of the map size,
- corrected (N, V, 2) the RC's output in the same units (equal to raw without the RC).
"""

from __future__ import annotations

import numpy as np

from SpineAILib.networks import register_architecture
from SpineAILib.networks.heatmap import build_heatmap_net

N_DET = 12  # heatmap + centre offset (2) + corner offsets (8) + level
LEVEL = 11  # channel of the level map: vertebra index (C2 = 0 ... S1 = 23) / LEVEL_SCALE near each centre
LEVEL_SCALE = 10.0


def facing_channel(n_vertebrae: int) -> int:
    """Channel of the facing logit (after the identity and background maps)."""
    return N_DET + n_vertebrae + 1


def corner_channels(n_vertebrae: int) -> slice:
    """The four corner heatmap logits (TL, TR, BL, BR in image order), after the facing logit."""
    return slice(N_DET + n_vertebrae + 2, N_DET + n_vertebrae + 6)
SOFTARGMAX_BETA = 20.0  # spatial softmax sharpness on identity maps (peak 1, background 0)
ID_TEMPERATURE = 10.0  # channel softmax of the identity maps: softmax(ID_TEMPERATURE * maps)


def build_vertebra_net(n_vertebrae: int, widths=(16, 32, 64, 96, 128), head_width: int = 64, out_stride: int = 2,
                       corrector: bool = True, rc_hidden: int = 512, beta: float = SOFTARGMAX_BETA):
    import torch.nn as nn

    V = int(n_vertebrae)

    class ResidualCorrector(nn.Module):
        """x (N, V, 2) -> x + f(x), f = FC-ReLU-FC-ReLU-FC on the flattened coordinates; the last
        layer starts at zero so the corrector starts as the identity."""

        def __init__(self) -> None:
            super().__init__()
            self.f = nn.Sequential(nn.Linear(2 * V, rc_hidden), nn.ReLU(inplace=True),
                                   nn.Linear(rc_hidden, rc_hidden), nn.ReLU(inplace=True),
                                   nn.Linear(rc_hidden, 2 * V))
            nn.init.zeros_(self.f[-1].weight)
            nn.init.zeros_(self.f[-1].bias)

        def forward(self, c):
            n = c.shape[0]
            return c + self.f((c - 0.5).reshape(n, -1)).view(n, V, 2)

    class VertebraNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.unet = build_heatmap_net(N_DET + V + 6, tuple(widths), head_width, out_stride,
                                          head_bias={0: -4.6, **{N_DET + V + 2 + c: -4.6 for c in range(4)}})
            self.rc = ResidualCorrector() if corrector else None
            self.beta = float(beta)

        def forward(self, x):
            maps = self.unet(x)
            raw = soft_argmax(maps[:, N_DET:N_DET + V].float(), self.beta)
            corrected = self.rc(raw) if self.rc is not None else raw
            return maps, raw, corrected

    return VertebraNet()


def soft_argmax(heat, beta: float = SOFTARGMAX_BETA):
    """(N, C, h, w) heatmaps -> (N, C, 2) expected (x, y) under softmax(beta * heat) over each map,
    as fractions of the width/height (pixel centre k at (k + 0.5) / size)."""
    import torch

    n, c, h, w = heat.shape
    p = torch.softmax(beta * heat.reshape(n, c, -1), -1).view(n, c, h, w)
    xs = (torch.arange(w, dtype=heat.dtype, device=heat.device) + 0.5) / w
    ys = (torch.arange(h, dtype=heat.dtype, device=heat.device) + 0.5) / h
    return torch.stack([(p.sum(2) * xs).sum(-1), (p.sum(3) * ys).sum(-1)], -1)


@register_architecture("spineai.XrayVertebraNet")
def _xray_vertebra_net(**kwargs):
    return build_vertebra_net(int(kwargs["n_vertebrae"]), tuple(kwargs.get("widths", (16, 32, 64, 96, 128))),
                              int(kwargs.get("head_width", 64)), int(kwargs.get("out_stride", 2)),
                              bool(kwargs.get("corrector", True)), int(kwargs.get("rc_hidden", 512)),
                              float(kwargs.get("beta", SOFTARGMAX_BETA)))


def detections(maps, n_vertebrae: int, max_det: int = 40, min_score: float = 0.1):
    """Peaks of the centre heatmap of one image (maps (C, h, w) tensor) -> list of dicts with the
    map-pixel centre (x, y), corners (4, 2) in image order (TL, TR, BL, BR), score, identity
    probabilities (V,), level and the probability that the patient faces right."""
    import torch
    import torch.nn.functional as F

    V = n_vertebrae
    heat = torch.sigmoid(maps[0].float())
    h, w = heat.shape
    peaks = heat * (F.max_pool2d(heat[None, None], 3, 1, 1)[0, 0] == heat)
    scores, idx = peaks.view(-1).topk(min(max_det, h * w))
    probs = torch.softmax(ID_TEMPERATURE * maps[N_DET:N_DET + V + 1].float(), 0)
    corner_heat = torch.sigmoid(maps[corner_channels(V)].float()).cpu().numpy()
    out = []
    for s, i in zip(scores.tolist(), idx.tolist(), strict=True):
        if s < min_score:
            break
        y, x = divmod(i, w)
        cx, cy = x + float(maps[1, y, x]), y + float(maps[2, y, x])
        corners = np.array([[cx - float(maps[1, y, x]) + float(maps[3 + 2 * c, y, x]),
                             cy - float(maps[2, y, x]) + float(maps[4 + 2 * c, y, x])] for c in range(4)])
        out.append({"centre": np.array([cx, cy]), "corners": refine_corners(corner_heat, corners), "score": s,
                    "identity": probs[:V, y, x].cpu().numpy(), "level": float(maps[LEVEL, y, x]) * LEVEL_SCALE,
                    "facing_right": float(torch.sigmoid(maps[facing_channel(V), y, x]))})
    return out


DECODINGS = ("full", "unet_rc", "unet")
ID_WEIGHT_FULL = 0.25


def suppress_duplicates(dets: list[dict], prior: np.ndarray, radius: float = 0.5) -> list[dict]:
    """Keep the strongest of detections closer than ``radius`` x the local vertebra spacing, the
    spacing taken from the prior (V, 2) centres around each detection's level (a 3 x 3 peak
    window cannot tell a second peak on one lumbar body from the next cervical vertebra)."""
    V = len(prior)
    gaps = np.linalg.norm(np.diff(prior, axis=0), axis=1)
    local = np.array([np.mean(gaps[max(0, i - 1):min(V - 1, i + 1)]) for i in range(V)])
    kept: list[dict] = []
    for d in sorted(dets, key=lambda d: -d["score"]):
        i = int(np.clip(round(d["level"]), 0, V - 1))
        # C2 and S1 are marked at an endplate (half a vertebra from the next centre)
        r = radius * local[i] * (0.5 if i in (0, V - 1) else 1.0)
        if all(np.linalg.norm(d["centre"] - k["centre"]) >= r for k in kept):
            kept.append(d)
    return kept


def assign_labels(dets: list[dict], prior: np.ndarray | None, spacing: float, decoding: str = "full",
                  min_score: float = 0.2) -> list[int]:
    """Name detections in anatomical order: dynamic programming over the detections sorted top to
    bottom and the names C2..S1 (both may be skipped; names strictly increase downwards).

    Gain of naming detection j as vertebra i (it is named only where the gain is positive):
    log(score / ``min_score``) + w x log(V x identity probability) (0 for an uninformative map,
    clipped to -4..3), and by ``decoding``: "full" w = ``ID_WEIGHT_FULL`` - (level map - i)^2 / 2 -
    (distance to the RC's coordinate of i / ``spacing``)^2 / 2; "unet_rc" (the paper's model)
    w = 1 and the RC distance term; "unet" (the paper's U-Net alone) w = 1 only. Returns the
    vertebra index per detection (-1: unnamed), in input order.
    """
    n = len(dets)
    if n == 0:
        return []
    V = len(dets[0]["identity"])
    order = sorted(range(n), key=lambda j: dets[j]["centre"][1])
    gain = np.full((n, V), -np.inf)
    levels = np.arange(V)
    for r, j in enumerate(order):
        d = dets[j]
        ident = np.clip(np.log(V * np.clip(d["identity"], 1e-6, 1)), -4, 3)
        g = np.log(max(d["score"], 1e-6) / min_score)
        if decoding == "full":  # the level map leads; the identity maps only break ties
            g = g - 0.5 * (d["level"] - levels) ** 2 + ID_WEIGHT_FULL * ident
        else:
            g = g + ident
        if prior is not None and decoding in ("full", "unet_rc"):
            dist = np.linalg.norm(prior - d["centre"], axis=1) / max(spacing, 1e-6)
            g = g - 0.5 * dist ** 2
        gain[r] = np.where(g > 0, g, -np.inf)
    # best[r, i]: best total using the first r detections and the first i names
    best = np.zeros((n + 1, V + 1))
    move = np.zeros((n + 1, V + 1), np.int8)  # 0 skip detection, 1 skip name, 2 match
    for r in range(n + 1):
        for i in range(V + 1):
            if r == 0 and i == 0:
                continue
            cands = []
            if r > 0:
                cands.append((best[r - 1, i], 0))
            if i > 0:
                cands.append((best[r, i - 1], 1))
            if r > 0 and i > 0 and np.isfinite(gain[r - 1, i - 1]):
                cands.append((best[r - 1, i - 1] + gain[r - 1, i - 1], 2))
            best[r, i], move[r, i] = max(cands)
    labels = [-1] * n
    r, i = n, V
    while r > 0 or i > 0:
        m = move[r, i]
        if m == 2:
            labels[order[r - 1]] = i - 1
            r, i = r - 1, i - 1
        elif m == 0:
            r -= 1
        else:
            i -= 1
    return labels


def anatomical_corners(corners_lr: np.ndarray, facing_right: bool) -> np.ndarray:
    """(..., 4, 2) corners in image order (TL, TR, BL, BR) -> anatomical order (top_posterior,
    top_anterior, bottom_posterior, bottom_anterior) for a patient facing right or left."""
    c = np.asarray(corners_lr)
    return c[..., [0, 1, 2, 3] if facing_right else [1, 0, 3, 2], :]


def _bulge(centres: np.ndarray, a: int, m: int, b: int) -> float | None:
    """Sideways (x) distance of centre m from the chord through centres a and b (None if one is
    missing)."""
    A, M, B = centres[a], centres[m], centres[b]
    if np.isnan(A).any() or np.isnan(M).any() or np.isnan(B).any() or B[1] == A[1]:
        return None
    t = (M[1] - A[1]) / (B[1] - A[1])
    return float(M[0] - (A[0] + t * (B[0] - A[0])))


def facing_from_curvature(centres: np.ndarray, names: list[str]) -> bool | None:
    """The way a lateral view faces from the sagittal curves: the thoracic spine is convex
    backwards (kyphosis), the lumbar spine convex forwards (lordosis). Returns True when the
    anterior side is the image right, None when neither curve is in view or the two disagree
    by less than a third of a vertebra spacing. On all 26 annotated radiographs here the vote
    has the sign of the annotations with a margin of 33 px or more (thoracic bulge 51-173 px,
    lumbar 33-116 px)."""
    idx = {n: i for i, n in enumerate(names)}
    votes = []
    for (a, m, b), sign in ((("T1", "T7", "T12"), -1.0), (("T3", "T7", "T11"), -1.0), (("L1", "L3", "S1"), 1.0),
                            (("L1", "L3", "L5"), 1.0)):
        if all(k in idx for k in (a, m, b)):
            v = _bulge(centres, idx[a], idx[m], idx[b])
            if v is not None:
                votes.append(sign * v)
                if sign < 0:
                    break  # one thoracic vote
    if not votes:
        return None
    known = centres[~np.isnan(centres[:, 0])]
    spacing = float(np.median(np.linalg.norm(np.diff(known, axis=0), axis=1))) if len(known) > 1 else 1.0
    total = sum(votes)
    if abs(total) < spacing / 3:
        return None
    return total > 0


def refine_corners(corner_heat: np.ndarray, guess: np.ndarray, radius: float = 2.5, min_peak: float = 0.1
                   ) -> np.ndarray:
    """Move each guessed corner (4, 2) (map pixels, TL, TR, BL, BR) to the weighted centre of its
    corner heatmap (4, h, w) within ``radius`` pixels of the guess (weights: heat squared), when
    the heatmap there reaches ``min_peak``; otherwise keep the guess."""
    out = np.array(guess, float)
    _, h, w = corner_heat.shape
    r = int(np.ceil(radius))
    for c in range(4):
        gx, gy = out[c]
        if not (np.isfinite(gx) and np.isfinite(gy)):
            continue
        x0, x1 = max(0, int(round(gx)) - r), min(w, int(round(gx)) + r + 1)
        y0, y1 = max(0, int(round(gy)) - r), min(h, int(round(gy)) + r + 1)
        if x0 >= x1 or y0 >= y1:
            continue
        patch = corner_heat[c, y0:y1, x0:x1]
        yy, xx = np.mgrid[y0:y1, x0:x1]
        inside = (xx - gx) ** 2 + (yy - gy) ** 2 <= radius ** 2
        wgt = np.where(inside, patch, 0.0) ** 2
        if patch[inside].max(initial=0.0) < min_peak or wgt.sum() <= 0:
            continue
        out[c] = [(wgt * xx).sum() / wgt.sum(), (wgt * yy).sum() / wgt.sum()]
    return out
