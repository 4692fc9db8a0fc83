"""Genant semi-quantitative grading of a vertebral body from its heights.

Height loss = 1 - min(anterior, middle) / posterior, and, when neighbouring vertebrae are
given, also 1 - posterior / mean neighbour posterior height (a crush lowers the posterior wall
too). The largest loss sets the grade: normal < 20 %, mild 20-25 %, moderate 25-40 %,
severe > 40 % (boundaries belong to the higher grade, e.g. exactly 25 % is moderate, exactly
40 % is moderate, above 40 % severe). Deformity type: the smallest height decides -- anterior:
wedge, middle: biconcave, posterior (loss against the neighbours): crush.
"""

from __future__ import annotations

from dataclasses import dataclass

from SpineAILib.errors import InputError

GRADES = ("normal", "mild", "moderate", "severe")


@dataclass(frozen=True)
class GenantResult:
    grade: int  # 0..3
    label: str  # normal / mild / moderate / severe
    deformity: str  # none / wedge / biconcave / crush
    height_loss: float  # 0..1


def grade_from_loss(loss: float) -> int:
    if loss < 0.20:
        return 0
    if loss < 0.25:
        return 1
    if loss <= 0.40:
        return 2
    return 3


def genant(anterior: float, middle: float, posterior: float,
           neighbour_posterior: list[float] | None = None) -> GenantResult:
    """Grade one vertebra from its heights (mm)."""
    if min(anterior, middle, posterior) <= 0:
        raise InputError(f"Heights must be positive (got anterior {anterior}, middle {middle}, posterior {posterior}).")
    losses = {"wedge": 1 - anterior / posterior, "biconcave": 1 - middle / posterior}
    if neighbour_posterior:
        ref = sum(neighbour_posterior) / len(neighbour_posterior)
        losses["crush"] = 1 - posterior / ref
    kind, loss = max(losses.items(), key=lambda kv: kv[1])
    # Rounded so that e.g. 16 mm / 20 mm counts as exactly 20 % loss despite floating point.
    loss = max(0.0, round(loss, 9))
    g = grade_from_loss(loss)
    return GenantResult(g, GRADES[g], kind if g > 0 else "none", loss)
