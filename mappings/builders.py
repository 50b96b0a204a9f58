"""Build freshly initialised networks: ScRRAMBLe stacks and the dense-MLP baseline.

Weight initialisation is He-style (He et al., ICCV 2015): every weight of a destination core
is drawn from N(0, gain / fan_in), where fan_in counts the *routed* inputs of that core, i.e.
``slot_size * sum(C[..., k, :] ** 2)`` -- each input slot of core k carries a signed sum of
source slots, so its variance grows with the squared routing multiplicities. gain is 2 before
a ReLU and 1 for the linear output layer, which keeps activations of order one from layer to
layer at any p or number of cores.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from mappings.activations import Activation
from mappings.checks import check_rng, positive_int, probability
from mappings.network import DTYPE, DenseLayer, InputSpec, Network, Readout, ScrrambleLayer
from mappings.routing import generate_routing

READOUTS: tuple[str, ...] = ("capsule", "logits")
_SEED_HIGH = 2**31 - 1

# Capsule readout: initial output std per element such that a class capsule's L2 norm
# (sqrt(core_size) * std) starts near 0.5, between the margin-loss targets m- = 0.1 and
# m+ = 0.9 (Sabour et al., NeurIPS 2017).
_CAPSULE_INIT_NORM = 0.5

RELU = Activation("relu")
DEFAULT_INPUT = InputSpec()


class BuildError(ValueError):
    """Invalid architecture hyper-parameters for a network builder."""


def _positive_ints(values: Sequence[int], field: str, allow_empty: bool = True) -> tuple[int, ...]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise BuildError(f"{field} must be a sequence of positive integers, got {values!r}")
    out = tuple(values)
    if not allow_empty and not out:
        raise BuildError(f"{field} must name at least one layer width")
    try:
        return tuple(positive_int(v, field, BuildError) for v in out)
    except BuildError:
        raise BuildError(f"{field} must be positive integers, got {list(out)!r}") from None


def routed_fan_in(routing: np.ndarray, slot_size: int) -> np.ndarray:
    """Per destination core: number of nonzero routed inputs weighted by squared multiplicity."""
    sq = np.square(routing.astype(np.int64))
    return slot_size * sq.sum(axis=(0, 1, 3))


def init_scrramble_weights(
    routing: np.ndarray, slot_size: int, gain: float, rng: np.random.Generator
) -> np.ndarray:
    """He-style weights (dst, slots, slots, slot, slot) scaled per core by its routed fan-in."""
    nd, s = routing.shape[2], routing.shape[3]
    fan_in = np.maximum(routed_fan_in(routing, slot_size), 1).astype(np.float64)
    std = np.sqrt(gain / fan_in).astype(DTYPE)
    w = rng.standard_normal((nd, s, s, slot_size, slot_size), dtype=DTYPE)
    w *= std[:, None, None, None, None]
    return w


def init_dense_weights(
    n_in: int, n_out: int, gain: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """He-style dense weights (n_in, n_out) and zero bias."""
    w = rng.standard_normal((n_in, n_out), dtype=DTYPE)
    w *= DTYPE(np.sqrt(gain / n_in))
    return w, np.zeros(n_out, dtype=DTYPE)


def build_scrramble_network(
    *,
    n_input_cores: int | None = None,
    hidden_cores: Sequence[int] = (50,),
    n_classes: int = 10,
    core_size: int = 256,
    slot_size: int = 64,
    p: float = 0.2,
    activation: Activation = RELU,
    readout: str = "capsule",
    input_spec: InputSpec = DEFAULT_INPUT,
    rng: np.random.Generator,
) -> Network:
    """A ScRRAMBLe stack: input cores -> hidden cores -> ``n_classes`` output cores.

    Each layer's routing is drawn from its own seed (stored in ``layer.seed``; the seeds come
    from ``rng``), so ``generate_routing(..., rng=default_rng(layer.seed))`` reproduces it.
    ``readout='capsule'``: one output core per class, class score = L2 norm of the core's
    outputs; the output layer is linear. ``readout='logits'``: the output cores are activated
    and a final linear DenseLayer maps them to ``n_classes`` logits.
    """
    check_rng(rng, "rng", BuildError)
    hidden = _positive_ints(hidden_cores, "hidden_cores")
    if readout not in READOUTS:
        raise BuildError(f"readout must be one of {READOUTS}, got {readout!r}")
    n_classes = positive_int(n_classes, "n_classes", BuildError, minimum=2)
    if not isinstance(activation, Activation):
        raise BuildError(f"activation must be an Activation, got {type(activation).__name__}")
    if activation.kind == "none":
        raise BuildError("hidden activation 'none' makes the stack linear; use relu or qrelu")
    core_size = positive_int(core_size, "core_size", BuildError)
    slot_size = positive_int(slot_size, "slot_size", BuildError)
    if core_size % slot_size or core_size // slot_size < 2:
        raise BuildError(
            f"slot_size {slot_size} must divide core_size {core_size} into at least 2 slots "
            "(balanced routing pairs every +1 with a -1 in another slot)"
        )
    p = probability(p, "p", BuildError, zero=False)
    n_feat = input_spec.n_features
    if n_feat % core_size:
        raise BuildError(
            f"input_spec gives {n_feat} features (padded_shape {input_spec.padded_shape}); "
            f"expected a multiple of core_size {core_size}"
        )
    derived = n_feat // core_size
    if n_input_cores is None:
        n_input_cores = derived
    elif positive_int(n_input_cores, "n_input_cores", BuildError) != derived:
        raise BuildError(
            f"n_input_cores {n_input_cores} disagrees with input_spec ({n_feat} features = "
            f"{derived} cores of {core_size})"
        )

    widths = (derived, *hidden, n_classes)
    linear = Activation("none")
    layers: list = []
    seeds: list[int] = []
    for i in range(len(widths) - 1):
        last = i == len(widths) - 2
        act = linear if (last and readout == "capsule") else activation
        seed = int(rng.integers(0, _SEED_HIGH))
        seeds.append(seed)
        C = generate_routing(
            widths[i],
            widths[i + 1],
            core_size=core_size,
            slot_size=slot_size,
            p=p,
            rng=np.random.default_rng(seed),
        )
        if last and readout == "capsule":
            # Output std such that the capsule norms start near _CAPSULE_INIT_NORM,
            # assuming inputs of order one (as He init keeps them).
            gain = _CAPSULE_INIT_NORM**2 / core_size
        else:
            gain = 2.0
        W = init_scrramble_weights(C, slot_size, gain, rng)
        layers.append(ScrrambleLayer(C, W, act, float(p), seed))
    if readout == "logits":
        w, b = init_dense_weights(widths[-1] * core_size, int(n_classes), 1.0, rng)
        layers.append(DenseLayer(w, b, linear))

    metadata = {
        "arch": "scrramble",
        "n_input_cores": int(n_input_cores),
        "hidden_cores": list(hidden),
        "n_classes": int(n_classes),
        "core_size": int(core_size),
        "slot_size": int(slot_size),
        "p": float(p),
        "activation": activation.describe(),
        "activation_bits": int(activation.bits),
        "activation_ceiling": float(activation.ceiling),
        "readout": readout,
        "routing_seeds": seeds,
        "image_shape": list(input_spec.image_shape),
        "padded_shape": list(input_spec.padded_shape),
    }
    return Network(tuple(layers), input_spec, Readout(readout, int(n_classes)), metadata)


def build_dense_network(
    *,
    hidden: Sequence[int] = (256,),
    n_classes: int = 10,
    activation: Activation = RELU,
    input_spec: InputSpec = DEFAULT_INPUT,
    rng: np.random.Generator,
) -> Network:
    """The fully connected baseline: an MLP of DenseLayers with a logits readout."""
    check_rng(rng, "rng", BuildError)
    widths_hidden = _positive_ints(hidden, "hidden")
    n_classes = positive_int(n_classes, "n_classes", BuildError, minimum=2)
    if not isinstance(activation, Activation):
        raise BuildError(f"activation must be an Activation, got {type(activation).__name__}")
    widths = (input_spec.n_features, *widths_hidden, int(n_classes))
    layers = []
    for i in range(len(widths) - 1):
        last = i == len(widths) - 2
        w, b = init_dense_weights(widths[i], widths[i + 1], 1.0 if last else 2.0, rng)
        layers.append(DenseLayer(w, b, Activation("none") if last else activation))
    metadata = {
        "arch": "dense",
        "dense_hidden": list(widths_hidden),
        "n_classes": int(n_classes),
        "activation": activation.describe(),
        "activation_bits": int(activation.bits),
        "activation_ceiling": float(activation.ceiling),
        "readout": "logits",
        "image_shape": list(input_spec.image_shape),
        "padded_shape": list(input_spec.padded_shape),
    }
    return Network(tuple(layers), input_spec, Readout("logits", int(n_classes)), metadata)
