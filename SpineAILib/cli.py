"""The ``spineai`` command line.

Commands: ``demo``, ``info`` (and one per task as the tasks land). Every command takes
``--device`` and ``--output`` where meaningful, shows a tqdm progress bar (or, with
``--machine-progress``, one parseable line per update for the Slicer background process).

Exit codes: 0 success, 2 bad input or usage, 3 model problem, 4 missing dependency,
130 cancelled / interrupted, 1 unexpected error.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence

from SpineAILib import __version__
from SpineAILib.errors import CancelledError, InputError, ModelError

EXIT_OK, EXIT_ERROR, EXIT_INPUT, EXIT_MODEL, EXIT_DEPENDENCY, EXIT_CANCELLED = 0, 1, 2, 3, 4, 130


class Progress:
    """Progress sink for the CLI: a tqdm bar, machine lines, or nothing (--quiet)."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self._bar = None

    def __call__(self, fraction: float, message: str = "") -> None:
        if self.mode == "machine":
            from SpineAILib.progress import format_machine_progress

            print(format_machine_progress(fraction, message), flush=True)
        elif self.mode == "bar":
            if self._bar is None:
                from tqdm import tqdm

                self._bar = tqdm(total=100, unit="%", bar_format="{l_bar}{bar}| {n:.0f}/{total} {postfix}",
                                 file=sys.stderr)
            self._bar.n = round(100 * fraction, 1)
            self._bar.set_postfix_str(message, refresh=False)
            self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _common(p: argparse.ArgumentParser, output_default: str | None = None) -> None:
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N or mps")
    if output_default is not None:
        p.add_argument("--output", "-o", default=output_default, help=f"output folder (default: {output_default})")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    g.add_argument("--machine-progress", action="store_true",
                   help="print '@@SPINEAI_PROGRESS <fraction> <message>' lines (used by the Slicer modules)")


def _cmd_demo(args: argparse.Namespace, progress: Progress) -> int:
    from SpineAILib.demo import run_demo
    from SpineAILib.device import parse_device

    parse_device(args.device)
    report = run_demo(args.output, device=args.device, seed=args.seed, progress=progress)
    progress.close()
    print(f"Wrote {args.output}/spineai-demo.mrb, overview.png and report.json")
    for name, task in report["tasks"].items():
        metrics = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in task["metrics"].items())
        print(f"  {name} ({task['seconds']:.1f} s): {metrics}")
    return EXIT_OK


def _cmd_info(args: argparse.Namespace, progress: Progress) -> int:
    from SpineAILib.device import parse_device
    from SpineAILib.info import info

    parse_device(args.device)
    data = info(args.device)
    if args.json:
        print(json.dumps(data, indent=2))
        return EXIT_OK
    print(f"SpineAI {data['versions']['spineai']}")
    for k, v in data["versions"].items():
        if k != "spineai":
            print(f"  {k:12s} {v}")
    print(f"device:      {data['device']}")
    print(f"models dir:  {data['models_dir']}")
    if data["models"]:
        for m in data["models"]:
            print(f"  model {m['name']} ({m['task']}, {m['architecture']})")
    else:
        print("  no models installed yet")
    print(f"tasks:       {', '.join(data['tasks']) or 'none yet (spineai demo shows the phantoms and scene output)'}")
    return EXIT_OK


COBB_CSV_HEADER = ["image", "main", "upper", "lower", "confidence", "low_confidence", "main_curve", "upper_curve",
                   "lower_curve", "main_apex", "warnings"]


