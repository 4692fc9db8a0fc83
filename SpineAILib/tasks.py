"""The registry of SpineAI tasks: one :class:`Task` object per capability, and nothing else lists
the tasks. The CLI (one command per task, ``spineai train/evaluate/export TASK``), ``spineai
demo``, ``spineai info``, the Slicer home module and the Slicer modules' result readers loop
over :data:`TASKS`.

A task object holds its public run function (plain data in, a Result with ``to_dict`` /
``from_dict`` out), its output writer and reader (``<package>/outputs.py``), its scene writer,
its CLI arguments and command, its demo entry and its trainer / evaluator / exporter modules.
Task packages never import each other; where one task runs another (``fracture`` labels the
vertebrae first when no centroids are given) the composition is written here.

Importing this module imports no task package and no torch: every reference to a task's code is
resolved on first call (shared layers are imported at the top), so Slicer can list the tasks at
start-up without loading them.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from SpineAILib import anatomy
from SpineAILib.device import parse_device
from SpineAILib.errors import EXIT_INPUT, EXIT_OK, InputError
from SpineAILib.io import Image, read_image
from SpineAILib.io.centroids import read_centroids_file
from SpineAILib.io.output import atomic_file, check_output_file, check_output_folder, staged_folder
from SpineAILib.io.totalseg import read_totalseg_vertebrae, totalseg_folder
from SpineAILib.metrics import binary_metrics, dice
from SpineAILib.postprocessing import body_centroids_from_mask
from SpineAILib.preprocessing import check_image
from SpineAILib.progress import SubProgress

# ------------------------------------------------------------------------------ the registry


def lazy(target: str) -> Callable[..., Any]:
    """A callable for ``"package.module:attribute"`` that imports the module on first call."""
    module, attr = target.split(":")

    def call(*args: Any, **kwargs: Any) -> Any:
        return getattr(importlib.import_module(module), attr)(*args, **kwargs)

    call.__name__ = attr
    call.__qualname__ = attr
    call.__doc__ = f"Calls {module}.{attr} (imported on first use)."
    return call


@dataclass(frozen=True)
class Task:
    """One capability. ``name`` is its CLI command; the callables import their code on use."""

    name: str
    title: str
    input: str  # "ct" (3D volume) or "radiograph" (2D image)
    package: str  # the task package that does the work
    slicer_module: str
    entry_point: str  # the public Python function, for documentation and ``spineai info``
    usage: str  # the CLI synopsis
    help: str  # one line for ``spineai --help``
    output_files: tuple[str, ...]  # what the command writes into --output
    run: Callable[..., Any]  # plain data in, Result out
    result: str  # "module:Class" of the Result (``to_dict`` / ``from_dict``)
    write_outputs: Callable[..., Any]
    read_outputs: Callable[..., Any]
    write_scene: Callable[..., Any]
    add_arguments: Callable[[argparse.ArgumentParser], None]
    command: Callable[[argparse.Namespace, Any], int]  # (parsed args, progress) -> exit code
    demo: Callable[[Any], dict] | None = None  # (demo context) -> {"metrics": ..., "seconds": ...}
    trainer: str | None = None  # module with main(argv)
    evaluator: str | None = None
    exporter: str | None = None

    @property
    def result_type(self) -> type:
        """The Result class (imported on first use)."""
        module, attr = self.result.split(":")
        return getattr(importlib.import_module(module), attr)

    @property
    def report_key(self) -> str:
        """Key of the task in report files (``vertebral-body`` -> ``vertebral_body``)."""
        return self.name.replace("-", "_")

    def entry(self, kind: str) -> Callable[[list[str]], int]:
        """``main(argv)`` of the task's ``trainer``, ``evaluator`` or ``exporter``."""
        module = getattr(self, kind)
        if module is None:
            raise InputError(f"Task '{self.name}' has no {kind}.")
        return importlib.import_module(module).main


TASKS: dict[str, Task] = {}


def register(task: Task) -> Task:
    if task.name in TASKS:
        raise ValueError(f"Task '{task.name}' is registered twice.")
    TASKS[task.name] = task
    return task


def get_task(name: str) -> Task:
    """The task called ``name`` (its CLI command), with a message listing them when unknown."""
    if name not in TASKS:
        raise InputError(f"No such task '{name}'; available: {', '.join(TASKS)}.")
    return TASKS[name]


def available_tasks() -> list[Task]:
    """Every task, sorted by name."""
    return [TASKS[k] for k in sorted(TASKS)]


def with_entry(kind: str) -> list[str]:
    """Names of the tasks that have a ``trainer`` / ``evaluator`` / ``exporter``."""
    return [t.name for t in TASKS.values() if getattr(t, kind)]


# ------------------------------------------------------------------------ shared CLI pieces


def _warn(command: str, messages: list[str], prefix: str = "") -> None:
    for msg in messages:
        print(f"spineai {command}: warning: {prefix}{msg}", file=sys.stderr)


