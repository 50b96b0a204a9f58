"""The traffic of a mapped network as a list of flows: who sends which slot to which cores.

A *flow* is one piece of data a physical core produces per inference and the set of cores
that need it: (layer, kind, source core, source slot, destination cores, payload bits,
header bits). It is what the packet network carries; bit counts, bit-hops, the core x core
matrix used by placement, and the messages injected into the network are all derived from it.

Kinds (``KINDS``):

- ``activation``: elements of layer l-1's output that layer l's tiles need. The source core is
  the tile that completes them (row tile 0 of their column tile), the *source slot* is the
  group of ``slot_elements`` consecutive outputs of that tile (a ScRRAMBLe slot). Each
  destination tile receives the slot's needed elements once (it forms its signed routed sums
  locally). Destinations that need exactly the same elements of a slot share one flow.
- ``psum``: partial sums of row tile r > 0 of a column, one flow per slot of the column's
  outputs (and its reference column, ``offset`` encoding, after them), to row tile 0 of the
  same column, ``psum_bits`` each.
- ``input``: network-input elements from the I/O port (source :data:`IO_PORT`), slotted as
  ``feature // slot_elements``.

Packet formats: a *unicast* packet carries one flow to one destination, with a header of
``address_bits`` (the destination core) plus ``slot_address_bits`` (which source slot, so the
destination knows which routing entries apply; for partial sums which output slot). A
*multicast* packet carries one flow to all its destinations with the destination list in the
header (``address_bits`` per destination plus the slot address).

Unstructured sparsity, for comparison (the ScRRAMBLe paper's address-bit argument): every
activation would carry its own source index, ``ceil(log2(n_in))`` bits, instead of one slot
address per ``slot_elements`` activations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "IO_PORT",
    "KINDS",
    "FlowError",
    "Flows",
    "address_bits_for",
    "concat_flows",
    "group_flows",
]

IO_PORT = -1
KINDS: tuple[str, ...] = ("activation", "psum", "input")
ACTIVATION, PSUM, INPUT = 0, 1, 2


class FlowError(ValueError):
    """Invalid flows: a core outside the chip, an empty destination set, negative bits."""


def address_bits_for(n: int) -> int:
    """Bits to address one of ``n`` things: ceil(log2(n)), 0 for n <= 1."""
    return int(n - 1).bit_length() if n > 1 else 0


@dataclass(frozen=True, eq=False)
class Flows:
    """Per-inference flows of a mapped network (arrays of equal length ``n_flows``).

    ``dst[dst_ptr[f]:dst_ptr[f + 1]]`` are the destination cores of flow ``f``, ascending;
    ``payload_bits[f]`` is what each destination receives, ``slot_address_bits[f]`` the
    header's slot field. ``address_bits`` is the width of one core address.
    """

    layer: np.ndarray  # int32: the layer whose input (or partial sums) this is
    kind: np.ndarray  # int8: index into KINDS
    src: np.ndarray  # int32: source physical core, IO_PORT for the network input
    src_slot: np.ndarray  # int32: slot of the source core's outputs (input: of the input)
    dst_ptr: np.ndarray  # int64 (n_flows + 1,)
    dst: np.ndarray  # int32 destination physical cores
    payload_bits: np.ndarray  # int64 per destination
    slot_address_bits: np.ndarray  # int64
    elements: np.ndarray  # int64: data elements (activations or partial sums) per destination
    n_cores: int
    address_bits: int

    def __post_init__(self) -> None:
        n = len(self.src)
        for name in ("layer", "kind", "src_slot", "payload_bits", "slot_address_bits", "elements"):
            if len(getattr(self, name)) != n:
                raise FlowError(f"flows: {name} has {len(getattr(self, name))} entries, src {n}")
        if len(self.dst_ptr) != n + 1 or self.dst_ptr[0] != 0 or self.dst_ptr[-1] != len(self.dst):
            raise FlowError("flows: dst_ptr must be a CSR pointer (n_flows + 1,) over dst")
        if n and np.any(np.diff(self.dst_ptr) < 1):
            f = int(np.argmax(np.diff(self.dst_ptr) < 1))
            raise FlowError(f"flows: flow {f} has no destination core")
        if len(self.dst) and (self.dst.min() < 0 or self.dst.max() >= self.n_cores):
            bad = int(self.dst[(self.dst < 0) | (self.dst >= self.n_cores)][0])
            raise FlowError(
                f"flows: destination core {bad} is outside the {self.n_cores} cores (0.."
                f"{self.n_cores - 1})"
            )
        if n and (self.src.min() < IO_PORT or self.src.max() >= self.n_cores):
            bad = int(self.src[(self.src < IO_PORT) | (self.src >= self.n_cores)][0])
            raise FlowError(
                f"flows: source core {bad} is outside the {self.n_cores} cores (0.."
                f"{self.n_cores - 1}, or {IO_PORT} for the I/O port)"
            )
        if n and (self.payload_bits.min() < 1 or self.slot_address_bits.min() < 0):
            raise FlowError("flows: payload bits must be >= 1 and header bits >= 0")

    # ------------------------------------------------------------------ shape

    @property
    def n_flows(self) -> int:
        return len(self.src)

    @property
    def fanout(self) -> np.ndarray:
        """Destinations per flow."""
        return np.diff(self.dst_ptr)

    @property
    def flow_of_dst(self) -> np.ndarray:
        """For every entry of ``dst``, the index of its flow."""
        return np.repeat(np.arange(self.n_flows), self.fanout)

    def select(self, mask: np.ndarray) -> Flows:
        """The flows where ``mask`` is True."""
        mask = np.asarray(mask, dtype=bool)
        keep = mask[self.flow_of_dst]
        counts = self.fanout[mask]
        return Flows(
            self.layer[mask], self.kind[mask], self.src[mask], self.src_slot[mask],
            np.concatenate([[0], np.cumsum(counts)]).astype(np.int64), self.dst[keep],
            self.payload_bits[mask], self.slot_address_bits[mask], self.elements[mask],
            self.n_cores, self.address_bits,
        )

    def of_kind(self, *kinds: str) -> Flows:
        """Only the flows of the given kinds."""
        codes = [_kind_code(k) for k in kinds]
        return self.select(np.isin(self.kind, codes))

    @property
    def inter_core(self) -> Flows:
        """Flows between cores (the network input from the I/O port excluded)."""
        return self.of_kind("activation", "psum")

    # ------------------------------------------------------------------ packets

    def header_bits(self, multicast: bool = False) -> np.ndarray:
        """Header bits of each flow's packet: one destination address (unicast) or the
        destination list (multicast), plus the slot address."""
        n_addr = self.fanout if multicast else np.ones(self.n_flows, dtype=np.int64)
        return n_addr * self.address_bits + self.slot_address_bits

    def packets_per_flow(self, multicast: bool = False) -> np.ndarray:
        return np.ones(self.n_flows, np.int64) if multicast else self.fanout.astype(np.int64)

    def n_packets(self, multicast: bool = False) -> int:
        return int(self.packets_per_flow(multicast).sum())

    def payload_total(self, multicast: bool = False) -> int:
        """Payload bits sent (unicast: once per destination; multicast: once per flow)."""
        return int((self.payload_bits * self.packets_per_flow(multicast)).sum())

    def header_total(self, multicast: bool = False) -> int:
        return int((self.header_bits(multicast) * self.packets_per_flow(multicast)).sum())

    def bits(self, multicast: bool = False) -> int:
        """Bits injected into the network: packets x (payload + header)."""
        return self.payload_total(multicast) + self.header_total(multicast)

    def flits(self, link_width_bits: int, multicast: bool = False) -> int:
        """Flits: ceil((payload + header) / link width) per packet."""
        if isinstance(link_width_bits, bool) or int(link_width_bits) < 1:
            raise FlowError(f"link_width_bits must be an integer >= 1, got {link_width_bits!r}")
        per = -(-(self.payload_bits + self.header_bits(multicast)) // int(link_width_bits))
        return int((per * self.packets_per_flow(multicast)).sum())

    def core_matrix(self, header: bool = True) -> np.ndarray:
        """(n_cores, n_cores) unicast bits per inference between cores (I/O excluded);
        ``header=False`` counts payload only."""
        inter = self.inter_core
        per = inter.payload_bits + (inter.header_bits() if header else 0)
        f = inter.flow_of_dst
        n = self.n_cores
        flat = np.bincount(
            inter.src[f].astype(np.int64) * n + inter.dst, weights=per[f], minlength=n * n
        )
        return np.rint(flat).astype(np.int64).reshape(n, n)

    # ------------------------------------------------------------------ hops

    def hops(self, positions: np.ndarray, io_position=(0, 0), multicast: bool = False):
        """Link traversals of each flow's packets on an XY-routed mesh: the sum of Manhattan
        distances (unicast) or the size of the XY multicast tree (the union of the XY paths)."""
        pos = _check_positions(positions, self.n_cores)
        io = np.asarray(io_position, dtype=np.int64).reshape(1, 2)
        allpos = np.concatenate([pos, io])  # row n_cores = the I/O port
        src = np.where(self.src == IO_PORT, self.n_cores, self.src)
        f = self.flow_of_dst
        s, d = allpos[src[f]], allpos[self.dst]
        if not multicast:
            return np.bincount(f, weights=np.abs(s - d).sum(axis=1), minlength=self.n_flows)
        # XY tree: the source row spans [min col, max col] over source and destinations;
        # then one vertical branch per destination column spanning its rows and the source row.
        n = self.n_flows
        sr, sc = allpos[src, 0], allpos[src, 1]
        cmin = np.minimum(sc, _reduce(np.minimum, f, d[:, 1], n, sc))
        cmax = np.maximum(sc, _reduce(np.maximum, f, d[:, 1], n, sc))
        key, inv = np.unique(f * (allpos[:, 1].max() + 1) + d[:, 1], return_inverse=True)
        kf = key // (allpos[:, 1].max() + 1)
        rmin = np.minimum(sr[kf], _reduce(np.minimum, inv, d[:, 0], len(key), sr[kf]))
        rmax = np.maximum(sr[kf], _reduce(np.maximum, inv, d[:, 0], len(key), sr[kf]))
        vertical = np.bincount(kf, weights=rmax - rmin, minlength=n)
        return (cmax - cmin) + vertical

    def bit_hops(self, positions, io_position=(0, 0), multicast: bool = False,
                 include_io: bool = False) -> float:
        """Bits x links traversed (headers included); I/O input excluded unless asked."""
        fl = self if include_io else self.inter_core
        h = fl.hops(positions, io_position, multicast)
        if multicast:
            return float(((fl.payload_bits + fl.header_bits(True)) * h).sum())
        per = fl.payload_bits + fl.header_bits(False)  # each destination's packet
        return float((per * h).sum())

    # ------------------------------------------------------------------ report

    def unstructured_address_bits(self, layer_inputs: dict[int, int]) -> int:
        """Address bits unstructured sparsity would add: ceil(log2(n_in)) per delivered
        activation of each layer (``layer_inputs``: layer -> input width)."""
        act = self.kind != PSUM
        out = 0
        for layer, n_in in layer_inputs.items():
            m = act & (self.layer == layer)
            elements = int((self.fanout[m] * self.elements[m]).sum())
            out += elements * address_bits_for(n_in)
        return out

    def as_arrays(self) -> dict[str, np.ndarray]:
        return {
            "layer": self.layer, "kind": self.kind, "src": self.src, "src_slot": self.src_slot,
            "dst_ptr": self.dst_ptr, "dst": self.dst, "payload_bits": self.payload_bits,
            "slot_address_bits": self.slot_address_bits, "elements": self.elements,
        }


def _reduce(op, idx, values, n, init):
    out = np.array(init, dtype=np.int64, copy=True)
    op.at(out, idx, values)
    return out


def _kind_code(kind: str) -> int:
    if kind not in KINDS:
        raise FlowError(f"unknown flow kind {kind!r}; valid: {list(KINDS)}")
    return KINDS.index(kind)


def _check_positions(positions, n_cores: int) -> np.ndarray:
    pos = np.asarray(positions, dtype=np.int64)
    if pos.ndim != 2 or pos.shape != (n_cores, 2):
        raise FlowError(
            f"positions must be (n_cores={n_cores}, 2) grid cells (row, col), got {pos.shape}"
        )
    return pos


def group_flows(
    layer: int,
    kind: str,
    src: np.ndarray,
    src_slot: np.ndarray,
    pos_in_slot: np.ndarray,
    dst: np.ndarray,
    *,
    slot_elements: int,
    element_bits: int,
    slot_address_bits: int,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Flows of one layer from element deliveries (one entry per element per destination).

    Deliveries with the same (source, slot, destination) form one packet's payload; packets
    of one (source, slot) that carry exactly the same elements share a flow. Returns the flow
    arrays (``dst_ptr`` local to this group) and each flow's element count.
    """
    src = np.asarray(src, np.int64)
    src_slot = np.asarray(src_slot, np.int64)
    dst = np.asarray(dst, np.int64)
    pos = np.asarray(pos_in_slot, np.int64)
    if not len(src):
        empty = np.zeros(0, np.int64)
        return _arrays(layer, kind, empty, empty, np.zeros(1, np.int64), empty, empty, 0), empty
    # one packet per (src, slot, dst), with a bitmask of the elements it carries
    key = np.stack([src, src_slot, dst], axis=1)
    pk, inv = np.unique(key, axis=0, return_inverse=True)
    inv = inv.ravel()
    mask = np.zeros((len(pk), slot_elements), dtype=bool)
    mask[inv, pos] = True
    count = mask.sum(axis=1)
    packed = np.packbits(mask, axis=1)
    # flows: packets with the same (src, slot, element set)
    fkey = np.concatenate([pk[:, :2], packed.astype(np.int64)], axis=1)
    fk, finv = np.unique(fkey, axis=0, return_inverse=True)
    finv = finv.ravel()
    order = np.lexsort((pk[:, 2], finv))  # by flow, destinations ascending
    fanout = np.bincount(finv, minlength=len(fk))
    first = np.zeros(len(fk), np.int64)
    first[finv[order[::-1]]] = order[::-1]  # any packet of each flow
    elements = count[first]
    ptr = np.concatenate([[0], np.cumsum(fanout)]).astype(np.int64)
    arrays = _arrays(
        layer, kind, fk[:, 0], fk[:, 1], ptr, pk[order, 2], elements * int(element_bits),
        slot_address_bits,
    )
    return arrays, elements.astype(np.int64)


