"""Training checkpoints: everything needed to continue a run bit-identically.

A checkpoint is a network file (``docs/network_format.md``, written by
:func:`mappings.h5format.save_network`, so ``load_network`` and ``scrramble-sim evaluate``
read it as the network trained so far) with one extra group, ``/checkpoint``:

| HDF5 path | kind | dtype | meaning |
|---|---|---|---|
| ``/checkpoint@format`` | attr | str | ``"scrramble-checkpoint"`` |
| ``/checkpoint@format_version`` | attr | int64 | ``1`` |
| ``/checkpoint@epoch`` | attr | int64 | epochs completed, 1..config epochs |
| ``/checkpoint@seconds`` | attr | float64 | training wall time so far, all sessions |
| ``/checkpoint@config_json`` | attr | str | the complete ``TrainConfig.as_dict()`` |
| ``/checkpoint@fingerprint_json`` | attr | str | architecture, initial weights, data (SHA-256) |
| ``/checkpoint@history_json`` | attr | str | per-epoch metrics so far (one entry per epoch) |
| ``/checkpoint@rng_state_json`` | attr | str | training Generator's ``bit_generator.state`` |
| ``/checkpoint/optimizer@t`` | attr | int64 | Adam step count (= epoch * steps per epoch) |
| ``/checkpoint/optimizer/lr_scale`` | dataset | float64 | per-array lr factors; absent if unused |
| ``/checkpoint/optimizer/m/000``.. | dataset | float32 | Adam first moments |
| ``/checkpoint/optimizer/v/000``.. | dataset | float32 | Adam second moments |

Moments follow the order and layout of ``TrainableNetwork.params`` (ScRRAMBLe: core matrices
(dst_cores, core_size, core_size); dense: weights (n_in, n_out), then bias (n_out,)). The file
is written atomically (:func:`mappings.safe_files.atomic_write`); every dataset carries a
Fletcher-32 checksum. Loading validates everything and raises :class:`CheckpointError` naming
the file (and HDF5 path) on any problem.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from mappings.h5format import NetworkFormatError, load_network, save_network
from mappings.network import DTYPE, DenseLayer, Network, ScrrambleLayer
from mappings.safe_files import H5Reader, atomic_write

FORMAT_NAME = "scrramble-checkpoint"
FORMAT_VERSION = 1
GROUP = "checkpoint"
BIT_GENERATOR = "PCG64"  # what numpy.random.default_rng uses
_LIBVER = ("v108", "latest")  # as mappings.h5format: attributes above 64 KiB allowed
_CHUNK_BYTES = 1 << 20
_HASH_CHARS = 16  # 64 bits of SHA-256: plenty to tell runs apart


class CheckpointError(ValueError):
    """A checkpoint cannot be written, read, or does not belong to the requested run."""


@dataclass(frozen=True)
class Checkpoint:
    """The state of a training run after ``epoch`` completed epochs.

    ``network`` holds the weights reached; ``adam_m``/``adam_v`` the Adam moments (order and
    layout of ``TrainableNetwork.params``), ``adam_t`` its step count; ``lr_scale`` the
    per-array learning-rate factors (None without layer_lr_scaling); ``config`` the complete
    ``TrainConfig.as_dict()``; ``fingerprint`` what the run started from
    (:func:`run_fingerprint`); ``history`` the per-epoch metrics; ``rng_state`` the training
    Generator's ``bit_generator.state``; ``seconds`` the training time so far.
    """

    network: Network
    epoch: int
    seconds: float
    config: dict
    fingerprint: dict
    history: list
    rng_state: dict
    adam_t: int
    adam_m: tuple
    adam_v: tuple
    lr_scale: tuple | None = None

    def generator(self) -> np.random.Generator:
        """A Generator in exactly the recorded state."""
        bg = np.random.PCG64()
        bg.state = self.rng_state
        return np.random.Generator(bg)

    @property
    def finished(self) -> bool:
        """Whether all configured epochs are done."""
        return self.epoch >= int(self.config["epochs"])


# ----------------------------------------------------------------------------------------------
# Fingerprints: what a run starts from.


def _digest(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape};".encode())
        h.update(memoryview(a.reshape(-1)).cast("B"))
    return "sha256:" + h.hexdigest()[:_HASH_CHARS]


def param_shapes(network: Network) -> list[tuple[int, ...]]:
    """Shapes of ``TrainableNetwork(network).params`` (the layout of the Adam moments)."""
    shapes: list[tuple[int, ...]] = []
    for layer in network.layers:
        if isinstance(layer, ScrrambleLayer):
            shapes.append((layer.n_dst_cores, layer.core_size, layer.core_size))
        else:
            shapes.extend([tuple(layer.weights.shape), tuple(layer.bias.shape)])
    return shapes


def architecture_fingerprint(network: Network) -> dict[str, str]:
    """Everything about ``network`` except its weight values, as readable strings."""
    spec = network.input_spec
    out = {
        "architecture.input": (
            f"image_shape {tuple(spec.image_shape)}, padded_shape {tuple(spec.padded_shape)}"
        ),
        "architecture.readout": f"{network.readout.kind}, {network.readout.n_classes} classes",
        "architecture.n_layers": str(len(network.layers)),
    }
    for i, layer in enumerate(network.layers):
        act = layer.activation
        act_s = f"{act.kind}" + (f"({act.bits} bits, ceiling {act.ceiling})" if act.bits else "")
        if isinstance(layer, ScrrambleLayer):
            desc = (
                f"scrramble, routing {tuple(layer.routing.shape)} {_digest(layer.routing)}, "
                f"weights {tuple(layer.weights.shape)}, {act_s}, p {layer.p}, seed {layer.seed}"
            )
        elif isinstance(layer, DenseLayer):
            desc = f"dense, weights {tuple(layer.weights.shape)}, {act_s}"
        else:
            desc = type(layer).__name__
        out[f"architecture.layer{i}"] = desc
    return out


def _data_desc(x: np.ndarray | None, y: np.ndarray | None) -> str:
    if x is None or y is None:
        return "none"
    x = np.asarray(x)
    y = np.asarray(y, dtype=np.int64)
    return f"{len(x)} samples {tuple(x.shape)} {x.dtype}, {_digest(x, y)}"


def run_fingerprint(
    network: Network,
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray | None = None,
    test_y: np.ndarray | None = None,
) -> dict[str, str]:
    """Architecture, initial weights and data of a run (hashes of the arrays)."""
    out = architecture_fingerprint(network)
    weights = [
        a
        for layer in network.layers
        for a in (
            (layer.weights, layer.bias) if isinstance(layer, DenseLayer) else (layer.weights,)
        )
    ]
    out["initial_weights"] = _digest(*weights)
    out["data.train"] = _data_desc(train_x, train_y)
    out["data.test"] = _data_desc(test_x, test_y)
    return out


def check_matches(
    ckpt: Checkpoint, path: str | os.PathLike, config: dict, fingerprint: dict
) -> None:
    """Raise :class:`CheckpointError` listing every field where ``ckpt`` differs from the run."""
    diffs = []
    for key in sorted(set(ckpt.config) | set(config)):
        a, b = ckpt.config.get(key, "(absent)"), config.get(key, "(absent)")
        if a != b or isinstance(a, bool) != isinstance(b, bool):
            diffs.append(f"config.{key}: checkpoint {a!r}, requested {b!r}")
    for key in sorted(set(ckpt.fingerprint) | set(fingerprint)):
        a, b = ckpt.fingerprint.get(key, "(absent)"), fingerprint.get(key, "(absent)")
        if a != b:
            diffs.append(f"{key}: checkpoint {a!r}, requested {b!r}")
    if diffs:
        raise CheckpointError(
            f"{path}: checkpoint belongs to a different run; {len(diffs)} differing field(s): "
            + "; ".join(diffs)
            + ". Rerun with the checkpoint's settings, or remove the file (or choose another "
            "checkpoint path) to start over"
        )


# ----------------------------------------------------------------------------------------------
# Writing.


def _json(value: Any, path: Path, what: str) -> str:
    try:
        return json.dumps(value, allow_nan=True)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: {what} is not JSON-serialisable: {exc}") from None


def _write_array(group: h5py.Group, name: str, a: np.ndarray) -> None:
    a = np.ascontiguousarray(a)
    row = a.itemsize * math.prod(a.shape[1:])
    rows = max(1, min(a.shape[0], _CHUNK_BYTES // max(row, 1))) if a.ndim else 1
    chunks = (rows, *a.shape[1:]) if a.ndim else None
    group.create_dataset(name, data=a, chunks=chunks, fletcher32=a.ndim > 0)


def _check_state(ckpt: Checkpoint, path: Path) -> None:
    shapes = param_shapes(ckpt.network)
    for name, arrays in (("adam_m", ckpt.adam_m), ("adam_v", ckpt.adam_v)):
        got = [tuple(np.shape(a)) for a in arrays]
        if got != shapes:
            raise CheckpointError(f"{path}: {name} shapes {got}; expected {shapes}")
    if ckpt.lr_scale is not None and len(ckpt.lr_scale) != len(shapes):
        raise CheckpointError(
            f"{path}: lr_scale has {len(ckpt.lr_scale)} entries; expected {len(shapes)}"
        )
    if len(ckpt.history) != ckpt.epoch:
        raise CheckpointError(
            f"{path}: history has {len(ckpt.history)} entries; expected one per epoch "
            f"({ckpt.epoch})"
        )


def save_checkpoint(path: str | os.PathLike, ckpt: Checkpoint) -> Path:
    """Write ``ckpt`` to ``path`` atomically (an old checkpoint survives any failure)."""
    path = Path(path)
    _check_state(ckpt, path)
    texts = {
        "config_json": _json(ckpt.config, path, "config"),
        "fingerprint_json": _json(ckpt.fingerprint, path, "fingerprint"),
        "history_json": _json(ckpt.history, path, "history"),
        "rng_state_json": _json(ckpt.rng_state, path, "generator state"),
    }

    def write(tmp: Path) -> None:
        try:
            save_network(ckpt.network, tmp)  # atomic onto tmp; tmp itself is ours
        except NetworkFormatError as exc:
            raise CheckpointError(f"{path}: could not write training checkpoint: {exc}") from None
        with h5py.File(tmp, "r+", libver=_LIBVER) as f:
            _write_state(f, ckpt, texts)

    return atomic_write(path, write, error=CheckpointError, what="training checkpoint")


def _write_state(f: h5py.File, ckpt: Checkpoint, texts: dict[str, str]) -> None:
    g = f.create_group(GROUP)
    g.attrs["format"] = FORMAT_NAME
    g.attrs["format_version"] = np.int64(FORMAT_VERSION)
    g.attrs["epoch"] = np.int64(ckpt.epoch)
    g.attrs["seconds"] = np.float64(ckpt.seconds)
    for key, text in texts.items():
        g.attrs[key] = text
    og = g.create_group("optimizer")
    og.attrs["t"] = np.int64(ckpt.adam_t)
    if ckpt.lr_scale is not None:
        _write_array(og, "lr_scale", np.asarray(ckpt.lr_scale, dtype=np.float64))
    for name, arrays in (("m", ckpt.adam_m), ("v", ckpt.adam_v)):
        mg = og.create_group(name)
        for i, a in enumerate(arrays):
            _write_array(mg, f"{i:03d}", np.asarray(a, dtype=DTYPE))


# ----------------------------------------------------------------------------------------------
# Reading.


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read and validate a checkpoint written by :func:`save_checkpoint`."""
    path = Path(path)
    with H5Reader.open(path, error=CheckpointError, what="training checkpoint") as r:
        if GROUP not in r.f:
            raise r.error(
                f"/{GROUP}",
                "missing group; this is not a training checkpoint (a plain network file?)",
            )
        return _read(r, path)


