"""Inference: CT -> labelled vertebra centroids and vertebra segments (McCouat & Glocker).

Pipeline (every stage a function, so a corrected centroid re-runs only what follows it):

1. ``prepare``: resample onto a canonical (axis-aligned LPS) grid of the models' spacing,
   recording the transform; outputs are mapped back to the input's own grid.
2. ``detect``: 3D U-Net patch-wise (80 x 64 x 64 patches, steps 40 x 32 x 32, the 20/16/16
   border of every output discarded); patches without any bone-like voxel (< 150 HU) are not
   run (they hold no vertebra) -- the main speed-up on a large field of view.
3. ``identify``: 2D U-Net on 8 adjacent sagittal slices per output slice, whole slices padded
   to a multiple of 16, only over the slices where detection found vertebrae.
4. ``fuse``: detection mask x identification index, rounded to vertebra labels; each
   vertebra's centroid is the median of its voxels, vertebrae with fewer than
   max(3000, 0.4 R_v^3) mm^3 of votes dropped (the default "discs" fusion keeps one of 1500
   next to a vertebra of 3000, :data:`NEIGHBOUR_MIN_VOTES_MM3`).
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from SpineAILib import anatomy
from SpineAILib.ctcolumn.canal import Column, column_segments, find_column
from SpineAILib.device import autocast, resolve_device
from SpineAILib.errors import InputError
from SpineAILib.inference.tiling import tile_predict
from SpineAILib.io import Image, read_image
from SpineAILib.io.centroids import centroids_json
from SpineAILib.io.image import lps_to_ras
from SpineAILib.models import cached_model
from SpineAILib.preprocessing import check_image, resample_to_canonical
from SpineAILib.preprocessing.intensity import scale_hu
from SpineAILib.progress import CancelToken, ProgressCallback, SubProgress, check_cancel
from SpineAILib.vertebrae import networks as _networks  # noqa: F401  (registers the architectures)
from SpineAILib.vertebrae.column import column_instances, label_instances
from SpineAILib.vertebrae.evidence import Numbering, number_column
from SpineAILib.vertebrae.labels import sparse_to_dense, vertebra_radius_mm
from SpineAILib.vertebrae.sacrum import sacral_instances

TASK = "Vertebra labelling"
DETECTION_MODEL = "vertebra_detection"
IDENTIFICATION_MODEL = "vertebra_identification"
BONE_HU = 150.0
# Detection patches of McCouat & Glocker (z, y, x voxels) and the border discarded from each output.
PATCH = (80, 64, 64)
BORDER = (20, 16, 16)
# "discs" fusion: an instance under the paper's 3000 mm^3 of votes is kept with at least this
# many next to one that holds 3000. Its instances already lie between discs and hold bone, and
# the paper's floor drops C1 (no body; about 2 ml detected) and vertebrae cut by the field of
# view; the neighbour keeps a crop's fragments out (pieces of one vertebra of 1-2 ml)
NEIGHBOUR_MIN_VOTES_MM3 = 1500.0
# an anchor (ribs, C1, sacrum) that moves the numbering this many levels or more from the
# network's own reading is reported, and the confidence of every label halved
DISAGREEMENT_LEVELS = 1.5
NO_LANDMARK_WARNING = (
    "Nothing in view fixed the numbering (no clean rib transition at C7/T1 or T12/L1, no C1 at the top, no "
    "sacrum with the pelvis): the labels rest on the identification network alone and may be off by one or "
    "more levels (100 held-out phantoms: 75 % right in such scans, 98-100 % where ribs or C1 fixed it); "
    "check them.")


@dataclass
class VertebraResult:
    """Plain result of :func:`locate`. Positions in LPS mm (``centroids_ras`` gives RAS)."""

    centroids: dict[int, np.ndarray]  # VerSe label -> LPS mm
    confidence: dict[int, float]  # 0..1
    labels: Image  # vertebra segments: VerSe label map on the input's grid
    warnings: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    models: list[str] = field(default_factory=list)
    # what in the image fixed the numbering: "C1", "S1", "L5", "ribs" or several joined by "+"
    # ("C1+ribs"), or None (the identification network alone, or the column's spacing alone)
    numbering: str | None = None
    # where the vertebrae come from: "networks" (detection + identification fused) or "column"
    # (the canal and the bodies in front of it, found from the image; where the networks'
    # detections are not the column's)
    source: str = "networks"

    @property
    def found(self) -> bool:
        return bool(self.centroids)

    @property
    def numbered_by(self) -> str:
        """What numbered the vertebrae, in words ("the skull above C1, the ribs")."""
        if self.numbering:
            return ", ".join(ANCHOR_WORDS.get(a, a) for a in self.numbering.split("+"))
        return "the spacing of the vertebrae alone" if self.source == "column" else "the network alone"

    def names(self) -> list[str]:
        return [anatomy.vertebra_name(lab) for lab in self.ordered_labels()]

    def ordered_labels(self) -> list[int]:
        return [lab for lab in anatomy.ORDER if lab in self.centroids]

    def centroids_ras(self) -> dict[int, np.ndarray]:
        return {lab: lps_to_ras(np.asarray(p)) for lab, p in self.centroids.items()}

    def to_json(self) -> list[dict]:
        """``centroids.json`` entries: label (VerSe), name, position_ras_mm, confidence."""
        return centroids_json(self.centroids, self.confidence)

    def to_dict(self) -> dict:
        """Plain data (the label map is not part of it): ``vertebrae`` as in ``centroids.json``
        (RAS mm), numbering, source, warnings, seconds, models."""
        return {"vertebrae": self.to_json(), "numbering": self.numbering, "source": self.source,
                "warnings": list(self.warnings), "seconds": dict(self.seconds), "models": list(self.models)}

    @classmethod
    def from_dict(cls, data: dict, labels: Image) -> VertebraResult:
        """Rebuild from :meth:`to_dict` output and the label map (``vertebrae.nii.gz``)."""
        entries = data["vertebrae"]
        return cls({int(e["label"]): lps_to_ras(np.asarray(e["position_ras_mm"], float)) for e in entries},
                   {int(e["label"]): float(e["confidence"]) for e in entries}, labels, list(data.get("warnings", [])),
                   dict(data.get("seconds", {})), list(data.get("models", [])), data.get("numbering"),
                   data.get("source", "networks"))


def get_models(device="cpu", models_dir=None):
    """(detection net, card, identification net, card), loaded once per process, verified."""

    det, det_card = cached_model(DETECTION_MODEL, device, models_dir)
    idn, id_card = cached_model(IDENTIFICATION_MODEL, device, models_dir)
    return det, det_card, idn, id_card


def prepare(image: Image, spacing: float):
    """(canonical HU volume Image, ResampleRecord)."""

    return resample_to_canonical(image, spacing, "linear", default_value=-1000.0)


def detect(hu: np.ndarray, net, device, batch: int = 4, progress: ProgressCallback | None = None,
           cancel: CancelToken | None = None, patch=None, border=None) -> np.ndarray:
    """Vertebra probability (z, y, x) on the canonical grid.

    ``patch``/``border`` default to the paper's 80 x 64 x 64 patches with a 20/16/16 border
    discarded (steps 40 x 32 x 32); the model card's larger inference patch (160 x 128 x 128,
    same border) computes the same network on more context at a fraction of the cost. Patches
    with nothing bone-like in them are not computed (probability 0)."""
    import torch

    patch = tuple(patch or PATCH)
    border = tuple(border or BORDER)
    core = tuple(p - 2 * b for p, b in zip(patch, border, strict=True))
    bone = scale_hu(BONE_HU)

    def predictor(xb: np.ndarray) -> np.ndarray:
        with torch.no_grad(), autocast(device):
            return torch.softmax(net(torch.as_tensor(xb)[:, None].to(device)).float(), 1)[:, 1].cpu().numpy()

    return tile_predict(scale_hu(hu), predictor, core, border, pad_value=-1.0, batch=batch,
                        skip=lambda x: x.max() < bone, progress=progress, cancel=cancel,
                        message="detecting vertebrae")[0]


def identify(hu: np.ndarray, mask: np.ndarray, net, device, batch: int = 8, n_slices: int = 8,
             progress: ProgressCallback | None = None, cancel: CancelToken | None = None,
             offset: float = 0.0) -> np.ndarray:
    """Continuous vertebra index (z, y, x) for the sagittal slices that hold detected voxels
    (0 elsewhere). Slice x is the 4th of its 8-slice input (x-3 .. x+4).

    ``offset`` (levels) is subtracted from the network's output: the model card's
    ``labels.index_offset``, the network's median per-scan offset on phantoms it was not trained
    on (:func:`SpineAILib.vertebrae.train.calibrate_identification`)."""
    import torch

    nz, ny, nx = hu.shape
    out = np.zeros(hu.shape, np.float32)
    xs = np.flatnonzero(mask.any(axis=(0, 1)))
    if not len(xs):
        return out
    before = n_slices // 2 - 1
    vol = scale_hu(hu)
    pad_x = np.pad(vol, ((0, 0), (0, 0), (before, n_slices - before)), constant_values=-1.0)
    ry, rz = -ny % 16, -nz % 16
    with torch.no_grad(), autocast(device):
        for i in range(0, len(xs), batch):
            check_cancel(cancel)
            group = xs[i:i + batch]
            xb = np.stack([pad_x[:, :, x: x + n_slices].transpose(2, 1, 0) for x in group])  # (N, 8, y, z)
            xb = np.pad(xb, ((0, 0), (0, 0), (0, ry), (0, rz)), constant_values=-1.0)
            with warnings.catch_warnings():  # "same" padding of the even 5 x 20 kernel copies the input: intended
                warnings.filterwarnings("ignore", message="Using padding='same' with even kernel")
                pred = net(torch.as_tensor(xb).to(device)).float()[:, 0, :ny, :nz].cpu().numpy()
            for x, pr in zip(group, pred, strict=True):
                out[:, :, x] = pr.T - offset
            if progress:
                progress(min(1.0, (i + len(group)) / len(xs)), "identifying vertebrae")
    return out


def isotonic_increasing(y: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
    """Weighted least-squares non-decreasing fit of ``y`` (pool-adjacent-violators)."""
    y = np.asarray(y, float)
    w = np.ones_like(y) if w is None else np.asarray(w, float)
    blocks: list[list[float]] = []  # [mean, weight, count]
    for yi, wi in zip(y, w, strict=True):
        blocks.append([yi, wi, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            m2, w2, c2 = blocks.pop()
            m1, w1, c1 = blocks.pop()
            blocks.append([(m1 * w1 + m2 * w2) / (w1 + w2), w1 + w2, c1 + c2])
    return np.concatenate([np.full(int(c), m) for m, _, c in blocks]) if blocks else y


def slice_consensus(prob: np.ndarray, index: np.ndarray, threshold: float = 0.5, ordered: bool = False
                    ) -> np.ndarray:
    """Replace each detected voxel's index by its axial slice's consensus: the median index of
    the slice's detected voxels (``ordered``: then made non-decreasing from head to feet by
    isotonic regression over the slices, weighted by their detection probability sums).

    Why: the identification network's per-voxel values have a long tail several vertebrae too
    low at the column's edges (the 10th percentile 3-12 levels below the vertebra while the
    median is within about 0.5), and with per-voxel rounding that tail collects enough votes for
    spurious labels and drags the medians. Each axial slice of the column belongs to one
    vertebra or disc, so its median is a robust vote. The ordered fit skips vertebrae where the
    network's index jumps."""
    mask = prob > threshold
    out = np.zeros(index.shape, np.float32)
    zs = np.flatnonzero(mask.any(axis=(1, 2)))
    if not len(zs):
        return out
    # plain median: a probability-weighted one tips scans whose index is ~0.6 too high
    med = [float(np.median(index[z][mask[z]])) for z in zs]
    weight = [float(prob[z][mask[z]].sum()) for z in zs]
    fitted = np.array(med)
    if ordered:  # array z grows towards the head (canonical LPS grid): head-to-feet = decreasing z
        fitted = isotonic_increasing(fitted[::-1], np.array(weight)[::-1])[::-1]
    for z, val in zip(zs, fitted, strict=True):
        out[z][mask[z]] = val
    return out


