"""``scrramble-sim map``: tile a network onto a chip, count devices and traffic, place cores."""

from __future__ import annotations

import argparse

from mappings.h5format import NetworkFormatError, load_network
from mappings.placement import METHODS, PlacementError
from sim.chip_config import ChipConfigError, default_chip_config, load_chip_config
from sim.commands import CommandError, CommandResult
from sim.mapping_report import map_network

HELP = "map a network onto a chip: tiles, cores, devices, traffic, placement"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("network", metavar="NET.h5", help="network file (scrramble-sim format)")
    parser.add_argument(
        "--chip",
        metavar="CHIP.toml",
        default=None,
        help="chip description (default: the packaged default chip, sim/data/default_chip.toml)",
    )
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
    try:
        config = default_chip_config() if args.chip is None else load_chip_config(args.chip)
    except ChipConfigError as exc:
        raise CommandError(str(exc)) from None
    try:
        network = load_network(args.network)
    except NetworkFormatError as exc:
        raise CommandError(str(exc)) from None
    try:
        report = map_network(network, config, seed=args.seed, placement=args.placement)
    except (ChipConfigError, PlacementError) as exc:
        raise CommandError(str(exc)) from None
    data = {"network": str(args.network), **report.as_dict()}
    return CommandResult(data=data, text=f"network {args.network}\n" + report.table())
