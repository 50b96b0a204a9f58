"""Forward and backward passes of ScRRAMBLe and dense layers on feature-major batches.

Shapes follow :mod:`mappings.network`: activations are (features, B) float32. A ScRRAMBLe
layer is trained in its *core-matrix* layout ``M`` (dst_cores, core_size out, core_size in)
(``ScrrambleLayer.core_matrices()``), so forward and backward are single batched GEMMs over
cores; the layout is a pure permutation of the stored weights ``W`` (dst, so, si, slot, slot),
so element-wise optimiser steps, clipping and per-core noise are identical in both layouts and
:func:`core_to_weights` maps the result (or a gradient) back.

Routing: ``x_routed = R.T @ x`` with ``R = routing_matrix(C)`` (src*slots, dst*slots) acting
on slots of ``slot_size`` features, hence ``dx = R @ d x_routed``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mappings.activations import Activation
from mappings.network import DTYPE, DenseLayer, Network, Readout, ScrrambleLayer
from mappings.routing import routing_matrix
from sim.training.parallel import SERIAL, Workers

_EPS = 1e-12
DENSE_BLOCK = 128  # dense GEMMs are cut into fixed blocks of rows / columns (thread-invariant)


def weights_to_core(W: np.ndarray) -> np.ndarray:
    """(dst, so, si, slot, slot) -> core matrices (dst, so*slot, si*slot), contiguous."""
    nd, s, _, f, _ = W.shape
    return np.ascontiguousarray(W.transpose(0, 1, 3, 2, 4).reshape(nd, s * f, s * f))


def core_to_weights(M: np.ndarray, slot_size: int) -> np.ndarray:
    """Core matrices (dst, c, c) -> (dst, so, si, slot, slot), contiguous (inverse of above)."""
    nd, c, _ = M.shape
    s = c // slot_size
    return np.ascontiguousarray(M.reshape(nd, s, slot_size, s, slot_size).transpose(0, 1, 3, 2, 4))


# ----------------------------------------------------------------------------------------------
# Per-layer kernels.


def route(R: np.ndarray, x: np.ndarray, slot_size: int) -> np.ndarray:
    """(n_in, B) -> routed inputs (dst*slots*slot_size, B) for routing matrix R."""
    b = x.shape[-1]
    xs = x.reshape(R.shape[0], slot_size * b)
    return (R.T @ xs).reshape(R.shape[1] * slot_size, b)


def unroute(R: np.ndarray, dxr: np.ndarray, slot_size: int) -> np.ndarray:
    """Adjoint of :func:`route`: (dst*slots*slot_size, B) -> (n_in, B)."""
    b = dxr.shape[-1]
    return (R @ dxr.reshape(R.shape[1], slot_size * b)).reshape(R.shape[0] * slot_size, b)


def scrramble_forward(
    M: np.ndarray, R: np.ndarray, x: np.ndarray, slot_size: int, workers: Workers = SERIAL
) -> tuple[np.ndarray, np.ndarray]:
    """Return (routed input (dst, c, B), preactivation (dst*c, B))."""
    nd, c, _ = M.shape
    b = x.shape[-1]
    xr = route(R, x, slot_size).reshape(nd, c, b)
    z = np.empty((nd, c, b), dtype=np.result_type(M, xr))
    workers.run(lambda sl: np.matmul(M[sl], xr[sl], out=z[sl]), nd)
    return xr, z.reshape(nd * c, b)


def scrramble_backward(
    M: np.ndarray,
    R: np.ndarray,
    xr: np.ndarray,
    dz: np.ndarray,
    slot_size: int,
    need_dx: bool,
    workers: Workers = SERIAL,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Gradients (dM (dst, c, c), dx (n_in, B) or None) from dz = dL/dpreactivation."""
    nd, c, _ = M.shape
    b = dz.shape[-1]
    dz3 = dz.reshape(nd, c, b)
    dM = np.empty(M.shape, dtype=np.result_type(dz, xr))
    dxr = np.empty((nd, c, b), dtype=np.result_type(M, dz)) if need_dx else None

    def chunk(sl: slice) -> None:
        np.matmul(dz3[sl], xr[sl].transpose(0, 2, 1), out=dM[sl])
        if dxr is not None:
            np.matmul(M[sl].transpose(0, 2, 1), dz3[sl], out=dxr[sl])

    workers.run(chunk, nd)
    if dxr is None:
        return dM, None
    return dM, unroute(R, dxr.reshape(nd * c, b), slot_size)


