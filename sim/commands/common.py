"""Flags, checks and loading steps shared by the ``scrramble-sim`` subcommands.

New commands should build on these so that the same flag means the same thing everywhere
(see the conventions in :mod:`sim.commands` and docs/cli.md):

- :func:`add_seed_argument` / :func:`seed_value` -- ``--seed S`` with ``0 <= S < 2**63``;
- :func:`add_threads_argument` / :func:`thread_limits` -- ``--threads N``, the total threads
  the command may use, refused above the CPUs available to the process;
- :func:`add_limit_argument` -- ``--limit N``, the first N samples of the evaluated split;
- :func:`add_overwrite_argument`, :func:`check_output_path`, :func:`make_parent` -- output
  files: never overwritten without ``--overwrite``, missing parent folders created;
- :func:`progress_bar` -- a tqdm bar on stderr, off with ``--no-progress``;
- :func:`read_network`, :func:`read_chip`, :func:`read_split` -- inputs, errors as
  :class:`~sim.commands.CommandError` naming the file.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from mappings.network import Network
from sim.commands import CommandError
from sim.datasets import DATASETS, DatasetError, find_dataset_dir, load_dataset

SEED_LIMIT = 2**63
"""Seeds are integers in ``[0, SEED_LIMIT)``: they are stored as int64 in HDF5 files."""

DEFAULT_THREADS_CAP = 8
"""``--threads`` defaults to the available CPUs, but to no more than this."""

__all__ = [
    "DEFAULT_THREADS_CAP",
    "PROGRESS_DELAY_S",
    "SEED_LIMIT",
    "add_chip_argument",
    "add_dataset_arguments",
    "add_limit_argument",
    "add_network_argument",
    "add_overwrite_argument",
    "add_seed_argument",
    "add_threads_argument",
    "available_cpus",
    "check_output_path",
    "count_callback",
    "data_dir",
    "default_threads",
    "make_parent",
    "positive_int",
    "progress_bar",
    "read_chip",
    "read_network",
    "read_split",
    "seed_value",
    "thread_limits",
    "threads_value",
]


# ------------------------------------------------------------------------------ value types


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (argparse names the flag in its error)."""
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def seed_value(text: str) -> int:
    """argparse type of ``--seed``: an integer with ``0 <= seed < 2**63``."""
    try:
        value = int(str(text).strip(), 10)
    except ValueError:
        value = None
    if value is None or not (0 <= value < SEED_LIMIT):
        raise argparse.ArgumentTypeError(
            f"expected an integer 0 <= seed < 2**63 (= {SEED_LIMIT}), got {text!r}"
        )
    return value


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def default_threads() -> int:
    """The default of ``--threads``: the available CPUs, at most :data:`DEFAULT_THREADS_CAP`."""
    return min(available_cpus(), DEFAULT_THREADS_CAP)


def threads_value(text: str) -> int:
    """argparse type of ``--threads``: 1 <= N <= :func:`available_cpus`."""
    value = positive_int(text)
    cpus = available_cpus()
    if value > cpus:
        raise argparse.ArgumentTypeError(
            f"{value} threads requested but only {cpus} CPU{'s' if cpus > 1 else ''} "
            f"available to this process; use 1..{cpus}"
        )
    return value


# ------------------------------------------------------------------------------ common flags


def add_seed_argument(parser: argparse.ArgumentParser, what: str, default: int = 0) -> None:
    """``--seed S``: ``what`` it seeds (help text); ``0 <= S < 2**63``."""
    parser.add_argument(
        "--seed",
        type=seed_value,
        default=default,
        metavar="S",
        help=f"seed of {what}; 0 <= S < 2**63 (default: {default})",
    )


def add_threads_argument(parser: argparse.ArgumentParser, what: str) -> None:
    """``--threads N``: the total threads the command may use; ``what`` they run (help)."""
    parser.add_argument(
        "--threads",
        type=threads_value,
        default=default_threads(),
        metavar="N",
        help=f"total threads this command may use ({what}); at most the {available_cpus()} "
        f"available CPUs (default: {default_threads()})",
    )


def add_limit_argument(parser: argparse.ArgumentParser, split: str = "evaluated") -> None:
    """``--limit N``: use only the first N samples of the evaluated split."""
    parser.add_argument(
        "--limit",
        metavar="N",
        type=positive_int,
        default=None,
        help=f"use only the first N samples of the {split} split (default: all)",
    )


def add_overwrite_argument(parser: argparse.ArgumentParser) -> None:
    """``--overwrite``: allow this command's output files to replace existing files."""
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace existing output files (without it, an existing output file is an error)",
    )


def add_network_argument(parser: argparse.ArgumentParser) -> None:
    """The positional NET.h5 argument."""
    parser.add_argument("network", metavar="NET.h5", type=Path, help="network file (HDF5)")


def add_chip_argument(parser: argparse.ArgumentParser) -> None:
    """``--chip CHIP.toml`` (default: the packaged default chip)."""
    parser.add_argument(
        "--chip",
        metavar="CHIP.toml",
        type=Path,
        default=None,
        help="chip description (default: the packaged default chip, sim/chip/default_chip.toml)",
    )


