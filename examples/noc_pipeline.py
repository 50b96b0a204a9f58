"""Closed-loop task-graph traffic on the packet network: a pipeline of inferences.

Each inference runs ``--stages`` tasks, one per core along a row-major chain of cores; a
task computes for ``--compute`` cycles, then sends its activations (``--bits``) to the next
stage's core, whose task starts once they have fully arrived (and its core is free). The
first stage of inference i may start at ``i * --interval``. With ``--fanout K`` every stage
also sends its output to K more cores (a multicast tree with ``--multicast``, else K unicast
copies). Prints per-inference latency, throughput and core busy time, all computed from the
arrays that :func:`sim.noc.simulate_noc` returns for a :class:`sim.noc.Trace`.

    python examples/noc_pipeline.py [--mesh 4x4] [--inferences 100] [--stages 6]
        [--compute 50] [--interval 40] [--bits 2048] [--fanout 0] [--multicast] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sim.noc import NocConfig, Trace, simulate_noc


def pipeline_trace(n_routers: int, inferences: int, stages: int, compute: int, interval: int,
                   bits: int, fanout: int) -> Trace:
    """Inference i, stage s runs on core s; task index i * stages + s; message per hop."""
    task = np.arange(inferences * stages).reshape(inferences, stages)
    src, ptr, dst, dtask, prod, tag = [], [0], [], [], [], []
    inputs = np.zeros(inferences * stages, np.int64)
    for i in range(inferences):
        for s in range(stages - 1):
            src.append(s)
            prod.append(task[i, s])
            tag.append(i)
            dst.append(s + 1)
            dtask.append(task[i, s + 1])
            inputs[task[i, s + 1]] += 1
            extra = [c for c in range(stages, n_routers)][:fanout]  # cores nobody waits on
            dst.extend(extra)
            dtask.extend([-1] * len(extra))
            ptr.append(len(dst))
    m = len(src)
    return Trace(
        msg_src=np.array(src), msg_dst_ptr=np.array(ptr), msg_dst=np.array(dst),
        msg_bits=np.full(m, bits), msg_producer=np.array(prod), msg_cycle=np.zeros(m, np.int64),
        msg_dst_task=np.array(dtask), msg_tag=np.array(tag),
        task_core=np.tile(np.arange(stages), inferences),
        task_start=np.repeat(np.arange(inferences) * interval, stages),
        task_duration=np.full(inferences * stages, compute), task_inputs=inputs,
    )


def run(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mesh", default="4x4")
    ap.add_argument("--inferences", type=int, default=100)
    ap.add_argument("--stages", type=int, default=6)
    ap.add_argument("--compute", type=int, default=50)
    ap.add_argument("--interval", type=int, default=40)
    ap.add_argument("--bits", type=int, default=2048)
    ap.add_argument("--fanout", type=int, default=0)
    ap.add_argument("--multicast", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    rows, cols = (int(x) for x in args.mesh.lower().split("x"))
    cfg = NocConfig(rows=rows, cols=cols, multicast=args.multicast, buffer_depth=32)
    if args.stages + args.fanout > cfg.n_routers:
        ap.error("--stages + --fanout must not exceed the number of cores")
    tr = pipeline_trace(cfg.n_routers, args.inferences, args.stages, args.compute,
                        args.interval, args.bits, args.fanout)
    res = simulate_noc(cfg, tr)
    t = res.trace
    per = t.task_finish.reshape(args.inferences, args.stages)
    first = t.task_start.reshape(args.inferences, args.stages)[:, 0]
    latency = per[:, -1] - first  # first stage start to last stage finish
    busy = np.bincount(tr.task_core, weights=t.task_finish - t.task_start,
                       minlength=cfg.n_routers)[: args.stages]
    net = t.msg_deliver - t.msg_create  # per message, all destinations delivered
    out = {
        "cycles": res.cycles,
        "inference_latency_mean": float(latency.mean()),
        "inference_latency_max": int(latency.max()),
        "inferences_per_kcycle": 1000 * args.inferences / float(per[-1, -1] - first[0]),
        "core_busy_fraction": (busy / res.cycles).round(3).tolist(),
        "message_latency_mean": float(net.mean()),
        "flit_hops": res.flit_hops,
        "sim_seconds": res.sim_seconds,
    }
    if args.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            print(f"{k:24s} {v}")
    return out


if __name__ == "__main__":
    run()
