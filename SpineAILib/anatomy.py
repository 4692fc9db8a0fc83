"""Vertebra names, VerSe label numbers, SNOMED CT codes and display colours (no torch).

VerSe numbering (used for label maps and centroid files throughout SpineAI):
1-7 = C1-C7, 8-19 = T1-T12, 20-25 = L1-L6, 26 = sacrum/S1, 28 = T13 (transitional).
"""

from __future__ import annotations

import colorsys

from SpineAILib.errors import InputError

VERTEBRAE: dict[int, str] = {
    **{i: f"C{i}" for i in range(1, 8)},
    **{7 + i: f"T{i}" for i in range(1, 13)},
    **{19 + i: f"L{i}" for i in range(1, 7)},
    26: "S1",
    28: "T13",
}
LABEL_OF: dict[str, int] = {v: k for k, v in VERTEBRAE.items()}

# Anatomical order top to bottom (T13 sits between T12 and L1, L6 between L5 and S1).
ORDER: list[int] = [*range(1, 20), 28, *range(20, 27)]

# AASCE landmark files cover the 17 vertebrae T1..L5 with 4 corners each.
AASCE_VERTEBRAE: list[str] = [f"T{i}" for i in range(1, 13)] + [f"L{i}" for i in range(1, 6)]
CORNERS: tuple[str, ...] = ("TL", "TR", "BL", "BR")  # top-left, top-right, bottom-left, bottom-right

# Lateral (sagittal) radiographs: vertebrae C2..L5 and the S1 plate, each with up to four
# endplate corners (posterior = back, anterior = front); C2 has its lower endplate only and S1
# its upper plate only, as in the annotations of sagittal whole-spine radiographs.
LATERAL_VERTEBRAE: list[str] = ([f"C{i}" for i in range(2, 8)] + [f"T{i}" for i in range(1, 13)]
                                + [f"L{i}" for i in range(1, 6)] + ["S1"])
LATERAL_CORNERS: tuple[str, ...] = ("top_posterior", "top_anterior", "bottom_posterior", "bottom_anterior")
# The corners of an AP view, as seen in the image (left = image left).
AP_CORNERS: tuple[str, ...] = ("top_left", "top_right", "bottom_left", "bottom_right")

# TotalSegmentator vertebra ids (v2 "total" task, as in its label maps) -> VerSe labels:
# 26 sacrum/S1, 27 L5 ... 50 C1.
TOTALSEG_TO_VERSE: dict[int, int] = {26: 26, **{i: 51 - i for i in range(27, 51)}}

# SNOMED CT codes of the vertebrae (as in the DICOM anatomic codes and Slicer terminologies).
SNOMED: dict[str, tuple[str, str]] = {
    "C1": ("14806007", "C1 vertebra"), "C2": ("39976000", "C2 vertebra"), "C3": ("113205007", "C3 vertebra"),
    "C4": ("5329002", "C4 vertebra"), "C5": ("36978003", "C5 vertebra"), "C6": ("36054005", "C6 vertebra"),
    "C7": ("87391001", "C7 vertebra"),
    "T1": ("64864005", "T1 vertebra"), "T2": ("53733008", "T2 vertebra"), "T3": ("1626008", "T3 vertebra"),
    "T4": ("73071006", "T4 vertebra"), "T5": ("56401006", "T5 vertebra"), "T6": ("45296009", "T6 vertebra"),
    "T7": ("62487009", "T7 vertebra"), "T8": ("11068009", "T8 vertebra"), "T9": ("82687006", "T9 vertebra"),
    "T10": ("7610001", "T10 vertebra"), "T11": ("12989004", "T11 vertebra"), "T12": ("23215003", "T12 vertebra"),
    "L1": ("66794005", "L1 vertebra"), "L2": ("14293000", "L2 vertebra"), "L3": ("36470004", "L3 vertebra"),
    "L4": ("11994002", "L4 vertebra"), "L5": ("49668003", "L5 vertebra"),
    # S1 is coded as the sacrum it belongs to; transitional vertebrae (L6, T13) have no own
    # code and use "Spine" so the segment still carries a valid anatomical structure.
    "S1": ("54735007", "Sacrum"), "L6": ("421060004", "Spine"), "T13": ("421060004", "Spine"),
}
SPINE_REGION_CODE = ("421060004", "Spine")
CERVICAL_REGION_CODE = ("122494005", "Cervical spine")


def vertebra_name(label: int) -> str:
    if label not in VERTEBRAE:
        raise InputError(f"Unknown vertebra label {label}; VerSe labels are {sorted(VERTEBRAE)}.")
    return VERTEBRAE[label]


def vertebra_label(name: str) -> int:
    key = name.strip().upper()
    if key not in LABEL_OF:
        raise InputError(f"Unknown vertebra '{name}'; expected one of {', '.join(VERTEBRAE[i] for i in ORDER)}.")
    return LABEL_OF[key]


def region(label: int) -> str:
    """'cervical', 'thoracic', 'lumbar' or 'sacral'."""
    if 1 <= label <= 7:
        return "cervical"
    if 8 <= label <= 19 or label == 28:
        return "thoracic"
    if 20 <= label <= 25:
        return "lumbar"
    return "sacral"


def vertebra_color(label: int) -> tuple[float, float, float]:
    """A distinct RGB colour (0..1) per vertebra: hue runs down the spine, adjacent levels alternate
    lightness so neighbours are told apart at a glance."""
    pos = ORDER.index(label) if label in ORDER else 0
    hue = (pos / len(ORDER)) * 0.85
    light = 0.55 if pos % 2 == 0 else 0.4
    return colorsys.hls_to_rgb(hue, light, 0.8)


def terminology_entry(code: tuple[str, str], category=("123037004", "Anatomical Structure"),
                      context: str = "SpineAI") -> str:
    """A Slicer ``TerminologyEntry`` segment tag string (SNOMED CT coded)."""
    return (
        f"Segmentation category and type - {context}~SCT^{category[0]}^{category[1]}~SCT^{code[0]}^{code[1]}"
        "~^^~Anatomic codes - DICOM master list~^^~^^"
    )


def vertebra_terminology(name: str) -> str:
    return terminology_entry(SNOMED[name])
