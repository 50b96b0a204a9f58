"""One module per ``scrramble-sim`` subcommand.

Each module defines ``HELP`` (one line), ``add_arguments(parser)`` and
``run(args) -> CommandResult``. Progress bars go to stderr; ``CommandResult.text`` is the
human-readable report and ``CommandResult.data`` the JSON-serialisable results.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class CommandResult:
    """What a subcommand returns: JSON-serialisable data and a human-readable report."""

    data: dict = field(default_factory=dict)
    text: str = ""


class CommandError(Exception):
    """A user-facing error: printed as one clear line, exit status 2."""


SUBCOMMANDS: tuple[str, ...] = (
    "train", "evaluate", "map", "simulate", "sweep", "report", "demo"
)