def _arrays(layer, kind, src, slot, ptr, dst, payload, slot_bits) -> dict[str, np.ndarray]:
    n = len(src)
    return {
        "layer": np.full(n, layer, np.int32),
        "kind": np.full(n, _kind_code(kind), np.int8),
        "src": np.asarray(src, np.int32),
        "src_slot": np.asarray(slot, np.int32),
        "dst_ptr": np.asarray(ptr, np.int64),
        "dst": np.asarray(dst, np.int32),
        "payload_bits": np.asarray(payload, np.int64),
        "slot_address_bits": np.full(n, slot_bits, np.int64),
    }


def concat_flows(
    parts: list[tuple[dict[str, np.ndarray], np.ndarray]], n_cores: int, address_bits: int
) -> Flows:
    """One :class:`Flows` from the per-layer groups of :func:`group_flows`."""
    names = ("layer", "kind", "src", "src_slot", "dst", "payload_bits", "slot_address_bits")
    cat = {k: np.concatenate([p[0][k] for p in parts]) if parts else np.zeros(0, np.int64)
           for k in names}
    fan = np.concatenate([np.diff(p[0]["dst_ptr"]) for p in parts]) if parts else np.zeros(0)
    elements = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, np.int64)
    ptr = np.concatenate([[0], np.cumsum(fan)]).astype(np.int64)
    flows = Flows(
        cat["layer"].astype(np.int32), cat["kind"].astype(np.int8), cat["src"].astype(np.int32),
        cat["src_slot"].astype(np.int32), ptr, cat["dst"].astype(np.int32),
        cat["payload_bits"].astype(np.int64), cat["slot_address_bits"].astype(np.int64),
        elements.astype(np.int64), int(n_cores), int(address_bits),
    )
    return flows