def _checked_device(args: argparse.Namespace) -> str:
    parse_device(args.device)
    return args.device


def _parse_point(text: str) -> tuple[float, float, float]:
    try:
        vals = [float(v) for v in text.replace(";", ",").split(",")]
    except ValueError:
        vals = []
    if len(vals) != 3 or not all(math.isfinite(v) for v in vals):
        raise InputError(f"--point '{text}' must be three finite numbers X,Y,Z (RAS mm), e.g. --point 12.5,-40,310.")
    return vals[0], vals[1], vals[2]


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number >= 1")
    return value


@contextlib.contextmanager
def writing_into(folder, option: str = "--output"):
    """Check ``folder`` before the work (InputError if it cannot be written) and yield a staging
    folder for the result's files, moved into ``folder`` when all are written; on failure
    nothing is left (a folder created for this run is removed again while empty)."""

    path, created = check_output_folder(folder, option)
    try:
        with staged_folder(path) as stage:
            yield stage
    except BaseException:
        if created:
            with contextlib.suppress(OSError):
                path.rmdir()
        raise


def _timed(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, float]:
    """(fn's result, its wall time in seconds): the demo entries' "seconds"."""
    t = time.perf_counter()
    return fn(*args, **kwargs), time.perf_counter() - t


def read_centroids_option(path, image):
    """``--centroids``: a centroid file (SpineAI centroids.json, VerSe *_ctd.json, CSI .lml), or a
    TotalSegmentator folder whose vertebra masks give the body centres. {VerSe label: LPS mm}."""

    if totalseg_folder(path) is not None:
        return body_centroids_from_mask(read_totalseg_vertebrae(path))[0]
    return read_centroids_file(path, image)


def _read_centroids(args: argparse.Namespace, image):
    return read_centroids_option(args.centroids, image) if args.centroids else None


# ------------------------------------------------------------------------------------ cobb


def _cobb_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", help="radiograph (PNG/JPG/DICOM/NRRD...) or a folder of them")
    p.add_argument("--csv", help="CSV path (default OUTPUT/cobb_angles.csv): image,main,upper,lower,...")
    p.add_argument("--landmarks", metavar="DIR", help="also write <image>.json with the 68 landmarks per image")
    p.add_argument("--batch-size", type=positive_int, default=4, help="images per network call (default 4)")


def _cobb_command(args: argparse.Namespace, progress) -> int:
    """Batch Cobb angles: one CSV row per image (main, upper, lower in degrees first)."""
    from pathlib import Path

    from SpineAILib.cobb.outputs import csv_row, write_csv, write_outputs
    from SpineAILib.cobb.predict import estimate_batch
    from SpineAILib.io.readers import list_images

    device = _checked_device(args)
    files = list_images(args.input)
    csv_path = check_output_file(args.csv or Path(args.output) / "cobb_angles.csv", "--csv")
    landmarks = writing_into(args.landmarks, "--landmarks") if args.landmarks else contextlib.nullcontext()
    with landmarks as stage:
        results = estimate_batch(files, device=device, batch_size=args.batch_size, progress=progress)
        rows = []
        for path, r in zip(files, results, strict=True):
            rows.append(csv_row(path.name, r))
            if isinstance(r, InputError):  # one unreadable file must not stop a batch: report it and go on
                print(f"spineai cobb: error: {path.name}: {r}", file=sys.stderr)
                continue
            if len(files) == 1:
                _warn("cobb", r.warnings)
            if args.landmarks:
                write_outputs(r, stage, path.name)
        with atomic_file(csv_path) as tmp:
            write_csv(tmp, rows)
    progress.close()
    failures = sum(isinstance(r, InputError) for r in results)
    print(f"Wrote {csv_path} ({len(files) - failures} image(s){f', {failures} failed' if failures else ''})")
    if len(files) == 1 and failures == 0:
        r = results[0]
        print(f"  main {r.values[0]:.1f}, upper {r.values[1]:.1f}, lower {r.values[2]:.1f} degrees "
              f"(confidence {r.confidence:.2f})")
    return EXIT_INPUT if failures == len(files) else EXIT_OK


def _cobb_demo(ctx) -> dict:
    import numpy as np

    from SpineAILib.cobb import cobb_angles, estimate, smape
    from SpineAILib.cobb.scene import write_cobb_result

    ap = ctx.ap
    pred, seconds = _timed(estimate, ap.image, device=ctx.device)
    gt = cobb_angles(ap.landmarks, ap.image.array.shape[0])
    write_cobb_result(ctx.scene, ap.image, pred, prefix="Predicted Cobb")
    ctx.predictions["cobb"] = pred
    return {"metrics": {"smape_percent": smape([pred.values], [gt.values]),
                        "main_abs_error_deg": abs(pred.values[0] - gt.values[0]),
                        "predicted_deg": [round(v, 2) for v in pred.values],
                        "phantom_deg": [round(v, 2) for v in gt.values],
                        "landmark_mean_error_px": float(np.linalg.norm(pred.landmarks - ap.landmarks, axis=1).mean()),
                        "confidence": pred.confidence, "low_confidence": pred.low_confidence},
            "seconds": round(seconds, 3)}


