"""``scrramble-sim noc NET.h5``: the mapped network's own traffic through the packet network.

Programs the network on the chip (the instance carries the placement), streams
``--inferences`` inferences through the cycle-level network and reports latency, throughput,
energy, area and the traffic against the dense baseline (:func:`sim.chipnet.report.run_chip`).
The router flags of ``scrramble-sim noc`` (``--vcs``, ``--buffer``, ...) apply; the mesh is the
chip's grid unless ``--mesh`` is given.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sim.commands import CommandError, CommandResult
from sim.commands.common import add_chip_argument, add_dataset_arguments, read_chip, read_network


def add_network_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of the network-driven mode (used only with NET.h5)."""
    from mappings.placement import METHODS

    add_chip_argument(parser)
    add_dataset_arguments(parser, "; with NET.h5, --samples test images set the array energy")
    parser.add_argument("--inferences", type=int, default=100, metavar="N",
                        help="with NET.h5: inferences streamed through the chip (100)")
    parser.add_argument("--interval", type=int, default=0, metavar="CYCLES",
                        help="with NET.h5: cycles between inputs; 0 = as fast as the chip "
                        "accepts them (0)")
    parser.add_argument("--multicast", action="store_true",
                        help="with NET.h5: one multicast packet per source slot")
    parser.add_argument("--placement", choices=METHODS, default=None,
                        help="with NET.h5: placement method (default: [mapping] placement)")
    parser.add_argument("--samples", type=int, default=256, metavar="N",
                        help="with NET.h5: test images whose inputs set the array read energy; "
                        "0 = nominal (256)")
    parser.add_argument("--dense-inferences", type=int, default=10, metavar="N",
                        help="with NET.h5: inferences of the co-simulated dense baseline; "
                        "0 = skip (10)")
    parser.add_argument("--figures", type=Path, default=None, metavar="DIR",
                        help="with NET.h5: write link, timeline, energy and traffic figures")


def run_network(args: argparse.Namespace, overrides: dict, mesh) -> CommandResult:
    """The network-driven run: the chip file's ``[noc]`` section with the router flags given
    on the command line (``overrides``) on top; ``mesh`` is the ``--mesh`` given (None: the
    chip's grid)."""
    from mappings.flows import FlowError
    from sim.chip.config import ChipConfigError
    from sim.chip.programming import ProgrammingError
    from sim.chipnet.figures import save_figures
    from sim.chipnet.report import run_chip
    from sim.chipnet.trace import TraceError
    from sim.commands.common import read_split
    from sim.costs.energy import EnergyError

    for flag, value, lo in (("--inferences", args.inferences, 1), ("--interval", args.interval, 0),
                            ("--samples", args.samples, 0),
                            ("--dense-inferences", args.dense_inferences, 0)):
        if value < lo:
            raise CommandError(f"{flag} must be an integer >= {lo}, got {value}")
    if args.rates is not None:
        raise CommandError("--rates sweeps synthetic traffic; it cannot be used with NET.h5")
    config = read_chip(args.chip)
    network = read_network(args.network)
    if args.placement is not None:
        config = config.replace(mapping={"placement": args.placement})
    from sim.commands.noc import noc_config_with

    noc_config = noc_config_with(config.noc, overrides, None)
    samples = None
    if args.samples:
        _, x, _ = read_split(args, network, "test")
        samples = x[: args.samples]
    from sim.chipnet.report import STAGES
    from sim.commands.common import progress_bar

    stages = STAGES if args.dense_inferences else STAGES[:-1]
    bar = progress_bar(args, total=len(stages), desc="chip", unit="stage")

    def advance(stage: str) -> None:
        if bar.n < stages.index(stage):
            bar.update(stages.index(stage) - bar.n)
        bar.set_description(stage)

    try:
        report = run_chip(
            network, config, n_inferences=args.inferences, input_interval=args.interval,
            multicast=args.multicast, seed=args.seed, samples=samples, noc=noc_config,
            mesh=mesh, dense_inferences=args.dense_inferences, progress=advance,
        )
    except (ChipConfigError, ProgrammingError, TraceError, FlowError, EnergyError) as exc:
        bar.close()
        raise CommandError(str(exc)) from None
    bar.update(bar.total - bar.n)
    bar.close()
    data = {"network": str(args.network), "chip": config.source, **report.as_dict(),
            "noc_config": noc_config.to_dict()}
    text = f"network {args.network} on {config.source}\n" + report.table()
    if args.figures is not None:
        data["figures"] = save_figures(report, args.figures)
        text += "\nfigures: " + ", ".join(data["figures"].values())
    if args.out is not None:
        report.cosim.noc.save(args.out)
        data["out"] = str(args.out)
    return CommandResult(data=data, text=text)
