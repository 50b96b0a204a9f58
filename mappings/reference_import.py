"""Import networks saved by the published JAX ScRRAMBLe reference code (``.npz`` archives).

The archive holds, per layer i, a routing tensor ``Ci`` shaped (src_cores, slots, dst_cores,
slots) and a weight tensor ``Wi`` shaped (dst_cores, slots_out, slots_in, slot, slot), in the
layout of the reference forward pass::

    x_routed = einsum('ijkl,ijm->klm', C, x)      # x: (src_cores, slots, slot)
    y        = einsum('ijklm,ikm->ijl', W, x_routed)

which is exactly :class:`mappings.network.ScrrambleLayer`'s layout. Keys are ``C0, W0, C1, W1,
...`` (or numbered from 1, or lower-case ``c0``/``w0``); other keys are ignored.
"""

from __future__ import annotations

import os
import re
import zipfile
from pathlib import Path

import numpy as np

from mappings.activations import Activation
from mappings.h5format import (
    NetworkFormatError,
    check_chaining,
    check_scrramble_shapes,
    coerce_routing,
    require_balanced,
    require_finite,
    require_float,
)
from mappings.network import InputSpec, Network, Readout, ScrrambleLayer
from mappings.safe_files import atomic_write

_KEY = re.compile(r"^([CcWw])(\d+)$")
_RELU = Activation("relu")
_LINEAR = Activation("none")
_INPUT = InputSpec()

__all__ = ["NetworkFormatError", "import_reference_npz", "save_reference_npz"]


def _layer_keys(keys: list[str], where: str) -> list[tuple[int, str, str]]:
    """(index, C key, W key) for every layer, ordered by index; checks numbering and pairing."""
    found: dict[tuple[str, int], str] = {}
    for key in keys:
        m = _KEY.match(key)
        if not m:
            continue
        letter, idx = m.group(1).upper(), int(m.group(2))
        if (letter, idx) in found:
            raise NetworkFormatError(
                f"{where}: keys {found[(letter, idx)]!r} and {key!r} both give {letter}{idx}; "
                "expected one key per tensor"
            )
        found[(letter, idx)] = key
    if not found:
        raise NetworkFormatError(
            f"{where}: no layer arrays among keys {sorted(keys)}; expected C0, W0, C1, W1, ..."
        )
    indices = sorted({idx for _, idx in found})
    start = indices[0]
    if start not in (0, 1):
        raise NetworkFormatError(
            f"{where}: layer numbering starts at {start}; expected 0 or 1 (C{start - 1} missing?)"
        )
    layers = []
    for expected, idx in enumerate(indices, start=start):
        if idx != expected:
            raise NetworkFormatError(
                f"{where}: layer {expected} missing (found indices {indices}); expected "
                "consecutive numbering"
            )
        for letter, other in (("C", "W"), ("W", "C")):
            if (letter, idx) not in found:
                raise NetworkFormatError(
                    f"{where}: key {letter}{idx} missing for {found[(other, idx)]!r}; every layer "
                    "needs both C (routing) and W (weights)"
                )
        layers.append((idx, found[("C", idx)], found[("W", idx)]))
    return layers


_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a local file header; an empty archive
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_NPY_MAGIC = b"\x93NUMPY"