register(Task(
    name="cobb", title="Cobb angles (AP radiograph)", input="radiograph", package="SpineAILib.cobb",
    slicer_module="CobbAngle", entry_point="SpineAILib.cobb.estimate",
    usage="spineai cobb IMAGE_OR_FOLDER --csv out.csv",
    help="Cobb angles of AP spine radiographs (a file or a folder)",
    output_files=("cobb_angles.csv", "<landmarks>/<image>.json"),
    run=lazy("SpineAILib.cobb.predict:estimate"), result="SpineAILib.cobb.predict:CobbResult",
    write_outputs=lazy("SpineAILib.cobb.outputs:write_outputs"),
    read_outputs=lazy("SpineAILib.cobb.outputs:read_outputs"),
    write_scene=lazy("SpineAILib.cobb.scene:write_cobb_result"),
    add_arguments=_cobb_arguments, command=_cobb_command, demo=_cobb_demo,
    trainer="SpineAILib.cobb.train", evaluator="SpineAILib.cobb.evaluate", exporter="SpineAILib.cobb.export"))


# -------------------------------------------------------------------------------- cervical


def _cervical_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", help="lateral cervical radiograph")
    p.add_argument("--probability", action="store_true", help="also write probability.png")


# At least this many of C3-C7 named (with corners) by the lateral labelling make its region the answer.
CERVICAL_MIN_NAMED = 3
# The labelling's corners sit inside the expert's (regression to the vertebra centre): each
# vertebra's corners are scaled about their mean by this factor before the region is drawn.
# Chosen by Dice on the 20 training radiographs and 2 neck views of each (1.0 / 1.1 / 1.2 / 1.3:
# Dice 0.880 / 0.886 / 0.873 / 0.851, sensitivity 0.83 / 0.88 / 0.91 / 0.93).
CERVICAL_CORNER_SCALE = 1.1
# Where the labelling places no neck, the FCN's region on the whole image is kept from this mean
# probability on: on the validation views, real neck views 0.77-0.90 and phantoms 0.88-0.90, the
# AP views it marked 0.57-0.62.
CERVICAL_FCN_ALONE_CONFIDENCE = 0.7


def neck_centres(result):
    """(8, 2) x, y px of C2..T2 named by a lateral labelling result; NaN where not named."""
    import numpy as np

    from SpineAILib.anatomy import LATERAL_VERTEBRAE

    return np.array([result.find(n).centroid if result.find(n) is not None else (np.nan, np.nan)
                     for n in LATERAL_VERTEBRAE[:8]], float)


def c3_c7_corners(result):
    """(5, 4, 2) corners px of C3..C7 (``anatomy.LATERAL_CORNERS`` order) from a lateral labelling
    result. The region runs from C3's top to C7's bottom by definition, so a vertebra of C3-C7 the
    labelling did not name is placed by its nearest named neighbour among C3-T1 moved by the
    per-level step of the line through the named centres of C2-T2 (``cervical.data.neck_line``;
    NaN where fewer than two)."""
    import numpy as np

    from SpineAILib.anatomy import LATERAL_CORNERS, LATERAL_VERTEBRAE
    from SpineAILib.cervical.data import neck_line

    first, last = LATERAL_VERTEBRAE.index("C3"), LATERAL_VERTEBRAE.index("C7")
    corners = np.full((last + 2, len(LATERAL_CORNERS), 2), np.nan)  # C2..T1
    for i in range(first, last + 2):
        v = result.find(LATERAL_VERTEBRAE[i])
        if v is not None:
            corners[i] = [v.corners.get(k, (np.nan, np.nan)) for k in LATERAL_CORNERS]
    complete = [i for i in range(first, last + 2) if not np.isnan(corners[i]).any()]
    line = neck_line(neck_centres(result))
    if line is not None and complete:
        step = line[1] - line[0]
        for i in range(first, last + 1):
            if np.isnan(corners[i]).any():
                j = min(complete, key=lambda c: abs(c - i))
                corners[i] = corners[j] + (i - j) * step
    return corners[first:last + 1]


def cervical_region_from_labels(result, shape: tuple[int, int]):
    """(region mask (rows, cols) bool, names used) of the C3-C7 region as Al Arif et al. draw it
    from endplate corners (``cervical.data.c3_c7_polygon``): the named vertebrae's corners, those
    of C3-C7 vertebrae not named placed by their neighbours (:func:`c3_c7_corners`), each scaled by
    CERVICAL_CORNER_SCALE about its centre; None when fewer than CERVICAL_MIN_NAMED of C3-C7 were
    named."""
    import numpy as np

    from SpineAILib.cervical.data import c3_c7_polygon, polygon_mask

    names = [n for n in ("C3", "C4", "C5", "C6", "C7") if result.find(n) is not None]
    if len(names) < CERVICAL_MIN_NAMED:
        return None, names
    corners = c3_c7_corners(result)
    centres = np.nanmean(corners, axis=1, keepdims=True)
    region = polygon_mask(c3_c7_polygon(centres + CERVICAL_CORNER_SCALE * (corners - centres)), shape)
    return (region if region.any() else None), names


