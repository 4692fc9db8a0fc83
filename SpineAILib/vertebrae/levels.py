"""Numbering a column from evidence: which levels a run of vertebrae (head to feet) carries.

The vertebrae found along a column are numbered jointly (a hidden Markov chain over the levels
C1..L5, S1 and "sacrum below S1"), from

* **spacing**: the distance between consecutive body centres grows from about 15 mm in the neck
  to 35-40 mm in the lumbar spine, in a pattern that real spines share up to a per-patient scale.
  :class:`LevelModel` holds that pattern (log-distance mean and spread per pair of neighbouring
  levels, and the spread of the per-patient scale), fitted on the body centres of 1947 real
  spine CTs (``ct/vid_keypoints``, :func:`fit_level_model`);
* **evidence per vertebra** (a log-likelihood per level, from the caller): in CT, a rib beside
  it (T1-T12), the pelvis joined to it (S1), the skull right above the column (C1); for a
  keypoint detector, its own C/T/L class probabilities;
* **gaps**: a vertebra the detector missed between two found ones costs ``skip_cost``; a
  found point may be no vertebra at all (``false_cost``, :func:`assign_levels`).

:func:`assign_levels` returns the labels of the best chain, its log-likelihood and the margin to
the best chain that numbers the column differently (a small margin = an uncertain numbering).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from SpineAILib import anatomy
from SpineAILib.errors import InputError

LEVEL_NAMES: list[str] = [*(f"C{i}" for i in range(1, 8)), *(f"T{i}" for i in range(1, 13)),
                          *(f"L{i}" for i in range(1, 6)), "S1"]
LEVELS: list[int] = [anatomy.vertebra_label(n) for n in LEVEL_NAMES]
BELOW_S1 = len(LEVELS)  # state index of a piece of the sacrum below S1 (dropped from the output)
N_STATES = len(LEVELS) + 1
SPACING_NOISE = 0.1
# nominal centre-to-centre distances (mm) where a data set has none (C1-C2, L5-S1), used only to
# fill those two gaps of the fitted model
NOMINAL_GAP_MM = {"C1": 14.0, "L5": 36.0}


def huber(z: np.ndarray, k: float = 1.5) -> np.ndarray:
    """Huber loss of a standardised residual ``z`` (>= 0): 0.5 z^2 up to ``k``, linear beyond,
    so one far-off measurement cannot outweigh the rest of the column."""
    z = np.abs(np.asarray(z, float))
    return np.where(z < k, 0.5 * z ** 2, k * z - 0.5 * k * k)


def level_index(name: str) -> int:
    """Position of a level name (C1..L5, S1) in :data:`LEVEL_NAMES`; L6 and T13 have none."""
    if name not in LEVEL_NAMES:
        raise InputError(f"Level {name!r} is not one of {', '.join(LEVEL_NAMES)}.")
    return LEVEL_NAMES.index(name)


@dataclass
class LevelModel:
    """Log of the distance (mm) between the body centres of level i and i + 1 (index into
    :data:`LEVEL_NAMES`): mean ``log_gap`` and spread ``log_sd`` per pair once each spine's own
    scale is taken out, and the spread of that scale (``scale_sd``, log units)."""

    log_gap: np.ndarray
    log_sd: np.ndarray
    scale_sd: float
    source: dict = field(default_factory=dict)


MODEL_NAME = "vertebra_levels"


def save_level_model(model: LevelModel, path: str | os.PathLike) -> None:
    """Write the model's arrays (the card's weights file, ``.npz``)."""
    with open(path, "wb") as f:  # a file object: np.savez would append .npz to a path
        np.savez(f, log_gap=model.log_gap, log_sd=model.log_sd, scale_sd=np.array(model.scale_sd))


_CACHE: dict[str, LevelModel] = {}


def load_level_model(models_dir: str | os.PathLike | None = None) -> LevelModel:
    """The level model of the card ``vertebra_levels`` in ``models_dir`` (default: the shipped
    models), its weights file verified by sha256 like every model's."""
    from SpineAILib.models.registry import load_card, verify_weights

    card = load_card(MODEL_NAME, models_dir)
    key = f"{card.path}:{card.sha256}"
    if key not in _CACHE:
        weights = verify_weights(card)
        with np.load(weights) as z:
            _CACHE[key] = LevelModel(np.asarray(z["log_gap"], float), np.asarray(z["log_sd"], float),
                                     float(z["scale_sd"]), dict(card.training))
        if len(_CACHE[key].log_gap) != len(LEVEL_NAMES) - 1:
            raise InputError(f"Level model {weights} holds {len(_CACHE[key].log_gap)} gaps; expected "
                             f"{len(LEVEL_NAMES) - 1} (C1..S1).")
    return _CACHE[key]


