"""``scrramble-sim demo``: the whole pipeline in a few minutes, into one output folder.

1. Train a small ScRRAMBLe network on Fashion-MNIST (4 -> 50 -> 10 cores of 256, the default
   architecture, for ``--epochs`` epochs; resumable checkpoint) or reuse ``OUT/net.h5``.
2. Its float accuracy on the test split.
3. Map it on the packaged default chip and simulate it on an ideal chip (``ideal`` devices,
   16-bit converters, float activations) and on realistic RRAM (``rram_wan2022``, 8-bit DAC and
   ADC, 8-bit activations).
4. A small sweep (``OUT/sweep.toml``): programming error (sigma = p * G, p = 0-10 %) x ADC
   bits x 2 chip instances on Dask, then its report (figures and summary table in
   ``OUT/sweep/``).
5. The packet network: the mapped network's own traffic streamed through the cycle-level
   network-on-chip (:func:`packet_network_step`, ``scrramble-sim noc NET.h5``).

A rerun reuses the network and skips finished sweep points.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

from mappings.safe_files import atomic_write
from sim.commands import SUBCOMMANDS, CommandError, CommandResult
from sim.commands.common import (
    add_seed_argument,
    add_threads_argument,
    positive_int,
)

HELP = "train (or reuse) a small network, simulate it on ideal and RRAM chips, run a sweep"

DEFAULT_OUT = Path("runs/demo")
DEFAULT_EPOCHS = 3
DEFAULT_SAMPLES = 10000
DEFAULT_SWEEP_SAMPLES = 1000
IDEAL_CHIP = {  # an ideal chip: ideal devices, 16-bit converters, float activations
    "device.preset": "ideal",
    "dac.bits": 16,
    "adc.bits": 16,
    "mapping.activation_bits": 0,
}
REALISTIC_PRESET = "rram_wan2022"
NOC_INFERENCES = 20  # inferences streamed through the packet network


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", metavar="DIR", type=Path, default=DEFAULT_OUT,
                        help=f"output folder, created (default: {DEFAULT_OUT})")
    parser.add_argument("--data", metavar="DIR", type=Path, default=None,
                        help="Fashion-MNIST IDX directory (default: $SCRRAMBLE_DATA, then "
                        "/usr/share/datasets/fashion-mnist)")
    parser.add_argument("--epochs", type=positive_int, default=DEFAULT_EPOCHS,
                        help=f"training epochs of a new network (default: {DEFAULT_EPOCHS})")
    parser.add_argument("--samples", type=positive_int, default=DEFAULT_SAMPLES, metavar="N",
                        help=f"test images of the ideal / RRAM chip runs (default: "
                        f"{DEFAULT_SAMPLES})")
    parser.add_argument("--sweep-samples", type=positive_int, default=DEFAULT_SWEEP_SAMPLES,
                        metavar="N", help="test images per sweep point (default: "
                        f"{DEFAULT_SWEEP_SAMPLES})")
    parser.add_argument("--in-process", action="store_true",
                        help="run the sweep in this process instead of on a local Dask cluster")
    add_threads_argument(parser, "training threads, then one-thread Dask workers of the sweep")
    add_seed_argument(parser, "the training run and the simulated chip instances (S and S + 1)")


def _check(args: argparse.Namespace) -> int:
    if args.out.exists() and not args.out.is_dir():
        raise CommandError(f"--out {args.out}: exists and is not a directory")
    return 0 if args.in_process else args.threads


def sweep_spec(net: Path, data: Path | None, samples: int, seed: int = 0) -> str:
    """The demo's sweep specification (TOML text)."""
    data_line = "" if data is None else f'data = "{Path(data).resolve()}"\n'
    return (
        "# scrramble-sim demo: programming error x ADC resolution x 2 chip instances\n"
        "[sweep]\n"
        f'network = "{net.resolve()}"\n'
        'dataset = "fashion-mnist"\n'
        f"{data_line}"
        f"seeds = [{seed}, {seed + 1}]\n"
        f"samples = {samples}\n\n"
        "[fixed]\n"
        '"device.programming.kind" = "proportional"   # sigma = p * G\n\n'
        "[parameters]\n"
        '"device.programming.coeffs" = {start = 0.0, stop = 0.1, num = 5}\n'
        '"adc.bits" = [4, 6, 8]\n'
    )


