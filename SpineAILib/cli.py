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


TRAINERS = {"cobb": "SpineAILib.cobb.train", "cervical": "SpineAILib.cervical.train"}
EVALUATORS = {"cobb": "SpineAILib.cobb.evaluate", "cervical": "SpineAILib.cervical.evaluate"}


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
    "evaluate": _cmd_evaluate,
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
    for name, helptext in (("train", "train a task's model (headless)"), ("evaluate", "evaluate a task's model")):
        p = sub.add_parser(name, help=helptext, add_help=False)
        p.add_argument("task", help="task name, e.g. cobb")
        p.add_argument("rest", nargs=argparse.REMAINDER, help="options of that task's script (--help lists them)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
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