def localize_cervical(image, device: str = "auto", models_dir=None):
    """The C3-C7 region of a lateral radiograph, from two readings joined:

    * the lateral vertebra labelling (trained on real radiographs): where it names at least
      CERVICAL_MIN_NAMED of C3-C7, the region drawn from their corners
      (:func:`cervical_region_from_labels`);
    * the localisation FCN (Al Arif et al.; ``cervical.localize``) on the lateral cervical view
      that the labelling's C2-T2 centres place (``cervical.data.neck_view_from_centres``: the
      neck is found first, so a whole-spine radiograph is read at the scale the FCN was trained
      on).

    The region is their union (each misses parts of the other's on real radiographs); an FCN
    region that does not overlap the drawn one is dropped. Where the labelling places no neck,
    the FCN reads the whole image and its region is kept only from a confidence of
    CERVICAL_FCN_ALONE_CONFIDENCE (alone it weakly marks some AP and thoracolumbar views).
    Returns a CervicalResult; its ``model`` says what answered."""
    import numpy as np

    from SpineAILib.cervical import localize
    from SpineAILib.cervical.data import neck_view_from_centres
    from SpineAILib.cervical.predict import CervicalResult, region_geometry
    from SpineAILib.xray_vertebrae import label

    img = check_image(image if isinstance(image, Image) else read_image(image), "Cervical spine localisation",
                      ndim=2, min_size=16)
    lat = label(img, view="lateral", device=device, models_dir=models_dir)
    box = neck_view_from_centres(neck_centres(lat), img.array.shape)
    if box is None:
        # No neck placed by the labelling (it knows real radiographs only): the FCN reads the whole
        # image, and a region is kept only at a confidence real neck views reach and the AP and
        # thoracolumbar views it marks do not.
        whole = localize(img, device=device, models_dir=models_dir)
        if whole.found and whole.confidence < CERVICAL_FCN_ALONE_CONFIDENCE:
            empty = np.zeros(img.array.shape, bool)
            return CervicalResult(whole.probability, empty, np.zeros((0, 2)), np.zeros(2), 0.0, 0,
                                  whole.confidence,
                                  [f"No cervical spine found: the vertebra labelling found no vertebra of C2-T2 and "
                                   f"the localisation network's region is weak (confidence {whole.confidence:.2f} < "
                                   f"{CERVICAL_FCN_ALONE_CONFIDENCE}); a lateral cervical radiograph is expected."],
                                  whole.model)
        return whole
    x0, x1, y0, y1 = box
    sub = localize(Image(np.ascontiguousarray(img.array[y0:y1, x0:x1]), img.spacing), device=device,
                   models_dir=models_dir)
    prob = np.zeros(img.array.shape, np.float32)
    prob[y0:y1, x0:x1] = sub.probability
    region = np.zeros(img.array.shape, bool)
    region[y0:y1, x0:x1] = sub.region
    drawn, names = cervical_region_from_labels(lat, img.array.shape)
    if drawn is not None and not (region & drawn).any():  # two readings of one column must overlap
        region[:] = False
        prob[:] = 0.0
    parts, confidences = [], []
    if region.any():
        parts.append(f"{sub.model} on the neck view x {x0}-{x1}, y {y0}-{y1}")
        confidences.append(sub.confidence)
    if drawn is not None:
        region |= drawn
        prob = np.maximum(prob, drawn.astype(np.float32))
        parts.append(f"{lat.model} C3-C7 corners ({', '.join(names)})")
        confidences.append(float(np.mean([lat.find(n).confidence for n in names])))
    warnings = [w for w in lat.warnings if "upside down" in w]
    if not region.any():
        warnings.append("No cervical spine found: the vertebra labelling placed a neck, but neither it nor the "
                        "localisation network found C3-C7 there.")
    polygon, axis, angle = region_geometry(region)
    from scipy import ndimage

    n_regions = int(ndimage.label(region)[1])
    return CervicalResult(prob, region, polygon, axis, angle, n_regions,
                          float(np.mean(confidences)) if confidences else float(prob.max()), warnings,
                          " + ".join(parts) or sub.model)


def _cervical_command(args: argparse.Namespace, progress) -> int:
    """Cervical localisation: DIR/localization.png (binary mask at the image size) and .json."""
    from pathlib import Path

    from SpineAILib.cervical.outputs import write_outputs

    device = _checked_device(args)
    with writing_into(args.output) as stage:
        progress(0.1, "localising")
        r = localize_cervical(args.input, device=device)
        write_outputs(r, stage, Path(args.input).name, probability=args.probability)
    progress(1.0, "done")
    progress.close()
    _warn("cervical", r.warnings)
    print(f"Wrote {Path(args.output)}/localization.png and localization.json "
          f"({'found' if r.found else 'NOT found'}; axis {r.axis_angle_deg:.1f} deg from vertical)")
    return EXIT_OK


