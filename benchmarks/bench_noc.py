"""Speed of the packet network: simulated cycles per second and flit-hops per second.

Runs (BookSim2's reference configuration, uniform traffic, 4-flit packets): 8x8 at 0.1 and
0.4, 16x16 at 0.1 (8 VCs), 32x32 at 0.1 (how cost grows with size), plus 8x8 with 2 VCs at 0.1
and 8 VCs at 0.2 as in BookSim2's own speed table. Each run is warm-up 3000 + a 3000-cycle
window + drain, as BookSim2's runs (about 6,100 cycles). Timed: the simulation loop only
(compilation excluded), wall clock and thread CPU time, best and worst of --repeats, taken
round-robin over the runs. Numba and BLAS threads are set to 1 and printed. BookSim2's
figures (measured on the same kind of 2-core machine, single thread) are quoted for the
ratio. The last line is one JSON object.

    python benchmarks/bench_noc.py [--repeats 5] [--figure docs/noc_speed.png]

Entry ``--network``: the mapped network's own traffic (1,000 inferences of the reference
network on the default chip), see ``benchmarks/bench_noc_network.py``:

    python benchmarks/bench_noc.py --network [--inferences 1000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numba
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sim.noc import NocConfig, SyntheticTraffic, simulate_noc

# BookSim2 simulated cycles/s on this kind of machine (quiet machine where measured, else the
# middle of the noisy range), single thread
BOOKSIM_CPS = {"8x8 8vc 0.10": 11200.0, "8x8 8vc 0.40": 1660.0, "16x16 8vc 0.10": 780.0,
               "8x8 2vc 0.10": 11500.0, "8x8 8vc 0.20": 4500.0}
RUNS = [(8, 8, 0.1), (8, 8, 0.4), (16, 8, 0.1), (32, 8, 0.1), (8, 2, 0.1), (8, 8, 0.2)]


def _run(k: int, v: int, rate: float) -> tuple[float, float, int, int]:
    t_cpu = time.thread_time()
    res = simulate_noc(NocConfig(rows=k, cols=k, vcs=v), SyntheticTraffic(rate=rate),
                       warmup=3000, measure=3000)
    cpu = time.thread_time() - t_cpu  # includes the Python setup around the loop (small)
    return res.sim_seconds, cpu, res.cycles, res.flit_hops


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--figure", type=Path, default=None)
    ap.add_argument("--network", action="store_true",
                    help="the network-driven entry (bench_noc_network.py)")
    args, rest = ap.parse_known_args()
    if args.network:
        import bench_noc_network

        bench_noc_network.main(rest + ["--repeats", str(args.repeats)])
        return
    if rest:
        ap.error(f"unrecognized arguments: {' '.join(rest)}")
    numba.set_num_threads(1)
    with threadpool_limits(1):
        print(f"numba threads {numba.get_num_threads()}, BLAS threads 1")
        simulate_noc(NocConfig(rows=2, cols=2), SyntheticTraffic(rate=0.1), cycles=10)
        out = []
        print("| run | cycles | cycles/s (wall, best - worst) | cycles/s (CPU, best) | "
              "M flit-hops/s (wall, best) | vs BookSim2 (wall best / worst) |")
        print("|---|---:|---:|---:|---:|---:|")
        # repetitions round-robin over the runs, so that a burst of load from other jobs on
        # this shared machine slows one repetition of several runs, not every repetition of one
        walls = {run: [] for run in RUNS}
        cpus = {run: [] for run in RUNS}
        counts = {}
        for _ in range(args.repeats):
            for run in RUNS:
                wall, cpu, cycles, hops = _run(*run)
                walls[run].append(wall)
                cpus[run].append(cpu)
                counts[run] = cycles, hops
        for run in RUNS:
            k, v, rate = run
            name = f"{k}x{k} {v}vc {rate:.2f}"
            cycles, hops = counts[run]
            best, worst = min(walls[run]), max(walls[run])
            ref = BOOKSIM_CPS.get(name)
            ratio = f"{cycles / best / ref:.1f}x / {cycles / worst / ref:.1f}x" if ref else ""
            print(f"| {name} | {cycles} | {cycles / best:,.0f} - {cycles / worst:,.0f} | "
                  f"{cycles / min(cpus[run]):,.0f} | {hops / best / 1e6:.2f} | {ratio} |",
                  flush=True)
            out.append({"run": name, "cycles": cycles, "sim_seconds": best,
                        "sim_seconds_range": [best, worst], "cpu_seconds": min(cpus[run]),
                        "cycles_per_s": cycles / best, "cycles_per_s_worst": cycles / worst,
                        "flit_hops": hops, "flit_hops_per_s": hops / best,
                        "booksim_cycles_per_s": ref})
        if args.figure is not None:
            _figure(args.figure)
    print(json.dumps({"threads": 1, "repeats": args.repeats, "runs": out}))


def _figure(path: Path) -> None:
    """Cycles/s and flit-hops/s against offered load for 8x8, 16x16 and 32x32 (one run each,
    fixed length, 8 VCs)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.6))
    rates = [0.02, 0.05, 0.1, 0.2, 0.3, 0.4]
    for k, cycles in ((8, 4000), (16, 2000), (32, 800)):
        cps, fhs = [], []
        for rate in rates:
            res = simulate_noc(NocConfig(rows=k, cols=k), SyntheticTraffic(rate=rate),
                               warmup=cycles // 4, cycles=cycles)
            cps.append(res.cycles / res.sim_seconds)
            fhs.append(res.flit_hops / res.sim_seconds)
        a1.plot(rates, cps, "o-", label=f"{k}x{k}")
        a2.plot(rates, fhs, "o-", label=f"{k}x{k}")
        print(f"sweep {k}x{k}: " + ", ".join(f"{r}: {c:,.0f}" for r, c in zip(rates, cps)),
              flush=True)
    a1.set_yscale("log")
    a1.set_xlabel("offered load (flits/node/cycle)")
    a1.set_ylabel("simulated cycles / s")
    a2.set_xlabel("offered load (flits/node/cycle)")
    a2.set_ylabel("flit-hops / s")
    for ax in (a1, a2):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("packet network speed, 1 thread, uniform traffic, 8 VCs")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"figure: {path}")


if __name__ == "__main__":
    main()
