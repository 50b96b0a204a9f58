"""``scrramble-sim report``: figures and summary tables of a finished sweep."""

from __future__ import annotations

import argparse
from pathlib import Path

from sim.commands import CommandError, CommandResult

HELP = "plot a sweep's accuracy against each parameter, heatmaps, and a summary table"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir", metavar="DIR", type=Path,
                        help="sweep output directory (holding results.nc)")
    parser.add_argument("--out", metavar="FIGDIR", type=Path, default=None,
                        help="where to write figures and tables (default: DIR)")


def run(args: argparse.Namespace) -> CommandResult:
    from sim.sweep.report import markdown_summary, write_report
    from sim.sweep.store import SweepStoreError, load_dataset

    out = args.dir if args.out is None else args.out
    if out.exists() and not out.is_dir():
        raise CommandError(f"--out {out}: exists and is not a directory")
    try:
        ds = load_dataset(args.dir)
        paths = write_report(ds, out)
    except (SweepStoreError, OSError) as exc:
        raise CommandError(str(exc)) from None
    data = {
        "dir": str(args.dir),
        "out": str(out),
        "summary_md": str(paths["summary_md"]),
        "summary_csv": str(paths["summary_csv"]),
        "figures": [str(p) for p in paths["figures"]],
        "heatmaps": [str(p) for p in paths["heatmaps"]],
    }
    files = [paths["summary_md"], paths["summary_csv"], *paths["figures"], *paths["heatmaps"]]
    text = markdown_summary(ds) + "\nwrote " + ", ".join(str(p) for p in files)
    return CommandResult(data=data, text=text)