def _cervical_demo(ctx) -> dict:
    from SpineAILib.cervical import localize
    from SpineAILib.cervical.scene import write_cervical_result

    cerv = ctx.cervical
    pred, seconds = _timed(localize, cerv.image, device=ctx.device)
    write_cervical_result(ctx.scene, cerv.image, pred, ctx.nodes["cervical"], prefix="Predicted cervical")
    ctx.predictions["cervical"] = pred
    m = binary_metrics(pred.region, cerv.region)
    return {"metrics": {**{k: m[k] for k in ("dice", "sensitivity", "specificity")},
                        "regions_predicted": pred.regions_predicted, "found": pred.found,
                        "axis_angle_deg": pred.axis_angle_deg},
            "seconds": round(seconds, 3)}


register(Task(
    name="cervical", title="Cervical spine localisation (lateral radiograph)", input="radiograph",
    package="SpineAILib.cervical", slicer_module="CervicalLocalization", entry_point="SpineAILib.cervical.localize",
    usage="spineai cervical IMAGE --output DIR", help="localise the C3-C7 cervical spine in a lateral radiograph",
    output_files=("localization.png", "localization.json", "probability.png"),
    run=lambda *a, **k: localize_cervical(*a, **k), result="SpineAILib.cervical.predict:CervicalResult",
    write_outputs=lazy("SpineAILib.cervical.outputs:write_outputs"),
    read_outputs=lazy("SpineAILib.cervical.outputs:read_outputs"),
    write_scene=lazy("SpineAILib.cervical.scene:write_cervical_result"),
    add_arguments=_cervical_arguments, command=_cervical_command, demo=_cervical_demo,
    trainer="SpineAILib.cervical.train", evaluator="SpineAILib.cervical.evaluate",
    exporter="SpineAILib.cervical.export"))


# ------------------------------------------------------------------------------- vertebrae


def _vertebrae_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", help="CT volume (NIfTI, NRRD, MHA or a DICOM series folder), Hounsfield units")


def _vertebrae_command(args: argparse.Namespace, progress) -> int:
    """Vertebra labelling: DIR/centroids.json (RAS), centroids_ctd.json (VerSe), centroids.mrk.json,
    vertebrae.nii.gz, vertebrae.seg.nrrd and report.json."""
    from SpineAILib.vertebrae import locate
    from SpineAILib.vertebrae.outputs import write_outputs

    device = _checked_device(args)
    with writing_into(args.output) as stage:
        image = read_image(args.input)
        r = locate(image, device=device, progress=progress)
        write_outputs(r, image, stage, source=str(args.input))
    progress.close()
    _warn("vertebrae", r.warnings)
    noun = "vertebra" if len(r.centroids) == 1 else "vertebrae"
    print(f"Wrote {args.output}/centroids.json, centroids_ctd.json, centroids.mrk.json, vertebrae.nii.gz, "
          f"vertebrae.seg.nrrd ({len(r.centroids)} {noun}: {' '.join(r.names()) or 'none'}; "
          f"{r.seconds.get('total', 0):.1f} s)")
    return EXIT_OK


def _vertebrae_demo(ctx) -> dict:
    from SpineAILib.vertebrae import locate
    from SpineAILib.vertebrae.evaluate import match, summarize
    from SpineAILib.vertebrae.scene import write_vertebrae_result

    ct = ctx.ct
    pred, seconds = _timed(locate, ct.image, device=ctx.device)
    write_vertebrae_result(ctx.scene, pred, ctx.nodes["ct"], "Predicted vertebra")
    ctx.predictions["vertebrae"] = pred
    s_all = summarize(match(pred.centroids, ct.body_centers))["all"]
    return {"metrics": {"id_rate": s_all["id_rate"], "mean_error_mm": s_all["error_mean_mm"], "found": pred.names(),
                        "phantom": [anatomy.vertebra_name(v) for v in sorted(ct.body_centers)]},
            "seconds": round(seconds, 3)}


register(Task(
    name="vertebrae", title="Vertebra labelling (CT)", input="ct", package="SpineAILib.vertebrae",
    slicer_module="VertebraLabeling", entry_point="SpineAILib.vertebrae.locate",
    usage="spineai vertebrae CT --output DIR", help="find and label the vertebrae of a CT (centroids + segments)",
    output_files=("centroids.json", "centroids_ctd.json", "centroids.mrk.json", "vertebrae.nii.gz",
                  "vertebrae.seg.nrrd", "report.json"),
    run=lazy("SpineAILib.vertebrae.predict:locate"), result="SpineAILib.vertebrae.predict:VertebraResult",
    write_outputs=lazy("SpineAILib.vertebrae.outputs:write_outputs"),
    read_outputs=lazy("SpineAILib.vertebrae.outputs:read_outputs"),
    write_scene=lazy("SpineAILib.vertebrae.scene:write_vertebrae_result"),
    add_arguments=_vertebrae_arguments, command=_vertebrae_command, demo=_vertebrae_demo,
    trainer="SpineAILib.vertebrae.train", evaluator="SpineAILib.vertebrae.evaluate",
    exporter="SpineAILib.vertebrae.export"))


