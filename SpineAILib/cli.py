"""The ``spineai`` command line.

Commands: ``demo``, ``info``, one per task of the registry (:mod:`SpineAILib.tasks`: its
arguments and command come from there), and ``train`` / ``evaluate`` / ``export TASK`` (the
task's own script). Every command takes
``--device`` and ``--output`` where meaningful, shows a tqdm progress bar (or, with
``--machine-progress``, one parseable line per update for the Slicer background process).

Exit codes: 0 success, 2 bad input or usage, 3 model problem, 4 missing dependency,
130 cancelled / interrupted, 1 unexpected error.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import warnings
from collections.abc import Callable, Sequence

from SpineAILib import __version__
from SpineAILib.demo import run_demo
from SpineAILib.device import parse_device
from SpineAILib.errors import (  # noqa: F401  (the exit codes are part of this module's interface)
    EXIT_CANCELLED,
    EXIT_DEPENDENCY,
    EXIT_ERROR,
    EXIT_INPUT,
    EXIT_MODEL,
    EXIT_OK,
    CancelledError,
    InputError,
    ModelError,
)
from SpineAILib.info import info
from SpineAILib.io.output import check_output_folder
from SpineAILib.progress import format_machine_progress
from SpineAILib.tasks import TASKS, get_task, with_entry, writing_into


class Progress:
    """Progress sink for the CLI: a tqdm bar, machine lines, or nothing (--quiet)."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self._bar = None

    def __call__(self, fraction: float, message: str = "") -> None:
        if self.mode == "machine":
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
    parse_device(args.device)
    with writing_into(args.output) as stage:
        report = run_demo(stage, device=args.device, seed=args.seed, progress=progress)
    progress.close()
    print(f"Wrote {args.output}/spineai-demo.mrb, overview.png and report.json")
    for name, task in report["tasks"].items():
        metrics = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in task["metrics"].items())
        print(f"  {name} ({task['seconds']:.1f} s): {metrics}")
    return EXIT_OK


def _cmd_info(args: argparse.Namespace, progress: Progress) -> int:
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
    for m in data["models"]:
        state = "ok (sha256 verified)" if m["ok"] else f"BROKEN: {m['problem']}"
        print(f"  model {m['name']} ({m['task']}, {m['architecture']}): {state}")
    if not data["models"]:
        print("  no models found there: set SPINEAI_MODELS to the folder that holds the SpineAI models "
              "(Resources/Models of a source checkout)")
    broken = [m["name"] for m in data["models"] if not m["ok"]]
    if broken:
        print(f"spineai info: error: broken model(s): {', '.join(broken)}", file=sys.stderr)
        return EXIT_MODEL
    print(f"tasks:       {', '.join(data['tasks']) or 'none yet (spineai demo shows the phantoms and scene output)'}")
    return EXIT_OK


def _cmd_entry(kind: str) -> Callable[[argparse.Namespace, Progress], int]:
    """``spineai train|evaluate|export TASK ...``: the task's own script with the remaining options."""

    def run(args: argparse.Namespace, progress: Progress) -> int:
        if args.task is None:
            raise InputError(f"Name the task: spineai {args.command} TASK [options], TASK one of "
                             f"{', '.join(with_entry(kind))} ('spineai {args.command} TASK --help' lists its options).")
        task = get_task(args.task)
        if "--output" in args.rest[:-1]:  # checked before a long run, not after it
            check_output_folder(args.rest[args.rest.index("--output") + 1])
        return int(task.entry(kind)(args.rest) or 0)

    return run


ENTRY_COMMANDS = {"train": ("trainer", "train a task's model (headless)"),
                  "evaluate": ("evaluator", "evaluate a task's model"),
                  "export": ("exporter", "publish a trained model (weights + model card) into the models folder")}


def _commands() -> dict[str, Callable[[argparse.Namespace, Progress], int]]:
    """Every command: demo, info, one per task (the registry's order), train, evaluate, export."""
    return {"demo": _cmd_demo, "info": _cmd_info, **{name: task.command for name, task in TASKS.items()},
            **{name: _cmd_entry(kind) for name, (kind, _) in ENTRY_COMMANDS.items()}}


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
    for name, task in TASKS.items():
        p = sub.add_parser(name, help=task.help)
        task.add_arguments(p)
        _common(p, f"spineai-{name}")
    for name, (kind, helptext) in ENTRY_COMMANDS.items():
        p = sub.add_parser(name, help=helptext, description=f"{helptext}: the task's own script.")
        p.add_argument("task", nargs="?", help=f"task name: {', '.join(with_entry(kind))}")
        p.add_argument("rest", nargs=argparse.REMAINDER, help="the task script's options ('TASK --help' lists them)")
    return parser


@contextlib.contextmanager
def _warnings_as_messages(command: str):
    """Python warnings raised during a command (a requested CUDA device that is not there, an
    input read with a change) printed as one line each, ``spineai <command>: warning: ...``."""
    def show(message, category, filename, lineno, file=None, line=None):
        print(f"spineai {command}: warning: {message}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


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
    mode = "bar" if sys.stderr.isatty() else "none"  # no bar frames in a log file
    if getattr(args, "machine_progress", False):
        mode = "machine"
    elif getattr(args, "quiet", False):
        mode = "none"
    progress = Progress(mode)
    try:
        with _warnings_as_messages(args.command):
            return _commands()[args.command](args, progress)
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