def _read(r: H5Reader, path: Path) -> Checkpoint:
    g = r.group(r.f, GROUP, "the training state")
    fmt = r.attr(g, "format", str, f"{FORMAT_NAME!r}")
    if fmt != FORMAT_NAME:
        raise r.error(f"{g.name}@format", f"{fmt!r}; expected {FORMAT_NAME!r}")
    version = r.attr(g, "format_version", int, f"format version {FORMAT_VERSION}")
    if version != FORMAT_VERSION:
        raise r.error(
            f"{g.name}@format_version",
            f"unsupported version {version}; this reader supports {FORMAT_VERSION}",
        )
    config = r.json_attr(g, "config_json", dict, "a JSON object (the TrainConfig)")
    epochs = config.get("epochs")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise r.error(f"{g.name}@config_json", f"epochs {epochs!r}; expected a positive integer")
    epoch = r.attr(g, "epoch", int, f"the epochs completed, 1..{epochs}", minimum=1)
    if epoch > epochs:
        raise r.error(f"{g.name}@epoch", f"{epoch}; expected at most the configured {epochs}")
    seconds = r.attr(g, "seconds", float, "training seconds so far (a number >= 0)", minimum=0)
    fingerprint = r.json_attr(g, "fingerprint_json", dict, "a JSON object of strings")
    history = r.json_attr(g, "history_json", list, f"a JSON list of {epoch} per-epoch records")
    if len(history) != epoch or not all(isinstance(h, dict) for h in history):
        raise r.error(f"{g.name}@history_json", f"expected {epoch} per-epoch records (objects)")
    if [h.get("epoch") for h in history] != list(range(1, epoch + 1)):
        raise r.error(f"{g.name}@history_json", f"epochs are not 1..{epoch} in order")
    rng_state = r.json_attr(g, "rng_state_json", dict, "a numpy bit_generator.state object")
    if rng_state.get("bit_generator") != BIT_GENERATOR:
        raise r.error(
            f"{g.name}@rng_state_json",
            f"bit generator {rng_state.get('bit_generator')!r}; expected {BIT_GENERATOR!r}",
        )
    try:
        np.random.PCG64().state = rng_state
    except (TypeError, ValueError, KeyError) as exc:
        raise r.error(f"{g.name}@rng_state_json", f"invalid generator state ({exc})") from None

    try:
        network = load_network(path)
    except NetworkFormatError as exc:
        raise CheckpointError(f"{exc} (reading the network of a training checkpoint)") from None
    arch = architecture_fingerprint(network)
    recorded = {k: v for k, v in fingerprint.items() if k.startswith("architecture.")}
    if arch != recorded:
        bad = sorted(k for k in set(arch) | set(recorded) if arch.get(k) != recorded.get(k))
        raise r.error(
            f"{g.name}@fingerprint_json",
            f"the stored network does not match the recorded architecture ({', '.join(bad)}); "
            "corrupted or edited checkpoint?",
        )

    og = r.group(g, "optimizer", "the optimizer state")
    t = r.attr(og, "t", int, "the Adam step count (integer >= 1)", minimum=1)
    shapes = param_shapes(network)
    moments = {}
    for name in ("m", "v"):
        mg = r.group(og, name, f"Adam moments {name}/000..")
        moments[name] = tuple(r.array(mg, f"{i:03d}", s, DTYPE) for i, s in enumerate(shapes))
        extra = sorted(set(mg.keys()) - {f"{i:03d}" for i in range(len(shapes))})
        if extra:
            raise r.error(f"{mg.name}/{extra[0]}", f"unexpected member; {len(shapes)} arrays")
    for i, v in enumerate(moments["v"]):
        if v.size and v.min() < 0:
            raise r.error(f"{og.name}/v/{i:03d}", "negative second moments; expected >= 0")
    lr_scale = None
    if "lr_scale" in og:
        lr_scale = tuple(float(s) for s in r.array(og, "lr_scale", (len(shapes),), np.float64))
    return Checkpoint(
        network=network,
        epoch=epoch,
        seconds=float(seconds),
        config=config,
        fingerprint=fingerprint,
        history=history,
        rng_state=rng_state,
        adam_t=t,
        adam_m=moments["m"],
        adam_v=moments["v"],
        lr_scale=lr_scale,
    )
