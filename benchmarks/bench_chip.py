"""Speed of the functional chip simulation against the ideal float32 forward pass (the floor).

Two networks, each with --samples random inputs:

(a) the reference MNIST-size ScRRAMBLe network, 4 -> 50 -> 10 cores of 256 x 256, slots of 64,
    p = 0.2 (random weights), 'single' encoding (balanced routed inputs);
(b) the dense network 1024 -> 2048 -> 512 -> 256 tiled onto 256 x 256 cores ('offset' encoding
    by default: 256 inputs per tile; --dense-encoding differential gives 128).

Chip: rram_wan2022 device (programming error) with a G-dependent read noise (sigma = c * G,
--read-sigma c), 8-bit multilevel DAC, 8-bit ADC, 8-bit activations. The chip simulation is
timed with and without read noise (same programmed instance otherwise), and with read noise
and every input multiplied ([simulation] skip_zero_inputs = false: the products then also
multiply the images' zero padding, which the default leaves out; the results are identical),
in the same run as the floor, best of --repeats measured round-robin (floor, noisy, quiet,
noisy every input, floor, ...), with the
converters calibrated once beforehand (``calibrate``, on
--calibration-samples separate inputs; its time is printed apart). A per-stage breakdown of one
more noisy run (routing, DAC, analog MVM, read-noise variance, noise + ADC + partial sums,
decode, the rest) says where the time goes: each stage's share of that run, and the same share
of the noisy / floor ratio (the run itself is not a best-of, so its seconds vary with load). BLAS (and Numba)
threads are set with threadpoolctl / numba to --threads (default 1) and printed. The last line
of output is one JSON object.

    OMP_NUM_THREADS=1 python benchmarks/bench_chip.py [--threads 1] [--samples 10000]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from pathlib import Path

import numba
import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mappings.activations import Activation
from mappings.builders import build_scrramble_network
from mappings.network import DenseLayer, InputSpec, Network, Readout
from sim.chip.config import chip_config_from_dict
from sim.chip.functional import ChipRunner, calibrate, simulate
from sim.chip.programming import program_chip


def dense_network(rng: np.random.Generator) -> Network:
    """1024 -> 2048 -> 512 -> 256 with ReLU, He-initialised random weights."""
    widths = (1024, 2048, 512, 256)
    layers = []
    for i, (n_in, n_out) in enumerate(itertools.pairwise(widths)):
        w = rng.standard_normal((n_in, n_out), dtype=np.float32) * np.float32(np.sqrt(2 / n_in))
        b = np.zeros(n_out, np.float32)
        act = Activation("none") if i == len(widths) - 2 else Activation("relu")
        layers.append(DenseLayer(w, b, act))
    return Network(tuple(layers), InputSpec(), Readout("logits", widths[-1]))


def chip_config(encoding: str, grid: int, read_sigma: float, chunk: int, calib: int):
    base = {
        "chip": {"grid_rows": grid, "grid_cols": grid, "core_rows": 256, "core_cols": 256,
                 "slot_size": 64},
        "device": {"preset": "rram_wan2022",
                   "read": {"kind": "proportional", "coeffs": [read_sigma]}},
        "dac": {"bits": 8, "mode": "multilevel"},
        "adc": {"bits": 8},
        "mapping": {"encoding": encoding, "activation_bits": 8},
        "simulation": {"batch_chunk": chunk, "calibration_samples": calib},
    }
    return chip_config_from_dict(base, source=f"<bench {encoding}>")


def interleaved_best(fns: dict, repeats: int) -> dict:
    """Best time of every function, measured round-robin (floor, noisy, quiet, floor, ...), so
    that a burst of load on the shared machine does not hit one of them only."""
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


def floor_forward(net: Network, x: np.ndarray, chunk: int) -> None:
    """The ideal float32 numpy forward (prepare, layers, readout, argmax) in chunks."""
    for s in range(0, len(x), chunk):
        f = net.input_spec.prepare(x[s : s + chunk])
        np.argmax(net.readout.scores(net.forward_features(f)[-1]), axis=1)


def stage_breakdown(net: Network, inst, cfg, cal, x: np.ndarray, chunk: int) -> tuple:
    """Seconds per stage of one noisy forward pass over x (ChipRunner.stage_seconds), and the
    fraction of the row tiles' inputs the products left out (ChipRunner.skipped_inputs)."""
    runner = ChipRunner(net, inst, cfg, 0)
    runner.use(cal)
    runner.stage_seconds = {}
    t0 = time.perf_counter()
    for s in range(0, len(x), chunk):
        f = net.input_spec.prepare(x[s : s + chunk])
        np.argmax(net.readout.scores(runner.output(f, s)), axis=1)
    total = time.perf_counter() - t0
    stages = dict(runner.stage_seconds)
    stages["other (prepare, padding, readout)"] = total - sum(stages.values())
    skipped, inputs = runner.skipped_inputs
    return stages, skipped / max(inputs, 1)


