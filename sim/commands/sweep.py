"""``scrramble-sim sweep``: run a non-ideality sweep specification on Dask."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sim.commands import CommandError, CommandResult
from sim.commands.common import available_cpus, default_threads

HELP = "run a sweep specification (TOML) over chip parameters and seeds, on Dask"


def default_workers() -> int:
    """Local workers by default: the available CPUs, at most 8 (as ``--threads``)."""
    return default_threads()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", metavar="SPEC.toml", type=Path, help="sweep specification")
    parser.add_argument("--out", metavar="DIR", type=Path, required=True,
                        help="output directory (created; a rerun skips finished points)")
    parser.add_argument(
        "--workers", type=int, default=None, metavar="N",
        help="local Dask cluster of N one-thread worker processes, at most the available "
        f"CPUs (default: {default_workers()}); 0 runs in this process without Dask",
    )
    parser.add_argument(
        "--scheduler", metavar="ADDRESS", default=None,
        help="use an existing Dask cluster (e.g. tcp://host:8786) instead of a local one; "
        "its workers must import scrramble-sim and see --out (shared file system) or the "
        "points are written here when each task returns",
    )
    parser.add_argument(
        "--task-timeout", type=float, default=3600.0, metavar="S",
        help="give up when no point finishes for S seconds (default: 3600)",
    )


def run(args: argparse.Namespace) -> CommandResult:
    from sim.sweep import (
        PointError,
        SweepRunError,
        SweepSpecError,
        SweepStoreError,
        load_sweep,
        run_sweep,
    )
    from sim.sweep.report import markdown_summary
    from sim.sweep.store import load_dataset

    workers = default_workers() if args.workers is None else args.workers
    if workers < 0:
        raise CommandError(f"--workers must be >= 0, got {workers}")
    if args.scheduler is None and workers > available_cpus():
        raise CommandError(
            f"--workers {workers} exceeds the {available_cpus()} CPUs available to this "
            "process (use --scheduler for a larger cluster)"
        )
    if args.scheduler is not None and args.workers not in (None, 0):
        raise CommandError("--workers sizes a local cluster; leave it out with --scheduler")
    if not args.task_timeout > 0:
        raise CommandError(f"--task-timeout must be > 0 seconds, got {args.task_timeout}")
    progress = not getattr(args, "no_progress", False)
    try:
        sweep = load_sweep(args.spec)
        if args.out.exists() and not args.out.is_dir():
            raise CommandError(f"--out {args.out}: exists and is not a directory")

        def note(msg: str) -> None:
            if progress:
                print(msg, file=sys.stderr)

        result = run_sweep(
            sweep, args.out, workers=0 if args.scheduler else workers,
            scheduler=args.scheduler, progress=progress, task_timeout=args.task_timeout,
            on_start=note,
        )
        ds = load_dataset(result.results)
    except (SweepSpecError, SweepRunError, SweepStoreError, PointError) as exc:
        raise CommandError(str(exc)) from None
    data = {
        "spec": str(args.spec),
        "out": str(args.out),
        "results": str(result.results),
        "dims": list(sweep.dims),
        "n_points": result.n_points,
        "computed": result.computed,
        "skipped": result.skipped,
        "tasks": result.tasks,
        "workers": result.workers,
        "scheduler": result.scheduler,
        "compute_seconds": result.compute_seconds,
    }
    where = f"scheduler {args.scheduler}" if args.scheduler else (
        f"{workers} local worker(s)" if workers else "this process")
    text = (
        markdown_summary(ds)
        + f"\n{result.n_points} points ({result.computed} computed on {where}, "
        f"{result.skipped} already done) in {result.seconds:.1f} s; results: {result.results}"
        f"\nplots and tables: scrramble-sim report {args.out}"
    )
    return CommandResult(data=data, text=text)
