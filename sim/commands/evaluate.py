"""``scrramble-sim evaluate``: ideal (float32) accuracy of a saved network on a dataset split."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from sim.commands import CommandError, CommandResult
from sim.datasets import DATASETS, SPLITS, DatasetError, load_dataset
from sim.training.trainer import parallel_predict

HELP = "evaluate a saved network's ideal accuracy on an IDX dataset split"

DEFAULT_THREADS = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("network", metavar="NET.h5", type=Path, help="network file (HDF5)")
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
        "/usr/share/datasets/<dataset>)",
    )
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

    from mappings.h5format import NetworkFormatError, load_network

    try:
        network = load_network(args.network)
    except NetworkFormatError as exc:
        raise CommandError(str(exc)) from None
    dataset = args.dataset or network.metadata.get("dataset", "fashion-mnist")
    if dataset not in DATASETS:
        raise CommandError(
            f"{args.network}: metadata names dataset {dataset!r}; pass --dataset "
            f"({', '.join(DATASETS)})"
        )
    try:
        x, y = load_dataset(dataset, args.data, args.split)
    except DatasetError as exc:
        raise CommandError(str(exc)) from None
    if args.limit is not None:
        x, y = x[: args.limit], y[: args.limit]
    if tuple(network.input_spec.image_shape) != tuple(x.shape[1:]):
        raise CommandError(
            f"{args.network}: network expects images shaped {network.input_spec.image_shape}; "
            f"{dataset} has {x.shape[1:]}"
        )
    if len(y) and int(y.max()) >= network.n_classes:
        raise CommandError(
            f"{args.network}: network has {network.n_classes} classes; {dataset} labels reach "
            f"{int(y.max())}"
        )

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
