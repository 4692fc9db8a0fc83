"""Whole-spine lateral radiograph phantom: vertebral bodies C2..L5 and the sacrum along a sagittal
curve (cervical lordosis, thoracic kyphosis, lumbar lordosis), with the endplate corners of the
sagittal whole-spine annotations (C2 lower endplate, C3-L5 four corners, S1 plate).

The patient faces left (anterior = small x), superior is up. Intensities: bright bone on darker
soft tissue, with a skull base, ribs and pelvis overlapping, blur and noise. Used by the tests and
the demo: the exact corners make the alignment angles known.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from SpineAILib.anatomy import LATERAL_VERTEBRAE
from SpineAILib.io.image import Image


@dataclass
class LateralSpinePhantomConfig:
    rows: int = 1100
    cols: int = 460
    lordosis_c: float = 15.0  # bend of the cervical curve (degrees of endplate tilt spread)
    kyphosis_t: float = 40.0
    lordosis_l: float = 50.0
    noise: float = 5.0
    seed: int = 0


@dataclass
class LateralSpinePhantom:
    image: Image  # uint8 (rows, cols)
    corners: np.ndarray  # (24, 4, 2) pixels, LATERAL_VERTEBRAE x LATERAL_CORNERS; NaN where not annotated
    config: LateralSpinePhantomConfig

    @property
    def centroids(self) -> np.ndarray:
        c = self.corners
        known = ~np.isnan(c[..., 0])
        return np.array([c[v][known[v]].mean(0) if known[v].any() else (np.nan, np.nan) for v in range(len(c))])


def lateral_spine_phantom(config: LateralSpinePhantomConfig | None = None) -> LateralSpinePhantom:
    from scipy import ndimage

    cfg = config or LateralSpinePhantomConfig()
    rng = np.random.default_rng(cfg.seed)
    H, W = cfg.rows, cfg.cols
    s = H / 1100.0
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    img = np.zeros((H, W), np.float32)
    # soft tissue of neck, trunk and pelvis
    body_w = np.interp(yy, [0, 0.15 * H, 0.3 * H, H], [0.25 * W, 0.3 * W, 0.75 * W, 0.8 * W])
    img += 50 * (np.abs(xx - 0.5 * W) < body_w / 2)
    # heights (px at 1100 rows) of the bodies and discs from C2 to L5, then the sacrum
    names = LATERAL_VERTEBRAE
    heights = np.array([22] + [14] * 5 + list(np.linspace(17, 26, 12)) + list(np.linspace(28, 31, 5))) * s
    discs = np.array([4] * 6 + [5] * 12 + [8] * 5) * s
    depths = np.array([30, *np.linspace(30, 36, 5), *np.linspace(38, 50, 12), *np.linspace(54, 60, 5)]) * s
    # tilt of each vertebra (degrees, positive = anterior edge down): lordosis / kyphosis / lordosis
    n = len(names) - 1  # C2..L5
    t = np.zeros(n)
    t[:6] = np.linspace(cfg.lordosis_c / 2, -cfg.lordosis_c / 2, 6)
    t[6:18] = np.linspace(-cfg.kyphosis_t / 2, cfg.kyphosis_t / 2, 12)
    t[18:] = np.linspace(cfg.lordosis_l / 2 - 10, -cfg.lordosis_l / 2 - 10, 5)
    corners = np.full((len(names), 4, 2), np.nan)
    centre = np.array([0.5 * W, 0.12 * H])
    bone = np.zeros((H, W), np.float32)
    for i in range(n):
        th = np.radians(t[i])
        ex = np.array([-np.cos(th), -np.sin(th)])  # posterior -> anterior (anterior = left)
        ey = np.array([-np.sin(th), np.cos(th)])  # downwards, perpendicular to the endplates
        c = centre + ey * heights[i] / 2
        hd, hh = depths[i] / 2, heights[i] / 2
        tp, ta = c - ex * hd - ey * hh, c + ex * hd - ey * hh
        bp, ba = c - ex * hd + ey * hh, c + ex * hd + ey * hh
        corners[i] = [tp, ta, bp, ba]
        u = (xx - c[0]) * ex[0] + (yy - c[1]) * ex[1]
        v = (xx - c[0]) * ey[0] + (yy - c[1]) * ey[1]
        body = np.minimum(hd - np.abs(u), hh - np.abs(v))
        shell = (body > 0) & (body < 2.5 * s)
        bone += 90 * (body > 0) + 40 * shell
        post = np.minimum(0.3 * hh - np.abs(v), 0.45 * depths[i] - np.abs(u + 1.1 * depths[i]))
        bone += 45 * (post > 0)
        centre = c + ey * (hh + discs[i])
    corners[0, :2] = np.nan  # C2: lower endplate only
    # sacrum: a wedge below L5 with its plate tilted by the sacral slope
    th = np.radians(t[-1] - 20)
    ex = np.array([-np.cos(th), -np.sin(th)])
    ey = np.array([-np.sin(th), np.cos(th)])
    c = centre + ey * 30 * s
    sp, sa = c - ex * 28 * s - ey * 30 * s, c + ex * 28 * s - ey * 30 * s
    corners[-1, 0], corners[-1, 1] = sp, sa
    u = (xx - c[0]) * ex[0] + (yy - c[1]) * ex[1]
    v = (xx - c[0]) * ey[0] + (yy - c[1]) * ey[1]
    bone += 80 * ((np.abs(u) < 28 * s * (1 - 0.4 * np.clip(v / (60 * s), 0, 1))) & (v > -30 * s) & (v < 60 * s))
    # skull base, ribs and pelvis
    skull = ((xx - 0.55 * W) / (0.35 * W)) ** 2 + ((yy - 0.02 * H) / (0.08 * H)) ** 2 < 1
    img += 60 * skull
    for k in range(10):
        y0 = (0.25 + 0.04 * k) * H
        rib = np.abs(yy - y0 - 0.0004 * (xx - 0.5 * W) ** 2) < 3 * s
        img += 20 * (rib & (np.abs(xx - 0.5 * W) < 0.35 * W))
    pelvis = ((xx - 0.45 * W) / (0.3 * W)) ** 2 + ((yy - 0.76 * H) / (0.07 * H)) ** 2 < 1
    img += 35 * pelvis
    img = ndimage.gaussian_filter(img + bone, 1.5 * s)
    img += rng.normal(0, cfg.noise, img.shape)
    img = np.clip(img + 10, 0, 255).astype(np.uint8)
    image = Image(img, (0.5, 0.5), (0.0, 0.0), np.eye(2), {"phantom": "lateral_spine"})
    return LateralSpinePhantom(image, corners, cfg)