# -------------------------------------------------------------------------- vertebral body


def _body_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", help="CT volume (Hounsfield units)")
    p.add_argument("--point", action="append", metavar="X,Y,Z", help="a point on a vertebral body, RAS mm (repeatable)")
    p.add_argument("--centroids", help="vertebra centroids to name the bodies (centroids.json, VerSe *_ctd.json, "
                   "CSI .lml, or a TotalSegmentator segmentations folder)")


def _body_command(args: argparse.Namespace, progress) -> int:
    """Click-to-segment: DIR/vertebral_body.nii.gz (label map on the CT grid, value = click number)
    and DIR/measurements.json (volume, mean HU, heights, Genant per body)."""
    from SpineAILib.vertebra_body import segment_many
    from SpineAILib.vertebra_body.outputs import write_body_outputs

    device = _checked_device(args)
    if not args.point:
        raise InputError("Give at least one --point X,Y,Z (RAS mm) on a vertebral body.")
    points = [_parse_point(t) for t in args.point]
    with writing_into(args.output) as stage:
        image = read_image(args.input)
        centroids = _read_centroids(args, image)
        progress(0.1, "segmenting")
        results = segment_many(image, points, "RAS", centroids, device=device)
        write_body_outputs(results, image, stage, source=str(args.input))
    progress(1.0, "done")
    progress.close()
    for r in results:
        _warn("vertebral-body", r.warnings, f"{r.name}: ")
    print(f"Wrote {args.output}/vertebral_body.nii.gz and measurements.json")
    for r in results:
        b = r.to_dict()
        print(f"  {b['name']}: {b['volume_ml']:.1f} ml, {b['mean_hu']:.0f} HU, heights {b['anterior_height_mm']:.1f}/"
              f"{b['middle_height_mm']:.1f}/{b['posterior_height_mm']:.1f} mm, Genant {b['genant']}")
    return EXIT_OK


def _body_demo(ctx) -> dict:
    from SpineAILib.vertebra_body import segment_many
    from SpineAILib.vertebra_body.scene import write_body_results

    # Clicks where a user would click (each body's centre) and names from the phantom's
    # centroids, so this entry measures segmentation and grading on their own.
    ct = ctx.ct
    cents = ct.body_centers
    bodies, seconds = _timed(segment_many, ct.image, [cents[v] for v in sorted(cents)], "LPS", cents,
                             device=ctx.device)
    write_body_results(ctx.scene, ct.image, bodies, ctx.nodes["ct"], "Predicted vertebral body")
    ctx.predictions["vertebral-body"] = bodies
    metrics = {}
    for b in bodies:
        if b.label is None or b.label not in ct.heights:
            continue
        metrics[anatomy.vertebra_name(b.label)] = {
            "dice": round(dice(b.mask, ct.body_labels.array == b.label), 4),
            "genant": b.genant.label if b.genant else None,
            "phantom_deformity": ct.deformity.get(b.label, ("none", 0.0))[0],
            "height_errors_mm": [round(b.heights[k] - ct.heights[b.label][k], 2)
                                 for k in ("anterior", "middle", "posterior")]}
    return {"metrics": metrics, "seconds": round(seconds, 3),
            "seconds_per_click": round(seconds / max(len(bodies), 1), 3)}


register(Task(
    name="vertebral-body", title="Vertebral body (click to segment, CT)", input="ct",
    package="SpineAILib.vertebra_body", slicer_module="VertebralBody", entry_point="SpineAILib.vertebra_body.segment",
    usage="spineai vertebral-body CT --point X,Y,Z --output DIR",
    help="segment and measure the vertebral body at clicked point(s) in a CT",
    output_files=("vertebral_body.nii.gz", "measurements.json"),
    run=lazy("SpineAILib.vertebra_body.predict:segment"),
    result="SpineAILib.vertebra_body.predict:BodyResult",
    write_outputs=lazy("SpineAILib.vertebra_body.outputs:write_body_outputs"),
    read_outputs=lazy("SpineAILib.vertebra_body.outputs:read_body_outputs"),
    write_scene=lazy("SpineAILib.vertebra_body.scene:write_body_results"),
    add_arguments=_body_arguments, command=_body_command, demo=_body_demo,
    trainer="SpineAILib.vertebra_body.train", evaluator="SpineAILib.vertebra_body.evaluate",
    exporter="SpineAILib.vertebra_body.export"))


# -------------------------------------------------------------------------------- fracture


