"""``scrramble-sim noc``: the cycle-level packet network under synthetic traffic.

One run prints latency, throughput and speed; ``--rates LO:HI:STEP`` sweeps the offered load
and writes a latency-vs-load table and figure. With the optional positional network file the
network carries that mapped network's own messages (:mod:`sim.commands.noc_network`).
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from sim.commands import CommandError, CommandResult
from sim.commands.common import (
    add_overwrite_argument,
    add_seed_argument,
    check_output_path,
    make_parent,
)

HELP = "simulate the packet network (mesh of VC routers) under synthetic traffic"

_FLAGS = {
    "rows": "--mesh",
    "cols": "--mesh",
    "vcs": "--vcs",
    "buffer_depth": "--buffer",
    "routing": "--routing",
    "credit_delay": "--credit-delay",
    "input_speedup": "--speedup",
    "vc_allocator": "--vc-alloc",
    "sw_allocator": "--sw-alloc",
    "alloc_iters": "--alloc-iters",
    "link_latency": "--link-latency",
    "watchdog_cycles": "--watchdog",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from sim.noc import ALLOCATORS, PATTERNS, ROUTINGS

    parser.add_argument(
        "network", metavar="NET.h5", type=Path, nargs="?", default=None,
        help="drive the network with a mapped network's own traffic (see noc_network.py)",
    )
    parser.add_argument("--mesh", default=None, metavar="ROWSxCOLS",
                        help="router grid (8x8; with NET.h5 the chip's grid)")
    parser.add_argument("--torus", action="store_true", help="wrap-around links (dateline VCs)")
    parser.add_argument("--routing", default=None, help=f"one of {list(ROUTINGS)} (xy)")
    parser.add_argument("--vcs", type=int, default=None, help="virtual channels per port (8)")
    parser.add_argument("--buffer", type=int, default=None, help="flits of buffer per VC (8)")
    parser.add_argument(
        "--no-wait-tail", action="store_true",
        help="reallocate a VC once its tail is sent, not after the tail's credit returns",
    )
    parser.add_argument("--credit-delay", type=int, default=None, help="credit processing cycles (2)")
    parser.add_argument("--link-latency", type=int, default=None, help="cycles per link (1)")
    parser.add_argument("--speedup", type=int, default=None, help="input speedup (2)")
    parser.add_argument("--vc-alloc", default=None, help=f"one of {list(ALLOCATORS)}")
    parser.add_argument("--sw-alloc", default=None, help=f"one of {list(ALLOCATORS)}")
    parser.add_argument("--alloc-iters", type=int, default=None, help="allocator iterations (1)")
    parser.add_argument("--watchdog", type=int, default=None, help="stall limit in cycles")
    parser.add_argument("--traffic", default="uniform", help=f"one of {list(PATTERNS)}")
    parser.add_argument("--rate", type=float, default=0.1, help="offered load (0.1)")
    parser.add_argument(
        "--rate-unit", choices=("flits", "packets"), default="flits",
        help="--rate in flits/node/cycle (default, as BookSim2) or packets/node/cycle",
    )
    parser.add_argument("--packet", type=int, default=4, help="flits per packet (4)")
    parser.add_argument(
        "--burst", metavar="ON:OFF", default=None,
        help="on-off injection: per-cycle probabilities off->on and on->off, e.g. 0.1:0.1",
    )
    parser.add_argument("--cycles", type=int, default=None, help="fixed-length run of N cycles")
    parser.add_argument(
        "--warmup", type=int, default=None, help="warm-up cycles (3000; N/4 with --cycles N)"
    )
    parser.add_argument("--measure", type=int, default=5000, help="measured window (5000)")
    add_seed_argument(parser, "the synthetic traffic; with NET.h5 the chip programming")
    parser.add_argument(
        "--rates", metavar="LO:HI:STEP", default=None,
        help="sweep the offered load; writes a table and --figure",
    )
    parser.add_argument(
        "--figure", type=Path, default=Path("noc_latency_load.png"),
        help="latency-vs-load figure of --rates (noc_latency_load.png)",
    )
    parser.add_argument("--out", type=Path, default=None, help="save the result as HDF5")
    add_overwrite_argument(parser)
    from sim.commands.noc_network import add_network_arguments

    add_network_arguments(parser)


def _mesh(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not m:
        raise CommandError(f"--mesh: expected ROWSxCOLS such as 8x8, got {text!r}")
    rows, cols = int(m.group(1)), int(m.group(2))
    if rows < 1 or cols < 1:
        raise CommandError(f"--mesh: rows and columns must be >= 1, got {text!r}")
    return rows, cols


def _rates(text: str) -> list[float]:
    try:
        lo, hi, step = (float(x) for x in text.split(":"))
    except ValueError:
        raise CommandError(f"--rates: expected LO:HI:STEP such as 0.05:0.5:0.05, got {text!r}")
    if not (0 <= lo <= hi <= 1 and step > 0):
        raise CommandError(f"--rates: need 0 <= LO <= HI <= 1 and STEP > 0, got {text!r}")
    n = round((hi - lo) / step) + 1
    return [round(lo + i * step, 10) for i in range(n) if lo + i * step <= hi + 1e-9]


def _flag_error(exc: Exception) -> CommandError:
    msg = str(exc)
    key = msg.split(":", 1)[0]
    if key in _FLAGS:
        msg = f"{_FLAGS[key]} ({key}):{msg.split(':', 1)[1]}"
    return CommandError(msg)


_ROUTER_FLAGS = {  # NocConfig key -> argparse destination; None = not given on the command line
    "routing": "routing",
    "vcs": "vcs",
    "buffer_depth": "buffer",
    "credit_delay": "credit_delay",
    "link_latency": "link_latency",
    "input_speedup": "speedup",
    "vc_allocator": "vc_alloc",
    "sw_allocator": "sw_alloc",
    "alloc_iters": "alloc_iters",
    "watchdog_cycles": "watchdog",
}


def router_overrides(args: argparse.Namespace) -> dict:
    """The router settings given on the command line (flags left out keep the base config's:
    NocConfig's defaults, or the chip file's ``[noc]`` section with NET.h5)."""
    out = {k: getattr(args, d) for k, d in _ROUTER_FLAGS.items() if getattr(args, d) is not None}
    if args.torus:
        out["topology"] = "torus"
    if args.no_wait_tail:
        out["wait_for_tail_credit"] = False
    return out


def noc_config_with(base, overrides: dict, mesh: tuple[int, int] | None):
    """``base`` (a NocConfig) with the command-line ``overrides`` and ``mesh``; errors name
    the flag."""
    from sim.noc import NocConfigError

    changes = dict(overrides)
    if mesh is not None:
        changes["rows"], changes["cols"] = mesh
    try:
        return base.replace(**changes)
    except NocConfigError as exc:
        raise _flag_error(exc) from None


def _build(args: argparse.Namespace):
    from sim.noc import NocConfig, NocConfigError, SyntheticTraffic

    config = noc_config_with(NocConfig(), router_overrides(args), _mesh(args.mesh or "8x8"))
    burst_on = burst_off = 0.1
    if args.burst is not None:
        try:
            burst_on, burst_off = (float(x) for x in args.burst.split(":"))
        except ValueError:
            raise CommandError(f"--burst: expected ON:OFF such as 0.1:0.1, got {args.burst!r}")
    try:

        def traffic(rate: float) -> SyntheticTraffic:
            return SyntheticTraffic(
                pattern=args.traffic, rate=rate, packet_flits=args.packet,
                rate_unit=args.rate_unit, burst=args.burst is not None,
                burst_on=burst_on, burst_off=burst_off,
            )

        traffic(args.rate)  # validate now
    except NocConfigError as exc:
        raise _flag_error(exc) from None
    return config, traffic


FIGURE_NAMES = ("noc_links.png", "noc_timeline.png", "noc_energy.png", "noc_traffic.png")
"""The files ``--figures DIR`` writes (see :func:`sim.chipnet.figures.save_figures`)."""


def _outputs(args: argparse.Namespace) -> list[tuple[Path, str]]:
    """Every file this run will write, with the flag that names it."""
    out = [(args.out, "--out")] if args.out is not None else []
    if args.network is None and args.rates is not None:
        out.append((args.figure, "--figure"))
    if args.network is not None and args.figures is not None:
        out += [(Path(args.figures) / name, "--figures") for name in FIGURE_NAMES]
    return out


def _check(args: argparse.Namespace) -> None:
    for path, flag in _outputs(args):  # before any work: never replace a file unasked
        check_output_path(path, flag, overwrite=args.overwrite)
        make_parent(path, flag)
    if args.cycles is not None and args.cycles < 1:
        raise CommandError(f"--cycles must be an integer >= 1, got {args.cycles}")
    if (args.warmup is not None and args.warmup < 0) or args.measure < 1:
        raise CommandError("--warmup must be >= 0 and --measure >= 1")


def run(args: argparse.Namespace) -> CommandResult:
    from sim.noc import NocConfigError, NocDeadlockError, simulate_noc

    _check(args)
    if args.network is not None:
        from sim.commands.noc_network import run_network

        try:
            return run_network(args, router_overrides(args), _mesh(args.mesh) if args.mesh else None)
        except NocConfigError as exc:
            raise _flag_error(exc) from None
    config, traffic = _build(args)
    rates = _rates(args.rates) if args.rates is not None else [args.rate]
    warmup = args.warmup if args.warmup is not None else (
        args.cycles // 4 if args.cycles is not None else 3000)
    results = []
    try:
        for rate in rates:
            results.append(simulate_noc(
                config, traffic(rate), seed=args.seed, warmup=warmup,
                measure=args.measure, cycles=args.cycles,
            ))
    except NocConfigError as exc:
        raise _flag_error(exc) from None
    except NocDeadlockError as exc:
        raise CommandError(str(exc)) from None
    if args.rates is None:
        res = results[0]
        if args.out is not None:
            try:
                res.save(args.out)
            except OSError as exc:
                raise CommandError(f"--out: {exc}") from None
        data = res.summary()
        return CommandResult(data=data, text=_report(data))
    rows = [r.summary() for r in results]
    _figure(rows, args.figure, config)
    text = _table(rows) + f"\nfigure: {args.figure}"
    return CommandResult(data={"curve": rows, "figure": str(args.figure)}, text=text)


def _report(d: dict) -> str:
    lat = "n/a" if d["packet_latency"] is None else f"{d['packet_latency']:.2f}"
    net = "n/a" if d["network_latency"] is None else f"{d['network_latency']:.2f}"
    return "\n".join([
        f"network     {d['mesh']} {d['topology']}, {d['vcs']} VCs x {d['buffer']} flits",
        (f"traffic     {d['traffic']['pattern']} at {d['traffic']['rate']} "
        f"{d['traffic']['rate_unit']}/node/cycle, {d['traffic']['packet_flits']}-flit packets"),
        f"latency     packet {lat}, network {net} cycles ({d['packets']} tagged packets)",
        (f"throughput  accepted {d['accepted_rate']:.4f} flits/node/cycle (min node "
        f"{d['accepted_min']:.4f}){'  SATURATED' if d['saturated'] else ''}"),
        f"hops        {d['avg_hops']}",
        (f"speed       {d['cycles']} cycles in {d['sim_seconds']:.3f} s "
        f"({d['cycles_per_s']:.0f} cycles/s, {d['flit_hops_per_s'] / 1e6:.3f} M flit-hops/s)"),
    ])


def _table(rows: list[dict]) -> str:
    out = ["| offered | packet latency | network latency | accepted | hops | saturated |",
           "|---:|---:|---:|---:|---:|---|"]
    for d in rows:
        def f(x):
            return "n/a" if x is None else f"{x:.2f}"

        out.append(f"| {d['traffic']['rate']:.3f} | {f(d['packet_latency'])} | "
                   f"{f(d['network_latency'])} | {d['accepted_rate']:.4f} | {f(d['avg_hops'])} | "
                   f"{'yes' if d['saturated'] else 'no'} |")
    return "\n".join(out)


def _figure(rows: list[dict], path: Path, config) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mappings.safe_files import atomic_write

    ok = [d for d in rows if not d["saturated"] and d["packet_latency"] is not None]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot([d["traffic"]["rate"] for d in ok], [d["packet_latency"] for d in ok], "o-")
    ax.set_xlabel("offered load (flits/node/cycle)")
    ax.set_ylabel("packet latency (cycles)")
    ax.set_title(f"{config.rows}x{config.cols} {config.topology}, {config.vcs} VCs")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120),
                     error=CommandError, what="figure")
    finally:
        plt.close(fig)