def add_dataset_arguments(parser: argparse.ArgumentParser, data_note: str = "") -> None:
    """``--dataset`` (default: the network's own) and ``--data DIR``."""
    parser.add_argument(
        "--dataset",
        choices=DATASETS,
        default=None,
        help="dataset (default: the one recorded in the network's metadata, else fashion-mnist)",
    )
    parser.add_argument(
        "--data",
        metavar="DIR",
        type=Path,
        default=None,
        help="directory with the IDX files (default: $SCRRAMBLE_DATA, then "
        "/usr/share/datasets/<dataset>)" + data_note,
    )


# ------------------------------------------------------------------------------ threads


@contextlib.contextmanager
def thread_limits(threads: int) -> Iterator[None]:
    """Limit BLAS (threadpoolctl) and Numba to ``threads`` threads; restored on exit."""
    import numba
    from threadpoolctl import threadpool_limits

    before = numba.get_num_threads()
    with threadpool_limits(limits=threads):
        numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
        try:
            yield
        finally:
            numba.set_num_threads(before)


# ------------------------------------------------------------------------------ outputs


def check_output_path(path: Path, flag: str, *, overwrite: bool) -> Path:
    """Check, before any work, that ``path`` (given as ``flag``) can be written.

    Refused: a directory; an existing file unless ``overwrite``; a parent that cannot be
    created (an ancestor is a file) or written. Missing parents are created later by
    :func:`make_parent`, just before writing.
    """
    path = Path(path)
    if path.is_dir():
        raise CommandError(f"{flag} {path} is a directory; expected a file path")
    if path.exists() and not overwrite:
        raise CommandError(
            f"{flag} {path} already exists; add --overwrite to replace it, or choose another path"
        )
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise CommandError(
            f"{flag} {path}: cannot create directory {path.parent} because {ancestor} is not a "
            "directory"
        )
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise CommandError(f"{flag} {path}: directory {ancestor} is not writable")
    return path


def make_parent(path: Path, flag: str) -> None:
    """Create the missing parent folders of output ``path`` (given as ``flag``)."""
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CommandError(f"{flag} {path}: cannot create directory {Path(path).parent}: {exc}")


# ------------------------------------------------------------------------------ progress


PROGRESS_DELAY_S = 0.5
"""Bars appear only once a step has taken this long (quick commands and early errors stay
free of them)."""


def progress_bar(args: argparse.Namespace, *, total: int | None, desc: str, unit: str, **kw):
    """A tqdm bar on stderr, disabled by ``--no-progress``, shown after
    :data:`PROGRESS_DELAY_S`."""
    from tqdm import tqdm

    kw.setdefault("delay", PROGRESS_DELAY_S)
    return tqdm(
        total=total, desc=desc, unit=unit, file=sys.stderr,
        disable=bool(getattr(args, "no_progress", False)), dynamic_ncols=True, **kw,
    )


def count_callback(bar) -> Callable[[int], None]:
    """A ``progress(done)`` callback (cumulative count) that advances ``bar``."""
    done = [0]

    def progress(n: int) -> None:
        bar.update(n - done[0])
        done[0] = n

    return progress


# ------------------------------------------------------------------------------ inputs


def read_chip(path: Path | None):
    """The chip file at ``path`` (or the packaged default), errors as CommandError."""
    from sim.chip.config import ChipConfigError, default_chip_config, load_chip_config

    try:
        return default_chip_config() if path is None else load_chip_config(path)
    except ChipConfigError as exc:
        raise CommandError(str(exc)) from None


def _looks_like_npz(path: Path) -> bool:
    if path.suffix.lower() == ".npz":
        return True
    try:
        with open(path, "rb") as fh:
            return fh.read(4) in (b"PK\x03\x04", b"PK\x05\x06")
    except OSError:
        return False


def read_network(path: Path) -> Network:
    """Load a network file, turning format errors into a CommandError (with a hint to
    ``scrramble-sim import`` for reference ``.npz`` archives)."""
    from mappings.h5format import NetworkFormatError, load_network

    try:
        return load_network(path)
    except NetworkFormatError as exc:
        msg = str(exc)
        if Path(path).is_file() and _looks_like_npz(Path(path)):
            msg += (
                f"; {path} looks like a .npz archive of the JAX reference code: convert it "
                f"first with `scrramble-sim import {path} --out NET.h5`"
            )
        raise CommandError(msg) from None


def read_split(
    args: argparse.Namespace, network: Network, split: str
) -> tuple[str, np.ndarray, np.ndarray]:
    """(dataset name, images, labels) for ``split``, checked against the network's input."""
    dataset = args.dataset or network.metadata.get("dataset", "fashion-mnist")
    if dataset not in DATASETS:
        raise CommandError(
            f"{args.network}: metadata names dataset {dataset!r}; pass --dataset "
            f"({', '.join(DATASETS)})"
        )
    try:
        x, y = load_dataset(dataset, args.data, split)
    except DatasetError as exc:
        raise CommandError(str(exc)) from None
    if tuple(network.input_spec.image_shape) != tuple(x.shape[1:]):
        raise CommandError(
            f"{args.network}: network expects images shaped {network.input_spec.image_shape}; "
            f"{dataset} has {tuple(x.shape[1:])}"
        )
    if len(y) and int(y.max()) >= network.n_classes:
        raise CommandError(
            f"{args.network}: network has {network.n_classes} classes; {dataset} labels reach "
            f"{int(y.max())}"
        )
    return dataset, x, y


def data_dir(dataset: str, data: Path | None, split: str) -> str:
    """The directory the split was read from (for the JSON report)."""
    return str(find_dataset_dir(dataset, data, split))
