"""CT spine phantom: vertebral bodies (cortical shell, trabecular core), discs, posterior
elements, ribs on thoracic levels, soft tissue and noise, in Hounsfield units.

Everything is defined in physical LPS space (x = patient left, y = posterior, z = superior)
and sampled on the image grid, so any spacing, origin and direction give the same anatomy.
Heights of every vertebral body are known exactly (anterior/middle/posterior, mm), also after
the optional wedge / biconcave / crush height loss.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from SpineAILib import anatomy
from SpineAILib.errors import InputError
from SpineAILib.io.image import Image
from SpineAILib.postprocessing import centers_of_mass

LESION_HU = {"lytic": 15.0, "blastic": 1150.0}
HU = {"air": -1000.0, "fat": -90.0, "soft": 40.0, "disc": 90.0, "trabecular": 220.0, "cortical": 900.0,
      "posterior": 650.0, "rib": 500.0}
DEFORMITIES = ("wedge", "biconcave", "crush")
# Where heights are measured along the body's AP axis, as a fraction of the half depth.
MEASURE_AT = {"anterior": -0.8, "middle": 0.0, "posterior": 0.8}

# Typical adult sizes (mm) at anchor levels: body height, width (lateral), depth (AP), disc.
# Rounded from published vertebral dimensions (e.g. Busscher et al. 2010); linear in between.
_ANCHORS = {
    "C1": (10, 20, 12, 0), "C3": (14, 17, 16, 5), "C7": (15, 22, 17, 5), "T1": (17, 26, 17, 5),
    "T6": (19, 29, 22, 5), "T12": (24, 38, 28, 7), "L1": (25, 42, 30, 9), "L5": (27, 50, 34, 11),
    "L6": (27, 50, 34, 11), "S1": (30, 50, 35, 0),
}


def vertebra_dimensions(name: str) -> dict[str, float]:
    """Nominal body height, width, depth and the disc below it (mm) for a vertebra name."""
    order = [anatomy.VERTEBRAE[i] for i in anatomy.ORDER]
    pos = order.index(name)
    anchors = sorted((order.index(k), v) for k, v in _ANCHORS.items())
    for (p0, v0), (p1, v1) in zip(anchors, anchors[1:], strict=False):
        if p0 <= pos <= p1:
            t = 0.0 if p1 == p0 else (pos - p0) / (p1 - p0)
            vals = [a + t * (b - a) for a, b in zip(v0, v1, strict=True)]
            break
    else:
        vals = list(anchors[-1][1])
    return dict(zip(("height", "width", "depth", "disc"), (float(v) for v in vals), strict=True))


@dataclass
class CTPhantomConfig:
    """Phantom parameters. Lengths in mm; ``spacing`` in (x, y, z) order."""

    first: str = "T11"
    last: str = "L4"
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    lateral_curve_mm: float = 8.0  # scoliotic (coronal) deviation of the column's mid point
    lordosis_mm: float = 6.0  # sagittal bow; positive = convex anteriorly
    height_loss: dict[str, tuple[str, float]] = field(default_factory=dict)  # {"L1": ("wedge", 0.3)}
    # Metastases inside a body: {"L2": ("lytic", 8.0)} = a low-density sphere of radius 8 mm;
    # "blastic" = a dense one. Placed off-centre (seeded), clipped to the body.
    lesions: dict[str, tuple[str, float]] = field(default_factory=dict)
    size_scale: float = 1.0  # all vertebral dimensions times this (body shape variation)
    margin_mm: float = 15.0  # field of view above the first and below the last vertebra
    lateral_fov_mm: float = 170.0
    ap_fov_mm: float = 190.0
    ribs: bool = True
    noise_hu: float = 20.0
    origin: tuple[float, float, float] | None = None
    direction: np.ndarray | None = None
    seed: int = 0


@dataclass
class CTPhantom:
    image: Image  # HU, float32
    labels: Image  # VerSe vertebra labels (whole vertebra), int16, same grid
    body_labels: Image  # vertebral bodies only, VerSe labels
    centroids: dict[int, np.ndarray]  # label -> LPS mm, centre of mass of the label
    body_centers: dict[int, np.ndarray]  # label -> LPS mm, centre of the (nominal) body
    heights: dict[int, dict[str, float]]  # label -> anterior/middle/posterior body heights (mm)
    deformity: dict[int, tuple[str, float]]  # label -> (type, fraction) for deformed bodies
    config: CTPhantomConfig


def _endplates(kind: str | None, f: float, H: float, u: np.ndarray, v: np.ndarray, W: float, D: float):
    """(top, bottom) endplate heights (mm, along the body axis) at local (u, v).

    Profiles are chosen so the Genant ratios are exact at the measuring positions
    (MEASURE_AT): wedge anterior/posterior = 1 - f, biconcave middle/posterior = 1 - f,
    crush: every height times 1 - f.
    """
    top = np.full_like(u, H / 2.0, dtype=float)
    bottom = np.full_like(u, -H / 2.0, dtype=float)
    if kind is None or f == 0:
        return top, bottom
    v_ant, v_post = MEASURE_AT["anterior"] * D / 2.0, MEASURE_AT["posterior"] * D / 2.0
    if kind == "wedge":  # the anterior part of the upper endplate collapses, posterior wall intact
        top = top - f * H * np.clip((v_post - v) / (v_post - v_ant), 0, 1)
    elif kind == "biconcave":  # both endplates sink centrally, the rim (beyond the measuring points) intact
        rho2 = (u / (W / 2.0 * abs(MEASURE_AT["anterior"]))) ** 2 + (v / v_post) ** 2
        r = f * H * np.clip(1 - rho2, 0, 1)
        top, bottom = top - r / 2, bottom + r / 2
    elif kind == "crush":  # whole body flattened
        top, bottom = top - f * H / 2, bottom + f * H / 2
    return top, bottom


def _heights(kind, f, H, W, D) -> dict[str, float]:
    out = {}
    for key, frac in MEASURE_AT.items():
        u, v = np.array([0.0]), np.array([frac * D / 2.0])
        t, b = _endplates(kind, f, H, u, v, W, D)
        out[key] = float(t[0] - b[0])
    return out


def ct_spine_phantom(config: CTPhantomConfig | None = None) -> CTPhantom:
    """Build the CT phantom described by ``config`` (see :class:`CTPhantomConfig`)."""
    from scipy import ndimage

    cfg = config or CTPhantomConfig()
    rng = np.random.default_rng(cfg.seed)
    order = [anatomy.VERTEBRAE[i] for i in anatomy.ORDER if anatomy.VERTEBRAE[i] not in ("L6", "T13")]
    if cfg.first not in order or cfg.last not in order or order.index(cfg.first) > order.index(cfg.last):
        raise InputError(
            f"Vertebra range {cfg.first}..{cfg.last} is invalid; use names from {order[0]} to {order[-1]}."
        )
    for name, (kind, frac) in cfg.height_loss.items():
        if kind not in DEFORMITIES or not 0 <= frac < 0.9:
            raise InputError(f"Height loss for {name} must be one of {DEFORMITIES} with a fraction in [0, 0.9).")
    names = order[order.index(cfg.first): order.index(cfg.last) + 1]
    for name, (kind, radius) in cfg.lesions.items():
        if kind not in LESION_HU or not radius > 0:
            raise InputError(f"Lesion in {name} must be 'lytic' or 'blastic' with a positive radius (mm).")
    dims = [{k: v * cfg.size_scale for k, v in vertebra_dimensions(n).items()} for n in names]

    # Column centre line, top to bottom, z decreasing (superior is +z in LPS).
    zs, z = [], 0.0
    for d in dims:
        zs.append(z - d["height"] / 2)
        z -= d["height"] + d["disc"]
    zs = np.array(zs)
    length = zs[0] - zs[-1] if len(zs) > 1 else 1.0
    t = (zs[0] - zs) / length

    def centre(tt):
        return np.stack([cfg.lateral_curve_mm * np.sin(np.pi * tt),
                         -cfg.lordosis_mm * np.sin(np.pi * tt), np.zeros_like(tt)], -1)

    centers = centre(t) + np.stack([np.zeros_like(zs), np.zeros_like(zs), zs], -1)
    dt = 1e-3
    tangents = []
    for tt in t:
        a = centre(np.array([tt - dt]))[0] + [0, 0, zs[0] - (tt - dt) * length]
        b = centre(np.array([tt + dt]))[0] + [0, 0, zs[0] - (tt + dt) * length]
        vec = a - b  # pointing superior
        tangents.append(vec / np.linalg.norm(vec))

    # Grid: field of view around the column.
    spacing = np.array(cfg.spacing, float)
    direction = np.eye(3) if cfg.direction is None else np.asarray(cfg.direction, float)
    zmax = zs[0] + dims[0]["height"] / 2 + cfg.margin_mm
    zmin = zs[-1] - dims[-1]["height"] / 2 - cfg.margin_mm
    lo = np.array([-cfg.lateral_fov_mm / 2, -cfg.ap_fov_mm * 0.6, zmin])
    hi = np.array([cfg.lateral_fov_mm / 2, cfg.ap_fov_mm * 0.4, zmax])
    # Size the grid so that the rotated index box covers the physical box.
    corners = np.array([[x, y, zz] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for zz in (lo[2], hi[2])])
    centre_phys = (lo + hi) / 2
    local = (corners - centre_phys) @ direction  # coordinates along the index axes
    half = np.abs(local).max(0)
    size = np.maximum(2, np.ceil(2 * half / spacing).astype(int) + 1)
    origin = centre_phys - direction @ ((size - 1) / 2 * spacing) if cfg.origin is None else np.array(cfg.origin)
    ref = Image(np.zeros(size[::-1], np.float32), tuple(spacing), tuple(origin), direction)
    m = ref.index_to_physical_matrix

    kk, jj, ii = np.meshgrid(*(np.arange(n, dtype=np.float32) for n in size[::-1]), indexing="ij")
    idx = np.stack([ii, jj, kk], -1)
    phys = idx @ m[:3, :3].T.astype(np.float32) + m[:3, 3].astype(np.float32)
    del idx, ii, jj, kk
    X, Y = phys[..., 0], phys[..., 1]

    hu = np.full(size[::-1], HU["air"], np.float32)
    # Trunk: ellipse in the axial plane, fat rim then soft tissue.
    trunk_c = np.array([0.0, -45.0])
    a_t, b_t = 150.0, 115.0
    r_trunk = np.sqrt(((X - trunk_c[0]) / a_t) ** 2 + ((Y - trunk_c[1]) / b_t) ** 2)
    hu[r_trunk <= 1.0] = HU["fat"]
    hu[r_trunk <= 0.88] = HU["soft"]

    labels = np.zeros(size[::-1], np.int16)
    body_labels = np.zeros(size[::-1], np.int16)
    heights, deformity, body_centers = {}, {}, {}

    m_inv = np.linalg.inv(m)

    def box(lo_p: np.ndarray, hi_p: np.ndarray) -> tuple[slice, slice, slice]:
        """Array slices (z, y, x) of the voxels inside a physical box (any direction)."""
        pc = np.array([[x, y, zz] for x in (lo_p[0], hi_p[0]) for y in (lo_p[1], hi_p[1])
                       for zz in (lo_p[2], hi_p[2])])
        ind = pc @ m_inv[:3, :3].T + m_inv[:3, 3]
        a = np.clip(np.floor(ind.min(0)).astype(int), 0, size)
        b = np.clip(np.ceil(ind.max(0)).astype(int) + 1, 0, size)
        return tuple(slice(int(a[ax]), int(b[ax])) for ax in (2, 1, 0))

    for n_i, (name, d) in enumerate(zip(names, dims, strict=True)):
        lab = anatomy.vertebra_label(name)
        ez = tangents[n_i]
        ex = np.array([1.0, 0, 0]) - ez[0] * ez
        ex /= np.linalg.norm(ex)
        ey = np.cross(ez, ex)  # posterior
        c = centers[n_i]
        H, W, D = d["height"], d["width"], d["depth"]
        hp = 0.45 * H
        canal_r = max(7.0, 0.28 * W)
        sp_len = 0.9 * D + 10
        tr_len = 0.45 * W + 10
        rib_level = cfg.ribs and name.startswith("T")
        # Only the voxels that can belong to this vertebra (and its rib and disc) are visited:
        # a whole-spine phantom is 25 small blocks instead of 25 passes over the volume.
        reach_x = a_t if rib_level else W / 2 + 0.6 * canal_r + tr_len + 8
        reach_z = H / 2 + d["disc"] + (0.3 * a_t + 12 if rib_level else 12) + 0.5 * D
        lo_p = np.array([c[0] - reach_x, (trunk_c[1] - b_t) if rib_level else c[1] - D / 2 - 8, c[2] - reach_z])
        hi_p = np.array([c[0] + reach_x, (trunk_c[1] + b_t) if rib_level else c[1] + D / 2 + 2 * canal_r + sp_len + 12,
                         c[2] + reach_z])
        sl = box(lo_p, hi_p)
        hu_b, lab_b, body_b = hu[sl], labels[sl], body_labels[sl]  # views: writes go to the volume
        rel = phys[sl] - c.astype(np.float32)
        u, v, w = rel @ ex.astype(np.float32), rel @ ey.astype(np.float32), rel @ ez.astype(np.float32)
        kind, frac = cfg.height_loss.get(name, (None, 0.0))
        # Disc below this vertebra (drawn first; bodies overwrite).
        if d["disc"] > 0 and n_i + 1 < len(names):
            rd = (u / (W / 2 * 0.95)) ** 2 + (v / (D / 2 * 0.95)) ** 2
            disc = (rd <= 1) & (w < -H / 2 + 1.0) & (w > -H / 2 - d["disc"] - 1.0)
            hu_b[disc] = HU["disc"]
        rho2 = (u / (W / 2)) ** 2 + (v / (D / 2)) ** 2
        near = (rho2 <= 1.0) & (np.abs(w) <= H / 2 + 1)
        top, bottom = _endplates(kind, frac, H, u[near], v[near], W, D)
        wn = w[near]
        inside = (wn <= top) & (wn >= bottom)
        shell_t = 1.5
        rho_in = (u[near] / (W / 2 - shell_t)) ** 2 + (v[near] / (D / 2 - shell_t)) ** 2
        core = inside & (rho_in <= 1) & (wn <= top - shell_t) & (wn >= bottom + shell_t)
        vals = hu_b[near]
        vals[inside] = HU["cortical"]
        vals[core] = HU["trabecular"]
        if name in cfg.lesions:
            kind_l, radius = cfg.lesions[name]
            off = rng.uniform(-0.35, 0.35, 3) * np.array([W / 2, D / 2, H / 2])
            sphere = ((u[near] - off[0]) ** 2 + (v[near] - off[1]) ** 2 + (wn - off[2]) ** 2) <= radius ** 2
            vals[sphere & inside] = LESION_HU[kind_l]
        hu_b[near] = vals
        lab_near = lab_b[near]
        lab_near[inside] = lab
        lab_b[near] = lab_near
        blab = body_b[near]
        blab[inside] = lab
        body_b[near] = blab
        heights[lab] = _heights(kind, frac, H, W, D)
        if kind is not None and frac > 0:
            deformity[lab] = (kind, float(frac))
        body_centers[lab] = c.copy()

        # Posterior elements: pedicles, lamina (arch), spinous and transverse processes.
        v0 = D / 2
        ped = ((np.abs(np.abs(u) - 0.6 * canal_r - 2.5) <= 3.5) & (v >= v0 - 2) & (v <= v0 + canal_r * 1.2)
               & (np.abs(w) <= hp / 1.5))
        ring_r = np.sqrt(u ** 2 + (v - v0 - canal_r * 0.9) ** 2)
        lamina = (ring_r >= canal_r) & (ring_r <= canal_r + 4) & (v >= v0 + canal_r * 0.9) & (np.abs(w) <= hp / 1.3)
        spinous = ((np.abs(u) <= 3.0) & (v >= v0 + 2 * canal_r) & (v <= v0 + 2 * canal_r + sp_len)
                   & (np.abs(w + 0.15 * (v - v0)) <= hp / 1.5))
        transverse = ((np.abs(u) >= 0.6 * canal_r) & (np.abs(u) <= 0.6 * canal_r + tr_len)
                      & (np.abs(v - v0 - canal_r) <= 4) & (np.abs(w) <= hp / 2))
        post = (ped | lamina | spinous | transverse) & (lab_b == 0)
        hu_b[post] = HU["posterior"]
        lab_b[post] = lab

        if rib_level:
            # Rib: an arc around the trunk in the axial plane at this level, from the
            # transverse process tip laterally and anteriorly, leaving the front open.
            Xb, Yb = phys[sl][..., 0], phys[sl][..., 1]
            ang = np.arctan2(-(Yb - trunk_c[1]), np.abs(Xb - trunk_c[0]))  # 0 = lateral, +pi/2 = anterior
            ra = np.sqrt(((Xb - trunk_c[0]) / (a_t * 0.78)) ** 2 + ((Yb - trunk_c[1]) / (b_t * 0.78)) ** 2)
            # |w + 0.3 |u|| <= 4: a 8 mm band that runs downwards laterally, like real ribs.
            rib = ((np.abs(ra - 1) * 90 <= 4.0) & (np.abs(w + 0.3 * np.abs(u)) <= 4.0)
                   & (ang < 1.2) & (ang > -1.4) & (lab_b == 0))
            hu_b[rib] = np.where(np.abs(ra[rib] - 1) * 90 <= 2.0, HU["trabecular"], HU["rib"])

    # Partial volume blur, then noise.
    sigma = 0.6 / np.maximum(spacing[::-1], 1e-3)
    hu = ndimage.gaussian_filter(hu, sigma=sigma)
    hu += rng.normal(0, cfg.noise_hu, hu.shape).astype(np.float32)

    image = ref.with_array(hu.astype(np.float32), phantom="ct_spine")
    lab_img = ref.with_array(labels)
    body_img = ref.with_array(body_labels)
    centroids = centers_of_mass(lab_img)
    return CTPhantom(image, lab_img, body_img, centroids, body_centers, heights, deformity, cfg)
