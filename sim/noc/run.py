"""``simulate_noc``: build the kernel state, run it in a few large chunks, collect a result.

Measurement as BookSim2 does it: ``warmup`` cycles, then a window of ``measure`` cycles whose
packets are tagged, then a drain that keeps injecting until every tagged packet has left the
network. A run is ``saturated`` when the sources' backlog grows over the window by more than
2 % of the packets created in it, or the drain does not finish within ``max_drain`` cycles;
it then skips the drain and reports the accepted throughput (latencies are of the tagged
packets that arrived, a lower bound). ``cycles=N`` instead runs exactly N cycles with the
window ``[warmup, N)``. Trace runs last until every message is delivered and task finished.
"""

from __future__ import annotations

import time

import numpy as np

from sim.noc import kernel as K
from sim.noc.config import ALLOCATORS, ROUTINGS, NocConfig, NocConfigError
from sim.noc.result import NocResult, TraceTiming
from sim.noc.topology import PORT_NAMES, build_topology
from sim.noc.traffic import SyntheticTraffic, Trace, destination_table

__all__ = ["NocDeadlockError", "simulate_noc"]


class NocDeadlockError(RuntimeError):
    """The watchdog saw no flit move for ``watchdog_cycles`` cycles with flits in flight, or a
    trace's task graph can never complete; the message names the routers and VCs involved."""


_MAX_CYCLE = 2**31 - 2**20  # cycle stamps are int32 in the kernel, with room for delays


def _wheel(config: NocConfig) -> int:
    return max(config.sa_delay + config.st_delay + config.link_latency + 1,
               config.st_delay + config.link_latency + config.credit_delay) + 1


def _link_to(nbr: np.ndarray) -> np.ndarray:
    """Input port index (router * 5 + port) that each output port (router * 5 + port) feeds;
    the ejection port feeds its own router's port 0, missing links give -1."""
    opposite = np.asarray(K.OPP)
    to = nbr.astype(np.int64) * K.P + opposite[None, :]
    return np.where(nbr >= 0, to, -1).astype(np.int32).reshape(-1)


def _wheel_slots(n: int) -> np.ndarray:
    """(packet, flit index, VC) per slot of a flit wheel; packet -1 = empty."""
    slots = np.zeros((n, 3), np.int32)
    slots[:, 0] = -1
    return slots.reshape(-1)


