"""Files of ``spineai vertebrae``: ``centroids.json`` (RAS), VerSe ``*_ctd.json``, Slicer
``.mrk.json``, the vertebra segments as NIfTI and ``.seg.nrrd``, and ``report.json``
(numbering, warnings, seconds, models)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from SpineAILib import anatomy
from SpineAILib.errors import InputError
from SpineAILib.io import Image, read_image, write_image
from SpineAILib.io.centroids import write_verse_centroids
from SpineAILib.io.slicer_files import write_markups_json, write_seg_nrrd
from SpineAILib.vertebrae.predict import VertebraResult

OUTPUT_FILES = ("centroids.json", "centroids_ctd.json", "centroids.mrk.json", "vertebrae.nii.gz", "vertebrae.seg.nrrd")


def write_outputs(result: VertebraResult, image: Image, output: str | os.PathLike, source: str = "") -> dict[str, Path]:
    """Write every output file of the task into ``output``; returns {file name: path}."""
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    p = out / "centroids.json"
    p.write_text(json.dumps(result.to_json(), indent=1) + "\n", encoding="utf-8")
    paths[p.name] = p
    paths["centroids_ctd.json"] = write_verse_centroids(out / "centroids_ctd.json", result.centroids, image)
    labs = result.ordered_labels()
    paths["centroids.mrk.json"] = write_markups_json(
        out / "centroids.mrk.json", np.array([result.centroids[lab] for lab in labs]).reshape(-1, 3),
        [anatomy.vertebra_name(lab) for lab in labs],
        [f"confidence {result.confidence.get(lab, 1.0):.2f}" for lab in labs], name="Vertebra centroids")
    paths["vertebrae.nii.gz"] = write_image(result.labels, out / "vertebrae.nii.gz")
    segments = {lab: (f"{anatomy.vertebra_name(lab)} vertebra", anatomy.vertebra_color(lab),
                      anatomy.vertebra_terminology(anatomy.vertebra_name(lab))) for lab in labs}
    paths["vertebrae.seg.nrrd"] = write_seg_nrrd(out / "vertebrae.seg.nrrd", result.labels, segments)
    report = {"input": source, "vertebrae": result.names(), "numbering": result.numbering, "source": result.source,
              "warnings": result.warnings, "seconds": result.seconds,
              "models": result.models, "files": sorted(paths)}
    (out / "report.json").write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    return paths


def read_outputs(folder: str | os.PathLike) -> VertebraResult:
    """The result :func:`write_outputs` wrote: centroids and confidence from ``centroids.json``,
    numbering, warnings, seconds and models from ``report.json``, the label map from
    ``vertebrae.nii.gz``."""
    d = Path(folder)
    try:
        entries = json.loads((d / "centroids.json").read_text(encoding="utf-8"))
        report = json.loads((d / "report.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"Cannot read the vertebra labelling in {d}: {exc}") from None
    return VertebraResult.from_dict({**report, "vertebrae": entries}, read_image(d / "vertebrae.nii.gz"))
