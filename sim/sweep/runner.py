"""Running a sweep: in this process, on a local Dask cluster, or on an existing one.

Points that share a programmed chip instance (same network, programming-relevant chip
settings and seed) are grouped into one task so the instance is programmed once; large groups
are split while there are fewer tasks than twice the workers. Each worker writes every
finished point atomically (``OUT/points/KEY.json``); the client writes any a worker could not
(a cluster without a shared file system) when the task's results arrive. A rerun skips the
points already on disk. Local workers are one-thread processes started with
``NUMBA_NUM_THREADS`` / BLAS thread variables set to 1 before they import anything, and the
Numba cache is warmed once in this process before fanning out.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mappings.safe_files import atomic_write
from sim.sweep.evaluate_point import PointEvaluator, program_key, warm_numba
from sim.sweep.spec import PointTask, Sweep
from sim.sweep.store import (
    RESULTS_NAME,
    SPEC_NAME,
    build_dataset,
    finished_keys,
    point_path,
    read_points,
    write_dataset,
    write_point,
)

THREAD_ENV: dict[str, str] = {
    "NUMBA_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}
POLL_S = 0.5


class SweepRunError(RuntimeError):
    """A sweep could not run: cluster start, a failed point, or a task past its timeout."""


@dataclass(frozen=True)
class SweepRun:
    """What one run of a sweep did."""

    out: Path
    results: Path
    n_points: int
    computed: int  # points evaluated in this run
    skipped: int  # points found finished on disk
    seconds: float  # whole run (cluster start, warm-up, evaluation, dataset)
    compute_seconds: float  # from the first submitted task to the last result
    workers: int
    scheduler: str | None
    tasks: int
    computed_keys: tuple[str, ...] = field(default=(), repr=False)


def group_tasks(tasks: Sequence[PointTask], min_groups: int = 1) -> list[list[PointTask]]:
    """Tasks grouped by programmed instance (order kept); the largest groups are halved
    until there are ``min_groups`` groups or every group holds one task."""
    groups: dict[str, list[PointTask]] = {}
    for t in tasks:
        groups.setdefault(program_key(t.network, t.config, t.seed), []).append(t)
    out = list(groups.values())
    while len(out) < min_groups:
        i = max(range(len(out)), key=lambda j: len(out[j]))
        if len(out[i]) < 2:
            break
        g = out.pop(i)
        half = (len(g) + 1) // 2
        out[i:i] = [g[:half], g[half:]]
    return out


def run_group(tasks: Sequence[PointTask], out: str | None) -> list[dict]:
    """Evaluate a group of tasks in one process (a Dask task), writing each finished point
    to ``out`` when given; the results in task order."""
    evaluator = PointEvaluator()
    results = []
    for t in tasks:
        r = evaluator.evaluate(t)
        if out is not None:
            write_point(out, r)
        results.append(r)
    return results


@contextlib.contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the block (inherited by processes started in it)."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _progress_bar(total: int, initial: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc="sweep", unit="pt", file=sys.stderr,
                disable=not enabled, dynamic_ncols=True)


def run_sweep(
    sweep: Sweep,
    out: str | os.PathLike,
    *,
    workers: int = 0,
    scheduler: str | None = None,
    progress: bool = True,
    start_timeout: float = 120.0,
    task_timeout: float = 3600.0,
    on_start: Callable[[str], None] | None = None,
) -> SweepRun:
    """Evaluate every unfinished point of ``sweep`` and write ``OUT/results.nc``.

    ``workers`` 0 and no ``scheduler``: in this process; ``workers`` N >= 1: a local Dask
    cluster of N one-thread worker processes; ``scheduler``: an existing Dask cluster (its
    workers must import this package and see ``out``, or the client writes the points when
    each task returns). ``start_timeout``: seconds to wait for the cluster; ``task_timeout``:
    seconds without any finished task before giving up. ``on_start(message)`` reports what
    is being started.
    """
    t0 = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    spec_src = Path(sweep.path)
    if spec_src.is_file():
        text = spec_src.read_bytes()
        atomic_write(out / SPEC_NAME, lambda p: p.write_bytes(text))
    tasks = sweep.tasks()
    keys = [t.key for t in tasks]
    finished = finished_keys(out) & set(keys)
    todo = [t for t in tasks if t.key not in finished]
    computed: list[str] = []
    t_compute = 0.0
    n_tasks = 0
    bar = _progress_bar(len(tasks), len(finished), progress)
    with bar:
        if todo and workers == 0 and scheduler is None:
            tc = time.perf_counter()
            groups = group_tasks(todo)
            n_tasks = len(groups)
            for g in groups:
                evaluator = PointEvaluator()
                for t in g:
                    write_point(out, evaluator.evaluate(t))
                    computed.append(t.key)
                    bar.update()
            t_compute = time.perf_counter() - tc
        elif todo:
            t_compute, n_tasks = _run_dask(
                todo, out, workers, scheduler, bar, start_timeout, task_timeout, computed,
                on_start,
            )
    results = read_points(out, keys)
    ds = build_dataset(sweep, tasks, results)
    path = write_dataset(ds, out / RESULTS_NAME)
    return SweepRun(
        out=out, results=path, n_points=len(tasks), computed=len(computed),
        skipped=len(finished), seconds=time.perf_counter() - t0, compute_seconds=t_compute,
        workers=workers, scheduler=scheduler, tasks=n_tasks, computed_keys=tuple(computed),
    )


def _run_dask(todo, out, workers, scheduler, bar, start_timeout, task_timeout, computed,
              on_start) -> tuple[float, int]:
    from concurrent.futures import CancelledError

    from distributed import Client, KilledWorker, LocalCluster, wait

    with contextlib.ExitStack() as stack:
        if scheduler is not None:
            if on_start:
                on_start(f"connecting to the Dask scheduler at {scheduler}")
            try:
                client = stack.enter_context(Client(scheduler, timeout=start_timeout))
            except (OSError, TimeoutError) as exc:
                raise SweepRunError(f"scheduler {scheduler}: cannot connect ({exc})") from None
            n_workers = max(1, len(client.scheduler_info().get("workers", {})))
        else:
            if on_start:
                on_start(f"starting a local Dask cluster of {workers} one-thread workers")
            warm_numba()  # compile / fill the on-disk cache once, before the workers start
            with _environ(THREAD_ENV):
                cluster = stack.enter_context(LocalCluster(
                    n_workers=workers, threads_per_worker=1, processes=True,
                    dashboard_address=None, silence_logs=logging.CRITICAL,
                    env=dict(THREAD_ENV),  # the nanny sets these before the worker starts
                ))
                client = stack.enter_context(Client(cluster, timeout=start_timeout))
            try:
                client.wait_for_workers(workers, timeout=start_timeout)
            except TimeoutError:
                raise SweepRunError(
                    f"the local Dask cluster did not start {workers} workers within "
                    f"{start_timeout:g} s"
                ) from None
            n_workers = workers
        client.run(warm_numba)  # every worker imports the simulator and loads the kernels
        groups = group_tasks(todo, 2 * n_workers)
        todo_keys = {t.key for t in todo}
        tc = time.perf_counter()
        futures = {client.submit(run_group, g, str(out.resolve()), pure=False): g
                   for g in groups}
        pending = set(futures)
        last = time.monotonic()
        shown = 0
        while pending:
            try:
                done, pending = wait(pending, timeout=POLL_S, return_when="FIRST_COMPLETED")
            except TimeoutError:  # nothing finished in this poll interval
                done = set()
            for f in done:
                try:
                    results = f.result()
                except ValueError as exc:  # a point's error, raised on the worker
                    raise SweepRunError(str(exc)) from None
                except (KilledWorker, CancelledError, OSError, RuntimeError) as exc:
                    first = futures[f][0]
                    raise SweepRunError(
                        f"a task of {len(futures[f])} point(s) (first: {first.values}, seed "
                        f"{first.seed}) failed on the cluster: {type(exc).__name__}: {exc}"
                    ) from None
                for r in results:
                    if not point_path(out, r["key"]).is_file():  # no shared file system
                        write_point(out, r)
                    computed.append(r["key"])
                last = time.monotonic()
            now_done = len(finished_keys(out) & todo_keys)
            if now_done > shown:
                bar.update(now_done - shown)
                shown = now_done
                last = time.monotonic()
            if pending and time.monotonic() - last > task_timeout:
                raise SweepRunError(
                    f"no point finished in {task_timeout:g} s; giving up (raise the timeout "
                    "or check the workers)"
                )
        return time.perf_counter() - tc, len(groups)

