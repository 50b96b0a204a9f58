"""``scrramble-sim simulate``: accuracy of a network on a programmed virtual chip."""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

from sim.commands import CommandError, CommandResult
from sim.commands.common import (
    add_chip_argument,
    add_dataset_arguments,
    add_limit_argument,
    add_network_argument,
    add_overwrite_argument,
    add_seed_argument,
    add_threads_argument,
    check_output_path,
    count_callback,
    data_dir,
    make_parent,
    progress_bar,
    read_chip,
    read_network,
    read_split,
    thread_limits,
)

HELP = "program a network onto a virtual chip and simulate it on a dataset's test split"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_network_argument(parser)
    add_chip_argument(parser)
    add_dataset_arguments(
        parser,
        "; the test split is simulated, the first [simulation] calibration_samples images of "
        "the train split calibrate the converters",
    )
    add_seed_argument(parser, "the programmed chip instance, its retention and the read noise")
    add_limit_argument(parser, "test")
    parser.add_argument(
        "--instance",
        metavar="INSTANCE.h5",
        type=Path,
        default=None,
        help="chip instance file: loaded if it exists (it must match the network and chip; "
        "with --overwrite a freshly programmed instance replaces it), otherwise the freshly "
        "programmed instance is saved there (missing folders are created)",
    )
    add_overwrite_argument(parser)
    parser.add_argument(
        "--age",
        metavar="SECONDS",
        type=float,
        default=None,
        help="read the chip this long after programming (default: [retention] time_s)",
    )
    add_threads_argument(
        parser,
        "Numba threads of the chip kernels, BLAS threads of the ideal reference; the chip's "
        "matrix products run on one BLAS thread",
    )


def run(args: argparse.Namespace) -> CommandResult:
    if args.age is not None and not (math.isfinite(args.age) and args.age >= 0):
        raise CommandError(f"--age must be a finite number of seconds >= 0, got {args.age}")
    from sim.chip.config import ChipConfigError
    from sim.chip.functional import SimulationError, simulate
    from sim.chip.mapping_report import count_devices
    from sim.chip.programming import (
        ChipInstanceError,
        ProgrammingError,
        age,
        load_instance,
        program_chip,
        save_instance,
    )

    config = read_chip(args.chip)
    network = read_network(args.network)
    load = args.instance is not None and args.instance.exists() and not args.overwrite
    if args.instance is not None and not load:
        check_output_path(args.instance, "--instance", overwrite=args.overwrite)
    dataset, x, y = read_split(args, network, "test")
    _, cal_x, _ = read_split(args, network, "train")
    if args.limit is not None:
        x, y = x[: args.limit], y[: args.limit]
    cal_x = cal_x[: config.simulation.calibration_samples]
    age_s = config.retention.time_s if args.age is None else float(args.age)

    t0 = time.perf_counter()
    bar = progress_bar(args, total=len(x), desc="simulate", unit="img")
    with bar, thread_limits(args.threads):
        try:
            if load:
                bar.set_postfix_str(f"loading chip instance {args.instance}")
                instance = load_instance(args.instance, network, config)
                origin = "loaded"
            else:
                bar.set_postfix_str("programming the chip")
                instance = program_chip(network, config, args.seed)
                origin = "programmed"
                if args.instance is not None:
                    make_parent(args.instance, "--instance")
                    save_instance(instance, args.instance)
                    origin = "programmed and saved"
            if age_s != instance.age_s:
                bar.set_postfix_str(f"aging the chip by {age_s:g} s")
                instance = age(instance, age_s, args.seed)
            t_prog = time.perf_counter() - t0
            bar.set_postfix_str("calibrating and simulating")
            result = simulate(
                network, instance, x, labels=y, seed=args.seed, config=config,
                calibration=cal_x, progress=count_callback(bar),
            )
            devices, layer_devices = count_devices(network, config)
        except (ChipConfigError, ChipInstanceError, ProgrammingError, SimulationError) as exc:
            raise CommandError(str(exc)) from None

    sim_data = result.as_dict()
    sim_data.pop("n_devices")  # the same count as devices[encoding]
    simulation_seconds = sim_data.pop("seconds")  # "seconds" is the command's wall time
    for i, layer in enumerate(sim_data["layers"]):  # devices per encoding, as map reports
        layer["devices"] = {enc: counts[i] for enc, counts in layer_devices.items()}
    data = {
        "network": str(args.network),
        "chip": config.source,
        "dataset": dataset,
        "data": data_dir(dataset, args.data, "test"),
        "split": "test",
        "limit": args.limit,
        "instance": None if args.instance is None else str(args.instance),
        "instance_origin": origin,
        "instance_seed": instance.seed,
        "threads": args.threads,
        "programming_seconds": t_prog,
        **sim_data,
        "simulation_seconds": simulation_seconds,
        "devices": devices,
    }
    head = [
        f"network            {args.network}",
        (
            f"chip               {config.source} ({instance.plan.n_physical_cores} cores used "
            f"of {config.n_cores}; device {config.device.name})"
        ),
        f"dataset            {dataset} test split",
        f"chip instance      {origin}"
        + ("" if args.instance is None else f" ({args.instance})")
        + f", programming seed {instance.seed}; read-noise seed {args.seed}",
    ]
    return CommandResult(data=data, text="\n".join(head) + "\n" + result.table())
