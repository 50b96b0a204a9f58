"""Arguments and loading steps shared by the subcommands that read a network and a dataset."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from mappings.network import Network
from sim.commands import CommandError
from sim.datasets import DATASETS, DatasetError, load_dataset


def add_network_argument(parser: argparse.ArgumentParser) -> None:
    """The positional NET.h5 argument."""
    parser.add_argument("network", metavar="NET.h5", type=Path, help="network file (HDF5)")


def add_chip_argument(parser: argparse.ArgumentParser) -> None:
    """``--chip CHIP.toml`` (default: the packaged default chip)."""
    parser.add_argument(
        "--chip",
        metavar="CHIP.toml",
        type=Path,
        default=None,
        help="chip description (default: the packaged default chip, sim/chip/default_chip.toml)",
    )


def read_chip(path: Path | None):
    """The chip file at ``path`` (or the packaged default), errors as CommandError."""
    from sim.chip.config import ChipConfigError, default_chip_config, load_chip_config

    try:
        return default_chip_config() if path is None else load_chip_config(path)
    except ChipConfigError as exc:
        raise CommandError(str(exc)) from None


def add_dataset_arguments(parser: argparse.ArgumentParser, data_note: str = "") -> None:
    """``--dataset`` (default: the network's own) and ``--data DIR``."""
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
        "/usr/share/datasets/<dataset>)" + data_note,
    )


def read_network(path: Path) -> Network:
    """Load a network file, turning format errors into a CommandError."""
    from mappings.h5format import NetworkFormatError, load_network

    try:
        return load_network(path)
    except NetworkFormatError as exc:
        raise CommandError(str(exc)) from None


def read_split(
    args: argparse.Namespace, network: Network, split: str
) -> tuple[str, np.ndarray, np.ndarray]:
    """(dataset name, images, labels) for ``split``, checked against the network's input."""
    dataset = args.dataset or network.metadata.get("dataset", "fashion-mnist")
    if dataset not in DATASETS:
        raise CommandError(
            f"{args.network}: metadata names dataset {dataset!r}; pass --dataset "
            f"({', '.join(DATASETS)})"
        )
    try:
        x, y = load_dataset(dataset, args.data, split)
    except DatasetError as exc:
        raise CommandError(str(exc)) from None
    if tuple(network.input_spec.image_shape) != tuple(x.shape[1:]):
        raise CommandError(
            f"{args.network}: network expects images shaped {network.input_spec.image_shape}; "
            f"{dataset} has {tuple(x.shape[1:])}"
        )
    if len(y) and int(y.max()) >= network.n_classes:
        raise CommandError(
            f"{args.network}: network has {network.n_classes} classes; {dataset} labels reach "
            f"{int(y.max())}"
        )
    return dataset, x, y
