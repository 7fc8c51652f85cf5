"""The ``rhapsody`` command: ``rhapsody backends``, ``rhapsody demo`` and ``rhapsody report``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from .. import __version__

DESCRIPTION = """\
RHAPSODY runs executables, Python functions and LLM inference requests on any installed
backend from one asyncio Session.
"""
EPILOG = """\
examples:
  rhapsody backends            what is installed, what each backend needs, what is missing
  rhapsody demo --tasks 100    100 small tasks on the embedded concurrent backend
  rhapsody report RUN.telemetry.jsonl --plot run.png
                               summarise a run's telemetry file, and draw it
"""


def _backends(_args: argparse.Namespace) -> int:
    from .backend_list import render_backends

    print(render_backends())
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    if args.tasks < 0:
        print(
            f"rhapsody demo: --tasks: expected an integer >= 0, got {args.tasks}", file=sys.stderr
        )
        return 2
    try:
        return asyncio.run(run_demo(args.tasks, sys.stdout, args.telemetry))
    except (ValueError, ImportError) as exc:  # an unwritable directory, no OTel SDK
        print(f"rhapsody demo: --telemetry: {exc}", file=sys.stderr)
        return 2


def _report(args: argparse.Namespace) -> int:
    from ..telemetry.report import ReportError, load
    from ..telemetry.summary import summarise

    try:
        data = load(args.file)
        print(summarise(data))
        if args.plot:
            from ..telemetry.plot import plot

            print(f"\nplot written to {plot(data, args.plot)}")
    except ReportError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rhapsody",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"rhapsody {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser(
        "backends", help="list discovered backends, and the first-party ones not installed"
    ).set_defaults(run=_backends)
    demo = sub.add_parser(
        "demo",
        help="run a small heterogeneous workload locally",
        description="Run N tasks (functions, async functions, executables; two of them fail on "
        "purpose when N >= 4) on the embedded concurrent backend, with a progress bar when a "
        "terminal is watching, and print a summary.",
    )
    demo.add_argument("--tasks", type=int, default=200, metavar="N", help="number of tasks (200)")
    demo.add_argument(
        "--telemetry",
        metavar="DIR",
        help="record telemetry into DIR/<session>.telemetry.jsonl (see rhapsody report)",
    )
    demo.set_defaults(run=_demo)
    report = sub.add_parser(
        "report",
        help="summarise a telemetry checkpoint file (and plot it)",
        description="Summarise RUN.telemetry.jsonl (written by session.start_telemetry("
        "checkpoint_path=...)): tasks by state and backend, latency percentiles, throughput over "
        "time, failure reasons, resource utilisation; --plot draws the timeline.",
    )
    report.add_argument("file", metavar="RUN.telemetry.jsonl")
    report.add_argument(
        "--plot", metavar="OUT", help="also draw the run into OUT (.png, .svg or .html)"
    )
    report.set_defaults(run=_report)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # A plugin that fails to load is a row of `rhapsody backends`; its log warning would only
    # repeat it on every command.
    logging.getLogger("rhapsody.plugins").setLevel(logging.ERROR)
    if getattr(args, "run", None) is None:  # `rhapsody` alone: say what it can do
        parser.print_help()
        return 0
    try:
        return int(args.run(args))
    except BrokenPipeError:  # `rhapsody report ... | head`: the reader had enough
        sys.stderr.close()
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