# ---------------------------------------------------------------------------------------------
# the keypoint data set (ct/vid_keypoints)


@dataclass
class KeypointScan:
    """One scan of the keypoint set: body centres (N, 3, mm), their level names (None where a
    detection has none) and C/T/L class probabilities (N, 3; NaN where not given)."""

    name: str
    bodies: np.ndarray
    levels: list[str | None]
    segment_probs: np.ndarray


def read_keypoint_scan(path: str | os.PathLike) -> KeypointScan:
    """One JSON file of ``ct/vid_keypoints``: the body keypoints only (pedicles are ignored)."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    pts, levels, probs = [], [], []
    for item in data:
        kind = item.get("type", {})
        if kind.get("keypoint_type") != "body":
            continue
        pts.append(item["coordinates"]["world_space"])
        levels.append(kind.get("spine_level"))
        p = kind.get("spine_segment_probabilities")
        probs.append(p if p is not None and len(p) == 3 else [np.nan] * 3)
    return KeypointScan(Path(path).stem, np.asarray(pts, float).reshape(-1, 3), levels,
                        np.asarray(probs, float).reshape(-1, 3))


def keypoint_scans(folder: str | os.PathLike) -> list[KeypointScan]:
    files = sorted(Path(folder).glob("*.json"))
    if not files:
        raise InputError(f"No keypoint JSON files in {folder}.")
    return [read_keypoint_scan(f) for f in files]


def _gaps(scan: KeypointScan) -> dict[int, float]:
    """{i: distance (mm) between the bodies of level i and i + 1} of a reference scan."""
    where = {level_index(n): k for k, n in enumerate(scan.levels) if n in LEVEL_NAMES}
    return {i: float(np.linalg.norm(scan.bodies[where[i + 1]] - scan.bodies[where[i]]))
            for i in where if i + 1 in where}


def fit_level_model(scans: list[KeypointScan], iterations: int = 5) -> LevelModel:
    """Per pair of neighbouring levels, the mean and spread of the log distance once each scan's
    scale (the median of its log distances' deviations from the means) is removed; gaps no scan
    shows (C1-C2, L5-S1 without a sacrum) get the nominal distance scaled like their neighbour
    and the largest spread seen."""
    per_scan = [g for g in (_gaps(s) for s in scans) if g]
    n = len(LEVEL_NAMES) - 1
    logs = [{i: np.log(d) for i, d in g.items() if d > 0} for g in per_scan]
    mean = np.full(n, np.nan)
    for i in range(n):
        v = [g[i] for g in logs if i in g]
        if v:
            mean[i] = float(np.median(v))
    scales = np.zeros(len(logs))
    for _ in range(iterations):
        scales = np.array([np.median([v - mean[i] for i, v in g.items()]) for g in logs])
        for i in range(n):
            v = [g[i] - s for g, s in zip(logs, scales, strict=True) if i in g]
            if v:
                mean[i] = float(np.mean(v))
    sd = np.full(n, np.nan)
    counts = np.zeros(n, int)
    for i in range(n):
        v = np.array([g[i] - s - mean[i] for g, s in zip(logs, scales, strict=True) if i in g])
        counts[i] = len(v)
        if len(v) >= 5:
            sd[i] = float(np.sqrt(np.mean(v ** 2)))
    widest = float(np.nanmax(sd)) if np.isfinite(sd).any() else 0.1
    for name, nominal in NOMINAL_GAP_MM.items():
        i = level_index(name)
        if counts[i] < 5:
            mean[i] = np.log(nominal)
            sd[i] = widest
    for i in range(n):  # a gap too rarely seen: interpolate from the neighbours
        if not np.isfinite(mean[i]) or not np.isfinite(sd[i]):
            ok = np.flatnonzero(np.isfinite(mean) & np.isfinite(sd))
            mean[i] = float(np.interp(i, ok, mean[ok]))
            sd[i] = widest
    return LevelModel(mean, np.maximum(sd, 0.03), float(np.std(scales)),
                      {"scans": len(per_scan), "gaps_seen": {LEVEL_NAMES[i]: int(c) for i, c in enumerate(counts)}})


# ---------------------------------------------------------------------------------------------
# assignment


@dataclass
class Assignment:
    """Labels (VerSe; None = dropped as no vertebra, or a piece of the sacrum below S1) per input
    point, the chain's log-likelihood, each point's margin (its best chain's score minus the
    best score of any chain giving it another level; ``inf`` where no other is possible) and the
    spine's scale chosen (1 = the model's mean spine)."""

    labels: list[int | None]
    score: float
    margins: list[float]
    scale: float

    @property
    def margin(self) -> float:
        """The smallest margin of a labelled point: how sure the numbering as a whole is."""
        kept = [m for m, lab in zip(self.margins, self.labels, strict=True) if lab is not None]
        return float(min(kept)) if kept else 0.0


def _transitions(model: LevelModel, log_scale: float, max_skip: int, skip_cost: float
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(expected log distance, spread, fixed cost) between states a -> b, (S, S) each; the cost
    is -inf where b cannot follow a."""
    s = N_STATES
    cum = np.concatenate([[0.0], np.cumsum(np.exp(model.log_gap + log_scale))])
    expected = np.zeros((s, s))
    spread = np.ones((s, s))
    cost = np.full((s, s), -np.inf)
    for a in range(len(LEVELS)):
        for b in range(a + 1, min(a + 2 + max_skip, len(LEVELS))):
            expected[a, b] = np.log(cum[b] - cum[a])
            spread[a, b] = float(np.sqrt(np.mean(model.log_sd[a:b] ** 2)))
            cost[a, b] = -skip_cost * (b - a - 1) - np.log(spread[a, b])
    cost[len(LEVELS) - 1, BELOW_S1] = 0.0  # S1 -> a piece of the sacrum below it
    cost[BELOW_S1, BELOW_S1] = 0.0
    return expected, spread, cost