FUSION_MODES = ("discs", "slice", "voxel", "ordered")


def fuse(prob: np.ndarray, index: np.ndarray, reference: Image, threshold: float = 0.5,
         min_votes_mm3: float = 3000.0, mode: str = "discs", hu: np.ndarray | None = None,
         details: dict | None = None) -> tuple[dict[int, np.ndarray], dict[int, float], np.ndarray]:
    """(centroids LPS, confidence, voted label map on the canonical grid).

    ``mode`` "discs" (default; needs ``hu``, the canonical CT) splits the detected column at its
    discs into one instance per vertebra and numbers them consecutively, the offset from the
    network's index and, where the field of view shows a rib transition, from the ribs, or from
    C1 where the column's top is C1+C2 (:mod:`SpineAILib.vertebrae.column`; the modes compared
    in docs/history/ct_tasks.md). A vertebra's confidence there is
    the mean detection probability of its voxels times how well its median index fits the
    consecutive run (1 = on it, 0 = half a level or more off). The other modes vote per voxel:

    ``mode`` "voxel" is the paper's per-voxel rounding of detection x identification; "slice"
    first replaces each voxel's index by its axial slice's consensus
    (:func:`slice_consensus`), "ordered" also forces the consensus to run head to feet. Then,
    in every mode, a vertebra's centroid is the median position of its voters, dropped below
    max(``min_votes_mm3``, 0.4 R^3) mm^3 of votes (in mode "discs" kept with
    :data:`NEIGHBOUR_MIN_VOTES_MM3` next to a vertebra of ``min_votes_mm3``).
    A vertebra's confidence is the mean detection probability of its voters times how close the
    network's own index values lie to the label (1 = on it, 0 = half-way to a neighbour or beyond).

    ``details``, if given, receives ``"numbering"``: what in the image fixed the labels in mode
    "discs" (:func:`SpineAILib.vertebrae.column.label_instances`; None: the network alone, and
    always None in the other modes), and ``"disagreement"``: how many levels that anchor moved
    the numbering from the network's own reading (the median over the labelled vertebrae; 0
    without an anchor). From :data:`DISAGREEMENT_LEVELS` on, every confidence is halved.
    """

    if mode not in FUSION_MODES:
        raise ValueError(f"Unknown fusion mode {mode!r}; expected one of {FUSION_MODES}.")
    if mode == "discs":
        if hu is None:
            raise ValueError("Fusion mode 'discs' needs the CT (hu=, on the canonical grid).")
        return fuse_by_discs(prob, index, reference, hu, threshold, min_votes_mm3, details)
    if details is not None:
        details["numbering"] = None
        details["disagreement"] = 0.0
    mask = prob > threshold
    voted_index = index if mode == "voxel" else slice_consensus(prob, index, threshold, ordered=mode == "ordered")
    lab = np.where(mask, np.clip(np.rint(voted_index), 0, 26), 0).astype(np.uint8)
    lab[(lab == 27)] = 0
    voxel_mm3 = float(np.prod(reference.spacing))
    cents, conf = {}, {}
    keep = np.zeros_like(lab)
    for value in (int(v) for v in np.unique(lab) if v):
        if value not in anatomy.VERTEBRAE:
            continue
        sel = lab == value
        votes = int(sel.sum())
        if votes * voxel_mm3 < max(min_votes_mm3, 0.4 * vertebra_radius_mm(value) ** 3):
            continue
        idx = np.argwhere(sel)
        med = np.median(idx, axis=0)[::-1]
        cents[value] = reference.index_to_physical(med)
        closeness = 1.0 - 2.0 * np.abs(index[sel] - value)
        conf[value] = float(np.clip(np.mean(prob[sel]) * np.mean(np.clip(closeness, 0, 1)), 0, 1))
        keep[sel] = value
    return cents, conf, keep


