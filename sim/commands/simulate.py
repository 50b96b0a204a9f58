"""``scrramble-sim simulate``: accuracy of a network on a programmed virtual chip."""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

from sim.commands import CommandError, CommandResult
from sim.datasets import DATASETS, DatasetError, load_dataset

HELP = "program a network onto a virtual chip and simulate it on a dataset's test split"

DEFAULT_THREADS = 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("network", metavar="NET.h5", type=Path, help="network file (HDF5)")
    parser.add_argument(
        "--chip",
        metavar="CHIP.toml",
        type=Path,
        default=None,
        help="chip description (default: the packaged default chip, sim/data/default_chip.toml)",
    )
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
        "/usr/share/datasets/<dataset>); the test split is simulated, the first "
        "[simulation] calibration_samples images of the train split calibrate the converters",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the programmed chip instance, its retention and the read noise (0)",
    )
    parser.add_argument(
        "--limit", metavar="N", type=int, default=None, help="simulate only the first N samples"
    )
    parser.add_argument(
        "--instance",
        metavar="INSTANCE.h5",
        type=Path,
        default=None,
        help="chip instance file: loaded if it exists (it must match the network and chip), "
        "otherwise the freshly programmed instance is saved there",
    )
    parser.add_argument(
        "--age",
        metavar="SECONDS",
        type=float,
        default=None,
        help="read the chip this long after programming (default: [retention] time_s)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=DEFAULT_THREADS,
        help=f"BLAS and Numba threads (default: {DEFAULT_THREADS})",
    )


def _check_args(args: argparse.Namespace) -> None:
    if args.seed < 0:
        raise CommandError(f"--seed must be an integer >= 0, got {args.seed}")
    for name in ("limit", "threads"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise CommandError(f"--{name} must be a positive integer, got {value}")
    if args.age is not None and not (math.isfinite(args.age) and args.age >= 0):
        raise CommandError(f"--age must be a finite number of seconds >= 0, got {args.age}")


def run(args: argparse.Namespace) -> CommandResult:
    _check_args(args)
    import numba
    from threadpoolctl import threadpool_limits
    from tqdm import tqdm

    from mappings.h5format import NetworkFormatError, load_network
    from sim.chip_config import ChipConfigError, default_chip_config, load_chip_config
    from sim.functional import SimulationError, simulate
    from sim.programming import (
        ChipInstanceError,
        ProgrammingError,
        age,
        load_instance,
        program_chip,
        save_instance,
    )

    try:
        config = default_chip_config() if args.chip is None else load_chip_config(args.chip)
        network = load_network(args.network)
    except (ChipConfigError, NetworkFormatError) as exc:
        raise CommandError(str(exc)) from None
    dataset = args.dataset or network.metadata.get("dataset", "fashion-mnist")
    if dataset not in DATASETS:
        raise CommandError(
            f"{args.network}: metadata names dataset {dataset!r}; pass --dataset "
            f"({', '.join(DATASETS)})"
        )
    try:
        x, y = load_dataset(dataset, args.data, "test")
        cal_x, _ = load_dataset(dataset, args.data, "train")
    except DatasetError as exc:
        raise CommandError(str(exc)) from None
    if args.limit is not None:
        x, y = x[: args.limit], y[: args.limit]
    cal_x = cal_x[: config.simulation.calibration_samples]
    if tuple(network.input_spec.image_shape) != tuple(x.shape[1:]):
        raise CommandError(
            f"{args.network}: network expects images shaped {network.input_spec.image_shape}; "
            f"{dataset} has {tuple(x.shape[1:])}"
        )
    age_s = config.retention.time_s if args.age is None else float(args.age)

    t0 = time.perf_counter()
    with threadpool_limits(limits=args.threads):
        numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
        try:
            if args.instance is not None and args.instance.exists():
                instance = load_instance(args.instance, network, config)
                origin = "loaded"
            else:
                instance = program_chip(network, config, args.seed)
                origin = "programmed"
                if args.instance is not None:
                    save_instance(instance, args.instance)
                    origin = "programmed and saved"
            if age_s != instance.age_s:
                instance = age(instance, age_s, args.seed)
            t_prog = time.perf_counter() - t0
            bar = tqdm(
                total=len(x), desc="simulate", unit="img", file=sys.stderr, disable=None,
                dynamic_ncols=True,
            )
            with bar:
                done = [0]

                def progress(n: int) -> None:
                    bar.update(n - done[0])
                    done[0] = n

                result = simulate(
                    network, instance, x, labels=y, seed=args.seed, config=config,
                    calibration=cal_x, progress=progress,
                )
        except (ChipConfigError, ChipInstanceError, ProgrammingError, SimulationError) as exc:
            raise CommandError(str(exc)) from None

    data = {
        "network": str(args.network),
        "chip": config.source,
        "dataset": dataset,
        "split": "test",
        "instance": None if args.instance is None else str(args.instance),
        "instance_origin": origin,
        "threads": args.threads,
        "programming_seconds": t_prog,
        **result.as_dict(),
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
        + f", seed {args.seed}",
    ]
    return CommandResult(data=data, text="\n".join(head) + "\n" + result.table())