def _pair_scores(points: np.ndarray, model: LevelModel, log_scale: float, max_skip: int, skip_cost: float,
                 false_cost: float, noise: float = SPACING_NOISE) -> np.ndarray:
    """(N, N, S, S): score of keeping points i < j as consecutive kept points in states a, b
    (spacing, skips, the points between them dropped). The spacing term is a Huber loss (quadratic
    to 1.5 spreads, linear beyond) on the log distance, its spread the model's widened by
    ``noise`` (log units, added in quadrature): detected centres sit a few mm off the bodies'
    and one off by half a body must not outweigh the rest of the column."""
    n = len(points)
    expected, spread, cost = _transitions(model, log_scale, max_skip, skip_cost)
    spacing = np.isfinite(cost) & (expected != 0)
    out = np.full((n, n, N_STATES, N_STATES), -np.inf)
    for i in range(n):
        for j in range(i + 1, n):
            d = max(float(np.linalg.norm(points[j] - points[i])), 1e-3)
            z = np.abs(np.log(d) - expected) / np.sqrt(spread ** 2 + noise ** 2)
            term = np.where(spacing, -huber(z), 0.0)
            out[i, j] = cost + term - false_cost * (j - i - 1)
    return out


def _max_marginals(emission: np.ndarray, pairs: np.ndarray, prior: float, false_cost: float
                   ) -> tuple[np.ndarray, np.ndarray]:
    """The best score of a chain through point j in state b, (N, S), and of a chain that drops
    point j, (N,): max-product forward and backward over the kept points."""
    n, s = emission.shape
    head = -false_cost * np.arange(n)  # points before the first kept one are dropped
    tail = -false_cost * (n - 1 - np.arange(n))
    fwd = emission + head[:, None] + prior
    for j in range(n):
        for i in range(j):
            fwd[j] = np.maximum(fwd[j], (fwd[i][:, None] + pairs[i, j]).max(axis=0) + emission[j])
    bwd = np.repeat(tail[:, None], s, axis=1).astype(float)
    for i in range(n - 1, -1, -1):
        for j in range(i + 1, n):
            bwd[i] = np.maximum(bwd[i], (pairs[i, j] + (emission[j] + bwd[j])[None, :]).max(axis=1))
    starts = (emission + head[:, None] + prior + bwd).max(axis=1)  # chains whose first kept point is k
    ends = (fwd + tail[:, None]).max(axis=1)  # chains whose last kept point is i
    dropped = np.full(n, -np.inf)
    for j in range(n):
        best = max(starts[j + 1:].max(initial=-np.inf), ends[:j].max(initial=-np.inf))
        for i in range(j):
            for k in range(j + 1, n):
                best = max(best, float((fwd[i][:, None] + pairs[i, k] + (emission[k] + bwd[k])[None, :]).max()))
        dropped[j] = best
    return fwd + bwd, dropped


