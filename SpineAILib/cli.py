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


COMMANDS: dict[str, Callable[[argparse.Namespace, Progress], int]] = {"demo": _cmd_demo, "info": _cmd_info}


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
