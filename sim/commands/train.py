"""``scrramble-sim train``: build, train and save a ScRRAMBLe (or dense baseline) network.

The defaults are the accepted configuration: Fashion-MNIST padded to 32x32 (4 input cores of
256), ScRRAMBLe 4 -> 50 -> 10 cores, slots of 64, p = 0.2, ReLU, capsule readout, margin
loss, Adam (lr 3e-3, per-layer scaling, cosine schedule), batch 128, 10 epochs.

``--checkpoint CKPT.h5`` writes the training state atomically after every epoch; rerunning the
same command with ``--resume`` continues an interrupted run bit-identically (the network is
rebuilt from the same arguments and checked against the checkpoint, so any change to the
architecture, data or training options is refused; ``--threads`` and ``--no-progress`` may
change).
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np

from mappings.activations import Activation
from mappings.builders import BuildError, build_dense_network, build_scrramble_network
from mappings.network import DenseLayer, InputSpec, Network
from sim.commands import CommandError, CommandInterrupted, CommandResult
from sim.commands.common import (
    add_limit_argument,
    add_overwrite_argument,
    add_seed_argument,
    add_threads_argument,
    check_output_path,
    data_dir,
    make_parent,
    positive_int,
)
from sim.datasets import DATASETS, IMAGE_SHAPE, N_CLASSES, DatasetError, load_dataset
from sim.training.checkpoint import CheckpointError
from sim.training.losses import LOSSES
from sim.training.optim import OPTIMIZERS, SCHEDULES
from sim.training.trainer import TrainConfig, TrainConfigError, evaluate_accuracy, train

HELP = "train a ScRRAMBLe (or dense baseline) network on an IDX dataset and save it as HDF5"


def _int_list(text: str) -> tuple[int, ...]:
    """'50' or '50,20' -> (50,) / (50, 20); '' -> ()."""
    text = text.strip()
    if not text:
        return ()
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected comma-separated positive integers, e.g. 50 or 50,20"
        ) from None
    if any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"{text!r}: widths must be positive integers")
    return values


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = TrainConfig()
    g = parser.add_argument_group("data and output")
    g.add_argument("--dataset", choices=DATASETS, default="fashion-mnist")
    g.add_argument(
        "--data",
        metavar="DIR",
        type=Path,
        default=None,
        help="directory with the IDX files (default: $SCRRAMBLE_DATA, then "
        "/usr/share/datasets/<dataset>)",
    )
    g.add_argument(
        "--out",
        metavar="NET.h5",
        type=Path,
        required=True,
        help="where to write the trained network (HDF5; missing folders are created; an "
        "existing file is refused unless --overwrite)",
    )
    g.add_argument(
        "--checkpoint",
        metavar="CKPT.h5",
        type=Path,
        default=None,
        help="write the training state (network, optimizer, generator, metrics) to this HDF5 "
        "file after every epoch, atomically (default: no checkpoint); an existing one is "
        "continued with --resume, replaced by a fresh run with --overwrite, refused otherwise",
    )
    g.add_argument(
        "--resume",
        action="store_true",
        help="continue the run recorded in --checkpoint (started fresh if the file does not "
        "exist yet); the result is bit-identical to an uninterrupted run. All other arguments "
        "must match the interrupted run, except --threads, --no-progress and --overwrite",
    )
    add_overwrite_argument(g)
    g.add_argument(
        "--limit-train",
        metavar="N",
        type=positive_int,
        default=None,
        help="use only the first N training samples (quick runs)",
    )
    add_limit_argument(g, "test")

    g = parser.add_argument_group("architecture")
    g.add_argument(
        "--arch",
        choices=("scrramble", "dense"),
        default="scrramble",
        help="ScRRAMBLe block-sparse network or the dense-MLP baseline",
    )
    g.add_argument(
        "--hidden-cores",
        type=_int_list,
        default=(50,),
        metavar="N[,N...]",
        help="hidden ScRRAMBLe layers, cores per layer (default: 50)",
    )
    g.add_argument(
        "--dense-hidden",
        type=_int_list,
        default=(256,),
        metavar="N[,N...]",
        help="hidden widths of the dense baseline (default: 256)",
    )
    g.add_argument(
        "--core-size", type=int, default=256, metavar="N", help="crossbar size (default: 256)"
    )
    g.add_argument(
        "--slot-size", type=int, default=64, metavar="N", help="slot width (default: 64)"
    )
    g.add_argument(
        "--p", type=float, default=0.2, help="routing connection probability (default: 0.2)"
    )
    g.add_argument("--activation", choices=("relu", "qrelu"), default="relu")
    g.add_argument(
        "--act-bits",
        type=int,
        default=4,
        metavar="B",
        help="bits of the quantised ReLU (with --activation qrelu; default: 4)",
    )
    g.add_argument(
        "--act-ceiling",
        type=float,
        default=1.0,
        metavar="C",
        help="clip level of the quantised ReLU (default: 1.0)",
    )
    g.add_argument(
        "--readout",
        choices=("capsule", "logits"),
        default="capsule",
        help="ScRRAMBLe readout: capsule norms or a final dense layer to logits",
    )

    g = parser.add_argument_group("training")
    g.add_argument(
        "--loss",
        choices=LOSSES,
        default=None,
        help="margin or softmax cross-entropy (default: margin for the capsule "
        "readout, xent for logits and for --arch dense)",
    )
    g.add_argument(
        "--epochs", type=positive_int, default=d.epochs, metavar="N",
        help=f"(default: {d.epochs})",
    )
    g.add_argument(
        "--batch-size", type=positive_int, default=d.batch_size, metavar="N",
        help=f"(default: {d.batch_size})",
    )
    g.add_argument(
        "--lr",
        type=float,
        default=d.lr,
        help=f"peak learning rate of the layer with the largest weights (default: {d.lr})",
    )
    g.add_argument(
        "--schedule",
        choices=SCHEDULES,
        default=d.schedule,
        help=f"learning-rate schedule (default: {d.schedule})",
    )
    g.add_argument(
        "--weight-decay", type=float, default=d.weight_decay, metavar="W",
        help=f"(default: {d.weight_decay})",
    )
    g.add_argument(
        "--optimizer",
        choices=OPTIMIZERS,
        default=d.optimizer,
        help="adam (L2 weight decay) or adamw (decoupled weight decay)",
    )
    g.add_argument(
        "--weight-noise",
        type=float,
        default=0.0,
        metavar="SIGMA",
        help="relative Gaussian weight noise during training (per core max |W|)",
    )
    g.add_argument(
        "--weight-clip",
        type=float,
        default=None,
        metavar="C",
        help="clip weights to [-C, C] after every step",
    )
    add_seed_argument(g, "routing, initialisation, shuffling and weight noise")
    add_threads_argument(g, "worker threads, each running single-threaded BLAS")


def _check_args(args: argparse.Namespace) -> None:
    if not (0.0 < args.p <= 1.0):
        raise CommandError(f"--p must lie in (0, 1], got {args.p}")
    if not (math.isfinite(args.lr) and args.lr > 0):
        raise CommandError(f"--lr must be a positive number, got {args.lr}")
    out: Path = check_output_path(args.out, "--out", overwrite=args.overwrite)
    ckpt: Path | None = args.checkpoint
    if args.resume and ckpt is None:
        raise CommandError("--resume needs --checkpoint CKPT.h5 (the checkpoint to continue)")
    if ckpt is not None:
        if ckpt.resolve() == out.resolve():
            raise CommandError(
                f"--checkpoint {ckpt} is the same file as --out; the final network would "
                "overwrite the checkpoint. Choose two different paths"
            )
        if ckpt.is_file() and not (args.resume or args.overwrite):
            raise CommandError(
                f"--checkpoint {ckpt} already exists; add --resume to continue that run, "
                "--overwrite to start over and replace it, or choose another path"
            )
        check_output_path(ckpt, "--checkpoint", overwrite=True)


def _build(args: argparse.Namespace, spec: InputSpec, n_classes: int) -> Network:
    rng = np.random.default_rng([args.seed, 1])  # independent of the training stream
    if args.activation == "qrelu":
        act = Activation("qrelu", args.act_bits, args.act_ceiling)
    else:
        act = Activation("relu")
    if args.arch == "dense":
        return build_dense_network(
            hidden=args.dense_hidden, n_classes=n_classes, activation=act, input_spec=spec, rng=rng
        )
    return build_scrramble_network(
        hidden_cores=args.hidden_cores,
        n_classes=n_classes,
        core_size=args.core_size,
        slot_size=args.slot_size,
        p=args.p,
        activation=act,
        readout=args.readout,
        input_spec=spec,
        rng=rng,
    )


def count_parameters(network: Network) -> int:
    """Stored weights (and biases) of all layers."""
    total = 0
    for layer in network.layers:
        total += layer.weights.size
        if isinstance(layer, DenseLayer):
            total += layer.bias.size
    return int(total)


def count_routed_parameters(network: Network) -> int:
    """Like :func:`count_parameters`, but ScRRAMBLe weights count only where their input slot
    receives at least one route (the other blocks multiply zeros)."""
    total = 0
    for layer in network.layers:
        if isinstance(layer, DenseLayer):
            total += layer.weights.size + layer.bias.size
            continue
        fed = np.any(layer.routing != 0, axis=(0, 1))  # (dst_cores, slots_in)
        total += int(fed.sum()) * layer.slots_per_core * layer.slot_size**2
    return int(total)


def run(args: argparse.Namespace) -> CommandResult:
    _check_args(args)
    readout = "logits" if args.arch == "dense" else args.readout
    loss = args.loss or ("margin" if readout == "capsule" else "xent")
    try:
        config = TrainConfig(
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            weight_decay=args.weight_decay,
            optimizer=args.optimizer,
            loss=loss,
            weight_noise=args.weight_noise,
            weight_clip=args.weight_clip,
            seed=args.seed,
            schedule=args.schedule,
        )
    except (TrainConfigError, ValueError) as exc:
        raise CommandError(str(exc)) from None

    spec = InputSpec(image_shape=IMAGE_SHAPE, padded_shape=(32, 32))  # 1024 = 4 x 256
    try:
        network = _build(args, spec, n_classes=N_CLASSES)
    except (BuildError, ValueError) as exc:
        raise CommandError(str(exc)) from None

    try:
        train_x, train_y = load_dataset(args.dataset, args.data, "train")
        test_x, test_y = load_dataset(args.dataset, args.data, "test")
        source = data_dir(args.dataset, args.data, "train")
    except DatasetError as exc:
        raise CommandError(str(exc)) from None
    if args.limit_train is not None:
        train_x, train_y = train_x[: args.limit_train], train_y[: args.limit_train]
    if args.limit is not None:
        test_x, test_y = test_x[: args.limit], test_y[: args.limit]

    if args.checkpoint is not None:
        make_parent(args.checkpoint, "--checkpoint")
    try:
        trained, metrics = train(
            network,
            train_x,
            train_y,
            config,
            test_x=test_x,
            test_y=test_y,
            progress=not args.no_progress,
            threads=args.threads,
            checkpoint=args.checkpoint,
            resume=args.resume,
            overwrite=args.overwrite,
        )
    except (TrainConfigError, CheckpointError) as exc:
        raise CommandError(str(exc)) from None
    except KeyboardInterrupt:
        if args.checkpoint is not None and args.checkpoint.is_file():
            raise CommandInterrupted(
                f"checkpoint {args.checkpoint} holds the last finished epoch; rerun the same "
                "command with --resume to continue"
            ) from None
        raise
    t_eval = time.perf_counter()
    test_acc = evaluate_accuracy(trained, test_x, test_y, threads=args.threads)
    eval_seconds = time.perf_counter() - t_eval

    train_acc = metrics["final_train_accuracy"]
    meta = dict(trained.metadata)
    meta.update(
        {
            "created_by": "scrramble-sim train",
            "dataset": args.dataset,
            "n_train": len(train_x),
            "n_test": len(test_x),
            "limit_train": args.limit_train,
            "limit": args.limit,
            "epochs": config.epochs,
            "seed": config.seed,
            "threads": args.threads,
            "train_accuracy": train_acc,
            "test_accuracy": test_acc,
            "train_seconds": metrics["seconds"],
        }
    )
    final = Network(trained.layers, trained.input_spec, trained.readout, meta)

    from mappings.h5format import NetworkFormatError, save_network

    make_parent(args.out, "--out")
    try:
        path = save_network(final, args.out)
    except NetworkFormatError as exc:
        raise CommandError(str(exc)) from None

    n_params = count_parameters(final)
    data = {
        "network": str(path),
        "dataset": args.dataset,
        "data": source,
        "split": "test",
        "arch": args.arch,
        "readout": readout,
        "loss": loss,
        "n_train": len(train_x),
        "n_samples": len(test_x),
        "limit_train": args.limit_train,
        "limit": args.limit,
        "accuracy": test_acc,
        "train_accuracy": train_acc,
        "train_seconds": metrics["seconds"],
        "eval_seconds": eval_seconds,
        "parameters": n_params,
        "parameters_routed": count_routed_parameters(final),
        "seed": args.seed,
        "threads": args.threads,
        "config": config.as_dict(),
        "architecture": dict(network.metadata),
        "history": metrics["history"],
        "checkpoint": None if args.checkpoint is None else str(args.checkpoint),
        "resumed_from_epoch": metrics["resumed_from_epoch"],
    }
    lines = [
        (
            f"trained {args.arch} network on {args.dataset} ({len(train_x)} samples, "
            f"{config.epochs} epochs, {args.threads} threads) in {metrics['seconds']:.1f} s"
        ),
        (
            f"  train accuracy {train_acc:.4f}   test accuracy {test_acc:.4f} "
            f"({len(test_x)} samples)"
        ),
        f"  parameters {n_params:,}",
        f"  saved {path}",
    ]
    if args.checkpoint is not None:
        resumed = metrics["resumed_from_epoch"]
        how = f"resumed after epoch {resumed}" if resumed else "started fresh"
        lines.append(f"  checkpoint {args.checkpoint} ({how})")
    return CommandResult(data=data, text="\n".join(lines))
