"""Lateral cervical radiograph phantom with C1-C7 masks.

Anterior is to the left (x small), superior up (y small). C2 carries the dens; the skull base,
mandible and shoulders overlap the column as in real lateral views, with soft tissue, varied
size, rotation, contrast, noise and an optional anterior plate implant. The localisation
target of the region-aware method is the C3-C7 region mask.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from SpineAILib.io.image import Image


@dataclass
class CervicalPhantomConfig:
    size: int = 512  # square image (rows = cols)
    scale: float = 1.0  # anatomy size relative to default
    rotation_deg: float = 0.0  # in-plane rotation of the whole anatomy
    lordosis_px: float = 25.0
    contrast: float = 1.0
    noise: float = 6.0
    implant: bool = False
    shoulders: bool = True
    offset_px: tuple[float, float] = (0.0, 0.0)  # shift of the anatomy (x, y) at 512 px size
    seed: int = 0

    @classmethod
    def random(cls, seed: int, size: int = 512) -> CervicalPhantomConfig:
        """A varied phantom for training: size, rotation, curvature, contrast, noise, shift,
        shoulders and implants drawn from seeded ranges."""
        rng = np.random.default_rng(seed)
        return cls(size=size, scale=float(rng.uniform(0.8, 1.3)), rotation_deg=float(rng.uniform(-25, 25)),
                   lordosis_px=float(rng.uniform(-5, 45)), contrast=float(rng.uniform(0.6, 1.4)),
                   noise=float(rng.uniform(2, 14)), implant=bool(rng.random() < 0.2),
                   shoulders=bool(rng.random() < 0.85),
                   offset_px=(float(rng.uniform(-60, 60)), float(rng.uniform(-50, 50))), seed=seed)


@dataclass
class CervicalPhantom:
    image: Image  # uint8 (rows, cols)
    labels: Image  # uint8, VerSe labels 1..7 = C1..C7
    region: np.ndarray  # bool (rows, cols): union of C3-C7 (localisation ground truth)
    centers: dict[int, np.ndarray]  # label -> (x, y) pixels
    config: CervicalPhantomConfig


def _soft(d: np.ndarray, width: float = 1.0) -> np.ndarray:
    return np.clip(d / width + 0.5, 0.0, 1.0)


def lateral_cervical_phantom(config: CervicalPhantomConfig | None = None) -> CervicalPhantom:
    from scipy import ndimage

    cfg = config or CervicalPhantomConfig()
    rng = np.random.default_rng(cfg.seed)
    N = cfg.size
    yy, xx = np.mgrid[0:N, 0:N].astype(np.float32)
    # Rotate the sampling grid about the centre: anatomy coordinates (ax, ay).
    th = np.radians(cfg.rotation_deg)
    cx = (N - 1) / 2 + cfg.offset_px[0] * N / 512.0
    cy = (N - 1) / 2 + cfg.offset_px[1] * N / 512.0
    ax = cx + (xx - cx) * np.cos(th) + (yy - cy) * np.sin(th)
    ay = cy - (xx - cx) * np.sin(th) + (yy - cy) * np.cos(th)
    s = cfg.scale * N / 512.0

    def to_image(p: np.ndarray) -> np.ndarray:
        """Anatomy coordinates -> image pixel (x, y) (inverse of the grid rotation above)."""
        return np.array([cx + (p[0] - cx) * np.cos(th) - (p[1] - cy) * np.sin(th),
                         cy + (p[0] - cx) * np.sin(th) + (p[1] - cy) * np.cos(th)])

    img = np.zeros((N, N), np.float32)
    labels = np.zeros((N, N), np.uint8)
    # Neck soft tissue: a band around the column.
    neck = _soft(95 * s - np.abs(ax - (cx + 10 * s)), 15 * s)
    img += 55 * neck
    # Skull base (occiput) top right, mandible top left.
    occ = ((ax - (cx + 70 * s)) / (150 * s)) ** 2 + ((ay - (cy - 260 * s)) / (110 * s)) ** 2
    img += 70 * _soft((1 - occ) * 40, 4)
    mand = np.sqrt(((ax - (cx - 120 * s)) / (95 * s)) ** 2 + ((ay - (cy - 150 * s)) / (70 * s)) ** 2)
    img += 50 * _soft(10 - np.abs(mand - 1) * 90 * s, 2) * (ax < cx - 40 * s)

    centers = {}
    heights = {2: 34, 3: 17, 4: 17, 5: 17, 6: 17, 7: 18}
    depth = {2: 20, 3: 21, 4: 21, 5: 22, 6: 23, 7: 24}
    y = cy - 150 * s
    for lab in range(2, 8):
        h, d = heights[lab] * s * 1.5, depth[lab] * s * 1.5
        t = (lab - 2) / 5
        x = cx - cfg.lordosis_px * s * np.sin(np.pi * t)
        tilt = np.radians(-12 + 20 * t)
        ex = np.array([np.cos(tilt), np.sin(tilt)])
        ey = np.array([-np.sin(tilt), np.cos(tilt)])
        c = np.array([x, y + h / 2])
        u = (ax - c[0]) * ex[0] + (ay - c[1]) * ex[1]
        v = (ax - c[0]) * ey[0] + (ay - c[1]) * ey[1]
        body = np.minimum(d / 2 - np.abs(u), h / 2 - np.abs(v))
        if lab == 2:  # dens: a peg upwards from the C2 body
            dens = np.minimum(d * 0.22 - np.abs(u + d * 0.05), (h * 0.45) - np.abs(v + h * 0.55 + h * 0.2))
            body = np.maximum(body, dens)
        # posterior elements: a process backwards (right) from the body
        post = np.minimum(h * 0.25 - np.abs(v - 0.1 * (u - d / 2)), d * 0.9 - np.abs(u - d * 1.05))
        inside = body > 0
        labels[inside | (post > 0)] = lab
        img += 65 * _soft(body, 1) + 30 * (_soft(body, 1) - _soft(body - 3, 1)) + 40 * _soft(post, 1)
        centers[lab] = to_image(c)
        y += h + 6 * s * 1.5
    # C1: anterior arch and posterior arch above C2.
    c1a = ((ax - (cx - 22 * s)) / (7 * s)) ** 2 + ((ay - (cy - 160 * s)) / (9 * s)) ** 2
    c1p = ((ax - (cx + 45 * s)) / (16 * s)) ** 2 + ((ay - (cy - 158 * s)) / (7 * s)) ** 2
    c1 = (c1a <= 1) | (c1p <= 1)
    labels[c1 & (labels == 0)] = 1
    img += 55 * c1
    centers[1] = to_image(np.array([cx + 10 * s, cy - 160 * s]))
    if cfg.shoulders:
        for off in (0, 25 * s):
            sh = ((ax - (cx + 40 * s)) / (220 * s)) ** 2 + ((ay - (cy + 250 * s + off)) / (90 * s)) ** 2
            img += 35 * _soft((1 - sh) * 30, 8)
    if cfg.implant:  # anterior plate over C5-C6 with two screws
        c5, c6 = centers[5], centers[6]
        mid = (c5 + c6) / 2
        plate = np.minimum(5 * s - np.abs(ax - (mid[0] - 25 * s)), 40 * s - np.abs(ay - mid[1]))
        img += 150 * _soft(plate, 1)
    img = ndimage.gaussian_filter(img * cfg.contrast, 1.0)
    img += rng.normal(0, cfg.noise, img.shape)
    img = np.clip(img + 15, 0, 255).astype(np.uint8)
    region = (labels >= 3) & (labels <= 7)
    image = Image(img, (0.2, 0.2), (0.0, 0.0), np.eye(2), {"phantom": "lateral_cervical"})
    return CervicalPhantom(image, image.with_array(labels), region, centers, cfg)
