"""Shared metrics on hand-made numbers with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from SpineAILib.metrics import agreement, binary_metrics, dice, icc_2_1, roc_auc, spearman


def test_icc_2_1_against_the_anova_formula():
    assert icc_2_1([1, 2, 3, 4], [1, 2, 3, 4]) == pytest.approx(1.0)
    # a constant offset of 1: MS_rows 10/3, MS_cols 2, MS_err 0 -> (10/3) / (10/3 + 2 * 2 / 4)
    assert icc_2_1([1, 2, 3, 4], [2, 3, 4, 5]) == pytest.approx((10 / 3) / (10 / 3 + 1))
    # Shrout & Fleiss style: unrelated raters agree no better than chance
    rng = np.random.default_rng(0)
    assert abs(icc_2_1(rng.normal(size=400), rng.normal(size=400))) < 0.15
    assert np.isnan(icc_2_1([1.0], [1.0]))


def test_agreement_bland_altman_and_tolerances():
    a = agreement([10, 20, 30, 46], [12, 18, 33, 40], within=(3.0, 5.0))
    d = np.array([-2, 2, -3, 6], float)
    assert a["n"] == 4 and a["mae"] == pytest.approx(3.25) and a["bias"] == pytest.approx(d.mean())
    assert a["loa_high"] - a["bias"] == pytest.approx(1.96 * d.std(ddof=1))
    assert a["bias"] - a["loa_low"] == pytest.approx(1.96 * d.std(ddof=1))
    assert a["within_3"] == 0.75 and a["within_5"] == 0.75


def test_spearman_roc_and_dice():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert np.isnan(spearman([1, 1, 1], [1, 2, 3]))
    assert roc_auc([0.9, 0.8, 0.1, 0.2], [1, 1, 0, 0]) == 1.0 and roc_auc([0.5, 0.5], [1, 0]) == 0.5
    a = np.zeros(10, bool)
    a[:4] = True
    b = np.zeros(10, bool)
    b[2:6] = True
    assert dice(a, b) == pytest.approx(0.5) == binary_metrics(a, b)["dice"]


def test_cobb_severity_bands():
    from SpineAILib.cobb.angles import Curve, severity

    assert [severity(v) for v in (0, 9.99, 10, 24.9, 25, 39.9, 40, 80)] == \
        ["none", "none", "mild", "mild", "moderate", "moderate", "severe", "severe"]
    assert Curve(31.0, "T5", "T11", "T8").to_dict()["severity"] == "moderate"
