"""Logical blocks -> physical crossbar tiles, partial sums, and traffic between physical cores.

Every layer is a set of logical blocks: a ScRRAMBLe layer has one (core_size x core_size) block
per destination core, fed by its routed input; a dense layer is one (n_out, n_in) block. A block
is cut into physical tiles of at most ``inputs_per_tile = core_rows // rows_per_input(encoding)``
inputs and ``outputs_per_tile = core_cols - reference_columns(encoding)`` outputs (the
``offset`` encoding's reference column takes one column of every tile). The row tiles of one
block produce partial sums that row tile 0 of the same column adds digitally after each ADC.

Physical core ids run layer by layer, block by block, row tile, column tile.

Traffic is a list of flows (:class:`mappings.flows.Flows`, ``ChipPlan.flows``): per layer,
(source core, source slot, destination cores, payload bits, header bits); the bits per core
pair, ``ChipPlan.traffic_bits[src, dst]`` (payload only), are derived from it. It has two parts:

- activations: an output element of layer l-1 leaves the tile that completes it (row tile 0 of
  its column) and travels *once* to every tile of layer l that needs it. A ScRRAMBLe source slot
  routed to several slots of one destination core travels once per destination tile (the tile
  forms the signed sums locally), i.e. once per (source slot, destination core) link when a
  core is one tile (see :func:`mappings.routing.core_traffic_links`). Elements of the network
  input come from the I/O port (``io_bits_in``, counted per delivery the same way); the last
  layer's outputs leave through it (``io_bits_out``) as 32-bit words: the last layer's output
  is not quantised (the activation quantiser sits between layers), whatever
  ``activation_bits``.
- partial sums: every row tile r > 0 sends its column tile's outputs (``psum_bits`` each) to
  row tile 0 of the same column.

``activation_bits = 0`` means float activations, sent as 32-bit words.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

import numpy as np

from mappings.checks import positive_int
from mappings.encodings import (
    ENCODINGS,
    devices_per_weight,
    reference_columns,
    rows_per_input,
)
from mappings.flows import IO_PORT, Flows, address_bits_for, concat_flows, group_flows
from mappings.network import DenseLayer, ScrrambleLayer

FLOAT_ACTIVATION_BITS = 32


class TilingError(ValueError):
    """Invalid tiling request: core dimensions, bit widths, encoding or layer type."""


@dataclass(frozen=True)
class LayerTiling:
    """How one layer's logical blocks are cut into physical tiles.

    ``slot_size`` is the ScRRAMBLe slot width (0 for dense layers).
    """

    layer: int
    kind: Literal["scrramble", "dense"]
    n_blocks: int
    block_out: int
    block_in: int
    inputs_per_tile: int
    outputs_per_tile: int
    row_tiles: int  # per block
    col_tiles: int  # per block
    slot_size: int = 0
    n_in: int = 0  # width of the layer's input vector (ScRRAMBLe: before routing)

    def __post_init__(self) -> None:
        if self.n_in == 0 and self.kind == "dense":
            object.__setattr__(self, "n_in", self.block_in)

    @property
    def n_tiles(self) -> int:
        return self.n_blocks * self.row_tiles * self.col_tiles

    @property
    def n_out(self) -> int:
        return self.n_blocks * self.block_out

    @property
    def n_weights(self) -> int:
        """Logical weights: every entry of every block (a crossbar programs zeros too)."""
        return self.n_blocks * self.block_out * self.block_in

    def tile_id(self, block: int, row_tile: int, col_tile: int) -> int:
        """Index of a tile within this layer (add the layer's first physical core id)."""
        return (block * self.row_tiles + row_tile) * self.col_tiles + col_tile

    def row_range(self, row_tile: int) -> tuple[int, int]:
        """Block input positions [start, stop) held by a row tile."""
        start = row_tile * self.inputs_per_tile
        return start, min(start + self.inputs_per_tile, self.block_in)

    def col_range(self, col_tile: int) -> tuple[int, int]:
        """Block output positions [start, stop) held by a column tile."""
        start = col_tile * self.outputs_per_tile
        return start, min(start + self.outputs_per_tile, self.block_out)

    def devices(self, encoding: str) -> int:
        """Programmed devices of this layer under ``encoding`` (reference columns included).

        The reference-column count uses this tiling's ``col_tiles``, so ``encoding`` must be
        the one the tiling was made for (or one with as many reference columns per tile);
        :meth:`ChipPlan.devices` re-tiles for any other encoding.
        """
        n = self.n_weights * devices_per_weight(encoding)
        if reference_columns(encoding):
            # one reference device per input row of every tile
            n += self.n_blocks * self.col_tiles * self.block_in * reference_columns(encoding)
        return n

    def as_dict(self) -> dict:
        return {
            "layer": self.layer,
            "kind": self.kind,
            "n_in": self.n_in,
            "n_out": self.n_out,
            "n_blocks": self.n_blocks,
            "block_out": self.block_out,
            "block_in": self.block_in,
            "inputs_per_tile": self.inputs_per_tile,
            "outputs_per_tile": self.outputs_per_tile,
            "row_tiles": self.row_tiles,
            "col_tiles": self.col_tiles,
            "n_tiles": self.n_tiles,
            "slot_size": self.slot_size,
        }


@dataclass(frozen=True, eq=False)
class ChipPlan:
    """Tiles of every layer and the flows between physical cores per inference."""

    layers: tuple[LayerTiling, ...]
    n_physical_cores: int
    flows: Flows  # every slot / partial-sum group and the cores it goes to
    io_bits_in: int
    io_bits_out: int
    encoding: str = ""
    core_rows: int = 0
    core_cols: int = 0
    activation_bits: int = 0
    psum_bits: int = 0
    layer_input_bits: tuple[int, ...] = ()  # activation bits delivered to each layer's tiles
    layer_psum_bits: tuple[int, ...] = ()  # partial-sum bits inside each layer

    @property
    def first_core(self) -> tuple[int, ...]:
        """Physical id of every layer's first tile."""
        return tuple(int(v) for v in np.cumsum([0] + [t.n_tiles for t in self.layers])[:-1])

    def layer_cores(self, layer: int) -> range:
        """Physical core ids of one layer."""
        start = self.first_core[layer]
        return range(start, start + self.layers[layer].n_tiles)

    @property
    def traffic_bits(self) -> np.ndarray:
        """(n_physical_cores, n_physical_cores) int64 payload bits per inference, from the
        flows (one unicast delivery per destination; headers and I/O excluded)."""
        return self.flows.core_matrix(header=False)

    @property
    def inter_core_bits(self) -> int:
        """Bits exchanged between physical cores per inference (I/O excluded)."""
        return int(self.traffic_bits.sum())

    @property
    def activation_traffic_bits(self) -> int:
        """Inter-core activation bits (partial sums and I/O excluded)."""
        return self.inter_core_bits - self.psum_traffic_bits

    @property
    def psum_traffic_bits(self) -> int:
        return int(sum(self.layer_psum_bits))

    def devices(self, encoding: str | None = None) -> int:
        """Programmed devices of all layers (default: the plan's encoding).

        Another encoding is counted on its own tiling of the same core geometry (the
        ``offset`` reference column changes the number of column tiles).
        """
        enc = encoding or self.encoding
        layers = self.layers
        if enc != self.encoding and reference_columns(enc) != reference_columns(self.encoding):
            ipt, opt = tile_dims(self.core_rows, self.core_cols, enc)
            layers = tuple(_retile(t, ipt, opt) for t in layers)
        return sum(t.devices(enc) for t in layers)


# ------------------------------------------------------------------------------ geometry


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def tile_dims(core_rows: int, core_cols: int, encoding: str) -> tuple[int, int]:
    """(inputs_per_tile, outputs_per_tile) of one physical core under ``encoding``."""
    if encoding not in ENCODINGS:
        raise TilingError(f"unknown encoding {encoding!r}; valid encodings: {list(ENCODINGS)}")
    rows = positive_int(core_rows, "core_rows", TilingError)
    cols = positive_int(core_cols, "core_cols", TilingError)
    ipt = rows // rows_per_input(encoding)
    opt = cols - reference_columns(encoding)
    if ipt < 1:
        raise TilingError(
            f"core_rows={rows} is too small for encoding {encoding!r}, which needs "
            f"{rows_per_input(encoding)} rows per input"
        )
    if opt < 1:
        raise TilingError(
            f"core_cols={cols} leaves no output column for encoding {encoding!r} "
            f"({reference_columns(encoding)} reference column(s) per tile)"
        )
    return ipt, opt


def _retile(t: LayerTiling, ipt: int, opt: int) -> LayerTiling:
    """The same logical blocks cut into tiles of ``ipt`` inputs and ``opt`` outputs."""
    return dataclasses.replace(
        t,
        inputs_per_tile=min(ipt, t.block_in),
        outputs_per_tile=min(opt, t.block_out),
        row_tiles=_ceil_div(t.block_in, ipt),
        col_tiles=_ceil_div(t.block_out, opt),
    )


def _layer_shape(layer) -> tuple[str, int, int, int, int, int]:
    """(kind, n_blocks, block_out, block_in, n_in, slot_size) without touching the weights."""
    if isinstance(layer, ScrrambleLayer):
        cs = layer.core_size
        return "scrramble", layer.n_dst_cores, cs, cs, layer.n_in, layer.slot_size
    if isinstance(layer, DenseLayer):
        return "dense", 1, layer.n_out, layer.n_in, layer.n_in, 0
    if isinstance(layer, tuple) and len(layer) == 3 and layer[0] == "dense":
        # ("dense", n_in, n_out): a shape-only dense layer (baselines)
        n_in = positive_int(layer[1], "shape-only dense layer n_in", TilingError)
        n_out = positive_int(layer[2], "shape-only dense layer n_out", TilingError)
        return "dense", 1, n_out, n_in, n_in, 0
    raise TilingError(f"cannot tile a layer of type {type(layer).__name__}")


def _tile_layer(index: int, layer, ipt: int, opt: int) -> LayerTiling:
    kind, n_blocks, block_out, block_in, n_in, slot = _layer_shape(layer)
    return LayerTiling(
        layer=index,
        kind=kind,
        n_blocks=n_blocks,
        block_out=block_out,
        block_in=block_in,
        inputs_per_tile=min(ipt, block_in),
        outputs_per_tile=min(opt, block_out),
        row_tiles=_ceil_div(block_in, ipt),
        col_tiles=_ceil_div(block_out, opt),
        slot_size=slot,
        n_in=n_in,
    )


def layer_tilings(network, core_rows: int, core_cols: int, encoding: str) -> tuple[LayerTiling, ...]:
    """The tiling of every layer (no traffic): cheap, for device counts under any encoding."""
    ipt, opt = tile_dims(core_rows, core_cols, encoding)
    return tuple(_tile_layer(i, layer, ipt, opt) for i, layer in enumerate(_layers(network)))


def _layers(network) -> tuple:
    layers = getattr(network, "layers", network)
    if not len(layers):
        raise TilingError("the network has no layers to tile")
    return tuple(layers)


# ------------------------------------------------------------------------------- traffic


def _producers(t: LayerTiling, first: int) -> tuple[np.ndarray, np.ndarray]:
    """Physical core that completes each output element of a layer (row tile 0 of its column)
    and the element's position among that core's outputs."""
    f = np.arange(t.n_out)
    block, pos = np.divmod(f, t.block_out)
    col = pos // t.outputs_per_tile
    return first + (block * t.row_tiles) * t.col_tiles + col, pos - col * t.outputs_per_tile


def _needs_scrramble(layer: ScrrambleLayer, t: LayerTiling) -> tuple[np.ndarray, ...]:
    """(feature, dst_block, dst_row_tile) triples, each element once per destination tile."""
    C = np.asarray(layer.routing) != 0  # (ns, S, nd, S)
    S = C.shape[1]
    ss = layer.slot_size
    # row tile of routed-input position (dst slot l, position p): one-hot (S, ss, R)
    pos = np.arange(S * ss).reshape(S, ss)
    onehot = (pos[:, :, None] // t.inputs_per_tile) == np.arange(t.row_tiles)
    needed = np.einsum("ijkl,lpr->ijkrp", C.astype(np.int32), onehot.astype(np.int32)) > 0
    i, j, k, r, p = np.nonzero(needed)
    feature = (i * S + j) * ss + p
    return feature, k, r


def _needs_dense(t: LayerTiling) -> tuple[np.ndarray, ...]:
    feature = np.arange(t.block_in)
    return feature, np.zeros_like(feature), feature // t.inputs_per_tile


def plan_layers(
    layers,
    core_rows: int,
    core_cols: int,
    encoding: str,
    *,
    activation_bits: int,
    psum_bits: int,
    slot_elements: int | None = None,
    address_cores: int | None = None,
) -> ChipPlan:
    """:func:`plan_network` for a sequence of layers; a layer may also be a shape-only
    ``("dense", n_in, n_out)`` tuple (dense baselines without allocating weights)."""
    if isinstance(activation_bits, bool) or not isinstance(activation_bits, (int, np.integer)):
        raise TilingError(f"activation_bits must be an integer (0 = float), got {activation_bits!r}")
    if activation_bits < 0:
        raise TilingError(f"activation_bits must be >= 0 (0 = float), got {activation_bits}")
    psum = positive_int(psum_bits, "psum_bits", TilingError)
    act = int(activation_bits) or FLOAT_ACTIVATION_BITS
    layers = _layers(layers)
    ipt, opt = tile_dims(core_rows, core_cols, encoding)
    tilings = tuple(_tile_layer(i, layer, ipt, opt) for i, layer in enumerate(layers))
    for t, prev in zip(tilings[1:], tilings[:-1]):
        if t.n_in != prev.n_out:
            raise TilingError(
                f"layer {t.layer} expects {t.n_in} inputs but layer {prev.layer} gives {prev.n_out}"
            )
    if slot_elements is None:
        slot_elements = next((t.slot_size for t in tilings if t.kind == "scrramble"), 64)
    packet = positive_int(slot_elements, "slot_elements", TilingError)
    n = sum(t.n_tiles for t in tilings)
    address = address_bits_for(max(n, 0 if address_cores is None else int(address_cores)))
    parts = []
    io_in = 0
    input_bits: list[int] = []
    psum_list: list[int] = []
    ref = reference_columns(encoding)  # reference columns per tile
    first = 0
    producers = None  # None: the layer's input comes from the I/O port
    for layer, t in zip(layers, tilings):
        if t.kind == "scrramble":
            feature, block, row = _needs_scrramble(layer, t)
        else:
            feature, block, row = _needs_dense(t)
        ss = t.slot_size or packet  # a ScRRAMBLe layer's input travels in its routing slots
        base = first + (block * t.row_tiles + row) * t.col_tiles  # column tile 0
        deliveries = len(feature) * t.col_tiles  # every column tile needs the same inputs
        input_bits.append(deliveries * act)
        feature = np.repeat(feature, t.col_tiles)
        dst = (base[:, None] + np.arange(t.col_tiles)).ravel()
        if producers is None:
            io_in += deliveries * act
            src, local, kind = np.full(len(feature), IO_PORT), feature, "input"
        else:
            src, local, kind = producers[0][feature], producers[1][feature], "activation"
        parts.append(group_flows(
            t.layer, kind, src, local // ss, local % ss, dst, slot_elements=ss,
            element_bits=act, slot_address_bits=address_bits_for(-(-t.n_in // ss)),
        ))
        # partial sums: row tile r > 0 -> row tile 0 of the same column, per output slot; the
        # reference column's too (offset encoding: row tile 0 subtracts its sum over the row
        # tiles, which the simulation saturates at psum_bits like the outputs'), after them
        layer_psum = 0
        if t.row_tiles > 1:
            widths = ref + np.array(
                [t.col_range(c)[1] - t.col_range(c)[0] for c in range(t.col_tiles)]
            )
            b, r, c = np.meshgrid(
                np.arange(t.n_blocks), np.arange(1, t.row_tiles), np.arange(t.col_tiles),
                indexing="ij",
            )
            b, r, c = b.ravel(), r.ravel(), c.ravel()
            src = first + (b * t.row_tiles + r) * t.col_tiles + c
            dst = first + (b * t.row_tiles) * t.col_tiles + c
            w = widths[c]
            start = np.concatenate([[0], np.cumsum(w)[:-1]])
            pos = np.arange(int(w.sum())) - np.repeat(start, w)  # output position in the tile
            parts.append(group_flows(
                t.layer, "psum", np.repeat(src, w), pos // packet, pos % packet,
                np.repeat(dst, w), slot_elements=packet, element_bits=psum,
                slot_address_bits=address_bits_for(-(-(t.outputs_per_tile + ref) // packet)),
            ))
            layer_psum = int(w.sum()) * psum
        psum_list.append(layer_psum)
        producers = _producers(t, first)
        first += t.n_tiles
    return ChipPlan(
        layers=tilings,
        n_physical_cores=n,
        flows=concat_flows(parts, n, address),
        io_bits_in=int(io_in),
        io_bits_out=int(tilings[-1].n_out * FLOAT_ACTIVATION_BITS),  # last layer: not quantised
        encoding=encoding,
        core_rows=int(core_rows),
        core_cols=int(core_cols),
        activation_bits=int(activation_bits),
        psum_bits=psum,
        layer_input_bits=tuple(int(v) for v in input_bits),
        layer_psum_bits=tuple(psum_list),
    )


def plan_network(
    network,
    core_rows: int,
    core_cols: int,
    encoding: str,
    *,
    activation_bits: int,
    psum_bits: int,
    slot_elements: int | None = None,
    address_cores: int | None = None,
) -> ChipPlan:
    """Tile every layer of ``network`` onto ``core_rows x core_cols`` crossbars and count the
    bits each pair of physical cores exchanges per inference (see the module docstring).

    ``activation_bits``: bits per activation sent between cores (0 = float, sent as 32 bits);
    ``psum_bits``: bits per partial sum sent between row tiles; ``slot_elements``: elements
    per packet of a dense layer's data (default: the first ScRRAMBLe slot size, else 64; a
    ScRRAMBLe layer's input always travels in its own slots); ``address_cores``: cores a
    packet header must be able to address (default: the plan's). Whether the plan fits a chip
    is checked by :func:`sim.chip.config.check_fits`.
    """
    return plan_layers(
        _layers(network), core_rows, core_cols, encoding,
        activation_bits=activation_bits, psum_bits=psum_bits, slot_elements=slot_elements,
        address_cores=address_cores,
    )


def dense_equivalent(network) -> tuple:
    """Shape-only dense layers ``("dense", n_in, n_out)`` with every layer's shape: the
    fully connected baseline a ScRRAMBLe network is compared with."""
    return tuple(("dense", layer.n_in, layer.n_out) for layer in _layers(network))


def plan_dense_baseline(
    network,
    core_rows: int,
    core_cols: int,
    encoding: str,
    *,
    activation_bits: int,
    psum_bits: int,
    slot_elements: int | None = None,
    address_cores: int | None = None,
) -> ChipPlan:
    """Plan the dense layers of the same shapes as ``network``'s layers on the same tile
    geometry (``encoding`` only sets rows per input and reference columns), so a comparison
    with :func:`plan_network` isolates the traffic pattern: routed slots vs. broadcast inputs
    plus partial sums."""
    if slot_elements is None:  # the same packets as the network's own
        slot_elements = next(
            (layer.slot_size for layer in _layers(network) if hasattr(layer, "slot_size")), None
        )
    return plan_layers(
        dense_equivalent(network), core_rows, core_cols, encoding,
        activation_bits=activation_bits, psum_bits=psum_bits, slot_elements=slot_elements,
        address_cores=address_cores,
    )