def assign_levels(points: np.ndarray, emission: np.ndarray | None = None, model: LevelModel | None = None,
                  skip_cost: float = 4.0, false_cost: float = 6.0, max_skip: int = 1,
                  scales: np.ndarray | None = None) -> Assignment:
    """Levels of ``points`` (N, 3, mm; body centres ordered head to feet) by the best chain.

    ``emission`` (N, :data:`N_STATES`): log-likelihood of each point at each level (the last
    column: a piece of the sacrum below S1); zeros where nothing but spacing is known. A chain
    runs head to feet through increasing levels: consecutive kept points one level apart (or up
    to ``max_skip`` more, each skip costing ``skip_cost``: a vertebra not found), a point may be
    dropped as no vertebra (``false_cost``), and the distance between kept points scores against
    the model's gap at the spine's scale (searched over ``scales``, log units, with the model's
    prior on it). Each point gets the state of its best max-marginal; its margin is how much
    better that is than its second-best state or being dropped."""
    pts = np.asarray(points, float).reshape(-1, 3)
    n = len(pts)
    if n == 0:
        return Assignment([], 0.0, [], 1.0)
    model = model or load_level_model()
    em = np.zeros((n, N_STATES)) if emission is None else np.asarray(emission, float)
    if em.shape != (n, N_STATES):
        raise InputError(f"Emission must be ({n}, {N_STATES}); got {em.shape}.")
    grid = np.linspace(-0.3, 0.3, 13) if scales is None else np.asarray(scales, float)
    best_mm, best_drop, best_scale, best_score = None, None, 0.0, -np.inf
    for ls in grid:
        prior = -0.5 * (float(ls) / max(model.scale_sd, 1e-3)) ** 2
        pairs = _pair_scores(pts, model, float(ls), max_skip, skip_cost, false_cost)
        mm, drop = _max_marginals(em, pairs, prior, false_cost)
        best_mm = mm if best_mm is None else np.maximum(best_mm, mm)
        best_drop = drop if best_drop is None else np.maximum(best_drop, drop)
        if float(mm.max()) > best_score:
            best_score, best_scale = float(mm.max()), float(ls)
    labels: list[int | None] = []
    margins: list[float] = []
    for j in range(n):
        order = np.argsort(best_mm[j])[::-1]
        state, kept = int(order[0]), float(best_mm[j, order[0]])
        if best_drop[j] > kept:
            labels.append(None)
            margins.append(float(best_drop[j] - kept))
            continue
        other = max(float(best_mm[j, order[1]]), float(best_drop[j]))
        labels.append(LEVELS[state] if state < len(LEVELS) else None)
        margins.append(kept - other if np.isfinite(other) else float("inf"))
    return Assignment(labels, best_score, margins, float(np.exp(best_scale)))


