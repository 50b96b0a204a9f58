"""One module per ``scrramble-sim`` subcommand, and the conventions they all follow.

Each module defines ``HELP`` (one line), ``add_arguments(parser)`` and
``run(args) -> CommandResult``; register it in :data:`SUBCOMMANDS` (and in
:data:`MODULE_NAMES` when the module name differs from the command). The full reference of
every command, flag and JSON key is docs/cli.md; tests/test_cli_common.py checks that every
command follows the conventions below and that docs/cli.md lists its flags and JSON keys.

Conventions (helpers in :mod:`sim.commands.common`):

- **Flags added by** :mod:`sim.commands.cli` **to every command**: ``--json`` (one JSON object
  on stdout instead of the text report) and ``--no-progress`` (no tqdm bars; bars go to
  stderr, on every step a user waits for: :func:`~sim.commands.common.progress_bar`).
- **Same flag, same meaning**: ``--seed S`` (``add_seed_argument``; 0 <= S < 2**63, on every
  command that draws random numbers); ``--threads N`` (``add_threads_argument``; the total
  threads the command may use, refused above the available CPUs; default the available CPUs,
  at most 8; results never depend on it); ``--limit N`` (``add_limit_argument``; only the
  first N samples of the split being evaluated -- ``train --limit-train N`` limits the
  training data); ``--overwrite`` (``add_overwrite_argument``); ``--chip``, ``--dataset``,
  ``--data`` as in ``add_chip_argument`` / ``add_dataset_arguments``.
- **Outputs**: check every output path before working
  (:func:`~sim.commands.common.check_output_path`: an existing file is refused unless
  ``--overwrite``), create missing parent folders just before writing (``make_parent``) and
  write atomically (:func:`mappings.safe_files.atomic_write`), so an error or Ctrl-C never
  leaves a partial file.
- **JSON**: ``CommandResult.data`` holds the results; ``main`` adds ``command`` (the
  subcommand name) and ``seconds`` (wall time of ``run``), so commands must not set them.
  Shared keys: ``network`` (the network file read or written), ``chip``, ``dataset``,
  ``data`` (directory read), ``split``, ``n_samples``, ``accuracy`` (fraction in [0, 1] on
  ``split``), ``seed``, ``threads``, ``devices`` (devices per encoding:
  ``{"single", "differential", "offset"}``, None where an encoding cannot map the network),
  ``*_seconds`` for the time of one phase. Non-finite numbers become ``null``.
- **Errors**: raise :class:`CommandError`: printed as ``scrramble-sim CMD: error: ...``, exit
  status 2 (argparse errors look the same). Ctrl-C prints ``scrramble-sim CMD: interrupted``
  and exits with status 130; raise :class:`CommandInterrupted` ("what was kept, how to
  resume") from a ``KeyboardInterrupt`` to append a note to that line.
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


class CommandInterrupted(KeyboardInterrupt):
    """Ctrl-C with a note (e.g. which checkpoint was kept) appended to the one-line report."""


SUBCOMMANDS: tuple[str, ...] = (
    "train", "evaluate", "map", "simulate", "import", "noc", "sweep", "report", "demo"
)

MODULE_NAMES: dict[str, str] = {"import": "import_npz"}
"""Subcommands whose module is not named like the command (``import`` is a keyword)."""

__all__ = [
    "MODULE_NAMES",
    "SUBCOMMANDS",
    "CommandError",
    "CommandInterrupted",
    "CommandResult",
]
