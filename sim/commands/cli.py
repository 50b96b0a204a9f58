"""The ``scrramble-sim`` command line: subcommands live in :mod:`sim.commands`."""

from __future__ import annotations

import _thread
import argparse
import contextlib
import importlib
import json
import math
import os
import sys
import threading
import time
from collections.abc import Iterator, Sequence

import numpy as np

from sim.commands import MODULE_NAMES, SUBCOMMANDS, CommandError, CommandResult

INTERRUPTED_STATUS = 130
"""Exit status after Ctrl-C (128 + SIGINT), as shells report it."""


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if hasattr(value, "__fspath__"):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _finite(value):
    """``value`` with non-finite floats replaced by None (strict JSON has no NaN / inf)."""
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def to_json(data: dict) -> str:
    """One line of strict JSON (sorted keys, NaN / inf as null)."""
    return json.dumps(_finite(data), default=_json_default, sort_keys=True, allow_nan=False)


def command_module(name: str):
    """The module implementing subcommand ``name``."""
    return importlib.import_module(f"sim.commands.{MODULE_NAMES.get(name, name)}")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="scrramble-sim",
        description="Train ScRRAMBLe networks and simulate them on virtual RRAM chips.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMANDS:
        module = command_module(name)
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        p.add_argument(
            "--json", action="store_true", help="print one JSON object of results on stdout"
        )
        p.add_argument(
            "--no-progress", action="store_true", help="no progress bars on stderr"
        )
        module.add_arguments(p)
        p.set_defaults(_module=module)
    return parser


@contextlib.contextmanager
def _ctrl_c_never_swallowed() -> Iterator[None]:
    """Re-deliver a Ctrl-C that landed in a finaliser or weakref callback.

    Python cannot raise an exception out of those; it would print "Exception ignored in ..."
    with a traceback and carry on as if Ctrl-C had not been pressed. While this is active such
    a KeyboardInterrupt is not printed but delivered to the main thread again from a helper
    thread, i.e. after the finaliser has returned (should it land in another finaliser, the
    same happens again).
    """
    previous = sys.unraisablehook

    def hook(unraisable) -> None:
        if isinstance(unraisable.exc_value, KeyboardInterrupt):
            threading.Timer(0.001, _thread.interrupt_main).start()
            return
        previous(unraisable)

    sys.unraisablehook = hook
    try:
        yield
    finally:
        sys.unraisablehook = previous


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit status (0 ok, 2 error, 130 interrupted)."""
    with _ctrl_c_never_swallowed():
        return _main(argv)


def _main(argv: Sequence[str] | None) -> int:
    command = None
    try:
        args = build_parser().parse_args(argv)
        command = args.command
        t0 = time.perf_counter()
        result: CommandResult = args._module.run(args)
        seconds = time.perf_counter() - t0
    except CommandError as exc:
        print(f"scrramble-sim {command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        note = str(exc) if len(exc.args) == 1 else ""
        prog = "scrramble-sim" + (f" {command}" if command else "")
        print(f"{prog}: interrupted" + (f"; {note}" if note else ""), file=sys.stderr)
        return INTERRUPTED_STATUS
    try:
        if args.json:
            print(to_json({**result.data, "command": command, "seconds": seconds}), flush=True)
        elif result.text:
            print(result.text, flush=True)
    except BrokenPipeError:  # e.g. piped into `head`: not an error of the command
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


if __name__ == "__main__":
    sys.exit(main())
