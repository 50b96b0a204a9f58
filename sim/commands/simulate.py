"""``scrramble-sim simulate``: accuracy of a network on a programmed virtual chip."""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

from sim.commands import CommandError, CommandResult
from sim.commands.common import (
    add_chip_argument,
    add_dataset_arguments,
    add_network_argument,
    read_chip,
    read_network,
    read_split,
)

HELP = "program a network onto a virtual chip and simulate it on a dataset's test split"

DEFAULT_THREADS = 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_network_argument(parser)
    add_chip_argument(parser)
    add_dataset_arguments(
        parser,
        "; the test split is simulated, the first [simulation] calibration_samples images of "
        "the train split calibrate the converters",
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
        help=f"Numba threads of the chip kernels, BLAS threads of the ideal reference; the "
        f"chip's matrix products run on one BLAS thread, so results do not depend on it "
        f"(default: {DEFAULT_THREADS})",
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

    from sim.chip.config import ChipConfigError
    from sim.chip.functional import SimulationError, simulate
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
    dataset, x, y = read_split(args, network, "test")
    _, cal_x, _ = read_split(args, network, "train")
    if args.limit is not None:
        x, y = x[: args.limit], y[: args.limit]
    cal_x = cal_x[: config.simulation.calibration_samples]
    age_s = config.retention.time_s if args.age is None else float(args.age)

    t0 = time.perf_counter()
    numba_threads = numba.get_num_threads()  # restored afterwards (in-process callers)
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
        finally:
            numba.set_num_threads(numba_threads)

    data = {
        "network": str(args.network),
        "chip": config.source,
        "dataset": dataset,
        "split": "test",
        "instance": None if args.instance is None else str(args.instance),
        "instance_origin": origin,
        "instance_seed": instance.seed,
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
        + f", programming seed {instance.seed}; read-noise seed {args.seed}",
    ]
    return CommandResult(data=data, text="\n".join(head) + "\n" + result.table())