def fuse_by_discs(prob: np.ndarray, index: np.ndarray, reference: Image, hu: np.ndarray, threshold: float = 0.5,
                  min_votes_mm3: float = 3000.0, details: dict | None = None
                  ) -> tuple[dict[int, np.ndarray], dict[int, float], np.ndarray]:
    """:func:`fuse` mode "discs": instances between discs, labelled as one consecutive run
    (numbered from the sacrum where the pelvis is in view, :mod:`SpineAILib.vertebrae.sacrum`;
    their confidence is then the detection probability alone)."""

    # the pelvis below the column numbers it from S1 (real CT); otherwise discs, ribs and C1
    sacral = sacral_instances(hu, prob, index, reference, threshold)
    instances, owner = sacral if sacral is not None else column_instances(hu, prob, index, reference, threshold)
    labels, _, numbering = label_instances(instances, hu, reference)
    # how far the image's anchor moved the numbering from what the network reads (levels): where
    # they disagree, the labels follow the anchor, say so, and are less certain
    gaps = [lab - inst.median_index for inst, lab in zip(instances, labels, strict=True)
            if lab is not None and lab <= anatomy.vertebra_label("L5")]
    disagreement = float(np.median(gaps)) if numbering is not None and gaps else 0.0
    doubt = 0.5 if abs(disagreement) >= DISAGREEMENT_LEVELS else 1.0
    if details is not None:
        details["numbering"] = numbering
        details["disagreement"] = disagreement
    voxel_mm3 = float(np.prod(reference.spacing))
    run = np.array([inst.median_index for inst in instances]) - np.arange(len(instances))
    fit = float(np.median(run)) if len(run) else 0.0
    votes = np.bincount(owner.ravel(), minlength=len(instances) + 1) * voxel_mm3  # per instance, one pass
    full = votes[1:] >= min_votes_mm3
    cents, conf = {}, {}
    value = np.zeros(len(instances) + 1, np.uint8)  # instance number + 1 -> kept label
    for n, (inst, lab) in enumerate(zip(instances, labels, strict=True)):
        if lab is None or lab in cents:
            continue
        r3 = 0.4 * vertebra_radius_mm(lab) ** 3
        if votes[n + 1] < max(min_votes_mm3, r3) and (votes[n + 1] < max(NEIGHBOUR_MIN_VOTES_MM3, r3)
                                                      or not full[max(0, n - 1):n + 2].any()):
            continue
        cents[lab] = inst.centroid
        # numbered from the pelvis, the labels do not come from the network, and its index on
        # real CT is off and compressed (totalseg_example: all but one 0.0 with the fit term):
        # the detection probability alone
        fits = 1.0 if sacral is not None else 1.0 - 2.0 * abs(inst.median_index - n - fit)
        conf[lab] = float(np.clip(inst.probability * fits * doubt, 0.0, 1.0))
        value[n + 1] = lab
    return cents, conf, value[owner]


