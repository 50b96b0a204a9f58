"""Argument checks shared by every package: one rule each for positive integers,
probabilities, random generators and seeds.

Each check raises the caller's error class (``error``, a ValueError subclass such as
BuildError or ProgrammingError) with a message that names the field, so a bad seed reads the
same whether it reaches a builder, the placement or the chip programming.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["SEED_LIMIT", "check_rng", "check_seed", "positive_int", "probability"]

# Seeds are stored as int64 attributes in network, checkpoint and chip-instance files.
SEED_LIMIT = 2**63


def _is_integral(value: Any) -> bool:
    """An int, a numpy integer or an integral finite float; never a bool."""
    if isinstance(value, (bool, np.bool_)):
        return False
    if isinstance(value, (int, np.integer)):
        return True
    return isinstance(value, (float, np.floating)) and math.isfinite(value) and value == int(value)


def positive_int(
    value: Any, field: str, error: type[Exception] = ValueError, *, minimum: int = 1
) -> int:
    """``value`` as an int >= ``minimum``; integral floats (4.0) are accepted and normalised,
    bools, fractions, NaN and infinities are refused with ``error`` naming ``field``."""
    if not _is_integral(value) or value < minimum:
        raise error(f"{field} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def probability(
    value: Any, field: str, error: type[Exception] = ValueError, *, zero: bool = True
) -> float:
    """``value`` as a float in [0, 1] (in (0, 1] with ``zero=False``); bools, strings and NaN
    are refused with ``error`` naming ``field``."""
    interval = "[0, 1]" if zero else "(0, 1]"
    ok = (
        not isinstance(value, (bool, np.bool_))
        and isinstance(value, (int, float, np.integer, np.floating))
        and (0.0 <= value <= 1.0 if zero else 0.0 < value <= 1.0)
    )
    if not ok:
        raise error(f"{field} must lie in {interval} (a number), got {value!r}")
    return float(value)


def check_rng(rng: Any, field: str, error: type[Exception] = ValueError) -> np.random.Generator:
    """``rng`` itself if it is a ``numpy.random.Generator``; otherwise ``error`` naming
    ``field`` (legacy ``RandomState``, ``None`` and plain seeds are refused: every random draw
    goes through an explicitly seeded Generator)."""
    if not isinstance(rng, np.random.Generator):
        raise error(
            f"{field} must be a seeded numpy.random.Generator (np.random.default_rng(seed)), "
            f"got {type(rng).__name__}"
        )
    return rng


def check_seed(seed: Any, field: str, error: type[Exception] = ValueError) -> int:
    """``seed`` as an int with 0 <= seed < 2**63 (what an int64 file attribute holds); numpy
    integers are accepted, bools, floats and strings refused with ``error`` naming ``field``."""
    if (
        isinstance(seed, (bool, np.bool_))
        or not isinstance(seed, (int, np.integer))
        or not 0 <= seed < SEED_LIMIT
    ):
        raise error(f"{field} must be an integer >= 0 and < 2**63, got {seed!r}")
    return int(seed)