def assess_ct(image, centroids=None, device: str = "auto", models_dir=None, genant: bool = True, progress=None,
              cancel=None):
    """Fracture assessment of a CT (:func:`SpineAILib.vertebra_body.assess_fractures`); without
    ``centroids`` ({VerSe label: LPS mm}) the vertebrae are found and labelled first
    (:func:`SpineAILib.vertebrae.locate`), whose warnings and time the result then carries."""
    from SpineAILib.vertebra_body import assess_fractures

    if centroids is not None:
        return assess_fractures(image, centroids, device, models_dir, genant, progress, cancel)
    from SpineAILib.vertebrae import locate

    t0 = time.perf_counter()
    img = check_image(image if isinstance(image, Image) else read_image(image), "Fracture assessment", ndim=3,
                      min_size=2)
    loc = locate(img, device=device, models_dir=models_dir, progress=SubProgress(progress, 0.0, 0.4), cancel=cancel)
    result = assess_fractures(img, loc.centroids, device, models_dir, genant, progress, cancel)
    result.warnings = loc.warnings + result.warnings
    result.seconds = {"vertebra_labelling": loc.seconds.get("total", 0.0),
                      **{k: v for k, v in result.seconds.items() if k != "total"},
                      "total": round(time.perf_counter() - t0, 3)}
    return result


def _fracture_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", help="CT volume (Hounsfield units)")
    p.add_argument("--centroids", help="vertebra centroids (centroids.json, VerSe *_ctd.json, CSI .lml, or a "
                   "TotalSegmentator segmentations folder); default: found first")
    p.add_argument("--no-genant", action="store_true", help="voxel classifier only (no body segmentation/heights)")


def _fracture_command(args: argparse.Namespace, progress) -> int:
    """Fracture assessment per vertebra: DIR/fracture.json and DIR/fracture.csv."""
    from SpineAILib.vertebra_body.outputs import write_fracture_outputs

    device = _checked_device(args)
    with writing_into(args.output) as stage:
        image = read_image(args.input)
        centroids = _read_centroids(args, image)
        r = assess_ct(image, centroids, device=device, genant=not args.no_genant, progress=progress)
        write_fracture_outputs(r, stage, source=str(args.input))
    progress.close()
    _warn("fracture", r.warnings)
    flagged = [f"{v.name} ({v.status})" for v in r.vertebrae if v.status != "normal"]
    print(f"Wrote {args.output}/fracture.json and fracture.csv: {len(r.vertebrae)} vertebrae, "
          f"{'fractures: ' + ', '.join(flagged) if flagged else 'no fracture found'}")
    return EXIT_OK


def _fracture_demo(ctx) -> dict:
    from SpineAILib.vertebra_body import assess_fractures
    from SpineAILib.vertebra_body.scene import write_fracture_result

    ct = ctx.ct
    t = time.perf_counter()
    frac = assess_fractures(ct.image, ct.body_centers, device=ctx.device, genant=False)
    for v in frac.vertebrae:  # Genant from the bodies just measured (same clicks)
        found = [b for b in ctx.predictions.get("vertebral-body", []) if b.label == v.label]
        if found and found[0].genant is not None:
            v.genant, v.heights = found[0].genant, found[0].heights
    write_fracture_result(ctx.scene, frac, "Predicted fracture")
    ctx.predictions["fracture"] = frac
    return {"metrics": {v.name: {"probability": round(v.probability, 3), "status": v.status}
                        for v in frac.vertebrae} | {"patient_fractured": frac.patient_fractured},
            "seconds": round(time.perf_counter() - t, 3)}


register(Task(
    name="fracture", title="Fracture assessment (CT)", input="ct", package="SpineAILib.vertebra_body",
    slicer_module="VertebralBody", entry_point="SpineAILib.tasks.assess_ct",
    usage="spineai fracture CT [--centroids FILE] --output DIR", help="fracture assessment of every vertebra of a CT",
    output_files=("fracture.json", "fracture.csv"),
    run=assess_ct, result="SpineAILib.vertebra_body.fracture:FractureResult",
    write_outputs=lazy("SpineAILib.vertebra_body.outputs:write_fracture_outputs"),
    read_outputs=lazy("SpineAILib.vertebra_body.outputs:read_fracture_outputs"),
    write_scene=lazy("SpineAILib.vertebra_body.scene:write_fracture_result"),
    add_arguments=_fracture_arguments, command=_fracture_command, demo=_fracture_demo,
    trainer="SpineAILib.vertebra_body.train_fracture", evaluator="SpineAILib.vertebra_body.evaluate_fracture",
    exporter="SpineAILib.vertebra_body.export"))


# ------------------------------------------------------------------------------ xray-vertebrae


def _xray_vertebrae_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", help="radiograph (PNG/JPG/DICOM/NRRD...) or a folder of them")
    p.add_argument("--view", choices=("auto", "lateral", "ap"), default="auto",
                   help="lateral (C2-S1 + sagittal alignment), ap (T1-L5) or auto (default: decided per image)")