def packet_network_step(network_path: Path, out: Path, args: argparse.Namespace) -> dict | None:
    """The mapped network's own traffic through the cycle-level packet network
    (``scrramble-sim noc NET.h5``: 20 inferences streamed on the default chip's mesh, no dense
    baseline run): its text report goes to ``OUT/noc.txt``; returns the headline numbers, or
    None when this version has no packet network (``sim.noc``)."""
    if importlib.util.find_spec("sim.noc") is None or "noc" not in SUBCOMMANDS:
        return None
    from sim.commands.cli import build_parser

    argv = ["noc", str(network_path), "--inferences", str(NOC_INFERENCES),
            "--dense-inferences", "0", "--samples", "64", "--seed", str(args.seed)]
    if args.data is not None:
        argv += ["--data", str(args.data)]
    nargs = build_parser().parse_args(argv)
    nargs.no_progress = True
    result = nargs._module.run(nargs)
    text = result.text
    atomic_write(out / "noc.txt", lambda p: p.write_text(text + "\n", encoding="utf-8"))
    d = result.data
    return {
        "inferences": NOC_INFERENCES,
        "latency_cycles_mean": d["latency_cycles"]["mean"],
        "throughput_inferences_per_s": d["throughput_inferences_per_s"],
        "energy_pj_per_inference": d["energy_pj_per_inference"],
        "tops_per_w": d["tops_per_w"],
        "traffic_reduction_percent": d["traffic_reduction"],
        "report": str(out / "noc.txt"),
    }


def _train(args, net_path: Path, progress: bool) -> None:
    from sim.commands.cli import build_parser
    from sim.commands.train import run as train_run

    argv = ["train", "--out", str(net_path), "--epochs", str(args.epochs),
            "--checkpoint", str(args.out / "train_checkpoint.h5"), "--resume",
            "--seed", str(args.seed), "--threads", str(args.threads)]
    if args.data is not None:
        argv += ["--data", str(args.data)]
    targs = build_parser().parse_args(argv)
    targs.no_progress = not progress
    train_run(targs)


def _chip_runs(
    net_path: Path, data: Path | None, samples: int, seed: int, progress: bool
) -> dict:
    """Ideal and realistic chips through the sweep adapter (one point each)."""
    from tqdm import tqdm

    from sim.sweep import PointEvaluator, sweep_from_dict

    out = {}
    spec = {"sweep": {"network": str(net_path), "dataset": "fashion-mnist", "samples": samples,
                      "seeds": [seed]}}
    if data is not None:
        spec["sweep"]["data"] = str(data)
    evaluator = PointEvaluator()
    for name, fixed in (("ideal chip", IDEAL_CHIP),
                        (f"RRAM chip ({REALISTIC_PRESET})", {"device.preset": REALISTIC_PRESET})):
        sweep = sweep_from_dict({**spec, "fixed": fixed}, f"demo: {name}")
        (task,) = sweep.tasks()
        bar = tqdm(total=samples, desc=name, unit="img", file=sys.stderr, disable=not progress,
                   dynamic_ncols=True)
        with bar:
            out[name] = evaluator.evaluate(task, progress=lambda n, b=bar: b.update(n - b.n))
    return out


