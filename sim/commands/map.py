"""``scrramble-sim map``: tile a network onto a chip, count devices and traffic, place cores."""

from __future__ import annotations

import argparse

from mappings.placement import METHODS, PlacementError
from sim.chip.config import ChipConfigError
from sim.chip.mapping_report import COMPARED_PLACEMENTS, map_network
from sim.commands import CommandError, CommandResult
from sim.commands.common import (
    add_chip_argument,
    add_network_argument,
    add_seed_argument,
    add_threads_argument,
    progress_bar,
    read_chip,
    read_network,
    thread_limits,
)

HELP = "map a network onto a chip: tiles, cores, devices, traffic, placement"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_network_argument(parser)
    add_chip_argument(parser)
    parser.add_argument(
        "--placement",
        choices=METHODS,
        default=None,
        help="placement method (default: [mapping] placement of the chip file)",
    )
    add_seed_argument(parser, "the random and annealing placements")
    add_threads_argument(parser, "BLAS and Numba threads of tiling and placement")


def run(args: argparse.Namespace) -> CommandResult:
    config = read_chip(args.chip)
    network = read_network(args.network)
    method = args.placement or config.mapping.placement
    steps = 1 + len(COMPARED_PLACEMENTS) + (method not in COMPARED_PLACEMENTS)
    try:
        with progress_bar(args, total=steps, desc="map", unit="step") as bar, thread_limits(
            args.threads
        ):

            def progress(step: str) -> None:
                bar.set_postfix_str(f"{step} done")
                bar.update()

            report = map_network(
                network, config, seed=args.seed, placement=args.placement, progress=progress
            )
    except (ChipConfigError, PlacementError) as exc:
        raise CommandError(str(exc)) from None
    data = {
        "network": str(args.network),
        **report.as_dict(),
        "seed": args.seed,
        "threads": args.threads,
    }
    return CommandResult(data=data, text=f"network {args.network}\n" + report.table())
