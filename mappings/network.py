"""Network model: ScRRAMBLe and dense layers, input preprocessing, readout, ideal forward.

Activations flow through the model *feature-major*: an array shaped (features, batch), with
features of a ScRRAMBLe layer ordered (core, slot, position in slot). This keeps every layer a
single contiguous BLAS call over the whole batch. The public :meth:`Network.forward` takes and
returns batch-major arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from mappings.activations import Activation
from mappings.routing import check_balanced, routing_matrix

DTYPE = np.float32


class NetworkError(ValueError):
    """An inconsistent network: shapes, widths, readout or input spec."""


@dataclass(frozen=True)
class InputSpec:
    """How raw samples become the first layer's input vector.

    Images shaped ``image_shape`` are zero-padded (centred) to ``padded_shape`` and flattened;
    e.g. 28x28 -> 32x32 = 1024 = 4 cores of 256.
    """

    image_shape: tuple[int, ...] = (28, 28)
    padded_shape: tuple[int, ...] = (32, 32)

    def __post_init__(self) -> None:
        if len(self.image_shape) != len(self.padded_shape):
            raise NetworkError("image_shape and padded_shape need the same number of dimensions")
        if any(p < i for i, p in zip(self.image_shape, self.padded_shape)):
            raise NetworkError(f"padded_shape {self.padded_shape} smaller than image {self.image_shape}")

    @property
    def n_features(self) -> int:
        return int(np.prod(self.padded_shape))

    def prepare(self, samples: np.ndarray) -> np.ndarray:
        """Batch-major samples (B, *image_shape) or (B, prod(image_shape)) -> (features, B)."""
        x = np.asarray(samples, dtype=DTYPE)
        n = x.shape[0] if x.ndim else 0
        if x.ndim < 2 or int(np.prod(x.shape[1:])) != int(np.prod(self.image_shape)):
            raise NetworkError(
                f"input samples must be shaped (batch, {', '.join(map(str, self.image_shape))}) "
                f"or (batch, {int(np.prod(self.image_shape))}), got {x.shape}"
            )
        x = x.reshape((n, *self.image_shape))
        if self.padded_shape != self.image_shape:
            pads = [(0, 0)] + [
                ((p - i) // 2, (p - i) - (p - i) // 2)
                for i, p in zip(self.image_shape, self.padded_shape)
            ]
            x = np.pad(x, pads)
        return np.ascontiguousarray(x.reshape(n, -1).T)


@dataclass(frozen=True)
class Readout:
    """Class scores from the last layer: capsule norms or plain logits."""

    kind: Literal["capsule", "logits"] = "capsule"
    n_classes: int = 10

    def __post_init__(self) -> None:
        if self.kind not in ("capsule", "logits"):
            raise NetworkError(f"readout must be 'capsule' or 'logits', got {self.kind!r}")
        if self.n_classes < 2:
            raise NetworkError(f"n_classes must be >= 2, got {self.n_classes}")

    def check_width(self, n_out: int) -> None:
        if self.kind == "logits" and n_out != self.n_classes:
            raise NetworkError(f"logits readout needs {self.n_classes} outputs, last layer has {n_out}")
        if self.kind == "capsule" and n_out % self.n_classes:
            raise NetworkError(
                f"capsule readout needs the last layer's {n_out} outputs to split into "
                f"{self.n_classes} equal capsules"
            )

    def scores(self, y: np.ndarray) -> np.ndarray:
        """(features, B) -> (B, n_classes)."""
        if self.kind == "logits":
            return np.ascontiguousarray(y.T)
        caps = y.reshape(self.n_classes, -1, y.shape[-1])
        return np.ascontiguousarray(np.sqrt(np.einsum("cdb,cdb->bc", caps, caps)))


@dataclass(frozen=True, eq=False)
class ScrrambleLayer:
    """Block-sparse layer: slot routing C then one dense crossbar per destination core.

    routing: (src_cores, slots, dst_cores, slots) small signed ints, balanced.
    weights: (dst_cores, slots_out, slots_in, slot, slot) with [k, o, s] the block from input
    slot s to output slot o of core k (rows: output position, columns: input position).
    """

    routing: np.ndarray
    weights: np.ndarray
    activation: Activation = field(default_factory=Activation)
    p: float = float("nan")
    seed: int = -1

    def __post_init__(self) -> None:
        C, W = self.routing, self.weights
        if C.ndim != 4 or C.shape[1] != C.shape[3]:
            raise NetworkError(f"routing must be (src_cores, slots, dst_cores, slots), got {C.shape}")
        nd, s = C.shape[2], C.shape[3]
        if W.ndim != 5 or W.shape[:3] != (nd, s, s) or W.shape[3] != W.shape[4]:
            raise NetworkError(
                f"weights must be (dst_cores={nd}, slots={s}, slots={s}, slot, slot), got {W.shape}"
            )

    @property
    def n_src_cores(self) -> int:
        return self.routing.shape[0]

    @property
    def n_dst_cores(self) -> int:
        return self.routing.shape[2]

    @property
    def slots_per_core(self) -> int:
        return self.routing.shape[1]

    @property
    def slot_size(self) -> int:
        return self.weights.shape[3]

    @property
    def core_size(self) -> int:
        return self.slots_per_core * self.slot_size

    @property
    def n_in(self) -> int:
        return self.n_src_cores * self.core_size

    @property
    def n_out(self) -> int:
        return self.n_dst_cores * self.core_size

    def check_balanced(self, where: str = "routing") -> None:
        check_balanced(self.routing, where)

    def core_matrices(self) -> np.ndarray:
        """Per-core crossbar matrices (dst_cores, core_size out, core_size in), contiguous."""
        nd, s, _, f, _ = self.weights.shape
        return np.ascontiguousarray(
            self.weights.transpose(0, 1, 3, 2, 4).reshape(nd, s * f, s * f), dtype=DTYPE
        )

    def route(self, x: np.ndarray) -> np.ndarray:
        """(n_in, B) -> routed core inputs (dst_cores, core_size, B)."""
        b = x.shape[-1]
        f = self.slot_size
        r = routing_matrix(self.routing, DTYPE)
        xs = np.ascontiguousarray(x, dtype=DTYPE).reshape(r.shape[0], f * b)
        return (r.T @ xs).reshape(self.n_dst_cores, self.core_size, b)

    def preactivation(self, x: np.ndarray, core_matrices: np.ndarray | None = None) -> np.ndarray:
        """(n_in, B) -> (n_out, B) before the activation."""
        m = self.core_matrices() if core_matrices is None else core_matrices
        return np.matmul(m, self.route(x)).reshape(self.n_out, x.shape[-1])

    def expanded_matrix(self) -> np.ndarray:
        """The equivalent dense (n_out, n_in) matrix (for tests and baselines; large)."""
        r = routing_matrix(self.routing, DTYPE)  # (ns*s, nd*s)
        f = self.slot_size
        mixing = np.kron(r.T, np.eye(f, dtype=DTYPE))  # (nd*s*f, ns*s*f)
        m = self.core_matrices()
        out = np.empty((self.n_out, self.n_in), dtype=DTYPE)
        c = self.core_size
        for k in range(self.n_dst_cores):
            out[k * c : (k + 1) * c] = m[k] @ mixing[k * c : (k + 1) * c]
        return out


@dataclass(frozen=True, eq=False)
class DenseLayer:
    """Fully connected layer y = W.T x + b with W shaped (n_in, n_out)."""

    weights: np.ndarray
    bias: np.ndarray
    activation: Activation = field(default_factory=Activation)

    def __post_init__(self) -> None:
        if self.weights.ndim != 2:
            raise NetworkError(f"dense weights must be (n_in, n_out), got {self.weights.shape}")
        if self.bias.shape != (self.weights.shape[1],):
            raise NetworkError(f"dense bias must be ({self.weights.shape[1]},), got {self.bias.shape}")

    @property
    def n_in(self) -> int:
        return self.weights.shape[0]

    @property
    def n_out(self) -> int:
        return self.weights.shape[1]

    def preactivation(self, x: np.ndarray) -> np.ndarray:
        y = self.weights.T @ x
        y += self.bias[:, None]
        return y

    def expanded_matrix(self) -> np.ndarray:
        return np.ascontiguousarray(self.weights.T)


Layer = ScrrambleLayer | DenseLayer


@dataclass(frozen=True, eq=False)
class Network:
    """An ordered stack of layers with input preprocessing and a readout."""

    layers: tuple[Layer, ...]
    input_spec: InputSpec = field(default_factory=InputSpec)
    readout: Readout = field(default_factory=Readout)
    metadata: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.layers:
            raise NetworkError("a network needs at least one layer")
        width = self.input_spec.n_features
        for i, layer in enumerate(self.layers):
            if layer.n_in != width:
                raise NetworkError(f"layer {i} expects {layer.n_in} inputs but receives {width}")
            width = layer.n_out
        self.readout.check_width(width)

    @property
    def n_classes(self) -> int:
        return self.readout.n_classes

    def forward_features(self, x: np.ndarray) -> list[np.ndarray]:
        """Feature-major input (n_in, B) -> every layer's output after activation."""
        outs = []
        for layer in self.layers:
            x = layer.activation.apply(layer.preactivation(x))
            outs.append(x)
        return outs

    def forward(self, samples: np.ndarray) -> np.ndarray:
        """Ideal float32 forward: batch-major samples -> class scores (B, n_classes)."""
        x = self.input_spec.prepare(samples)
        return self.readout.scores(self.forward_features(x)[-1])

    def predict(self, samples: np.ndarray, batch_size: int = 2048) -> np.ndarray:
        """Predicted class per sample, evaluated in batches to bound memory."""
        preds = [
            np.argmax(self.forward(samples[i : i + batch_size]), axis=1)
            for i in range(0, len(samples), batch_size)
        ]
        return np.concatenate(preds) if preds else np.zeros(0, dtype=np.int64)

    def accuracy(self, samples: np.ndarray, labels: np.ndarray, batch_size: int = 2048) -> float:
        return float(np.mean(self.predict(samples, batch_size) == np.asarray(labels)))
