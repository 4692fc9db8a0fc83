"""Loader for radiographs with COCO-keypoint endplate corners (the layout of sagittal whole-spine
collections)::

    <root>/images/<file_name>
    <root>/annotations.json   COCO: images, annotations (keypoints x, y, v), categories[0].keypoints

Keypoint names are ``<vertebra><T|B><B|F>``: top/bottom endplate x back/front (posterior/anterior)
corner, e.g. ``C2BB`` (C2 lower endplate, posterior corner), ``L3TF``, ``S1TB``. A point with
v = 0 is not labelled. Coordinates are pixels (x = column, y = row).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from SpineAILib.anatomy import LATERAL_CORNERS, LATERAL_VERTEBRAE
from SpineAILib.errors import InputError

_KEYPOINT = re.compile(r"^([CTLS]\d+)([TB])([BF])$")
_CORNER_INDEX = {("T", "B"): 0, ("T", "F"): 1, ("B", "B"): 2, ("B", "F"): 3}


@dataclass
class LateralCase:
    name: str  # image file stem
    image_path: Path
    corners: np.ndarray  # (24, 4, 2) pixels (x, y) in LATERAL_VERTEBRAE x LATERAL_CORNERS order; NaN = unlabelled
    size: tuple[int, int]  # (width, height)
    view: str = ""  # the collection's own tag (e.g. "sagittal", "lumbar")

    @property
    def centroids(self) -> np.ndarray:
        """(24, 2) mean of each vertebra's labelled corners; NaN where none is labelled."""
        return vertebra_centroids(self.corners)

    @property
    def present(self) -> np.ndarray:
        """(24,) bool: vertebrae with at least one labelled corner."""
        return ~np.isnan(self.corners[..., 0]).all(1)


def vertebra_centroids(corners: np.ndarray) -> np.ndarray:
    """(V, 4, 2) corners (NaN = unknown) -> (V, 2) mean of the known corners (NaN where none)."""
    c = np.asarray(corners, float)
    known = ~np.isnan(c[..., 0])
    n = known.sum(1)
    total = np.where(known[..., None], c, 0.0).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = total / n[:, None]
    out[n == 0] = np.nan
    return out


def keypoint_slots(names: list[str]) -> list[tuple[int, int]]:
    """COCO keypoint names -> (vertebra index in LATERAL_VERTEBRAE, corner index) per keypoint."""
    slots = []
    for name in names:
        m = _KEYPOINT.match(name)
        if not m or m.group(1) not in LATERAL_VERTEBRAE:
            raise InputError(f"Unknown keypoint name '{name}': expected <vertebra C2..S1><T|B><B|F>, e.g. 'L3TB'.")
        slots.append((LATERAL_VERTEBRAE.index(m.group(1)), _CORNER_INDEX[(m.group(2), m.group(3))]))
    return slots


def load_coco_keypoints(root: str | os.PathLike, annotations: str = "annotations.json") -> list[LateralCase]:
    """Every annotated image of a COCO-keypoint folder, in the file's image order."""
    root = Path(root)
    ann_file = root / annotations
    if not ann_file.is_file():
        raise InputError(f"{root} has no {annotations}: expected COCO keypoints and images/ inside.")
    data = json.loads(ann_file.read_text(encoding="utf-8"))
    try:
        slots = keypoint_slots(list(data["categories"][0]["keypoints"]))
        by_image = {a["image_id"]: a for a in data["annotations"]}
        cases = []
        for im in data["images"]:
            ann = by_image.get(im["id"])
            if ann is None:
                continue
            kp = np.asarray(ann["keypoints"], float).reshape(-1, 3)
            corners = np.full((len(LATERAL_VERTEBRAE), len(LATERAL_CORNERS), 2), np.nan)
            for (v, c), (x, y, vis) in zip(slots, kp, strict=True):
                if vis > 0:
                    corners[v, c] = (x, y)
            path = root / "images" / im["file_name"]
            cases.append(LateralCase(Path(im["file_name"]).stem, path, corners, (int(im["width"]), int(im["height"])),
                                     str(im.get("type", ""))))
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise InputError(f"{ann_file} is not COCO keypoints as expected: {exc!r}") from None
    return cases


VAL_IMAGES = 6  # validation images of the default split
SPLIT_SEED = 0


def default_split(cases: list[LateralCase]) -> dict[str, list[str]]:
    """The seeded train/validation split of a collection, derived from its image names (nothing
    about the data is stored in the repository): ``split_names(names, VAL_IMAGES, SPLIT_SEED)``."""
    return split_names([c.name for c in cases], VAL_IMAGES, SPLIT_SEED)


def split_names(names: list[str], n_val: int, seed: int = 0) -> dict[str, list[str]]:
    """Seeded train/validation split of image names (one image per patient in these collections)."""
    rng = np.random.default_rng(seed)
    order = sorted(names)
    rng.shuffle(order)
    return {"train": sorted(order[n_val:]), "val": sorted(order[:n_val])}