def order_warnings(centroids: dict[int, np.ndarray]) -> list[str]:
    """Warn when the labels do not run head to feet along the column (LPS z decreasing)."""
    labs = [lab for lab in anatomy.ORDER if lab in centroids]
    z = [centroids[lab][2] for lab in labs]
    bad = [f"{anatomy.vertebra_name(a)}/{anatomy.vertebra_name(b)}" for a, b, za, zb
           in zip(labs, labs[1:], z, z[1:], strict=False) if zb >= za]
    if bad:
        return [f"Vertebra order is not head to feet for {', '.join(bad)}: check these labels."]
    return []


def networks_agree(column: Column | None, centroids: dict[int, np.ndarray], radius_mm: float = 15.0,
                   min_near: float = 0.7, min_found: float = 0.5, margin_mm: float = 15.0) -> bool:
    """Whether the networks' vertebrae are the column's, where the column was traced: of their
    centroids within the canal path's extent (``margin_mm`` beyond its ends included), at least
    ``min_near`` lie within ``radius_mm`` of a body the path found, and there are at least 3 of
    them or ``min_found`` of its pieces (phantoms: they agree; real CT: the networks' detections
    in the heart or the vessels beside the column, or none at all, do not). Centroids beyond the
    path's ends are not judged (the canal may be lost where the networks still see vertebrae).
    True without a column of at least two pieces (nothing to check against)."""
    if column is None or len(column.pieces) < 2:
        return True
    if not centroids:
        return False
    path = column.path
    inside = []
    for c in centroids.values():
        k = int(np.argmin(np.linalg.norm(path.points - c, axis=1)))
        beyond = 0.0
        if k == 0:
            beyond = float(np.dot(path.points[0] - c, path.tangent[0]))
        elif k == len(path.points) - 1:
            beyond = float(np.dot(c - path.points[-1], path.tangent[-1]))
        if beyond <= margin_mm:
            inside.append(c)
    if not inside:
        return True  # nothing where the canal was traced to judge by
    bodies = np.array([p.centre for p in column.pieces])
    near = [float(np.min(np.linalg.norm(bodies - c, axis=1))) <= radius_mm for c in inside]
    return float(np.mean(near)) >= min_near and len(inside) >= min(3.0, min_found * len(column.pieces))