def _require_zip(path: Path) -> None:
    """Refuse files that are not zip archives before numpy guesses (it would call a text
    file "pickled data"), naming what the file looks like instead."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError as exc:
        raise NetworkFormatError(f"{path}: cannot read: {exc}") from exc
    if head[:4] in _ZIP_MAGIC:
        return
    if head.startswith(_HDF5_MAGIC):
        seen = "an HDF5 file (already a network file? use it directly)"
    elif head.startswith(_NPY_MAGIC):
        seen = "a single .npy array"
    elif not head:
        seen = "an empty file"
    else:
        seen = f"neither a zip archive nor HDF5 (starts with {head[:8]!r})"
    raise NetworkFormatError(
        f"{path}: not an .npz archive: {seen}; expected a zip of .npy arrays C0, W0, C1, W1, "
        "... as written by numpy.savez"
    )


def import_reference_npz(
    path: str | os.PathLike,
    *,
    activation: Activation = _RELU,
    last_activation: Activation = _LINEAR,
    readout: Readout | None = None,
    input_spec: InputSpec = _INPUT,
    readout_kind: str = "capsule",
) -> Network:
    """Build a :class:`Network` of ScRRAMBLe layers from a reference ``.npz`` archive.

    ``activation`` follows every layer but the last, which gets ``last_activation``. ``readout``
    defaults to a ``readout_kind`` readout: ``"capsule"`` with one class per destination core
    of the last layer, or ``"logits"`` with one class per output of the last layer.
    Routing may be stored as floats but must be integral-valued; it becomes int8. Weights
    become float32. Shapes, layer chaining (and the first layer against ``input_spec``), balance
    and finiteness are validated; errors raise :class:`NetworkFormatError` naming file and key.
    """
    path = Path(path)
    where = str(path)
    if not path.is_file():
        raise NetworkFormatError(f"{where}: no such file; expected a reference .npz archive")
    _require_zip(path)
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise NetworkFormatError(f"{where}: cannot read as .npz archive: {exc}") from exc
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise NetworkFormatError(
            f"{where}: holds a single array; expected an .npz archive with C0, W0, ..."
        )
    layers: list[ScrrambleLayer] = []
    with archive:
        keys = _layer_keys(list(archive.files), where)
        width, source = (
            input_spec.n_features,
            f"input_spec (padded_shape {input_spec.padded_shape})",
        )
        for n, (_, ckey, wkey) in enumerate(keys):
            cw, ww = f"{where}: {ckey}", f"{where}: {wkey}"
            try:
                c_raw, w_raw = archive[ckey], archive[wkey]
            except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
                raise NetworkFormatError(
                    f"{where}: cannot read {ckey}/{wkey} (corrupted archive?): {exc}"
                ) from exc
            check_scrramble_shapes(c_raw.shape, w_raw.shape, cw, ww)
            C = coerce_routing(c_raw, cw)
            require_balanced(C, cw)
            W = require_float(w_raw, ww)
            require_finite(W, ww)
            act = last_activation if n == len(keys) - 1 else activation
            layer = ScrrambleLayer(C, W, act)
            check_chaining(layer.n_in, width, cw, source)
            width, source = layer.n_out, f"{ckey}/{wkey}"
            layers.append(layer)
    if readout is None and readout_kind == "logits":
        readout = Readout("logits", width)
    elif readout is None:
        if readout_kind != "capsule":
            raise NetworkFormatError(
                f"readout_kind must be 'capsule' or 'logits', got {readout_kind!r}"
            )
        n_cls = layers[-1].n_dst_cores
        if n_cls < 2:
            raise NetworkFormatError(
                f"{where}: last layer has {n_cls} destination core; the default capsule readout "
                "needs >= 2 (one per class); pass readout= explicitly"
            )
        readout = Readout("capsule", n_cls)
    try:
        readout.check_width(width)
    except ValueError as exc:
        raise NetworkFormatError(f"{where}: readout does not fit the last layer: {exc}") from None
    metadata = {"imported_from": str(path), "source": "reference-npz"}
    return Network(tuple(layers), input_spec, readout, metadata)


def save_reference_npz(network: Network, path: str | os.PathLike) -> Path:
    """Write ``network`` in the reference layout (``C0, W0, ...``, float32), atomically.

    Routing is stored as float32 like the reference code does. Only ScRRAMBLe layers can be
    expressed in this layout; activations, readout and input spec are not stored.
    """
    path = Path(path)
    arrays: dict[str, np.ndarray] = {}
    for i, layer in enumerate(network.layers):
        if not isinstance(layer, ScrrambleLayer):
            raise NetworkFormatError(
                f"{path}: layer {i} is a {type(layer).__name__}; the reference layout holds only "
                "ScRRAMBLe layers"
            )
        arrays[f"C{i}"] = np.ascontiguousarray(layer.routing, dtype=np.float32)
        arrays[f"W{i}"] = np.ascontiguousarray(layer.weights, dtype=np.float32)

    def write(tmp: Path) -> None:
        with open(tmp, "xb") as fh:
            np.savez(fh, **arrays)

    return atomic_write(path, write, error=NetworkFormatError, what="archive")