def _build_state(
    config: NocConfig,
    *,
    pool: int,
    rng: np.random.Generator,
    traffic: SyntheticTraffic | None,
    trace: Trace | None,
) -> K.KernelState:
    topo = build_topology(config)
    n, v, d, sp = config.n_routers, config.vcs, config.buffer_depth, config.input_speedup
    sp = min(sp, v)
    w = _wheel(config)
    nq = n * K.P * v
    i32, i64 = np.int32, np.int64
    par = np.zeros(K.N_PAR, i64)
    par[[K.N_, K.V_, K.D_, K.S_, K.W_]] = n, v, d, sp, w
    par[[K.RC, K.VA, K.SA, K.ST, K.LINK, K.CD]] = (
        config.rc_delay, config.va_delay, config.sa_delay, config.st_delay,
        config.link_latency, config.credit_delay,
    )
    par[K.WAIT] = int(config.wait_for_tail_credit)
    par[[K.ROWS, K.COLS, K.TORUS]] = config.rows, config.cols, int(config.topology == "torus")
    par[K.ROUTING] = ROUTINGS[config.routing]
    par[K.VALLOC] = ALLOCATORS[config.vc_allocator]
    par[K.SALLOC] = ALLOCATORS[config.sw_allocator]
    par[K.ITERS] = config.alloc_iters
    par[K.WATCHDOG] = config.watchdog_cycles
    par[K.MC] = int(config.multicast)
    par[K.MEND] = np.iinfo(np.int64).max
    gen_prob = np.zeros(3)
    perm = np.zeros(n, i32)
    hot = np.zeros(1, i32)
    hot_frac = np.zeros(1)
    size = np.ones(1, i32)
    if traffic is not None:
        par[K.MODE] = K.MODE_SYNTH
        table = destination_table(config, traffic.pattern)
        par[K.PATTERN] = 1 if table is not None else (2 if traffic.pattern == "hotspot" else 0)
        if table is not None:
            perm[:] = table
        if traffic.pattern == "hotspot":
            spots = traffic.hotspots or ((config.rows // 2) * config.cols + config.cols // 2,)
            hot = np.asarray(spots, i32)
            if np.any((hot < 0) | (hot >= n)):
                raise NocConfigError(
                    f"hotspots: router outside the {config.rows}x{config.cols} mesh "
                    f"(expected 0..{n - 1}), got {list(spots)}"
                )
            hot_frac[0] = traffic.hotspot_fraction
        par[K.BURST] = int(traffic.burst)
        gen_prob[:] = traffic.packet_probability(), traffic.burst_on, traffic.burst_off
        size[0] = traffic.packet_flits
    else:
        par[K.MODE] = K.MODE_TRACE
    cnt = np.zeros(K.N_CNT, i64)
    cnt[K.C_FREE] = pool
    hist = K.HIST

    # trace arrays (empty placeholders for synthetic runs)
    if trace is not None:
        tr = _trace_arrays(config, trace)
    else:
        tr = _trace_arrays(config, None)

    cnt[K.C_HEAPED] = int(tr["hp_n"].sum())
    vs = np.zeros((nq, K.NF), i32)
    ovs = np.zeros((nq, K.NO), i32)
    ovs[:, K.O_CRED] = d
    buf = np.zeros((nq * d, 2), i32)
    buf[:, 0] = -1
    return K.KernelState(
        par=par, cnt=cnt, link_to=_link_to(topo.nbr),
        vs=vs.reshape(-1), ovs=ovs.reshape(-1), buf=buf.reshape(-1), bt=np.zeros(nq * d, i32),
        isent=np.zeros(nq * K.P, i32), iovm=np.zeros(nq * K.P, i32),
        lnk=_wheel_slots(n * K.P * w), ejw=_wheel_slots(n * w),
        cwn=np.zeros(n * K.P * w, i32), cwq=np.zeros(n * K.P * w * sp, i32),
        swn=np.zeros(n * w, i32), swq=np.zeros(n * w * sp, i32),
        sbusy=np.zeros(n * v, np.int8), scred=np.full(n * v, d, i32),
        scur=np.full(n, -1, i32), sfi=np.zeros(n, i32), svc=np.zeros(n, i32),
        srr=np.zeros(n, i32), qhead=np.full(n, -1, i32), qtail=np.full(n, -1, i32),
        src_busy=np.zeros((n + 63) // 64, np.uint64),
        sa_g=np.zeros(n * K.P, i32), sa_a=np.zeros(n * K.P * sp, i32),
        sa_v=np.zeros(n * K.P * sp, i32),
        p_src=np.zeros(pool, i32), p_dst=np.zeros(pool, i32), p_size=np.ones(pool, i32),
        p_ctime=np.zeros(pool, i64), p_itime=np.zeros(pool, i64), p_hops=np.zeros(pool, i32),
        p_tag=np.zeros(pool, np.int8), p_dent=np.zeros(pool, i64), p_next=np.full(pool, -1, i32),
        p_mc=np.zeros(pool, np.int8), p_dcnt=np.ones(pool, i32), p_copies=np.ones(pool, i32),
        free=np.arange(pool, dtype=i32)[::-1].copy(),
        rng=rng.integers(0, 2**64, size=n, dtype=np.uint64, endpoint=False),
        gen_prob=gen_prob, perm=perm, hot=hot, hot_frac=hot_frac,
        burst_on=np.zeros(n, np.uint8), gen_next=np.full(n, -1, i64), size_flits=size,
        acc=np.zeros(n, i64), occ=np.zeros(n, i64), occ_sum=np.zeros(n, i64),
        vawait=np.zeros(n, i32), pvm=np.zeros(n * K.P, np.uint64),
        vwm=np.zeros(n * K.P, np.uint64),
        ev_ln=np.zeros(w * n * K.P, i32), ev_ln_n=np.zeros(w, i64),
        ev_ej=np.zeros(w * n, i32), ev_ej_n=np.zeros(w, i64),
        ev_cr=np.zeros(w * n * K.P, i32), ev_cr_n=np.zeros(w, i64),
        ev_sc=np.zeros(w * n, i32), ev_sc_n=np.zeros(w, i64),
        link_flits=np.zeros(n * K.P, i64),
        h_pkt=np.zeros(hist, i64), h_net=np.zeros(hist, i64), h_flit=np.zeros(hist, i64),
        **tr,
    )


def _trace_arrays(config: NocConfig, trace: Trace | None) -> dict[str, np.ndarray]:
    i64 = np.int64
    n = config.n_routers
    if trace is None:
        z = np.zeros(0, i64)
        return {
            "t_core": z, "t_es": z, "t_dur": z, "t_left": z, "t_ready": z, "t_start": z, "t_finish": z,
            "t_mptr": np.zeros(1, i64), "t_midx": z, "hp_off": np.zeros(n + 1, i64),
            "hp_n": np.zeros(n, i64), "hp_cyc": z, "hp_task": z, "core_run": np.full(n, -1, i64),
            "core_fin": np.zeros(n, i64), "m_src": z, "m_flits": z, "m_dptr": np.zeros(1, i64), "m_dst": z,
            "m_dtask": z, "m_order": z, "m_cycle": z, "m_create": z, "m_inject": z, "m_deliver": z, "m_left": z,
            "d_deliver": z, "d_msg": z,
        }
    trace.validate(config)
    t, m = trace.n_tasks, trace.n_messages
    core = np.asarray(trace.task_core, i64)
    es = np.asarray(trace.task_start, i64)
    nin = np.asarray(trace.task_inputs, i64)
    prod = np.asarray(trace.msg_producer, i64)
    # messages each task emits, in message order (CSR)
    has = np.flatnonzero(prod >= 0)
    order = has[np.argsort(prod[has], kind="stable")]
    t_mptr = np.zeros(t + 1, i64)
    np.cumsum(np.bincount(prod[has], minlength=t), out=t_mptr[1:])
    # per-core heaps, pre-filled with the tasks that need no input (sorted = a valid heap)
    per_core = np.bincount(core, minlength=n)
    hp_off = np.zeros(n + 1, i64)
    np.cumsum(per_core, out=hp_off[1:])
    hp_cyc = np.zeros(max(t, 1), i64)
    hp_task = np.zeros(max(t, 1), i64)
    hp_n = np.zeros(n, i64)
    t_ready = np.full(t, -1, i64)
    free_tasks = np.flatnonzero(nin == 0)
    free_tasks = free_tasks[np.lexsort((free_tasks, es[free_tasks]))]
    for task in free_tasks:
        c = core[task]
        hp_cyc[hp_off[c] + hp_n[c]] = es[task]
        hp_task[hp_off[c] + hp_n[c]] = task
        hp_n[c] += 1
        t_ready[task] = es[task]
    timed = np.flatnonzero(prod < 0)
    timed = timed[np.lexsort((timed, np.asarray(trace.msg_cycle, i64)[timed]))]
    flits = np.array([config.packet_flits(b) for b in np.asarray(trace.msg_bits)], i64)
    k = int(trace.msg_dst_ptr[-1])
    return {
        "t_core": core, "t_es": es, "t_dur": np.asarray(trace.task_duration, i64), "t_left": nin.copy(),
        "t_ready": t_ready, "t_start": np.full(t, -1, i64), "t_finish": np.full(t, -1, i64),
        "t_mptr": t_mptr, "t_midx": order.astype(i64), "hp_off": hp_off, "hp_n": hp_n, "hp_cyc": hp_cyc,
        "hp_task": hp_task, "core_run": np.full(n, -1, i64), "core_fin": np.zeros(n, i64),
        "m_src": np.asarray(trace.msg_src, i64), "m_flits": flits,
        "m_dptr": np.asarray(trace.msg_dst_ptr, i64), "m_dst": np.asarray(trace.msg_dst, i64),
        "m_dtask": np.asarray(trace.msg_dst_task, i64), "m_order": timed.astype(i64),
        "m_cycle": np.asarray(trace.msg_cycle, i64), "m_create": np.full(m, -1, i64),
        "m_inject": np.full(m, -1, i64), "m_deliver": np.full(m, -1, i64), "m_left": np.zeros(m, i64),
        "d_deliver": np.full(k, -1, i64),
        "d_msg": np.repeat(np.arange(m, dtype=i64), np.diff(np.asarray(trace.msg_dst_ptr, i64))),
    }


def _grow(s: K.KernelState) -> K.KernelState:
    """Double the packet pool; the new ids go on top of the free stack."""
    cap = s.p_src.shape[0]
    new = {}
    for name in ("p_src", "p_dst", "p_size", "p_ctime", "p_itime", "p_hops", "p_tag",
                 "p_dent", "p_next", "p_mc", "p_dcnt", "p_copies"):
        old = getattr(s, name)
        arr = np.zeros(2 * cap, old.dtype)
        arr[:cap] = old
        new[name] = arr
    top = int(s.cnt[K.C_FREE])
    free = np.zeros(2 * cap, s.free.dtype)
    free[:top] = s.free[:top]
    free[top:top + cap] = np.arange(2 * cap - 1, cap - 1, -1)
    s.cnt[K.C_FREE] = top + cap
    return s._replace(free=free, **new)


def _stall_report(config: NocConfig, s: K.KernelState, cycle: int) -> str:
    v, d = config.vcs, config.buffer_depth
    vcs = s.vs.reshape(-1, K.NF)
    held = np.flatnonzero(vcs[:, K.F_BN] > 0)
    lines = []
    for q in held[:12]:
        r, rest = divmod(int(q), 5 * v)
        p, vc = divmod(rest, v)
        ist, o, ovc = (int(x) for x in vcs[q, [K.F_IST, K.F_IOUT, K.F_IOVC]])
        state = ("idle", "waiting for a VC", "active")[ist]
        oq = (r * 5 + o) * v + ovc
        lines.append(
            f"router {r} (x={r % config.cols}, y={r // config.cols}) input {PORT_NAMES[p]} "
            f"VC {vc}: {int(vcs[q, K.F_BN])}/{d} flits, {state}, wants output {PORT_NAMES[o]}"
            + (f" VC {ovc} ({int(s.ovs[oq * K.NO + K.O_CRED])} credits)" if ist == 2 else "")
        )
    more = f"\n  ... and {held.size - 12} more VCs" if held.size > 12 else ""
    return (
        f"network stalled: no flit moved for {config.watchdog_cycles} cycles at cycle {cycle} "
        f"with {int(s.cnt[K.C_IN_NET])} flits in flight (deadlock); blocked VCs:\n  "
        + "\n  ".join(lines) + more
    )


def _advance(config, s, c_end, timer):
    """Run the kernel to ``c_end`` or an early stop, growing the pool as needed."""
    while True:
        t0 = time.perf_counter()
        code = K.run_cycles(s, c_end)
        timer[0] += time.perf_counter() - t0
        if code == K.ST_GROW:
            s = _grow(s)
            continue
        if code == K.ST_STALL:
            raise NocDeadlockError(_stall_report(config, s, int(s.cnt[K.C_NOW])))
        return s, code


def simulate_noc(
    config: NocConfig,
    traffic: SyntheticTraffic | Trace,
    *,
    seed: int = 0,
    warmup: int = 3000,
    measure: int = 5000,
    cycles: int | None = None,
    max_drain: int = 50000,
    max_cycles: int = 10_000_000,
) -> NocResult:
    """Simulate ``config`` under ``traffic`` and return its statistics.

    ``seed`` seeds a ``numpy.random.Generator`` from which the per-node streams of the kernel
    are drawn; results depend only on (config, traffic, seed, warmup, measure, cycles).
    For a :class:`Trace`, the run ends when the task graph completes (at most ``max_cycles``).
    """
    if not isinstance(config, NocConfig):
        raise TypeError("config must be a NocConfig")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise NocConfigError(f"seed: expected an integer >= 0, got {seed!r}")
    for name, val, lo in (("warmup", warmup, 0), ("measure", measure, 1),
                          ("max_drain", max_drain, 0)):
        if isinstance(val, bool) or not isinstance(val, int) or val < lo:
            raise NocConfigError(f"{name}: expected an integer >= {lo}, got {val!r}")
    if cycles is not None and (not isinstance(cycles, int) or cycles < 1):
        raise NocConfigError(f"cycles: expected an integer >= 1, got {cycles!r}")
    is_trace = isinstance(traffic, Trace)
    last = max_cycles if is_trace else (cycles if cycles is not None
                                        else warmup + measure + max_drain)
    if last > _MAX_CYCLE:
        raise NocConfigError(
            f"run length: the kernel keeps cycles as int32, so a run must end before cycle "
            f"{_MAX_CYCLE:,}; got {last:,} (max_cycles, cycles or warmup + measure + max_drain)"
        )
    rng = np.random.default_rng(seed)
    if not is_trace and not isinstance(traffic, SyntheticTraffic):
        raise TypeError("traffic must be a SyntheticTraffic or a Trace")
    if is_trace:
        pool = max(1, int(traffic.msg_dst_ptr[-1]))
        s = _build_state(config, pool=pool, rng=rng, traffic=None, trace=traffic)
    else:
        pool = max(1024, 4 * config.n_routers)
        s = _build_state(config, pool=pool, rng=rng, traffic=traffic, trace=None)
    timer = [0.0]
    K.run_cycles(s, 0)  # compile (or load from cache) outside the timed loop
    saturated = False
    drained = True
    if is_trace:
        s.par[K.WARM], s.par[K.MEND] = 0, max_cycles
        s, code = _advance(config, s, max_cycles, timer)
        if code == K.ST_TRACE_STALL:
            waiting = np.flatnonzero(s.t_start < 0)[:10].tolist()
            raise NocDeadlockError(
                f"trace cannot complete at cycle {int(s.cnt[K.C_NOW])}: tasks {waiting} wait "
                "for inputs that are never produced (a cycle in the task graph?)"
            )
        if code != K.ST_DONE:
            raise NocDeadlockError(f"trace not complete after max_cycles={max_cycles} cycles")
        window = (0, int(s.cnt[K.C_NOW]))
    elif cycles is not None:
        if warmup >= cycles:
            warmup = cycles // 4
        s.par[K.WARM], s.par[K.MEND] = warmup, cycles
        s, _ = _advance(config, s, cycles, timer)
        window = (warmup, cycles)
        drained = int(s.cnt[K.C_TAG_OUT]) == 0
    else:
        mend = warmup + measure
        s.par[K.WARM], s.par[K.MEND] = warmup, mend
        s, _ = _advance(config, s, warmup, timer)
        backlog0 = int(s.cnt[K.C_QUEUED])
        s, _ = _advance(config, s, mend, timer)
        growth = int(s.cnt[K.C_QUEUED]) - backlog0
        made = int(s.cnt[K.C_M_GEN_FLITS]) / max(1, traffic.packet_flits)
        saturated = growth > 0.02 * made + 2 * config.n_routers
        window = (warmup, mend)
        if not saturated:
            s.par[K.DRAIN] = 1
            s, code = _advance(config, s, mend + max_drain, timer)
            if code != K.ST_DONE:
                saturated = True
        drained = int(s.cnt[K.C_TAG_OUT]) == 0
    return _collect(config, s, traffic, seed, window, timer[0], saturated, drained)


def _collect(config, s, traffic, seed, window, seconds, saturated, drained) -> NocResult:
    c = s.cnt
    n = config.n_routers
    span = max(1, window[1] - window[0])
    done = int(c[K.C_T_DONE])
    nan = float("nan")
    mean = (lambda x: float(x) / done) if done else (lambda x: nan)
    var = mean(c[K.C_T_PKT2]) - mean(c[K.C_T_PKT]) ** 2 if done else nan
    acc = s.acc / span
    if isinstance(traffic, Trace):
        tdesc = {"kind": "trace", "messages": traffic.n_messages, "tasks": traffic.n_tasks}
        timing = TraceTiming(
            msg_create=s.m_create.copy(), msg_inject=s.m_inject.copy(),
            msg_deliver=s.m_deliver.copy(), dst_deliver=s.d_deliver.copy(),
            msg_tag=np.asarray(traffic.msg_tag).copy(), task_ready=s.t_ready.copy(),
            task_start=s.t_start.copy(), task_finish=s.t_finish.copy(),
        )
        offered = float(c[K.C_GEN_FLITS]) / (n * span)
    else:
        tdesc = {"kind": "synthetic", "pattern": traffic.pattern, "rate": traffic.rate,
                 "rate_unit": traffic.rate_unit, "packet_flits": traffic.packet_flits,
                 "burst": traffic.burst}
        timing = None
        offered = float(c[K.C_M_GEN_FLITS]) / (n * span)
    return NocResult(
        config=config, traffic=tdesc, seed=int(seed), cycles=int(c[K.C_NOW]),
        window=(int(window[0]), int(window[1])), sim_seconds=seconds, saturated=bool(saturated),
        drained=bool(drained), packets=done,
        packet_latency=mean(c[K.C_T_PKT]), network_latency=mean(c[K.C_T_NET]),
        flit_latency=float(c[K.C_T_FLITSUM]) / max(1, int(c[K.C_T_FLITS])) if done else nan,
        packet_latency_std=float(np.sqrt(max(var, 0.0))) if done else nan,
        max_packet_latency=int(c[K.C_MAXLAT]), avg_hops=mean(c[K.C_T_HOPS]),
        offered_rate=offered, accepted_rate=float(acc.mean()), accepted_min=float(acc.min()),
        accepted_per_node=acc, link_flits=s.link_flits.reshape(n, 5).copy(),
        buffer_occupancy=s.occ_sum / span,
        packet_latency_hist=s.h_pkt.copy(), network_latency_hist=s.h_net.copy(),
        flit_latency_hist=s.h_flit.copy(), flit_hops=int(c[K.C_FLIT_HOPS]),
        injected_flits=int(c[K.C_INJ]), ejected_flits=int(c[K.C_EJ]),
        replicated_flits=int(c[K.C_EJ]) - int(c[K.C_INJ]) + int(c[K.C_IN_NET]), trace=timing,
    )
