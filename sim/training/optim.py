"""Optimisers (Adam, AdamW) and learning-rate schedules.

Adam: Kingma & Ba, ICLR 2015 (beta1 = 0.9, beta2 = 0.999, eps = 1e-8). With ``adam`` a
nonzero weight decay is classic L2 regularisation (``wd * w`` added to the gradient); with
``adamw`` it is decoupled (Loshchilov & Hutter, ICLR 2019): ``w -= lr * wd * w`` next to the
Adam step, scaled by the same schedule. Weight decay applies to weights only, not biases.

The update is one fused Numba loop per array (the default network has ~4 M parameters, and
a chain of numpy temporaries would cost more than the GEMMs of a small batch).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from sim.training.parallel import SERIAL, Workers

OPTIMIZERS: tuple[str, ...] = ("adam", "adamw")
SCHEDULES: tuple[str, ...] = ("constant", "cosine", "step")


class OptimizerError(ValueError):
    """Invalid optimiser or schedule settings."""


@njit(cache=True, fastmath=True, nogil=True)
def _adam_update(p, g, m, v, a, beta1, beta2, eps_hat, l2, decay):  # pragma: no cover
    """One fused Adam step on flat float32 arrays, in float32 arithmetic.

    p -= a * m / (sqrt(v) + eps_hat) + decay * p, with a = lr * sqrt(bc2) / bc1 and
    eps_hat = eps * sqrt(bc2) folding the bias corrections in; l2 adds l2 * p to the gradient.
    """
    b1 = np.float32(beta1)
    b2 = np.float32(beta2)
    c1 = np.float32(1.0 - beta1)
    c2 = np.float32(1.0 - beta2)
    a32 = np.float32(a)
    e32 = np.float32(eps_hat)
    l2_32 = np.float32(l2)
    d32 = np.float32(decay)
    for i in range(p.size):
        pi = p[i]
        gi = g[i] + l2_32 * pi
        mi = b1 * m[i] + c1 * gi
        vi = b2 * v[i] + c2 * gi * gi
        m[i] = mi
        v[i] = vi
        p[i] = pi - a32 * mi / (np.sqrt(vi) + e32) - d32 * pi


class Adam:
    """Adam / AdamW over a list of float32 parameter arrays (updated in place)."""

    def __init__(
        self,
        params: list[np.ndarray],
        *,
        weight_decay: float = 0.0,
        decoupled: bool = False,
        decay_mask: list[bool] | None = None,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
        workers: Workers = SERIAL,
    ) -> None:
        if weight_decay < 0 or not math.isfinite(weight_decay):
            raise OptimizerError(f"weight_decay must be finite and >= 0, got {weight_decay}")
        for p in params:
            if not p.flags.c_contiguous:
                raise OptimizerError("parameters must be C-contiguous arrays")
        self.params = params
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]
        self.weight_decay = float(weight_decay)
        self.decoupled = bool(decoupled)
        self.decay_mask = [True] * len(params) if decay_mask is None else list(decay_mask)
        if len(self.decay_mask) != len(params):
            raise OptimizerError("decay_mask needs one entry per parameter array")
        self.beta1, self.beta2, self.eps = float(beta1), float(beta2), float(eps)
        self.t = 0
        self.workers = workers

    def step(self, grads: list[np.ndarray], lr: float, lr_scale: list[float] | None = None) -> None:
        """Apply one update with learning rate ``lr`` (times ``lr_scale[i]`` for array i)."""
        if len(grads) != len(self.params):
            raise OptimizerError(f"expected {len(self.params)} gradients, got {len(grads)}")
        self.t += 1
        bc1 = 1.0 - self.beta1**self.t
        bc2 = 1.0 - self.beta2**self.t
        scales = [1.0] * len(self.params) if lr_scale is None else lr_scale
        for i, (p, g, m, v) in enumerate(zip(self.params, grads, self.m, self.v)):
            if g.shape != p.shape:
                raise OptimizerError(f"gradient shape {g.shape} != parameter shape {p.shape}")
            lr_i = float(lr) * float(scales[i])
            wd = self.weight_decay if self.decay_mask[i] else 0.0
            a = lr_i * math.sqrt(bc2) / bc1
            eps_hat = self.eps * math.sqrt(bc2)
            l2 = 0.0 if self.decoupled else wd
            decay = lr_i * wd if self.decoupled else 0.0
            g = np.ascontiguousarray(g, dtype=p.dtype)
            self._update(
                p.reshape(-1), g.reshape(-1), m.reshape(-1), v.reshape(-1), a, eps_hat, l2, decay
            )

    def _update(self, p, g, m, v, a: float, eps_hat: float, l2: float, decay: float) -> None:
        """Fused update of flat arrays, split over the worker threads."""
        b1, b2 = self.beta1, self.beta2

        def chunk(sl: slice) -> None:
            _adam_update(p[sl], g[sl], m[sl], v[sl], a, b1, b2, eps_hat, l2, decay)

        self.workers.run(chunk, p.size, min_chunk=1 << 16)


def make_optimizer(
    name: str,
    params: list[np.ndarray],
    weight_decay: float,
    decay_mask: list[bool],
    workers: Workers = SERIAL,
) -> Adam:
    """'adam' (L2 weight decay) or 'adamw' (decoupled weight decay)."""
    if name not in OPTIMIZERS:
        raise OptimizerError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")
    return Adam(
        params,
        weight_decay=weight_decay,
        decoupled=name == "adamw",
        decay_mask=decay_mask,
        workers=workers,
    )


def learning_rate(
    base: float,
    schedule: str,
    step: int,
    total_steps: int,
    steps_per_epoch: int,
    step_epochs: int = 1,
    gamma: float = 0.5,
) -> float:
    """Learning rate at optimiser step ``step`` (0-based).

    ``constant``: base. ``cosine``: base * (1 + cos(pi * step / total_steps)) / 2, annealing to
    zero at the end (Loshchilov & Hutter, SGDR, ICLR 2017, without restarts). ``step``:
    base * gamma ** (epoch // step_epochs).
    """
    if schedule == "constant":
        return base
    if schedule == "cosine":
        return base * 0.5 * (1.0 + math.cos(math.pi * min(step, total_steps) / max(total_steps, 1)))
    if schedule == "step":
        epoch = step // max(steps_per_epoch, 1)
        return base * gamma ** (epoch // max(step_epochs, 1))
    raise OptimizerError(f"lr schedule must be one of {SCHEDULES}, got {schedule!r}")
