"""``scrramble-sim evaluate``: ideal (float32) accuracy of a saved network on a dataset split."""

from __future__ import annotations

import argparse
import time

import numpy as np

from sim.commands import CommandError, CommandResult
from sim.commands.common import (
    add_dataset_arguments,
    add_network_argument,
    read_network,
    read_split,
)
from sim.datasets import SPLITS
from sim.training.trainer import parallel_predict

HELP = "evaluate a saved network's ideal accuracy on an IDX dataset split"

DEFAULT_THREADS = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_network_argument(parser)
    add_dataset_arguments(parser)
    parser.add_argument("--split", choices=SPLITS, default="test", help="(default: test)")
    parser.add_argument(
        "--limit", metavar="N", type=int, default=None, help="evaluate only the first N samples"
    )
    parser.add_argument(
        "--batch-size", type=int, default=2048, help="samples per forward pass (default: 2048)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=DEFAULT_THREADS,
        help=f"BLAS threads (default: {DEFAULT_THREADS})",
    )


def run(args: argparse.Namespace) -> CommandResult:
    for name in ("limit", "batch_size", "threads"):
        value = getattr(args, name)
        if value is not None and value < 1:
            flag = "--" + name.replace("_", "-")
            raise CommandError(f"{flag} must be a positive integer, got {value}")

    network = read_network(args.network)
    dataset, x, y = read_split(args, network, args.split)
    if args.limit is not None:
        x, y = x[: args.limit], y[: args.limit]

    t0 = time.perf_counter()
    pred = parallel_predict(network, x, batch_size=args.batch_size, threads=args.threads)
    seconds = time.perf_counter() - t0
    accuracy = float(np.mean(pred == y)) if len(y) else float("nan")
    saved = network.metadata.get(f"{args.split}_accuracy")
    data = {
        "command": "evaluate",
        "network": str(args.network),
        "dataset": dataset,
        "split": args.split,
        "accuracy": accuracy,
        "n_samples": len(y),
        "correct": int(np.sum(pred == y)),
        "seconds": seconds,
        "samples_per_second": len(y) / seconds if seconds > 0 else None,
        "saved_accuracy": saved,
        "threads": args.threads,
    }
    text = (
        f"{args.network}: {dataset} {args.split} accuracy {accuracy:.4f} "
        f"({data['correct']}/{len(y)}) in {seconds:.2f} s"
    )
    if saved is not None:
        text += f" (recorded at training: {saved:.4f})"
    return CommandResult(data=data, text=text)