def _xray_vertebrae_command(args: argparse.Namespace, progress) -> int:
    """Vertebra labels per radiograph: DIR/<image stem>.json and DIR/alignment.csv."""
    from SpineAILib.io.readers import list_images
    from SpineAILib.xray_vertebrae import label
    from SpineAILib.xray_vertebrae.outputs import csv_row, write_csv, write_outputs

    device = _checked_device(args)
    files = list_images(args.input)
    rows, failures, results = [], 0, []
    with writing_into(args.output) as stage:
        for i, path in enumerate(files):
            sub = SubProgress(progress, i / len(files), (i + 1) / len(files))
            try:
                r = label(path, view=args.view, device=device, progress=sub)
            except InputError as exc:  # one unreadable file must not stop a folder: report it and go on
                print(f"spineai xray-vertebrae: error: {path.name}: {exc}", file=sys.stderr)
                r, failures = exc, failures + 1
            else:
                _warn("xray-vertebrae", r.warnings, f"{path.name}: " if len(files) > 1 else "")
            results.append(r)
            rows.append(csv_row(path.name, r))
            write_outputs(r, stage, path.name)
        write_csv(stage / "alignment.csv", rows)
    progress.close()
    print(f"Wrote {args.output}/alignment.csv and {len(files)} JSON file(s)"
          f"{f' ({failures} failed)' if failures else ''}")
    if len(files) == 1 and failures == 0:
        r = results[0]
        names = r.names()
        span = f"{names[0]}-{names[-1]}" if names else "none"
        angles = ", ".join(f"{k} {v:.1f}" for k, v in r.alignment.angles().items() if v is not None) \
            if r.alignment else ""
        print(f"  {r.view} view: {len(names)} vertebrae ({span}){'; ' + angles if angles else ''}")
    return EXIT_INPUT if failures == len(files) else EXIT_OK


def _xray_vertebrae_demo(ctx) -> dict:
    import numpy as np

    from SpineAILib.xray_vertebrae import label, sagittal_alignment
    from SpineAILib.xray_vertebrae.scene import write_xray_vertebrae_result

    lat = ctx.lateral
    pred, seconds = _timed(label, lat.image, view="lateral", device=ctx.device)
    write_xray_vertebrae_result(ctx.scene, lat.image, pred, prefix="Predicted lateral")
    ctx.predictions["xray-vertebrae"] = pred
    truth = {n: c for n, c in zip(anatomy.LATERAL_VERTEBRAE, lat.centroids, strict=True) if not np.isnan(c[0])}
    dist = [float(np.linalg.norm(np.asarray(v.centroid) - truth[v.name])) for v in pred.vertebrae if v.name in truth]
    gt = sagittal_alignment(lat.corners).angles()
    got = pred.alignment.angles() if pred.alignment else {}
    errors = {k: round(abs(got[k] - gt[k]), 2) for k in gt if gt[k] is not None and got.get(k) is not None}
    return {"metrics": {"view": pred.view, "found": len(pred.vertebrae), "in_phantom": len(truth),
                        "id_rate": id_rate(pred, truth), "mean_distance_px": float(np.mean(dist)) if dist else None,
                        "angle_abs_error_deg": errors, "warnings": len(pred.warnings)},
            "seconds": round(seconds, 3)}


def id_rate(result, truth: dict) -> float:
    """Share of true vertebrae {name: (x, y)} whose closest predicted centroid carries their name."""
    import numpy as np

    if not truth:
        return float("nan")
    if not result.vertebrae:
        return 0.0
    pred = np.array([v.centroid for v in result.vertebrae], float)
    names = result.names()
    ok = sum(names[int(np.argmin(np.linalg.norm(pred - np.asarray(p), axis=1)))] == n for n, p in truth.items())
    return ok / len(truth)


register(Task(
    name="xray-vertebrae", title="Vertebra labelling and sagittal alignment (radiograph)", input="radiograph",
    package="SpineAILib.xray_vertebrae", slicer_module="XrayVertebrae", entry_point="SpineAILib.xray_vertebrae.label",
    usage="spineai xray-vertebrae IMAGE_OR_FOLDER --output DIR [--view auto|lateral|ap]",
    help="name the vertebrae of lateral (C2-S1, sagittal alignment) or AP (T1-L5) radiographs",
    output_files=("<image stem>.json", "alignment.csv"),
    run=lazy("SpineAILib.xray_vertebrae.predict:label"), result="SpineAILib.xray_vertebrae.predict:XrayVertebraeResult",
    write_outputs=lazy("SpineAILib.xray_vertebrae.outputs:write_outputs"),
    read_outputs=lazy("SpineAILib.xray_vertebrae.outputs:read_outputs"),
    write_scene=lazy("SpineAILib.xray_vertebrae.scene:write_xray_vertebrae_result"),
    add_arguments=_xray_vertebrae_arguments, command=_xray_vertebrae_command, demo=_xray_vertebrae_demo,
    trainer="SpineAILib.xray_vertebrae.train", evaluator="SpineAILib.xray_vertebrae.evaluate",
    exporter="SpineAILib.xray_vertebrae.export"))
