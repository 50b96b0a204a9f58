"""Classification losses on class scores (B, n_classes), each returning (loss, d loss / d scores).

Both are means over the batch, so the gradient carries the 1 / B factor.
"""

from __future__ import annotations

import numpy as np

LOSSES: tuple[str, ...] = ("margin", "xent")

# Margin loss constants from Sabour, Frosst & Hinton, "Dynamic Routing Between Capsules",
# NeurIPS 2017, eq. 4: m+ = 0.9, m- = 0.1, lambda = 0.5.
M_PLUS = 0.9
M_MINUS = 0.1
LAMBDA = 0.5


class LossError(ValueError):
    """Bad scores/labels passed to a loss."""


def _check(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    if scores.ndim != 2:
        raise LossError(f"scores must be (batch, n_classes), got shape {scores.shape}")
    labels = np.asarray(labels)
    if labels.shape != (scores.shape[0],):
        raise LossError(f"labels must be ({scores.shape[0]},), got shape {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= scores.shape[1]):
        raise LossError(f"labels must lie in 0..{scores.shape[1] - 1}")
    return labels.astype(np.intp, copy=False)


def margin_loss(
    scores: np.ndarray,
    labels: np.ndarray,
    m_plus: float = M_PLUS,
    m_minus: float = M_MINUS,
    lam: float = LAMBDA,
) -> tuple[float, np.ndarray]:
    """Capsule margin loss: sum_c T_c max(0, m+ - s_c)^2 + lam (1 - T_c) max(0, s_c - m-)^2."""
    labels = _check(scores, labels)
    b = scores.shape[0]
    t = np.zeros(scores.shape, dtype=bool)
    t[np.arange(b), labels] = True
    under = np.maximum(m_plus - scores, 0)
    over = np.maximum(scores - m_minus, 0)
    per = np.where(t, under * under, lam * over * over)
    loss = float(per.sum(dtype=np.float64) / max(b, 1))
    grad = np.where(t, -2.0 * under, 2.0 * lam * over) / max(b, 1)
    return loss, grad.astype(scores.dtype, copy=False)


def cross_entropy(scores: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """Softmax cross-entropy with the scores as logits."""
    labels = _check(scores, labels)
    b = scores.shape[0]
    z = scores - scores.max(axis=1, keepdims=True)
    ez = np.exp(z)
    s = ez.sum(axis=1, keepdims=True)
    rows = np.arange(b)
    loss = float(np.sum(np.log(s[:, 0]) - z[rows, labels], dtype=np.float64) / max(b, 1))
    grad = ez / s
    grad[rows, labels] -= 1
    grad /= max(b, 1)
    return loss, grad.astype(scores.dtype, copy=False)


def get_loss(name: str):
    """The loss function called ``name`` ('margin' or 'xent')."""
    if name == "margin":
        return margin_loss
    if name == "xent":
        return cross_entropy
    raise LossError(f"loss must be one of {LOSSES}, got {name!r}")