def dense_forward(
    W: np.ndarray, bias: np.ndarray, x: np.ndarray, workers: Workers = SERIAL
) -> np.ndarray:
    """Preactivation W.T x + b, (n_out, B)."""
    z = np.empty((W.shape[1], x.shape[-1]), dtype=np.result_type(W, x))

    def chunk(sl: slice) -> None:
        np.matmul(W[:, sl].T, x, out=z[sl])
        z[sl] += bias[sl, None]

    workers.run_blocks(chunk, W.shape[1], DENSE_BLOCK)
    return z


def dense_backward(
    W: np.ndarray, x: np.ndarray, dz: np.ndarray, need_dx: bool, workers: Workers = SERIAL
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Gradients (dW (n_in, n_out), db (n_out,), dx (n_in, B) or None)."""
    dW = np.empty(W.shape, dtype=np.result_type(x, dz))
    dx = np.empty((W.shape[0], dz.shape[-1]), dtype=np.result_type(W, dz)) if need_dx else None

    def chunk(sl: slice) -> None:  # rows of dW and dx = input features
        np.matmul(x[sl], dz.T, out=dW[sl])
        if dx is not None:
            np.matmul(W[sl], dz, out=dx[sl])

    workers.run_blocks(chunk, W.shape[0], DENSE_BLOCK)
    return dW, dz.sum(axis=1), dx


def readout_forward(readout: Readout, y: np.ndarray) -> np.ndarray:
    """Last-layer output (features, B) -> class scores (B, n_classes)."""
    return readout.scores(y)


def readout_backward(
    readout: Readout, y: np.ndarray, scores: np.ndarray, dscores: np.ndarray
) -> np.ndarray:
    """d loss / d y (features, B) from d loss / d scores (B, n_classes)."""
    if readout.kind == "logits":
        return np.ascontiguousarray(dscores.T, dtype=y.dtype)
    c = readout.n_classes
    caps = y.reshape(c, -1, y.shape[-1])
    # d ||v|| / d v = v / ||v|| (zero at v = 0).
    scale = dscores.T / np.maximum(scores.T, _EPS)
    return (caps * scale[:, None, :].astype(y.dtype)).reshape(y.shape)


# ----------------------------------------------------------------------------------------------
# A whole network as mutable parameter arrays.


@dataclass
class LayerState:
    """One layer's trainable arrays and fixed structure."""

    kind: str  # 'scrramble' or 'dense'
    activation: Activation
    params: list[np.ndarray]  # scrramble: [M]; dense: [W, b]
    R: np.ndarray | None = None  # routing matrix (scrramble)
    slot_size: int = 0


class TrainableNetwork:
    """Mutable float32 copy of a :class:`Network`'s parameters with forward/backward passes."""

    def __init__(self, network: Network, dtype=DTYPE, workers: Workers = SERIAL) -> None:
        self.template = network
        self.workers = workers
        self.dtype = np.dtype(dtype)
        self.readout = network.readout
        self.input_spec = network.input_spec
        self.layers: list[LayerState] = []
        for layer in network.layers:
            if isinstance(layer, ScrrambleLayer):
                self.layers.append(
                    LayerState(
                        "scrramble",
                        layer.activation,
                        [weights_to_core(np.asarray(layer.weights, dtype=dtype))],
                        routing_matrix(layer.routing, dtype),
                        layer.slot_size,
                    )
                )
            elif isinstance(layer, DenseLayer):
                self.layers.append(
                    LayerState(
                        "dense",
                        layer.activation,
                        [
                            np.array(layer.weights, dtype=dtype, order="C"),
                            np.array(layer.bias, dtype=dtype, order="C"),
                        ],
                    )
                )
            else:
                raise TypeError(f"cannot train layer of type {type(layer).__name__}")

    @property
    def params(self) -> list[np.ndarray]:
        """All parameter arrays, in layer order (scrramble: M; dense: W, b)."""
        return [p for st in self.layers for p in st.params]

    def weight_flags(self) -> list[bool]:
        """Per entry of :attr:`params`: True for weights, False for biases."""
        return [i == 0 for st in self.layers for i in range(len(st.params))]

    def forward(
        self, x: np.ndarray, params: list[np.ndarray] | None = None
    ) -> tuple[list[tuple], np.ndarray]:
        """Feature-major input -> (caches, last output). ``params`` overrides (e.g. noisy)."""
        ps = self._split(params)
        caches = []
        for st, p in zip(self.layers, ps):
            if st.kind == "scrramble":
                xr, z = scrramble_forward(p[0], st.R, x, st.slot_size, self.workers)
                cache = (x, xr, z)
            else:
                z = dense_forward(p[0], p[1], x, self.workers)
                cache = (x, None, z)
            caches.append(cache)
            x = st.activation.apply(z)
        return caches, x

    def output(self, x: np.ndarray) -> np.ndarray:
        """Feature-major input -> last layer's output, without keeping caches."""
        for st, p in zip(self.layers, self._split(None)):
            if st.kind == "scrramble":
                z = scrramble_forward(p[0], st.R, x, st.slot_size, self.workers)[1]
            else:
                z = dense_forward(p[0], p[1], x, self.workers)
            x = st.activation.apply(z)
        return x

    def backward(
        self, caches: list[tuple], dy: np.ndarray, params: list[np.ndarray] | None = None
    ) -> list[np.ndarray]:
        """Gradients for :attr:`params` from dL/d(last output)."""
        ps = self._split(params)
        grads: list[list[np.ndarray]] = [[] for _ in self.layers]
        d = dy
        for i in range(len(self.layers) - 1, -1, -1):
            st, p, (x, xr, z) = self.layers[i], ps[i], caches[i]
            if st.activation.kind != "none":
                d = d * st.activation.gradient_mask(z)
            need_dx = i > 0
            if st.kind == "scrramble":
                dM, d = scrramble_backward(p[0], st.R, xr, d, st.slot_size, need_dx, self.workers)
                grads[i] = [dM]
            else:
                dW, db, d = dense_backward(p[0], x, d, need_dx, self.workers)
                grads[i] = [dW, db]
        return [g for gs in grads for g in gs]

    def scores(self, samples: np.ndarray, batch_size: int = 2000) -> np.ndarray:
        """Batch-major samples -> class scores (B, n_classes), in batches."""
        out = []
        for i in range(0, len(samples), batch_size):
            x = self.input_spec.prepare(samples[i : i + batch_size])
            out.append(self.readout.scores(self.output(x)))
        if not out:
            return np.zeros((0, self.readout.n_classes), dtype=DTYPE)
        return np.concatenate(out)

    def accuracy(self, samples: np.ndarray, labels: np.ndarray, batch_size: int = 2000) -> float:
        if len(samples) == 0:
            return float("nan")
        return float(np.mean(np.argmax(self.scores(samples, batch_size), axis=1) == labels))

    def to_network(self, metadata: dict | None = None) -> Network:
        """A new frozen :class:`Network` with the current parameters (copied)."""
        layers = []
        for st, old in zip(self.layers, self.template.layers):
            if st.kind == "scrramble":
                W = core_to_weights(st.params[0], st.slot_size)
                layers.append(
                    ScrrambleLayer(old.routing.copy(), W, old.activation, old.p, old.seed)
                )
            else:
                layers.append(DenseLayer(st.params[0].copy(), st.params[1].copy(), old.activation))
        meta = dict(self.template.metadata) if metadata is None else metadata
        return Network(tuple(layers), self.input_spec, self.readout, meta)

    def _split(self, params: list[np.ndarray] | None) -> list[list[np.ndarray]]:
        if params is None:
            return [st.params for st in self.layers]
        out, k = [], 0
        for st in self.layers:
            n = len(st.params)
            out.append(params[k : k + n])
            k += n
        return out


def network_gradients(
    network: Network, samples: np.ndarray, labels: np.ndarray, loss_fn, dtype=DTYPE
) -> tuple[float, list[np.ndarray]]:
    """Loss and gradients in the network's own layouts (scrramble W (dst,so,si,slot,slot);
    dense W (n_in, n_out), b), for batch-major samples, computed in ``dtype``."""
    tn = TrainableNetwork(network, dtype)
    x = network.input_spec.prepare(samples).astype(dtype)
    caches, y = tn.forward(x)
    scores = network.readout.scores(y)
    loss, dscores = loss_fn(scores, labels)
    grads = tn.backward(caches, readout_backward(network.readout, y, scores, dscores))
    out, k = [], 0
    for st in tn.layers:
        if st.kind == "scrramble":
            out.append(core_to_weights(grads[k], st.slot_size))
            k += 1
        else:
            out.extend(grads[k : k + 2])
            k += 2
    return loss, out
