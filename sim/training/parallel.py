"""Chunk-parallel execution on Python threads with single-threaded BLAS underneath.

numpy releases the GIL inside BLAS calls (and the Numba kernels here are ``nogil``), so
independent chunks -- ScRRAMBLe cores, dense output columns, slices of a flat parameter array
-- run concurrently on a small thread pool. Each chunk is one single-threaded GEMM, so there is
no barrier inside a GEMM. On a shared 2-core machine, OpenBLAS's own 2-thread GEMM on the
(50, 256, 256) x (50, 256, 128) core stack measured 5 ms idle but 48-380 ms while another
process held one core (its threads spin at barriers), against 7.5-10 ms for two chunks here.
Per-core results do not depend on the chunking, and dense layers are cut into fixed blocks
(:meth:`Workers.run_blocks`), so outputs are the same for any thread count.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Self

import numpy as np

from mappings.checks import positive_int


class Workers:
    """Run ``fn(slice)`` over contiguous chunks of ``range(n)`` on ``threads`` threads."""

    def __init__(self, threads: int = 1) -> None:
        self.threads = positive_int(threads, "threads", ValueError)
        self._pool = ThreadPoolExecutor(self.threads) if self.threads > 1 else None

    def run(self, fn: Callable[[slice], object], n: int, min_chunk: int = 1) -> None:
        """Call ``fn`` on slices covering 0..n (at least min_chunk long each).

        Two chunks per thread, so a thread slowed by another process on its core leaves
        more of the work to the others.
        """
        k = min(2 * self.threads, max(1, n // max(min_chunk, 1)))
        if self._pool is None or k < 2:
            fn(slice(0, n))
            return
        bounds = np.linspace(0, n, k + 1).astype(int)
        futures = [
            self._pool.submit(fn, slice(int(a), int(b)))
            for a, b in itertools.pairwise(bounds)
            if b > a
        ]
        for f in futures:
            f.result()

    def run_blocks(self, fn: Callable[[slice], object], n: int, block: int) -> None:
        """Call ``fn`` on fixed blocks of ``block`` indices (the last may be shorter).

        The blocks do not depend on the thread count, so neither do the results of
        computations whose rounding depends on how the work is cut (GEMM column blocks).
        """
        slices = [slice(a, min(a + block, n)) for a in range(0, n, max(block, 1))]
        if self._pool is None or len(slices) < 2:
            for sl in slices:
                fn(sl)
            return
        for f in [self._pool.submit(fn, sl) for sl in slices]:
            f.result()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)  # Ctrl-C: skip queued work
            self._pool = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


SERIAL = Workers(1)