def _cmd_cobb(args: argparse.Namespace, progress: Progress) -> int:
    """Batch Cobb angles: one CSV row per image (main, upper, lower in degrees first)."""
    import csv
    from pathlib import Path

    from SpineAILib.cobb.predict import estimate_batch, list_images
    from SpineAILib.device import parse_device

    parse_device(args.device)
    files = list_images(args.input)
    out = Path(args.output)
    csv_path = Path(args.csv) if args.csv else out / "cobb_angles.csv"
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    results = estimate_batch(files, device=args.device, batch_size=args.batch_size, progress=progress)
    failures = 0
    with open(csv_path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(COBB_CSV_HEADER)
        for path, r in zip(files, results, strict=True):
            if isinstance(r, InputError):
                # One unreadable file must not stop a batch: report it and go on.
                failures += 1
                print(f"spineai cobb: {path.name}: {r}", file=sys.stderr)
                w.writerow([path.name, "", "", "", "", "", "", "", "", "", f"error: {r}"])
                continue
            a = r.angles
            w.writerow([path.name, *(f"{v:.3f}" for v in r.values), f"{r.confidence:.3f}", int(r.low_confidence),
                        f"{a.main.upper_end}-{a.main.lower_end}", f"{a.upper.upper_end}-{a.upper.lower_end}",
                        f"{a.lower.upper_end}-{a.lower.lower_end}", a.main.apex, " | ".join(r.warnings)])
            if r.warnings and len(files) == 1:
                for msg in r.warnings:
                    print(f"spineai cobb: warning: {msg}", file=sys.stderr)
            if args.landmarks:
                d = Path(args.landmarks)
                d.mkdir(parents=True, exist_ok=True)
                record = json.dumps({"image": path.name, **r.to_dict()}, indent=1)
                (d / f"{path.name}.json").write_text(record, encoding="utf-8")
    progress.close()
    print(f"Wrote {csv_path} ({len(files) - failures} image(s){f', {failures} failed' if failures else ''})")
    if len(files) == 1 and failures == 0:
        r = results[0]
        print(f"  main {r.values[0]:.1f}, upper {r.values[1]:.1f}, lower {r.values[2]:.1f} degrees "
              f"(confidence {r.confidence:.2f})")
    return EXIT_INPUT if failures == len(files) else EXIT_OK


def _cmd_cervical(args: argparse.Namespace, progress: Progress) -> int:
    """Cervical localisation: DIR/localization.png (binary mask at the image size) and .json."""
    from pathlib import Path

    import numpy as np
    import SimpleITK as sitk

    from SpineAILib.cervical import localize
    from SpineAILib.device import parse_device

    parse_device(args.device)
    progress(0.1, "localising")
    r = localize(args.input, device=args.device)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(sitk.GetImageFromArray((r.region * 255).astype(np.uint8)), str(out / "localization.png"))
    if args.probability:
        sitk.WriteImage(sitk.GetImageFromArray((r.probability * 255).round().astype(np.uint8)),
                        str(out / "probability.png"))
    record = json.dumps({"image": Path(args.input).name, **r.to_dict()}, indent=1)
    (out / "localization.json").write_text(record, encoding="utf-8")
    progress(1.0, "done")
    progress.close()
    for msg in r.warnings:
        print(f"spineai cervical: warning: {msg}", file=sys.stderr)
    print(f"Wrote {out}/localization.png and localization.json "
          f"({'found' if r.found else 'NOT found'}; axis {r.axis_angle_deg:.1f} deg from vertical)")
    return EXIT_OK


def _cmd_vertebrae(args: argparse.Namespace, progress: Progress) -> int:
    """Vertebra labelling: DIR/centroids.json (RAS), centroids_ctd.json (VerSe), centroids.mrk.json,
    vertebrae.nii.gz and vertebrae.seg.nrrd."""
    from SpineAILib.device import parse_device
    from SpineAILib.io import read_image
    from SpineAILib.vertebrae import locate
    from SpineAILib.vertebrae.outputs import write_outputs

    parse_device(args.device)
    image = read_image(args.input)
    r = locate(image, device=args.device, progress=progress)
    write_outputs(r, image, args.output, source=str(args.input))
    progress.close()
    for msg in r.warnings:
        print(f"spineai vertebrae: warning: {msg}", file=sys.stderr)
    noun = "vertebra" if len(r.centroids) == 1 else "vertebrae"
    print(f"Wrote {args.output}/centroids.json, centroids_ctd.json, centroids.mrk.json, vertebrae.nii.gz, "
          f"vertebrae.seg.nrrd ({len(r.centroids)} {noun}: {' '.join(r.names()) or 'none'}; "
          f"{r.seconds.get('total', 0):.1f} s)")
    return EXIT_OK


def _parse_point(text: str) -> tuple[float, float, float]:
    try:
        vals = [float(v) for v in text.replace(";", ",").split(",")]
    except ValueError:
        vals = []
    if len(vals) != 3:
        raise InputError(f"--point '{text}' must be three numbers X,Y,Z (RAS mm), e.g. --point 12.5,-40,310.")
    return vals[0], vals[1], vals[2]


def _cmd_vertebral_body(args: argparse.Namespace, progress: Progress) -> int:
    """Click-to-segment: DIR/vertebral_body.nii.gz (label map on the CT grid, value = click number)
    and DIR/measurements.json (volume, mean HU, heights, Genant per body)."""
    from pathlib import Path

    import numpy as np

    from SpineAILib.device import parse_device
    from SpineAILib.io import read_image, write_image
    from SpineAILib.vertebra_body import segment_many
    from SpineAILib.vertebrae.formats import read_centroids_file

    parse_device(args.device)
    if not args.point:
        raise InputError("Give at least one --point X,Y,Z (RAS mm) on a vertebral body.")
    points = [_parse_point(t) for t in args.point]
    image = read_image(args.input)
    centroids = read_centroids_file(args.centroids, image) if args.centroids else None
    progress(0.1, "segmenting")
    results = segment_many(image, points, "RAS", centroids, device=args.device)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    labels = np.zeros(image.array.shape, np.uint8)
    for i, r in enumerate(results):
        labels[r.mask & (labels == 0)] = i + 1
    write_image(image.with_array(labels), out / "vertebral_body.nii.gz")
    bodies = [{"label_value": i + 1, **r.to_dict()} for i, r in enumerate(results)]
    record = {"input": str(args.input), "bodies": bodies}
    (out / "measurements.json").write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    progress(1.0, "done")
    progress.close()
    for r in results:
        for msg in r.warnings:
            print(f"spineai vertebral-body: warning: {r.name}: {msg}", file=sys.stderr)
    print(f"Wrote {out}/vertebral_body.nii.gz and measurements.json")
    for b in bodies:
        print(f"  {b['name']}: {b['volume_ml']:.1f} ml, {b['mean_hu']:.0f} HU, heights {b['anterior_height_mm']:.1f}/"
              f"{b['middle_height_mm']:.1f}/{b['posterior_height_mm']:.1f} mm, Genant {b['genant']}")
    return EXIT_OK


def _cmd_fracture(args: argparse.Namespace, progress: Progress) -> int:
    """Fracture assessment per vertebra: DIR/fracture.json and DIR/fracture.csv."""
    import csv
    from pathlib import Path

    from SpineAILib.device import parse_device
    from SpineAILib.fracture import assess
    from SpineAILib.io import read_image
    from SpineAILib.vertebrae.formats import read_centroids_file

    parse_device(args.device)
    image = read_image(args.input)
    centroids = read_centroids_file(args.centroids, image) if args.centroids else None
    r = assess(image, centroids, device=args.device, genant=not args.no_genant, progress=progress)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    record = {"input": str(args.input), **r.to_dict()}
    (out / "fracture.json").write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    with open(out / "fracture.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["vertebra", "fracture_probability", "genant_grade", "genant", "deformity", "height_loss",
                    "status"])
        for v in r.vertebrae:
            d = v.to_dict()
            w.writerow([d["name"], d["fracture_probability"], d["genant_grade"], d["genant"], d["deformity"],
                        d["height_loss"], d["status"]])
    progress.close()
    for msg in r.warnings:
        print(f"spineai fracture: warning: {msg}", file=sys.stderr)
    flagged = [f"{v.name} ({v.status})" for v in r.vertebrae if v.status != "normal"]
    print(f"Wrote {out}/fracture.json and fracture.csv: {len(r.vertebrae)} vertebrae, "
          f"{'fractures: ' + ', '.join(flagged) if flagged else 'no fracture found'}")
    return EXIT_OK


