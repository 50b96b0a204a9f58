"""Activation functions between layers: ReLU, quantized ReLU (n bits) or none."""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral, Real
from typing import Literal

import numpy as np

ActivationKind = Literal["relu", "qrelu", "none"]
ACTIVATION_KINDS: tuple[str, ...] = ("relu", "qrelu", "none")


class ActivationError(ValueError):
    """Invalid activation kind, bit width or ceiling."""


@dataclass(frozen=True)
class Activation:
    """An element-wise activation.

    ``qrelu`` clips to [0, ceiling] and rounds onto 2**bits - 1 equal steps (1 bit gives a
    step at ceiling / 2); its gradient is the straight-through estimator inside (0, ceiling).
    """

    kind: ActivationKind = "relu"
    bits: int = 0
    ceiling: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in ACTIVATION_KINDS:
            raise ActivationError(
                f"activation kind must be one of {ACTIVATION_KINDS}, got {self.kind!r}"
            )
        bits = self.bits
        if isinstance(bits, (bool, np.bool_)) or not isinstance(bits, Integral):
            raise ActivationError(f"activation bits must be an integer, got {bits!r}")
        if self.kind == "qrelu" and not (1 <= bits <= 16):
            raise ActivationError(f"qrelu needs 1 <= bits <= 16, got {bits}")
        if self.kind != "qrelu" and bits != 0:
            raise ActivationError(f"bits only applies to qrelu, got bits={bits} for {self.kind}")
        c = self.ceiling
        if isinstance(c, (bool, np.bool_)) or not isinstance(c, Real) or not (
            c > 0 and np.isfinite(c)
        ):
            raise ActivationError(f"activation ceiling must be a positive finite number, got {c!r}")
        object.__setattr__(self, "bits", int(bits))
        object.__setattr__(self, "ceiling", float(c))

    @property
    def levels(self) -> int:
        return (1 << self.bits) - 1

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Apply the activation (returns a new array of x's dtype)."""
        if self.kind == "none":
            return x
        if self.kind == "relu":
            return np.maximum(x, 0, dtype=x.dtype)
        step = self.ceiling / self.levels
        y = np.clip(x, 0, self.ceiling)
        y = np.rint(y * (1.0 / step), out=y)
        y *= step
        return y.astype(x.dtype, copy=False)

    def gradient_mask(self, x: np.ndarray) -> np.ndarray:
        """d activation / d x (straight-through for qrelu) evaluated at pre-activation x."""
        if self.kind == "none":
            return np.ones_like(x)
        if self.kind == "relu":
            return (x > 0).astype(x.dtype)
        return ((x > 0) & (x < self.ceiling)).astype(x.dtype)

    def describe(self) -> str:
        return f"qrelu{self.bits}" if self.kind == "qrelu" else self.kind