def run(args: argparse.Namespace) -> CommandResult:
    workers = _check(args)
    progress = not getattr(args, "no_progress", False)
    from mappings.h5format import NetworkFormatError, load_network
    from sim.datasets import DatasetError, load_dataset
    from sim.sweep import PointError, SweepRunError, SweepSpecError, load_sweep, run_sweep
    from sim.sweep.report import markdown_summary, write_report
    from sim.sweep.store import SweepStoreError
    from sim.sweep.store import load_dataset as load_results
    from sim.training.trainer import evaluate_accuracy

    t0 = time.perf_counter()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    net_path = out / "net.h5"
    timings: dict[str, float] = {}
    try:
        test_x, test_y = load_dataset("fashion-mnist", args.data, "test")
    except DatasetError as exc:
        raise CommandError(str(exc)) from None

    origin = "reused"
    if not net_path.exists():
        if progress:
            print(f"training a ScRRAMBLe network for {args.epochs} epochs -> {net_path}",
                  file=sys.stderr)
        t = time.perf_counter()
        _train(args, net_path, progress)
        timings["train"] = time.perf_counter() - t
        origin = f"trained ({args.epochs} epochs)"
    try:
        network = load_network(net_path)
    except NetworkFormatError as exc:
        raise CommandError(f"{exc} (delete it to train again)") from None
    trained_seed = network.metadata.get("seed")
    if trained_seed is not None and int(trained_seed) != args.seed:
        raise CommandError(
            f"--seed {args.seed}: {net_path} was trained with seed {trained_seed}; pass "
            f"--seed {trained_seed} or another --out"
        )
    float_acc = evaluate_accuracy(network, test_x, test_y, threads=args.threads)

    try:
        t = time.perf_counter()
        chips = _chip_runs(net_path, args.data, min(args.samples, len(test_x)), args.seed,
                           progress)
        timings["chips"] = time.perf_counter() - t

        t = time.perf_counter()
        spec_path = out / "sweep.toml"
        text = sweep_spec(net_path, args.data, args.sweep_samples, args.seed)
        atomic_write(spec_path, lambda p: p.write_text(text, encoding="utf-8"))
        sweep = load_sweep(spec_path)
        run = run_sweep(
            sweep, out / "sweep", workers=workers, progress=progress,
            on_start=(lambda m: print(m, file=sys.stderr)) if progress else None,
        )
        ds = load_results(run.results)
        paths = write_report(ds, out / "sweep")
        timings["sweep"] = time.perf_counter() - t
    except (SweepSpecError, SweepRunError, SweepStoreError, PointError) as exc:
        raise CommandError(str(exc)) from None
    t = time.perf_counter()
    if progress:
        print("streaming inferences through the packet network", file=sys.stderr)
    noc = packet_network_step(net_path, out, args)
    timings["noc"] = time.perf_counter() - t

    def pct(v):
        return "n/a" if v is None else f"{100 * v:.2f} %"

    lines = [
        "## scrramble-sim demo",
        "",
        f"Network {net_path}: ScRRAMBLe 4 -> 50 -> 10 cores of 256x256 ({origin}).",
        "",
        "| run | test images | accuracy |",
        "|---|---:|---:|",
        f"| float (software) | {len(test_x)} | {pct(float_acc)} |",
    ]
    for name, r in chips.items():
        lines.append(f"| {name} | {r['n_samples']} | {pct(r['accuracy'])} |")
    rram = chips[f"RRAM chip ({REALISTIC_PRESET})"]
    lines += [
        "",
        f"Mapped on the packaged default chip (8 x 8 cores of 256 x 256): {rram['n_devices']:,} "
        f"devices, {rram['inter_core_bits']:,} bits per inference between cores, first-order "
        f"MVM latency {rram['latency_ns']:g} ns per inference; per-layer SNR on the RRAM chip "
        + " / ".join("inf" if v is None else f"{v:.1f}" for v in rram["snr_db"]) + " dB.",
    ]
    lines += [
        "",
        (f"Sweep ({spec_path}, {run.n_points} points, {run.computed} computed, "
        f"{run.skipped} reused, {workers or 'no'} Dask worker(s)):"),
        "",
        markdown_summary(ds),
        "Packet network: " + (
            "not in this version (hook: sim.commands.demo.packet_network_step)" if noc is None
            else f"{noc['inferences']} inferences streamed on the 8 x 8 mesh: latency "
            f"{noc['latency_cycles_mean']:,.0f} cycles per inference, "
            f"{noc['throughput_inferences_per_s']:,.0f} inferences/s, "
            f"{noc['energy_pj_per_inference'] / 1e6:.2f} uJ per inference "
            f"({noc['tops_per_w']:.2f} TOPS/W), {noc['traffic_reduction_percent']:.1f} % fewer "
            f"bits between cores than the dense baseline ({noc['report']})"
        ),
        "",
        f"Figures: {', '.join(str(p) for p in [*paths['figures'], *paths['heatmaps']])}",
        f"Total {time.perf_counter() - t0:.0f} s ("
        + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()) + ").",
    ]
    text = "\n".join(lines)
    atomic_write(out / "summary.md", lambda p: p.write_text(text + "\n", encoding="utf-8"))
    data = {
        "out": str(out),
        "network": str(net_path),
        "network_origin": origin,
        "float_accuracy": float_acc,
        "chips": {k: {key: v[key] for key in ("accuracy", "n_samples", "snr_db", "n_devices",
                                              "inter_core_bits", "latency_ns")}
                  for k, v in chips.items()},
        "sweep": {"spec": str(spec_path), "results": str(run.results), "points": run.n_points,
                  "computed": run.computed, "skipped": run.skipped},
        "figures": [str(p) for p in [*paths["figures"], *paths["heatmaps"]]],
        "summary_md": str(paths["summary_md"]),
        "packet_network": noc,
        "seed": args.seed,
        "threads": args.threads,
        **{f"{k}_seconds": v for k, v in timings.items()},
    }
    return CommandResult(data=data, text=text)
