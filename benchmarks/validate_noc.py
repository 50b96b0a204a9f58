"""The packet network beside BookSim2 on BookSim2's reference configuration.

Reference: BookSim2 (Jiang et al., "A detailed and flexible cycle-accurate network-on-chip
simulator", ISPASS 2013), seed 0: 8x8 and 16x16 mesh, XY routing, 2 or 8 VCs of 8 flits,
wait-for-tail-credit, lookahead routing, 1-cycle VA / SA / ST / link, credit delay 2, iSLIP-1,
input speedup 2, uniform traffic, Bernoulli injection of 4-flit packets. Its figures are
copied below; ours come from `simulate_noc` with the same settings (our defaults), warm-up
3000 cycles, a measured window of --measure cycles, then a drain. Prints a markdown table,
the saturation throughputs, and writes the latency-load figure (--figure).

    python benchmarks/validate_noc.py [--measure 10000] [--figure docs/noc_latency_load.png]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sim.noc import NocConfig, SyntheticTraffic, simulate_noc

# (mesh k, VCs, offered flits/node/cycle) -> BookSim2 (packet latency, network latency,
# accepted, avg hops); None where BookSim2 printed nothing
BOOKSIM = {
    (8, 2, 0.01): (29.9, None, None, 6.20),
    (8, 2, 0.05): (30.4, 30.4, 0.0486, 6.20),
    (8, 2, 0.10): (32.3, 32.1, 0.0987, 6.22),
    (8, 2, 0.20): (127.6, 62.0, 0.1990, 6.24),
    (8, 8, 0.05): (30.3, 30.2, 0.0486, 6.20),
    (8, 8, 0.10): (31.1, 31.0, 0.0987, 6.24),
    (8, 8, 0.20): (33.6, 33.2, 0.2021, 6.28),
    (8, 8, 0.30): (38.4, 37.7, 0.2996, 6.26),
    (8, 8, 0.40): (52.1, 51.1, 0.4004, 6.25),
    (16, 2, 0.10): (150.6, 98.3, 0.0990, 11.63),
    (16, 8, 0.10): (54.5, 54.3, 0.1002, 11.56),
    (16, 8, 0.01): (52.9, None, None, 11.93),
}
# saturation throughput (accepted flits/node/cycle at high offered load)
BOOKSIM_SAT = {(8, 8, True): "0.43-0.44", (8, 2, True): "0.20-0.21", (8, 2, False): "0.40"}


def _fmt(x, nd=1):
    return "" if x is None else f"{x:.{nd}f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--measure", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--figure", type=Path, default=Path("docs/noc_latency_load.png"))
    args = ap.parse_args()
    rows = []
    print("| mesh | VCs | offered | packet latency ours / BookSim2 | diff | network latency "
          "ours / BookSim2 | accepted ours / BookSim2 | hops ours / BookSim2 |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for (k, v, rate), (bl, bn, ba, bh) in BOOKSIM.items():
        res = simulate_noc(NocConfig(rows=k, cols=k, vcs=v), SyntheticTraffic(rate=rate),
                           seed=args.seed, warmup=3000, measure=args.measure)
        diff = 100 * (res.packet_latency / bl - 1)
        print(f"| {k}x{k} | {v} | {rate:.2f} | {res.packet_latency:.1f} / {bl} | {diff:+.1f} % "
              f"| {res.network_latency:.1f} / {_fmt(bn)} | {res.accepted_rate:.4f} / "
              f"{_fmt(ba, 4)} | {res.avg_hops:.2f} / {bh:.2f} |", flush=True)
        rows.append({"mesh": k, "vcs": v, "rate": rate, **res.summary()})
    print("\n| mesh | VCs | wait for tail credit | saturation throughput ours | BookSim2 |")
    print("|---|---:|---|---:|---:|")
    sat = {}
    for (k, v, wait), ref in BOOKSIM_SAT.items():
        res = simulate_noc(NocConfig(rows=k, cols=k, vcs=v, wait_for_tail_credit=wait),
                           SyntheticTraffic(rate=1.0), seed=args.seed, warmup=3000,
                           measure=args.measure)
        sat[f"{k}x{k}/{v}vc/{'wait' if wait else 'nowait'}"] = res.accepted_rate
        print(f"| {k}x{k} | {v} | {'yes' if wait else 'no'} | {res.accepted_rate:.3f} | {ref} |",
              flush=True)
    res = simulate_noc(NocConfig(rows=16, cols=16, vcs=2), SyntheticTraffic(rate=1.0),
                       seed=args.seed, warmup=3000, measure=args.measure)
    sat["16x16/2vc/wait"] = res.accepted_rate
    print(f"| 16x16 | 2 | yes | {res.accepted_rate:.3f} | (not given) |")
    _curves(args)
    print(json.dumps({"points": rows, "saturation": sat}, default=str))


def _curves(args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for v, color, rates in ((8, "C0", [0.02 * i for i in range(1, 23)]),
                            (2, "C1", [0.02 * i for i in range(1, 11)])):
        xs, ys = [], []
        for rate in rates:
            res = simulate_noc(NocConfig(vcs=v), SyntheticTraffic(rate=rate), seed=args.seed,
                               warmup=3000, measure=args.measure // 2)
            if res.saturated or res.packet_latency > 300:
                break
            xs.append(rate)
            ys.append(res.packet_latency)
        ax.plot(xs, ys, "-", color=color, label=f"ours, {v} VCs")
        ref = [(r, lat) for (k, vv, r), (lat, *_) in BOOKSIM.items() if k == 8 and vv == v]
        ax.plot([r for r, _ in ref], [lat for _, lat in ref], "o", color=color,
                mfc="none", label=f"BookSim2, {v} VCs")
    ax.set_xlabel("offered load (flits/node/cycle)")
    ax.set_ylabel("packet latency (cycles)")
    ax.set_ylim(0, 200)
    ax.set_title("8x8 mesh, uniform traffic, 4-flit packets")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.figure, dpi=120)
    print(f"figure: {args.figure}")


if __name__ == "__main__":
    main()
