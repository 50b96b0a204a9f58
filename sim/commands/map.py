"""``scrramble-sim map``: tile a network onto a chip, count devices and traffic, place cores."""

from __future__ import annotations

import argparse

from mappings.placement import METHODS, PlacementError
from sim.chip.config import ChipConfigError
from sim.chip.mapping_report import map_network
from sim.commands import CommandError, CommandResult
from sim.commands.common import add_chip_argument, add_network_argument, read_chip, read_network

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
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the random and annealing placements (0)"
    )


def run(args: argparse.Namespace) -> CommandResult:
    if args.seed < 0:
        raise CommandError(f"--seed must be an integer >= 0, got {args.seed}")
    config = read_chip(args.chip)
    network = read_network(args.network)
    try:
        report = map_network(network, config, seed=args.seed, placement=args.placement)
    except (ChipConfigError, PlacementError) as exc:
        raise CommandError(str(exc)) from None
    data = {"network": str(args.network), **report.as_dict()}
    return CommandResult(data=data, text=f"network {args.network}\n" + report.table())
