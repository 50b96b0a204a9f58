"""Shared fixtures: real datasets are optional except where SCRRAMBLE_REQUIRE_DATA=1."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

FASHION_DIRS = ("/usr/share/datasets/fashion-mnist",)


def _find_fashion() -> Path | None:
    env = os.environ.get("SCRRAMBLE_DATA")
    candidates = ([env] if env else []) + list(FASHION_DIRS)
    for c in candidates:
        p = Path(c)
        if p.is_dir() and any(p.glob("t10k-images-idx3-ubyte*")):
            return p
    return None


@pytest.fixture(scope="session")
def fashion_mnist_dir() -> Path:
    """Directory holding the Fashion-MNIST IDX files, or skip (fail under CI's demand)."""
    found = _find_fashion()
    if found is None:
        msg = (
            "Fashion-MNIST not found (install Debian's dataset-fashion-mnist or set "
            "SCRRAMBLE_DATA)"
        )
        if os.environ.get("SCRRAMBLE_REQUIRE_DATA") == "1":
            pytest.fail(msg + "; SCRRAMBLE_REQUIRE_DATA=1 makes this a failure")
        pytest.skip(msg)
    return found
