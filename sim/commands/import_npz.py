"""``scrramble-sim import``: convert a ``.npz`` network of the published JAX reference code
(``C0, W0, C1, W1, ...``; see :mod:`mappings.reference_import`) into a network file (HDF5)."""

from __future__ import annotations

import argparse
from pathlib import Path

from mappings.activations import ACTIVATION_KINDS, Activation, ActivationError
from mappings.h5format import NetworkFormatError, save_network
from mappings.network import InputSpec, Network, NetworkError, Readout
from mappings.reference_import import import_reference_npz
from sim.commands import CommandError, CommandResult
from sim.commands.common import (
    add_overwrite_argument,
    check_output_path,
    make_parent,
    positive_int,
)
from sim.datasets import DATASETS

HELP = "import a network saved by the JAX reference code (.npz) as a network file (HDF5)"

DEFAULT_IMAGE_SHAPE = (28, 28)
DEFAULT_PADDED_SHAPE = (32, 32)


def _shape(text: str) -> tuple[int, ...]:
    """'28,28' -> (28, 28)."""
    try:
        values = tuple(positive_int(v) for v in text.split(","))
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected comma-separated positive integers such as 28,28"
        ) from None
    return values


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "reference", metavar="REF.npz", type=Path, help="archive with C0, W0, C1, W1, ..."
    )
    parser.add_argument(
        "--out",
        metavar="NET.h5",
        type=Path,
        required=True,
        help="network file to write (HDF5; missing folders are created; an existing file is "
        "refused unless --overwrite)",
    )
    add_overwrite_argument(parser)
    g = parser.add_argument_group("input spec (how images become the first layer's inputs)")
    g.add_argument(
        "--image-shape",
        type=_shape,
        default=None,
        metavar="H,W",
        help="shape of one input image (default: 28,28)",
    )
    g.add_argument(
        "--padded-shape",
        type=_shape,
        default=None,
        metavar="H,W",
        help="images are zero-padded (centred) to this shape and flattened; its size must be "
        "the first layer's input count, e.g. 16,32 for 512 inputs (default: 32,32 with the "
        "default image shape, else the image shape)",
    )
    g = parser.add_argument_group("activations and readout (not stored in the archive)")
    g.add_argument(
        "--activation",
        choices=ACTIVATION_KINDS,
        default="relu",
        help="activation after every layer but the last (default: relu)",
    )
    g.add_argument(
        "--last-activation",
        choices=ACTIVATION_KINDS,
        default="none",
        help="activation after the last layer (default: none)",
    )
    g.add_argument(
        "--act-bits", type=positive_int, default=4, metavar="B",
        help="bits of qrelu activations (default: 4)",
    )
    g.add_argument(
        "--act-ceiling", type=float, default=1.0, metavar="C",
        help="clip level of qrelu activations (default: 1.0)",
    )
    g.add_argument(
        "--readout",
        choices=("capsule", "logits"),
        default="capsule",
        help="class scores: capsule norms or the last layer's outputs (default: capsule)",
    )
    g.add_argument(
        "--classes",
        type=positive_int,
        default=None,
        metavar="N",
        help="number of classes (default: capsule: one per destination core of the last "
        "layer; logits: the last layer's width)",
    )
    g.add_argument(
        "--dataset",
        choices=DATASETS,
        default=None,
        help="dataset recorded in the network's metadata (used by evaluate and simulate; "
        "default: none recorded, they then assume fashion-mnist)",
    )


def _activation(kind: str, args: argparse.Namespace, flag: str) -> Activation:
    try:
        if kind == "qrelu":
            return Activation("qrelu", args.act_bits, args.act_ceiling)
        return Activation(kind)
    except ActivationError as exc:
        raise CommandError(f"{flag} {kind}: {exc}") from None


def _input_spec(args: argparse.Namespace) -> InputSpec:
    image = args.image_shape or DEFAULT_IMAGE_SHAPE
    padded = args.padded_shape or (DEFAULT_PADDED_SHAPE if args.image_shape is None else image)
    try:
        return InputSpec(image_shape=image, padded_shape=padded)
    except NetworkError as exc:
        raise CommandError(
            f"--image-shape {','.join(map(str, image))} / --padded-shape "
            f"{','.join(map(str, padded))}: {exc}"
        ) from None


def run(args: argparse.Namespace) -> CommandResult:
    out = check_output_path(args.out, "--out", overwrite=args.overwrite)
    spec = _input_spec(args)
    hidden = _activation(args.activation, args, "--activation")
    last = _activation(args.last_activation, args, "--last-activation")
    readout = None
    if args.classes is not None:
        try:
            readout = Readout(args.readout, args.classes)
        except NetworkError as exc:
            raise CommandError(f"--classes {args.classes}: {exc}") from None
    try:
        network = import_reference_npz(
            args.reference, activation=hidden, last_activation=last, input_spec=spec,
            readout=readout, readout_kind=args.readout,
        )
    except NetworkFormatError as exc:
        msg = str(exc)
        if "input_spec" in msg:
            msg += (
                f"; set the input spec with --image-shape / --padded-shape (now "
                f"{','.join(map(str, spec.image_shape))} padded to "
                f"{','.join(map(str, spec.padded_shape))} = {spec.n_features} inputs)"
            )
        raise CommandError(msg) from None
    metadata = dict(network.metadata)
    metadata["created_by"] = "scrramble-sim import"
    if args.dataset is not None:
        metadata["dataset"] = args.dataset
    network = Network(network.layers, network.input_spec, network.readout, metadata)
    make_parent(out, "--out")
    try:
        save_network(network, out)
    except NetworkFormatError as exc:
        raise CommandError(str(exc)) from None

    layers = [
        {
            "src_cores": layer.n_src_cores,
            "dst_cores": layer.n_dst_cores,
            "core_size": layer.core_size,
            "slot_size": layer.slot_size,
            "n_in": layer.n_in,
            "n_out": layer.n_out,
            "activation": layer.activation.kind,
        }
        for layer in network.layers
    ]
    data = {
        "network": str(out),
        "reference": str(args.reference),
        "dataset": args.dataset,
        "image_shape": list(spec.image_shape),
        "padded_shape": list(spec.padded_shape),
        "n_inputs": spec.n_features,
        "readout": network.readout.kind,
        "n_classes": network.readout.n_classes,
        "layers": layers,
        "parameters": int(sum(layer.weights.size for layer in network.layers)),
    }
    shapes = " -> ".join([str(layers[0]["src_cores"])] + [str(la["dst_cores"]) for la in layers])
    text = (
        f"imported {args.reference}: {len(layers)} ScRRAMBLe layers, cores {shapes} of "
        f"{layers[0]['core_size']} (slots of {layers[0]['slot_size']}), "
        f"{spec.n_features} inputs ({'x'.join(map(str, spec.image_shape))} padded to "
        f"{'x'.join(map(str, spec.padded_shape))}), {network.readout.kind} readout of "
        f"{network.readout.n_classes} classes, {data['parameters']:,} weights\n"
        f"  saved {out}"
    )
    return CommandResult(data=data, text=text)