# ---------------------------------------------------------------------------------------------
# fitting and evaluation on the keypoint set:
#     python -m SpineAILib.vertebrae.levels --data $SPINEAI_DATA/ct/vid_keypoints [--write]

SEGMENT_OF = {**{i: 0 for i in range(7)}, **{i: 1 for i in range(7, 19)}, **{i: 2 for i in range(19, N_STATES)}}


def head_first(points: np.ndarray) -> np.ndarray:
    """Indices ordering points head to feet: along their principal axis, the end with the higher
    z (towards the head in LPS and RAS alike) first."""
    pts = np.asarray(points, float)
    if len(pts) < 2:
        return np.arange(len(pts))
    centred = pts - pts.mean(axis=0)
    axis = np.linalg.svd(centred, full_matrices=False)[2][0]
    if axis[2] < 0:
        axis = -axis
    return np.argsort(-(centred @ axis), kind="stable")


def segment_emission(probs: np.ndarray, weight: float = 2.0, floor: float = 0.02) -> np.ndarray:
    """Log-likelihood per state from a detector's C/T/L probabilities (N, 3); NaN rows give 0."""
    p = np.nan_to_num(np.asarray(probs, float), nan=1.0 / 3.0)
    em = np.zeros((len(p), N_STATES))
    for state, seg in SEGMENT_OF.items():
        em[:, state] = weight * np.log(np.clip(p[:, seg], floor, 1.0))
    return em


def identification(pred: np.ndarray, labels: list[int | None], gt: np.ndarray, gt_levels: list[str | None],
                   radius_mm: float = 20.0) -> tuple[int, int]:
    """(identified, total) reference vertebrae of one scan: a reference body (with a level of
    C1..L5, S1) is identified when a prediction with its label lies within ``radius_mm`` and is
    closer to it than to any other reference body."""
    ref = [(k, anatomy.vertebra_label(n)) for k, n in enumerate(gt_levels) if n in LEVEL_NAMES]
    all_gt = np.asarray(gt, float).reshape(-1, 3)
    hit = 0
    for k, lab in ref:
        for p, plab in zip(pred, labels, strict=True):
            if plab != lab:
                continue
            d = np.linalg.norm(all_gt - p, axis=1)
            if d[k] <= radius_mm and int(np.argmin(d)) == k:
                hit += 1
                break
    return hit, len(ref)


def evaluate_keypoints(model: LevelModel, truth: list[KeypointScan], predicted: list[KeypointScan],
                       use_spacing: bool = True, use_segments: bool = True, log=None) -> dict:
    """Identification rate of :func:`assign_levels` on the detector's keypoints of each scan
    (``predicted``), scored against the reference keypoints (``truth``, same names)."""
    by_name = {s.name: s for s in truth}
    hits = total = 0
    per_scan = []
    for scan in predicted:
        ref = by_name.get(scan.name)
        if ref is None or not len(scan.bodies):
            continue
        order = head_first(scan.bodies)
        pts = scan.bodies[order]
        em = segment_emission(scan.segment_probs[order]) if use_segments else np.zeros((len(pts), N_STATES))
        if use_spacing:
            result = assign_levels(pts, em, model)
            labels = result.labels
        else:  # the detector's classes alone, numbered by the best consecutive offset
            labels = _offset_only(em)
        h, t = identification(pts, labels, ref.bodies, ref.levels)
        hits, total = hits + h, total + t
        per_scan.append({"scan": scan.name, "identified": h, "vertebrae": t})
        if log:
            log(f"{scan.name}: {h}/{t}")
    return {"identified": hits, "vertebrae": total, "id_rate": hits / total if total else float("nan"),
            "scans": len(per_scan), "all_correct_scans": sum(r["identified"] == r["vertebrae"] for r in per_scan),
            "per_scan": per_scan}


def _offset_only(emission: np.ndarray) -> list[int | None]:
    """Consecutive labels (head to feet) with the offset that best fits the emission alone."""
    n = len(emission)
    best, best_off = -np.inf, 0
    for off in range(0, len(LEVELS) - n + 1):
        s = float(sum(emission[k, off + k] for k in range(n)))
        if s > best:
            best, best_off = s, off
    return [LEVELS[best_off + k] if best_off + k < len(LEVELS) else None for k in range(n)]


