"""The ``scrramble-sim`` command line: subcommands live in :mod:`sim.commands`."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Sequence

import numpy as np

from sim.commands import SUBCOMMANDS, CommandError, CommandResult


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="scrramble-sim",
        description="Train ScRRAMBLe networks and simulate them on virtual RRAM chips.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMANDS:
        module = importlib.import_module(f"sim.commands.{name}")
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        p.add_argument(
            "--json", action="store_true", help="print one JSON object of results on stdout"
        )
        module.add_arguments(p)
        p.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit status."""
    args = build_parser().parse_args(argv)
    try:
        result: CommandResult = args._module.run(args)
    except CommandError as exc:
        print(f"scrramble-sim {args.command}: error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result.data, default=_json_default, sort_keys=True))
    elif result.text:
        print(result.text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