def bench(name: str, net: Network, x: np.ndarray, encoding: str, grid: int, args) -> dict:
    cfg = chip_config(encoding, grid, args.read_sigma, args.chunk, args.calibration_samples)
    quiet = cfg.replace(device={"read": {"kind": "constant", "coeffs": [0.0]}})
    every_input = cfg.replace(simulation={"skip_zero_inputs": False})  # same results, slower
    inst = program_chip(net, cfg, seed=1)
    inst_quiet = program_chip(net, quiet, seed=1)  # same seed: identical conductances
    cal_x = np.random.default_rng(7).random((args.calibration_samples, 28, 28), np.float32)
    t0 = time.perf_counter()
    cal = calibrate(net, inst, cal_x, seed=0)
    t_cal = time.perf_counter() - t0
    cal_quiet = calibrate(net, inst_quiet, cal_x, seed=0)
    simulate(net, inst, x[: args.chunk], seed=0, calibration=cal, reference=False)  # JIT warm-up
    best = interleaved_best({
        "floor_chunked": lambda: floor_forward(net, x, args.chunk),
        "floor_whole": lambda: floor_forward(net, x, len(x)),
        "noisy": lambda: simulate(net, inst, x, seed=0, calibration=cal, reference=False),
        "quiet": lambda: simulate(net, inst_quiet, x, seed=0, calibration=cal_quiet,
                                  reference=False),
        "noisy_every_input": lambda: simulate(net, inst, x, seed=0, calibration=cal,
                                              reference=False, config=every_input),
    }, args.repeats)
    t_floor = min(best["floor_chunked"], best["floor_whole"])
    t_noisy, t_quiet = best["noisy"], best["quiet"]
    stages, skipped = stage_breakdown(net, inst, cfg, cal, x, args.chunk)
    return {
        "network": name,
        "encoding": encoding,
        "tiles": inst.plan.n_physical_cores,
        "floor_s": t_floor,
        "noisy_s": t_noisy,
        "no_read_noise_s": t_quiet,
        "ratio_noisy": t_noisy / t_floor,
        "ratio_no_read_noise": t_quiet / t_floor,
        "ratio_noisy_every_input": best["noisy_every_input"] / t_floor,
        "skipped_inputs": skipped,
        "calibration_s": t_cal,
        "stages_s": stages,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1, help="BLAS and Numba threads (default 1)")
    p.add_argument("--samples", type=int, default=10_000)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--chunk", type=int, default=2000, help="simulation batch chunk")
    p.add_argument("--calibration-samples", type=int, default=512)
    p.add_argument("--read-sigma", type=float, default=0.02, help="read sigma = c * G (uS)")
    p.add_argument("--dense-encoding", default="offset", choices=("offset", "differential"))
    args = p.parse_args(argv)
    if args.threads < 1:
        p.error("--threads must be >= 1")

    with threadpool_limits(limits=args.threads):
        numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
        blas = [
            f"{i.get('internal_api')} {i.get('num_threads')}"
            for i in threadpool_info()
            if i.get("user_api") == "blas"
        ]
        print(f"threads: BLAS {', '.join(blas) or '?'}; numba {numba.get_num_threads()}; "
              f"load average {os.getloadavg()[0]:.2f}")
        rng = np.random.default_rng(2024)
        x = rng.random((args.samples, 28, 28), dtype=np.float32)
        scr = build_scrramble_network(
            hidden_cores=(50,), n_classes=10, core_size=256, slot_size=64, p=0.2,
            rng=np.random.default_rng(1),
        )
        dense = dense_network(np.random.default_rng(2))
        grid_dense = 8 if args.dense_encoding == "offset" else 16
        rows = [
            bench("scrramble 4-50-10", scr, x, "single", 8, args),
            bench("dense 1024-2048-512-256", dense, x, args.dense_encoding, grid_dense, args),
        ]
    print(f"{'network':26s} {'encoding':12s} {'tiles':>5s} {'floor s':>8s} {'noisy s':>8s} "
          f"{'quiet s':>8s} {'noisy/floor':>11s} {'quiet/floor':>11s} {'skipped':>7s} "
          f"{'noisy/floor, every input':>24s}")
    for r in rows:
        print(f"{r['network']:26s} {r['encoding']:12s} {r['tiles']:5d} {r['floor_s']:8.3f} "
              f"{r['noisy_s']:8.3f} {r['no_read_noise_s']:8.3f} {r['ratio_noisy']:11.2f} "
              f"{r['ratio_no_read_noise']:11.2f} {100 * r['skipped_inputs']:6.1f}% "
              f"{r['ratio_noisy_every_input']:24.2f}")
    print("(skipped: the first layer's inputs that are always zero -- the images' padding -- "
          "which the products leave out, [simulation] skip_zero_inputs; 'every input': the "
          "same noisy run with skip_zero_inputs = false, identical results)")
    for r in rows:
        total = sum(r["stages_s"].values())
        print(f"\n{r['network']} ({r['encoding']}), noisy, per stage: share of one timed run, "
              f"and that share of the noisy/floor ratio; calibration {r['calibration_s']:.3f} s "
              f"(once, not in the totals)")
        for stage, sec in r["stages_s"].items():
            share = sec / total
            print(f"  {stage:36s} {sec:7.3f} s  {100 * share:5.1f} %  "
                  f"{share * r['ratio_noisy']:5.2f}x")
    s, d = rows
    out = {
        "threads": args.threads,
        "samples": args.samples,
        "chunk": args.chunk,
        "read_sigma_per_uS": args.read_sigma,
        "scrramble_ratio_noisy": s["ratio_noisy"],
        "scrramble_ratio_no_read_noise": s["ratio_no_read_noise"],
        "dense_ratio_noisy": d["ratio_noisy"],
        "dense_ratio_no_read_noise": d["ratio_no_read_noise"],
        "scrramble_ratio_noisy_every_input": s["ratio_noisy_every_input"],
        "dense_ratio_noisy_every_input": d["ratio_noisy_every_input"],
        "scrramble_skipped_inputs": s["skipped_inputs"],
        "dense_skipped_inputs": d["skipped_inputs"],
        "scrramble_seconds": {k: s[k] for k in ("floor_s", "noisy_s", "no_read_noise_s")},
        "dense_seconds": {k: d[k] for k in ("floor_s", "noisy_s", "no_read_noise_s")},
        "dense_encoding": d["encoding"],
        "scrramble_stages_s": s["stages_s"],
        "dense_stages_s": d["stages_s"],
        "load_average": os.getloadavg()[0],
    }
    print(json.dumps(out, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