ANCHOR_WORDS = {"C1": "the skull above C1", "ribs": "the ribs", "S1": "the pelvis at S1", "L5": "the pelvis below L5"}
NETWORK_DISAGREEMENT = ("The image ({by}) numbers the vertebrae {levels:+.1f} levels from what the identification "
                        "network reads; the labels follow the image, but the two disagree (the confidences are "
                        "halved): check them.")
SPACING_ONLY_WARNING = ("Nothing in view fixed the numbering (no skull above the column, no ribs, no pelvis): the "
                        "labels come from the vertebrae's spacing and size alone and may be several levels off; check "
                        "them.")
UNCERTAIN_WARNING = ("{the_labels} of {names} {are} uncertain (another numbering, usually one level up or down, is "
                     "nearly as likely); check {them}.")
UNCERTAIN_MARGIN = 1.5  # log-likelihood between a label's best numbering and the best with another label


def uncertain_warning(labels: list[int | None], margins: list[float], margin: float = UNCERTAIN_MARGIN) -> str | None:
    """The warning naming the vertebrae (head to feet) whose label's margin is under ``margin``
    (pieces labelled None are dropped, not named), or None when every label is clear."""
    doubtful = {lab for lab, m in zip(labels, margins, strict=True) if lab is not None and m < margin}
    if not doubtful:
        return None
    names = [anatomy.vertebra_name(v) for v in anatomy.ORDER if v in doubtful]
    one = len(names) == 1
    return UNCERTAIN_WARNING.format(the_labels="The label" if one else "The labels", names=", ".join(names),
                                    are="is" if one else "are", them="it" if one else "them")


