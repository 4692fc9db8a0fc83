"""AP spine radiograph phantom: T1-L5 drawn along a scoliotic curve, with the 68 AASCE corner
landmarks and the exact Cobb geometry.

Each vertebra is a rectangle of known size rotated by its tilt angle (the angle of the curve's
tangent at its centre, so both endplates have exactly that slope). Landmarks follow the AASCE
order: 17 vertebrae top to bottom, corners top-left, top-right, bottom-left, bottom-right, in
(x, y) pixel coordinates (x = column to the right, y = row downwards).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from SpineAILib import anatomy
from SpineAILib.io.image import Image


@dataclass
class APPhantomConfig:
    rows: int = 1024
    cols: int = 512
    pixel_spacing_mm: float = 0.7
    # Curve: x(t) = centre + sum_k a_k sin(pi * k * t + phase_k) (pixels), t in [0, 1] T1->L5.
    amplitudes_px: tuple[float, ...] = (40.0, 0.0)  # (C-curve, S-curve component)
    phase: float = 0.0
    noise: float = 6.0
    seed: int = 0


@dataclass
class APPhantom:
    image: Image  # uint8 radiograph (rows, cols)
    landmarks: np.ndarray  # (68, 2) pixel (x, y), AASCE order
    tilts_deg: np.ndarray  # (17,) endplate tilt of each vertebra, degrees, positive = clockwise on screen
    centers: np.ndarray  # (17, 2) vertebra centres (x, y)
    cobb_main_deg: float  # largest tilt difference between any two vertebrae
    main_end_vertebrae: tuple[str, str]  # (upper, lower) end vertebrae of the main curve
    config: APPhantomConfig


def _soft(d: np.ndarray, width: float = 1.0) -> np.ndarray:
    """Anti-aliased inside-ness from a signed distance (positive inside), in pixels."""
    return np.clip(d / width + 0.5, 0.0, 1.0)


def ap_radiograph_phantom(config: APPhantomConfig | None = None) -> APPhantom:
    from scipy import ndimage

    cfg = config or APPhantomConfig()
    rng = np.random.default_rng(cfg.seed)
    R, C = cfg.rows, cfg.cols
    yy, xx = np.mgrid[0:R, 0:C].astype(np.float32)
    img = np.zeros((R, C), np.float32)

    # Body silhouette and lungs (darker = more air), pelvis at the bottom.
    body = _soft(C * 0.42 - np.abs(xx - C / 2), 20.0)
    img += 70 * body
    for side in (-1, 1):
        lung = ((xx - (C / 2 + side * C * 0.2)) / (C * 0.14)) ** 2 + ((yy - R * 0.32) / (R * 0.22)) ** 2
        img -= 35 * _soft((1 - lung) * 40, 8.0)
        ilium = ((xx - (C / 2 + side * C * 0.22)) / (C * 0.16)) ** 2 + ((yy - R * 0.93) / (R * 0.09)) ** 2
        img += 45 * _soft((1 - ilium) * 30, 6.0)

    n = len(anatomy.AASCE_VERTEBRAE)
    y_top, y_bot = R * 0.1, R * 0.82
    # Body heights grow from T1 to L5; discs in between.
    heights = np.linspace(1.0, 1.6, n)
    disc = 0.28
    unit = (y_bot - y_top) / (heights.sum() + disc * (n - 1))
    h_px = heights * unit
    widths = np.linspace(1.6, 2.5, n) * unit
    ys = y_top + np.cumsum(np.r_[0, h_px[:-1] + disc * unit]) + h_px / 2
    t = (ys - y_top) / (y_bot - y_top)

    def x_of(tt):
        return C / 2 + sum(a * np.sin(np.pi * (k + 1) * tt + cfg.phase) for k, a in enumerate(cfg.amplitudes_px))

    def dxdy(tt):
        return sum(a * np.pi * (k + 1) * np.cos(np.pi * (k + 1) * tt + cfg.phase)
                   for k, a in enumerate(cfg.amplitudes_px)) / (y_bot - y_top)

    xs = x_of(t)
    # Tilt: rotation of the vertebra so that its vertical axis follows the curve tangent.
    tilt = np.degrees(np.arctan(dxdy(t)))
    landmarks = np.zeros((4 * n, 2))
    for i in range(n):
        th = np.radians(tilt[i])
        # Image axes: x right, y down. The vertebra's "up" axis is the tangent (dx/dy, 1).
        ex = np.array([np.cos(th), -np.sin(th)])  # along the endplate
        ey = np.array([np.sin(th), np.cos(th)])  # along the column, downwards
        c = np.array([xs[i], ys[i]])
        w2, h2 = widths[i] / 2, h_px[i] / 2
        corners = [c - w2 * ex - h2 * ey, c + w2 * ex - h2 * ey, c - w2 * ex + h2 * ey, c + w2 * ex + h2 * ey]
        landmarks[4 * i:4 * i + 4] = corners
        u = (xx - c[0]) * ex[0] + (yy - c[1]) * ex[1]
        v = (xx - c[0]) * ey[0] + (yy - c[1]) * ey[1]
        inside = _soft(np.minimum(w2 - np.abs(u), h2 - np.abs(v)), 1.0)
        rim = _soft(np.minimum(w2 - np.abs(u), h2 - np.abs(v)), 1.0) - _soft(
            np.minimum(w2 - 3 - np.abs(u), h2 - 3 - np.abs(v)), 1.0)
        img += 60 * inside + 40 * rim
        for side in (-1, 1):  # pedicle ovals
            pu, pv = u - side * w2 * 0.62, v + h2 * 0.1
            img += 25 * _soft((1 - (pu / (w2 * 0.2)) ** 2 - (pv / (h2 * 0.35)) ** 2) * 6, 1.0)
        if i < 12:  # ribs leave the thoracic vertebrae sideways and downwards
            for side in (-1, 1):
                rx = xx - (c[0] + side * w2)
                ry = yy - (c[1] + 0.02 * rx ** 2 / unit * 0.2)
                rib = (side * rx > 0) & (side * rx < C * 0.32)
                img += 18 * rib * _soft(4 - np.abs(ry - 0.35 * np.abs(rx)), 1.5)
    img = ndimage.gaussian_filter(img, 1.2)
    img += rng.normal(0, cfg.noise, img.shape)
    img = np.clip(img + 20, 0, 255).astype(np.uint8)

    i_max, i_min = int(np.argmax(tilt)), int(np.argmin(tilt))
    upper, lower = sorted((i_max, i_min))
    image = Image(img, (cfg.pixel_spacing_mm,) * 2, (0.0, 0.0), np.eye(2), {"phantom": "ap_radiograph"})
    return APPhantom(
        image=image,
        landmarks=landmarks,
        tilts_deg=tilt,
        centers=np.stack([xs, ys], -1),
        cobb_main_deg=float(tilt.max() - tilt.min()),
        main_end_vertebrae=(anatomy.AASCE_VERTEBRAE[upper], anatomy.AASCE_VERTEBRAE[lower]),
        config=cfg,
    )
