"""Shared fixtures. Real data is found through SPINEAI_DATA (default ../shared/data); with
SPINEAI_REQUIRE_DATA=1 (CI) a missing data folder fails the tests instead of skipping them."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def _data_dir() -> Path:
    return Path(os.environ.get("SPINEAI_DATA", REPO.parent / "shared" / "data")).resolve()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    d = _data_dir()
    if not d.is_dir():
        msg = f"real data folder {d} not found (set SPINEAI_DATA)"
        if os.environ.get("SPINEAI_REQUIRE_DATA") == "1":
            pytest.fail(msg)
        pytest.skip(msg)
    return d


def rotation(axis: str, degrees: float) -> np.ndarray:
    a = np.radians(degrees)
    c, s = np.cos(a), np.sin(a)
    if axis == "z":
        return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])
    if axis == "x":
        return np.array([[1.0, 0, 0], [0, c, -s], [0, s, c]])
    return np.array([[c, 0, s], [0, 1.0, 0], [-s, 0, c]])


@pytest.fixture
def oblique_direction() -> np.ndarray:
    """A non-trivial proper rotation (not axis-aligned, not a flip)."""
    return rotation("z", 25) @ rotation("x", -10)


@pytest.fixture
def random_volume(oblique_direction):
    from SpineAILib.io import Image

    rng = np.random.default_rng(7)
    arr = rng.normal(0, 100, (11, 13, 17)).astype(np.float32)  # (z, y, x)
    return Image(arr, (0.7, 1.3, 2.9), (12.5, -40.0, 7.25), oblique_direction)