def network_segments(column: Column, hu: np.ndarray, reference: Image, centroids: dict[int, np.ndarray],
                     fallback: np.ndarray, radius_mm: float = 15.0) -> np.ndarray:
    """Label map of the column's bone (:func:`SpineAILib.ctcolumn.canal.column_segments`) with
    each piece given the label of the networks' centroid within ``radius_mm`` of its body (one
    piece per label); ``fallback`` (the networks' own map) where fewer than two pieces match."""
    pieces = column.pieces
    if len(pieces) < 2 or not centroids:
        return fallback
    bodies = np.array([p.centre for p in pieces])
    labels: list[int | None] = [None] * len(pieces)
    for lab, c in sorted(centroids.items(), key=lambda kv: anatomy.ORDER.index(kv[0])):
        d = np.linalg.norm(bodies - c, axis=1)
        i = int(np.argmin(d))
        if d[i] <= radius_mm and labels[i] is None:
            labels[i] = lab
    if sum(v is not None for v in labels) < 2:
        return fallback
    return column_segments(hu, reference, column.path, pieces, labels)


def labels_disagree(numbering: Numbering, centroids: dict[int, np.ndarray], radius_mm: float = 15.0) -> bool:
    """Whether most of the networks' vertebrae that lie on one of the column's numbered bodies
    (within ``radius_mm``) carry another label than the column's numbering gives it."""
    bodies = [(p.centre, lab) for p, lab in zip(numbering.pieces, numbering.labels, strict=True) if lab is not None]
    if not bodies:
        return False
    pos = np.array([b[0] for b in bodies])
    pairs = []
    for lab, c in centroids.items():
        d = np.linalg.norm(pos - c, axis=1)
        if float(d.min()) <= radius_mm:
            pairs.append(bodies[int(np.argmin(d))][1] != lab)
    return bool(pairs) and float(np.mean(pairs)) > 0.5


