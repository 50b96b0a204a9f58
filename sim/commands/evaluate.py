"""``scrramble-sim evaluate``: ideal (float32) accuracy of a saved network on a dataset split."""

from __future__ import annotations

import argparse
import time

import numpy as np

from sim.commands import CommandResult
from sim.commands.common import (
    add_dataset_arguments,
    add_limit_argument,
    add_network_argument,
    add_threads_argument,
    count_callback,
    data_dir,
    positive_int,
    progress_bar,
    read_network,
    read_split,
    thread_limits,
)
from sim.datasets import SPLITS
from sim.training.trainer import parallel_predict

HELP = "evaluate a saved network's ideal accuracy on an IDX dataset split"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_network_argument(parser)
    add_dataset_arguments(parser)
    parser.add_argument("--split", choices=SPLITS, default="test", help="(default: test)")
    add_limit_argument(parser)
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        default=2048,
        metavar="N",
        help="samples per forward pass (default: 2048)",
    )
    add_threads_argument(parser, "worker threads, each running single-threaded BLAS")


def run(args: argparse.Namespace) -> CommandResult:
    network = read_network(args.network)
    dataset, x, y = read_split(args, network, args.split)
    if args.limit is not None:
        x, y = x[: args.limit], y[: args.limit]

    t0 = time.perf_counter()
    with progress_bar(args, total=len(y), desc="evaluate", unit="img") as bar, thread_limits(
        args.threads
    ):
        pred = parallel_predict(
            network, x, batch_size=args.batch_size, threads=args.threads,
            progress=count_callback(bar),
        )
    seconds = time.perf_counter() - t0
    accuracy = float(np.mean(pred == y)) if len(y) else float("nan")
    saved = network.metadata.get(f"{args.split}_accuracy")
    data = {
        "network": str(args.network),
        "dataset": dataset,
        "data": data_dir(dataset, args.data, args.split),
        "split": args.split,
        "limit": args.limit,
        "accuracy": accuracy,
        "n_samples": len(y),
        "correct": int(np.sum(pred == y)),
        "predict_seconds": seconds,
        "samples_per_second": len(y) / seconds if seconds > 0 else None,
        "saved_accuracy": saved,
        "batch_size": args.batch_size,
        "threads": args.threads,
    }
    text = (
        f"{args.network}: {dataset} {args.split} accuracy {accuracy:.4f} "
        f"({data['correct']}/{len(y)}) in {seconds:.2f} s on {args.threads} threads"
    )
    if saved is not None:
        text += f" (recorded at training: {saved:.4f})"
    return CommandResult(data=data, text=text)