TRAINERS = {"cobb": "SpineAILib.cobb.train", "cervical": "SpineAILib.cervical.train",
            "vertebrae": "SpineAILib.vertebrae.train", "vertebral-body": "SpineAILib.vertebra_body.train",
            "fracture": "SpineAILib.fracture.train"}
EVALUATORS = {"cobb": "SpineAILib.cobb.evaluate", "cervical": "SpineAILib.cervical.evaluate",
              "vertebrae": "SpineAILib.vertebrae.evaluate", "vertebral-body": "SpineAILib.vertebra_body.evaluate",
              "fracture": "SpineAILib.fracture.evaluate"}


def _run_module_main(table: dict[str, str], args: argparse.Namespace) -> int:
    import importlib

    if args.task not in table:
        raise InputError(f"No such task '{args.task}'; available: {', '.join(sorted(table))}.")
    return int(importlib.import_module(table[args.task]).main(args.rest) or 0)


def _cmd_train(args: argparse.Namespace, progress: Progress) -> int:
    return _run_module_main(TRAINERS, args)


def _cmd_evaluate(args: argparse.Namespace, progress: Progress) -> int:
    return _run_module_main(EVALUATORS, args)


COMMANDS: dict[str, Callable[[argparse.Namespace, Progress], int]] = {
    "demo": _cmd_demo, "info": _cmd_info, "cobb": _cmd_cobb, "cervical": _cmd_cervical, "train": _cmd_train,
    "evaluate": _cmd_evaluate, "vertebrae": _cmd_vertebrae, "vertebral-body": _cmd_vertebral_body,
    "fracture": _cmd_fracture,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spineai", description="SpineAI: spine-imaging AI (SpineAILib CLI)")
    parser.add_argument("--version", action="version", version=f"spineai {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = sub.add_parser("demo", help="phantoms -> pipelines -> Slicer scene (.mrb), overview.png, report.json")
    _common(p, "spineai-demo")
    p.add_argument("--seed", type=int, default=0, help="phantom seed (default 0)")
    p = sub.add_parser("info", help="versions, device, installed models")
    _common(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = sub.add_parser("cobb", help="Cobb angles of AP spine radiographs (a file or a folder)")
    p.add_argument("input", help="radiograph (PNG/JPG/DICOM/NRRD...) or a folder of them")
    _common(p, "spineai-cobb")
    p.add_argument("--csv", help="CSV path (default OUTPUT/cobb_angles.csv): image,main,upper,lower,...")
    p.add_argument("--landmarks", metavar="DIR", help="also write <image>.json with the 68 landmarks per image")
    p.add_argument("--batch-size", type=int, default=4, help="images per network call (default 4)")
    p = sub.add_parser("cervical", help="localise the C3-C7 cervical spine in a lateral radiograph")
    p.add_argument("input", help="lateral cervical radiograph")
    _common(p, "spineai-cervical")
    p.add_argument("--probability", action="store_true", help="also write probability.png")
    p = sub.add_parser("vertebrae", help="find and label the vertebrae of a CT (centroids + segments)")
    p.add_argument("input", help="CT volume (NIfTI, NRRD, MHA or a DICOM series folder), Hounsfield units")
    _common(p, "spineai-vertebrae")
    p = sub.add_parser("vertebral-body", help="segment and measure the vertebral body at clicked point(s) in a CT")
    p.add_argument("input", help="CT volume (Hounsfield units)")
    p.add_argument("--point", action="append", metavar="X,Y,Z", help="a point on a vertebral body, RAS mm (repeatable)")
    p.add_argument("--centroids", help="vertebra centroids (centroids.json / VerSe *_ctd.json) to name the bodies")
    _common(p, "spineai-vertebral-body")
    p = sub.add_parser("fracture", help="fracture assessment of every vertebra of a CT")
    p.add_argument("input", help="CT volume (Hounsfield units)")
    p.add_argument("--centroids", help="vertebra centroids (centroids.json / VerSe *_ctd.json); default: found first")
    p.add_argument("--no-genant", action="store_true", help="voxel classifier only (no body segmentation/heights)")
    _common(p, "spineai-fracture")
    for name, helptext in (("train", "train a task's model (headless)"), ("evaluate", "evaluate a task's model")):
        p = sub.add_parser(name, help=helptext, add_help=False)
        p.add_argument("task", help="task name, e.g. cobb")
        p.add_argument("rest", nargs=argparse.REMAINDER, help="options of that task's script (--help lists them)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    # "--point -12.5,40,300": argparse would take the negative number for an option; bind it.
    for i in range(len(argv) - 1):
        if argv[i] == "--point" and argv[i + 1].startswith("-"):
            argv[i], argv[i + 1] = f"--point={argv[i + 1]}", ""
    args = parser.parse_args([a for a in argv if a != ""])
    if not args.command:
        parser.print_help()
        return EXIT_INPUT
    mode = "bar"
    if getattr(args, "machine_progress", False):
        mode = "machine"
    elif getattr(args, "quiet", False):
        mode = "none"
    progress = Progress(mode)
    try:
        return COMMANDS[args.command](args, progress)
    except InputError as exc:
        progress.close()
        print(f"spineai {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except ModelError as exc:
        progress.close()
        print(f"spineai {args.command}: model error: {exc}", file=sys.stderr)
        return EXIT_MODEL
    except ImportError as exc:
        progress.close()
        print(f"spineai {args.command}: missing dependency: {exc}. Install with: pip install spineai[test]",
              file=sys.stderr)
        return EXIT_DEPENDENCY
    except (CancelledError, KeyboardInterrupt):
        progress.close()
        print(f"spineai {args.command}: cancelled", file=sys.stderr)
        return EXIT_CANCELLED


if __name__ == "__main__":
    sys.exit(main())