def fuse_column(column: Column, hu: np.ndarray, reference: Image, index: np.ndarray, details: dict | None = None,
                numbering: Numbering | None = None
                ) -> tuple[dict[int, np.ndarray], dict[int, float], np.ndarray, list[str]]:
    """Centroids, confidences, label map and warnings from the column the canal path found
    (:mod:`SpineAILib.ctcolumn.canal`), numbered from the image's evidence
    (:mod:`SpineAILib.vertebrae.evidence`). The confidence of a label is the logistic of its
    margin (the log-likelihood it leads the next numbering by), halved where the identification
    network's index reads the column ``DISAGREEMENT_LEVELS`` or more levels differently."""
    numbering = numbering if numbering is not None else number_column(hu, reference, column)
    warnings: list[str] = []
    by = "+".join(numbering.anchors) or None
    # the network's reading of each labelled body: its index near the centre
    gaps = []
    for p, lab in zip(numbering.pieces, numbering.labels, strict=True):
        if lab is None or lab > anatomy.vertebra_label("L5"):
            continue
        i = np.round(reference.physical_to_index(p.centre)).astype(int)[::-1]
        lo, hi = np.maximum(i - 2, 0), np.minimum(i + 3, index.shape)
        win = index[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
        win = win[win > 0.5]
        if win.size:
            gaps.append(lab - float(np.median(win)))
    disagreement = float(np.median(gaps)) if gaps else 0.0
    doubt = 0.5 if abs(disagreement) >= DISAGREEMENT_LEVELS and by is not None else 1.0
    cents, conf = {}, {}
    for p, lab, m in zip(numbering.pieces, numbering.labels, numbering.margins, strict=True):
        if lab is None or lab in cents:
            continue
        cents[lab] = p.centre
        conf[lab] = float(doubt / (1.0 + np.exp(-min(m, 50.0))))
    if cents and by is None:
        warnings.append(SPACING_ONLY_WARNING)
    elif cents and doubt < 1.0:
        warnings.append(NETWORK_DISAGREEMENT.format(levels=disagreement,
                                                    by=", ".join(ANCHOR_WORDS[a] for a in numbering.anchors)))
    doubt_warning = uncertain_warning(numbering.labels, numbering.margins)
    if cents and by is not None and doubt_warning:
        warnings.append(doubt_warning)
    warnings += numbering.notes if by is not None else []
    voted = column_segments(hu, reference, column.path, numbering.pieces, numbering.labels)
    if details is not None:
        details["numbering"] = by
        details["disagreement"] = disagreement
    return cents, conf, voted, warnings


def locate(image: Image | str | os.PathLike, device: str = "auto", models_dir=None,
           progress: ProgressCallback | None = None, cancel: CancelToken | None = None,
           inference_patch: tuple[int, int, int] | None = None, fusion: str = "discs") -> VertebraResult:
    """Find and label the vertebrae of a CT volume (HU).

    ``fusion`` picks how detection and identification are combined (:func:`fuse`): "discs"
    (default: instances between the discs, numbered consecutively, ribs as anchor), "slice"
    (axial-slice consensus), "voxel" (the paper's per-voxel rounding) or "ordered".

    Returns the centroid (LPS mm, VerSe label, confidence) of every vertebra found and the
    vertebra segments as a label map on the input's grid. A CT without a visible spine gives an
    empty result with a warning, not an error.
    """

    t0 = time.perf_counter()
    if fusion not in FUSION_MODES:  # before the minutes of network work, not after
        raise ValueError(f"Unknown fusion mode {fusion!r}; expected one of {FUSION_MODES}.")
    if not isinstance(image, Image):
        image = read_image(image)
    img = check_image(image, TASK, ndim=3, min_size=2)
    warnings = []
    hu_range = float(np.percentile(img.array, 99.9)) - float(img.array.min())
    if float(img.array.min()) > -200 or hu_range < 300:
        warnings.append(f"Intensities {float(img.array.min()):.0f}..{float(img.array.max()):.0f} do not look like CT "
                        "Hounsfield units (air about -1000, bone above 200); results may be wrong.")
    dev = resolve_device(device)
    det, det_card, idn, id_card = get_models(dev, models_dir)
    spacing = float(det_card.input.get("spacing_mm", 2.0))
    seconds = {}
    t = time.perf_counter()
    canon, record = prepare(img, spacing)
    seconds["prepare"] = time.perf_counter() - t
    column = None
    if fusion == "discs":  # only this fusion is checked against the column
        t = time.perf_counter()
        column = find_column(canon.array, canon)  # the canal and the bodies in front of it, from the image alone
        seconds["column"] = time.perf_counter() - t
    if progress:
        progress(0.05, "resampled")
    t = time.perf_counter()
    prob = detect(canon.array, det, dev, progress=SubProgress(progress, 0.05, 0.7), cancel=cancel,
                  patch=inference_patch or det_card.input.get("inference_patch_zyx"))
    seconds["detection"] = time.perf_counter() - t
    t = time.perf_counter()
    index = identify(canon.array, prob > 0.5, idn, dev, progress=SubProgress(progress, 0.7, 0.9), cancel=cancel,
                     offset=float(id_card.labels.get("index_offset", 0.0)))
    seconds["identification"] = time.perf_counter() - t
    t = time.perf_counter()
    details: dict = {}
    cents, conf, voted = fuse(prob, index, canon, mode=fusion, hu=canon.array, details=details)
    seconds["fusion"] = time.perf_counter() - t
    column_warnings = None
    if column is not None:
        t = time.perf_counter()
        numbering = number_column(canon.array, canon, column)
        # the column's bodies, numbered from the image, where the networks' vertebrae are not the
        # column the canal shows, or where they are but the skull or the pelvis in view numbers
        # them otherwise (real CT; on phantoms the networks agree and no skull or pelvis is seen)
        if not networks_agree(column, cents) or (
                {"C1", "S1"} & set(numbering.anchors) and labels_disagree(numbering, cents)):
            cents, conf, voted, column_warnings = fuse_column(column, canon.array, canon, index, details, numbering)
        else:
            # the networks' labels on the column's bodies: the segments follow the vertebrae's
            # bone, cut at the disc planes, not discs of nominal radius around the centroids
            voted = network_segments(column, canon.array, canon, cents, voted)
        seconds["numbering"] = time.perf_counter() - t
    labels = record.restore(canon.with_array(voted), "nearest")
    labels = labels.with_array(labels.array.astype(np.uint8))
    if not cents:
        warnings.append("No vertebrae found: the field of view shows no vertebral column the model recognises "
                        "(too small, no spine, or not a CT).")
    elif column_warnings is not None:
        warnings += column_warnings
    elif details["numbering"] is None:
        warnings.append(NO_LANDMARK_WARNING)
    elif abs(details.get("disagreement", 0.0)) >= DISAGREEMENT_LEVELS:
        where = {"ribs": "rib pattern", "C1": "C1 at the top", "S1": "sacrum", "L5": "pelvis below L5"}
        warnings.append(f"The {where.get(details['numbering'], details['numbering'])} in view numbers the vertebrae "
                        f"{details['disagreement']:+.1f} levels from what the identification network reads: the labels "
                        "follow the image, but the two disagree (the confidences are halved); check them.")
    warnings += order_warnings(cents)
    seconds["total"] = time.perf_counter() - t0
    if progress:
        progress(1.0, f"{len(cents)} vertebrae")
    models = [det_card.name, id_card.name] + (["vertebra_levels"] if column_warnings is not None else [])
    return VertebraResult(cents, conf, labels, warnings, {k: round(v, 3) for k, v in seconds.items()}, models,
                          details["numbering"], "column" if column_warnings is not None else "networks")


def segments_from_centroids(reference: Image, centroids_lps: dict[int, np.ndarray]) -> Image:
    """Vertebra segments (label map on ``reference``'s grid) from centroids alone, e.g. after the
    user corrected a label or moved a point: the sparse-to-dense discs around the column."""

    if len(centroids_lps) < 2:
        raise InputError("Vertebra segments need at least two labelled centroids.")
    return sparse_to_dense(reference, centroids_lps)


def shift_labels(centroids: dict[int, np.ndarray], old: int, new: int) -> dict[int, np.ndarray]:
    """Relabel the whole column so that vertebra ``old`` becomes ``new`` (the common correction:
    the count is off by one). Labels keep their anatomical order; T13/L6 are stepped over."""

    order = [v for v in anatomy.ORDER if v not in (28, 25)]
    if old not in order or new not in order:
        raise InputError(f"Relabelling needs standard vertebrae (C1..L5, S1); got {old} -> {new}.")
    offset = order.index(new) - order.index(old)
    out = {}
    for lab, p in centroids.items():
        pos = order.index(lab) + offset if lab in order else -1
        if not 0 <= pos < len(order):
            raise InputError(f"Shifting {anatomy.vertebra_name(old)} to {anatomy.vertebra_name(new)} moves "
                             f"{anatomy.vertebra_name(lab)} beyond C1..S1.")
        out[order[pos]] = np.asarray(p, float)
    return out
