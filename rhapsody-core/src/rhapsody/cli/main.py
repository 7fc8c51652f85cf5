"""The ``rhapsody`` command: ``rhapsody backends`` and ``rhapsody demo``."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from .. import __version__, discover_backends
from .demo import run_demo
from .render import table


def _backends(_args: argparse.Namespace) -> int:
    rows = []
    for name, info in sorted(discover_backends().items()):
        dist = f"{info.distribution or '-'} {info.version or ''}".strip()
        status = "available" if info.available else f"unavailable: {info.reason}"
        rows.append((name, info.kind or "-", info.class_name or "-", dist, status))
    print(table(["name", "kind", "class", "distribution", "status"], rows))
    return 0


def _demo(args: argparse.Namespace) -> int:
    if args.tasks < 0:
        print(
            f"rhapsody demo: --tasks: expected an integer >= 0, got {args.tasks}", file=sys.stderr
        )
        return 2
    return asyncio.run(run_demo(args.tasks, sys.stdout))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rhapsody", description=__doc__)
    parser.add_argument("--version", action="version", version=f"rhapsody {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("backends", help="list discovered backends").set_defaults(run=_backends)
    demo = sub.add_parser("demo", help="run a small heterogeneous workload locally")
    demo.add_argument("--tasks", type=int, default=200, help="number of tasks (default 200)")
    demo.set_defaults(run=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