def main(argv=None) -> int:
    import argparse
    import datetime
    import subprocess

    p = argparse.ArgumentParser(prog="python -m SpineAILib.vertebrae.levels", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=os.path.join(os.environ.get("SPINEAI_DATA", "../shared/data"), "ct",
                                                  "vid_keypoints"), help="the vid_keypoints folder")
    p.add_argument("--write", action="store_true", help="write Resources/Models/vertebra_levels.json")
    p.add_argument("--output", default=None, help="where to write the model (default: the shipped one)")
    p.add_argument("--limit", type=int, default=0, help="evaluate on the first N validation scans only")
    a = p.parse_args(argv)
    root = Path(a.data)
    try:
        train = keypoint_scans(root / "KeypointGroundTruthNoSacrum" / "Training")
    except InputError as exc:
        p.error(f"{exc} Expected the vid_keypoints folder (KeypointGroundTruthNoSacrum/, "
                "KeypointPredictionsNoSacrum/), e.g. $SPINEAI_DATA/ct/vid_keypoints.")
    model = fit_level_model(train)
    gaps = {n: round(float(np.exp(v)), 2) for n, v in zip(LEVEL_NAMES, model.log_gap, strict=False)}
    print("gap (mm) per level:", gaps)
    truth = keypoint_scans(root / "KeypointGroundTruthNoSacrum" / "Validation")
    pred = keypoint_scans(root / "KeypointPredictionsNoSacrum" / "Validation")
    if a.limit:
        pred = pred[:a.limit]
    metrics = {}
    for key, spacing, segments in (("spacing+classes", True, True), ("spacing only", True, False),
                                   ("classes only", False, True)):
        r = evaluate_keypoints(model, truth, pred, spacing, segments)
        metrics[key] = {k: v for k, v in r.items() if k != "per_scan"}
        print(f"{key}: {r['identified']}/{r['vertebrae']} = {100 * r['id_rate']:.1f} % of the validation "
              f"vertebrae identified; {r['all_correct_scans']}/{r['scans']} scans entirely right")
    if a.write:
        try:
            commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                    cwd=Path(__file__).resolve().parent, check=False).stdout.strip()
        except OSError:
            commit = ""
        from SpineAILib.models import ModelCard, default_models_dir, write_card

        out = Path(a.output) if a.output else default_models_dir()
        out.mkdir(parents=True, exist_ok=True)
        save_level_model(model, out / f"{MODEL_NAME}.npz")
        card = ModelCard(
            name=MODEL_NAME, task="vertebrae", architecture="level spacing chain (hidden Markov model)",
            weights=f"{MODEL_NAME}.npz", sha256="",
            description="Distance between neighbouring vertebral body centres per level (log mean and spread "
                        "once each spine's scale is taken out), for numbering a column from its spacing and "
                        "the evidence at each vertebra.",
            training={"data": "ct/vid_keypoints KeypointGroundTruthNoSacrum/Training (1947 real spine CTs: VerSe, "
                              "CT Colonography, Pancreas-CT; Buergin et al., MICCAI 2023, CC BY-SA 4.0)",
                      "split": "the data set's own Training/Validation split", "seed": None,
                      "gap_mm": gaps,
                      **model.source},
            metrics={"validation": metrics, "validation_scans": len(pred),
                     "protocol": "the detector's body keypoints of KeypointPredictionsNoSacrum/Validation numbered "
                                 "by assign_levels; a reference vertebra is identified when a keypoint with its "
                                 "label lies within 20 mm and closest to it",
                     "tuning": "class weight 2, skip cost 4, false cost 6 and spacing noise 0.1 chosen on the "
                               "detections of the first 400 training scans (93.9 % there; classes alone 91.4 %); "
                               "the validation scans were not used to choose them",
                     "reference": "Buergin et al. (GNN) on the same validation set: 97.19 % identification rate"},
            commit=commit, date=datetime.date.today().isoformat())
        print(f"Wrote {write_card(card, out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
