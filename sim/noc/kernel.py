"""The cycle loop of the packet network: one ``@njit`` kernel over structure-of-arrays state.

Each simulated cycle ``c`` runs these phases over all routers (two-phase semantics: nothing a
router does in cycle ``c`` is visible to another router before cycle ``c + 1``):

1. credits whose delay ends at ``c`` reach their output VCs (and free a VC on a tail credit
   when ``wait_for_tail_credit``); flits whose link ends at ``c`` are written into input VC
   buffers (a head at an idle VC gets its route, lookahead: usable ``rc_delay`` cycles later);
2. terminals eject the flits that reach them; a tail completes its packet (statistics, trace
   delivery, task readiness);
3. traffic: Bernoulli / on-off generation, or the trace's task graph (finishing tasks emit
   their messages, idle cores start their next ready task);
4. each source sends at most one flit into its router's local input port;
5. VC allocation, then switch allocation (separable iSLIP or round-robin) per router; a flit
   granted in cycle ``c`` reaches the next router at ``c + sa + st + link`` and its buffer
   slot's credit reaches the upstream router at ``c + st + link + credit_delay``. Multicast
   heads take a VC on every branch at once; their flits fan out in the crossbar
   (:func:`_mc_send`).

Everything the kernel compiles lives in this one file on purpose: Numba's on-disk cache
only checks the file of the cached function, so a kernel spread over modules could silently
run a stale copy of a changed helper.

Indices: input VC ``q = (r * 5 + port) * V + vc``, its fields ``vs[q * NF + F_*]`` (one
cache line per VC), its buffer slots ``q * D + i``; output VCs use the same numbering with the
output port, fields ``ovs[oq * NO + O_*]``. Delayed events (flits on links, credits) sit in
wheels indexed by ``cycle % W``, with per-slot event lists so a cycle only visits what
arrives; bit masks of non-empty and VA-waiting VCs per input port keep the allocators off idle
VCs. Indices into arrays go through :func:`_ix` (unsigned: no negative-index wrap-around).
Random numbers: one splitmix64 stream per node, seeded from the caller's
``numpy.random.Generator``, so results do not depend on anything but config and seed;
Bernoulli sources draw the geometric gap to their next packet (:func:`_gap`).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

__all__ = [
    "KernelState",
    "run_cycles",
]

P = 5  # ports per router
OPP = (0, 2, 1, 4, 3)
HIST = 8192  # latency histogram bins of one cycle; the last bin holds everything above

# --------------------------------------------------------------------- parameter indices (par)
N_, V_, D_, S_, W_, RC, VA, SA, ST, LINK, CD, WAIT, ROWS, COLS, TORUS, ROUTING = range(16)
VALLOC, SALLOC, ITERS, MODE, PATTERN, BURST, WARM, MEND, DRAIN, WATCHDOG, MC = range(16, 27)
N_PAR = 27
MODE_SYNTH, MODE_TRACE = 0, 1

# ------------------------------------------------------- fields of a virtual channel
# Input VC (vs, NF int32 each, one cache line): state (0 idle, 1 head waiting for VA, 2
# active: holds an output VC), buffered flits, buffer head slot, cycle from which the front
# flit may be allocated, route (output port, VC range [lo, hi)), granted output VC, multicast
# branch-port mask (0 = unicast) and front flit index, VA accept pointer. Output VC (ovs, NO
# int32 each, an output port's VCs side by side): allocated to a packet, credits, VA grant
# pointer.
F_IST, F_BN, F_BH, F_IRDY, F_IOUT, F_IOVC, F_ILO, F_IHI, F_IMC, F_IFRONT, F_VA_A = range(11)
NF = 16
O_BUSY, O_CRED, O_VA_G = range(3)  # fields of an output VC (ovs)
NO = 4

# --------------------------------------------------------------------- scalar counter indices
(
    C_NOW, C_FLIT_HOPS, C_INJ, C_EJ, C_GEN_PKT, C_TAG_OUT, C_PROGRESS, C_IN_NET, C_FREE,
    C_QUEUED, C_M_GEN_FLITS, C_T_DONE, C_T_PKT, C_T_NET, C_T_FLITS, C_T_HOPS,
    C_REL, C_MSG_DONE, C_TASK_DONE, C_CRED, C_RUNNING, C_HEAPED, C_T_PKT2,
    C_T_NET2, C_MAXLAT, C_GEN_FLITS, C_T_FLITSUM, C_NEXT_EV, C_REPL,
) = range(29)
N_CNT = 32
_NEVER = np.int64(2**62)

# kernel exit codes
ST_END, ST_GROW, ST_STALL, ST_DONE, ST_TRACE_STALL = range(5)

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_U30, _U27, _U31, _U11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)
_INV53 = 1.0 / 9007199254740992.0
_ONE = np.uint64(1)
_U58 = np.uint64(58)
_DEBRUIJN = np.uint64(0x03F79D71B4CB0A89)  # index of a single set bit by multiplication
_LOW_BIT = np.array([(i & -i).bit_length() - 1 for i in range(1 << P)], np.int64)
_DB_IDX = np.zeros(64, np.int64)
for _i in range(64):
    _DB_IDX[((1 << _i) * 0x03F79D71B4CB0A89 & 0xFFFFFFFFFFFFFFFF) >> 58] = _i


class KernelState(NamedTuple):
    """Every array the kernel reads or writes (see the module docstring for the layouts)."""

    par: np.ndarray  # int64 (N_PAR,)
    cnt: np.ndarray  # int64 (N_CNT,) scalar counters
    link_to: np.ndarray  # int32 (N * 5,) input port (router * 5 + port) behind each output
    # virtual channels: NF int32 fields per input VC (F_*), NO per output VC (O_*)
    vs: np.ndarray
    ovs: np.ndarray
    # input VC buffers: (packet, flit index) per slot; arrival cycles (kept only with rc > 0)
    buf: np.ndarray
    bt: np.ndarray
    isent: np.ndarray  # multicast: (VC, port) next flit index to send on that branch
    iovm: np.ndarray  # multicast: (VC, port) output VC of that branch
    # wheels: links (per input port) and ejection (per router) hold (packet, flit index, VC)
    # per slot; credits (per output port, and per source) hold a count and 2 * VC + tail each
    lnk: np.ndarray
    ejw: np.ndarray
    cwn: np.ndarray
    cwq: np.ndarray
    swn: np.ndarray
    swq: np.ndarray
    # sources
    sbusy: np.ndarray
    scred: np.ndarray
    scur: np.ndarray
    sfi: np.ndarray
    svc: np.ndarray
    srr: np.ndarray
    qhead: np.ndarray
    qtail: np.ndarray
    src_busy: np.ndarray  # uint64 bit mask of the sources with a packet queued or under way
    # switch allocator pointers (the VC allocator's are fields F_VA_A and O_VA_G)
    sa_g: np.ndarray
    sa_a: np.ndarray
    sa_v: np.ndarray
    # packets (pool with a free-list stack)
    p_src: np.ndarray
    p_dst: np.ndarray
    p_size: np.ndarray
    p_ctime: np.ndarray
    p_itime: np.ndarray
    p_hops: np.ndarray
    p_tag: np.ndarray
    p_dent: np.ndarray
    p_mc: np.ndarray  # 1 for a tree-replicated multicast packet
    p_dcnt: np.ndarray  # destinations of a multicast packet (entries p_dent ...)
    p_copies: np.ndarray  # copies still to deliver
    p_next: np.ndarray
    free: np.ndarray
    # synthetic traffic
    rng: np.ndarray  # uint64 (N,) splitmix64 states
    gen_prob: np.ndarray  # float64 (3,): p(packet per cycle) [, burst off->on, on->off]
    perm: np.ndarray  # int32 (N,) fixed destinations (permutation patterns)
    hot: np.ndarray  # int32 hotspot routers
    hot_frac: np.ndarray  # float64 (1,)
    burst_on: np.ndarray  # uint8 (N,)
    gen_next: np.ndarray  # int64 (N,) next cycle a Bernoulli source generates (-1: not drawn)
    size_flits: np.ndarray  # int32 (1,) packet flits of synthetic traffic
    # statistics
    acc: np.ndarray  # ejected flits per node in the window
    occ: np.ndarray  # flits buffered per router now
    vawait: np.ndarray  # input VCs waiting for VC allocation per router
    pvm: np.ndarray  # uint64 bit mask of the non-empty VCs of each input port
    vwm: np.ndarray  # uint64 bit mask of the VCs of each input port whose head waits for VA
    # events per wheel slot: link arrivals (router*5+port), ejections (router), credits to
    # output ports (router*5+port) and to sources (router)
    ev_ln: np.ndarray
    ev_ln_n: np.ndarray
    ev_ej: np.ndarray
    ev_ej_n: np.ndarray
    ev_cr: np.ndarray
    ev_cr_n: np.ndarray
    ev_sc: np.ndarray
    ev_sc_n: np.ndarray
    occ_sum: np.ndarray  # sum over window cycles
    link_flits: np.ndarray  # (N * 5,) flits sent per output port in the window
    h_pkt: np.ndarray
    h_net: np.ndarray
    h_flit: np.ndarray
    # trace: tasks
    t_core: np.ndarray
    t_es: np.ndarray
    t_dur: np.ndarray
    t_left: np.ndarray
    t_ready: np.ndarray
    t_start: np.ndarray
    t_finish: np.ndarray
    t_mptr: np.ndarray
    t_midx: np.ndarray
    hp_off: np.ndarray  # per-core heap segment offsets (N + 1)
    hp_n: np.ndarray
    hp_cyc: np.ndarray
    hp_task: np.ndarray
    core_run: np.ndarray
    core_fin: np.ndarray
    # trace: messages
    m_src: np.ndarray
    m_flits: np.ndarray
    m_dptr: np.ndarray
    m_dst: np.ndarray
    m_dtask: np.ndarray
    m_order: np.ndarray  # messages without producer, by (cycle, index)
    m_cycle: np.ndarray
    m_create: np.ndarray
    m_inject: np.ndarray
    m_deliver: np.ndarray
    m_left: np.ndarray
    d_deliver: np.ndarray
    d_msg: np.ndarray  # the message of each destination entry


# ----------------------------------------------------------------------------- small helpers


@njit(cache=True, inline="always", error_model="numpy")
def _rand(rng, n):
    """Next splitmix64 output of node ``n``'s stream, as a float in [0, 1)."""
    z = rng[n] + _GOLDEN
    rng[n] = z
    z = (z ^ (z >> _U30)) * _MIX1
    z = (z ^ (z >> _U27)) * _MIX2
    z = z ^ (z >> _U31)
    return float(z >> _U11) * _INV53


@njit(cache=True, inline="always", error_model="numpy")
def _gap(rng, n, p, log_miss):
    """Cycles from one success of node n's Bernoulli(p) trials to the next (geometric, >= 1)."""
    if p >= 1.0:
        return 1
    if p <= 0.0:
        return _NEVER
    k = np.log1p(-_rand(rng, n)) / log_miss
    return 1 + int(min(k, 4.0e18))


@njit(cache=True, inline="always", error_model="numpy")
def _ix(i):
    """An array index as unsigned. Numba maps a signed index ``i < 0`` to ``i + len``, a
    compare and add on every access and the array's length kept live; the kernel's indices are
    never negative, and without that wrap-around the cycle loop runs about 12 % faster."""
    return np.uint64(i)


@njit(cache=True, inline="always", error_model="numpy")
def _va_grant(vs, ovs, vawait, vwm, matched, base, r, i, oq, ov, ready, first, pv, nv):
    """Input VC ``i`` of router ``r`` (from ``base``) takes output VC ``ov`` (index ``oq``),
    usable from cycle ``ready``; in an allocator's first iteration the grant and accept
    pointers move past the pair (iSLIP)."""
    q = base + i
    ovs[_ix(oq * NO + O_BUSY)] = 1
    vs[_ix(q * NF + F_IOVC)] = ov
    vs[_ix(q * NF + F_IST)] = 2
    vs[_ix(q * NF + F_IRDY)] = ready
    vawait[_ix(r)] -= 1
    vwm[_ix(r * P + i // nv)] &= ~(_ONE << np.uint64(i % nv))
    matched[_ix(i)] = 1
    if first:
        ovs[_ix(oq * NO + O_VA_G)] = _wrap(i + 1, pv)
        vs[_ix(q * NF + F_VA_A)] = _wrap(ov + 1, nv)


@njit(cache=True, inline="always", error_model="numpy")
def _wrap(x, m):
    """x mod m for x in [-m, 2m) without a division (or a branch)."""
    return x + m * ((x < 0) - (x >= m))


@njit(cache=True, inline="always", error_model="numpy")
def _step(a, b, k, wrap):
    """Direction (+1, -1, 0) from coordinate a to b on a line (or ring) of k routers."""
    if a == b:
        return 0
    if wrap:
        d = (b - a) % k
        return 1 if 2 * d <= k else -1
    return 1 if b > a else -1


@njit(cache=True, error_model="numpy")
def _route(r, src, dst, rows, cols, torus, yx, nv):
    """(output port, first VC, end VC) of a head at router r; dimension order, minimal.

    On a torus the VCs split into two dateline classes per dimension: class 0 before the
    packet crosses that dimension's wrap-around link, class 1 from the crossing hop on
    (Dally & Towles 2004, section 14.2), which breaks the ring's channel-dependency cycle.
    """
    x = r % cols
    y = r // cols
    tx = dst % cols
    ty = dst // cols
    wx = torus and cols >= 3
    wy = torus and rows >= 3
    sx = _step(x, tx, cols, wx)
    sy = _step(y, ty, rows, wy)
    go_x = (sx != 0) if not yx else (sy == 0 and sx != 0)
    half = nv // 2
    if go_x:
        o = 1 if sx > 0 else 2
        if wx:
            x0 = src % cols
            crossed = (x < x0 or x == cols - 1) if sx > 0 else (x > x0 or x == 0)
            return (o, half, nv) if crossed else (o, 0, half)
        return o, 0, nv
    if sy != 0:
        o = 3 if sy > 0 else 4
        if wy:
            y0 = src // cols
            crossed = (y < y0 or y == rows - 1) if sy > 0 else (y > y0 or y == 0)
            return (o, half, nv) if crossed else (o, 0, half)
        return o, 0, nv
    return 0, 0, nv


@njit(cache=True, error_model="numpy")
def _mc_mask(r, p, k0, cnt, m_dst, rows, cols, yx):
    """Output ports of a multicast copy at router r that arrived on input port p.

    The copy serves the destinations of its XY (or YX) tree branch: at the source (p = 0) all
    of them; travelling along the first dimension, those on or beyond this coordinate; along
    the second, those in this column (row) on or beyond this router. Each destination adds
    the port its unicast route takes here (0 = eject).
    """
    x = r % cols
    y = r // cols
    mask = 0
    for k in range(k0, k0 + cnt):
        d = m_dst[k]
        dx = d % cols
        dy = d // cols
        keep = True
        if p != 0:
            along_x = p <= 2  # input ports 1, 2 carry x traffic, 3, 4 y traffic
            a, da, b, db = (x, dx, y, dy) if along_x else (y, dy, x, dx)
            keep = da >= a if p == 2 or p == 4 else da <= a  # on or beyond this router
            if along_x == yx:  # travelling the route's second dimension: this line only
                keep = keep and db == b
        if not keep:
            continue
        o, _, _ = _route(r, 0, d, rows, cols, False, yx, 1)
        mask |= 1 << o
    return mask


# ------------------------------------------------------------------------------- task graph
# Only :func:`_trace` takes the whole state (each function that does costs seconds of
# compilation); the helpers it calls take the few arrays they need.

TR_CYCLE, TR_NEXT = range(2)


@njit(cache=True, error_model="numpy")
def _heap_push(hp_off, hp_n, hp_cyc, hp_task, core, cyc, task):
    """Push task with key (cyc, task) on core's min-heap segment."""
    base = hp_off[core]
    i = hp_n[core]
    hp_n[core] = i + 1
    while i > 0:
        parent = (i - 1) // 2
        pc = hp_cyc[base + parent]
        pt = hp_task[base + parent]
        if pc < cyc or (pc == cyc and pt < task):
            break
        hp_cyc[base + i] = pc
        hp_task[base + i] = pt
        i = parent
    hp_cyc[base + i] = cyc
    hp_task[base + i] = task


@njit(cache=True, error_model="numpy")
def _heap_pop(hp_off, hp_n, hp_cyc, hp_task, core):
    """Pop the task with the smallest (ready cycle, task index) of core's heap."""
    base = hp_off[core]
    top = hp_task[base]
    n = hp_n[core] - 1
    hp_n[core] = n
    cyc = hp_cyc[base + n]
    task = hp_task[base + n]
    i = 0
    while True:
        child = 2 * i + 1
        if child >= n:
            break
        if child + 1 < n:
            a_c = hp_cyc[base + child]
            b_c = hp_cyc[base + child + 1]
            if b_c < a_c or (b_c == a_c and hp_task[base + child + 1] < hp_task[base + child]):
                child += 1
        cc = hp_cyc[base + child]
        ct = hp_task[base + child]
        if cyc < cc or (cyc == cc and task < ct):
            break
        hp_cyc[base + i] = cc
        hp_task[base + i] = ct
        i = child
    hp_cyc[base + i] = cyc
    hp_task[base + i] = task
    return top


@njit(cache=True, error_model="numpy")
def _emit(m, c, cnt, m_src, m_dptr, m_dst, m_flits, m_create, m_left, p_src, p_dst, p_size,
          p_ctime, p_itime, p_hops, p_tag, p_dent, p_next, free, qhead, qtail, p_mc, p_dcnt,
          p_copies, multicast, src_busy):
    """Message m enters its source queue at cycle c: one packet per destination, or one
    tree-replicated packet for all of them with ``multicast``."""
    m_create[m] = c
    ndst = m_dptr[m + 1] - m_dptr[m]
    m_left[m] = ndst
    src = m_src[m]
    mc = multicast and ndst > 1
    for k in range(m_dptr[m], m_dptr[m] + (1 if mc else ndst)):
        top = cnt[C_FREE] - 1
        cnt[C_FREE] = top
        pk = free[top]
        p_src[pk] = src
        p_dst[pk] = m_dst[k]
        p_size[pk] = m_flits[m]
        p_ctime[pk] = c
        p_itime[pk] = -1
        p_hops[pk] = 0
        p_tag[pk] = 1
        p_dent[pk] = k
        p_mc[pk] = 1 if mc else 0
        p_dcnt[pk] = ndst if mc else 1
        p_copies[pk] = ndst if mc else 1
        p_next[pk] = -1
        if qtail[src] >= 0:
            p_next[qtail[src]] = pk
        else:
            qhead[src] = pk
        qtail[src] = pk
        src_busy[src >> 6] |= _ONE << np.uint64(src & 63)
        cnt[C_QUEUED] += 1
        cnt[C_TAG_OUT] += p_copies[pk]
        cnt[C_GEN_FLITS] += m_flits[m]


@njit(cache=True, error_model="numpy")
def _trace(s, what, c, arg):
    """Task-graph events. TR_CYCLE: release timed messages, finish tasks ending at c, start
    ready tasks on idle cores. TR_NEXT: earliest cycle > c at which something happens in an
    idle network (-1 if never). (Deliveries and injections, once per packet, are written out
    in :func:`run_cycles`.)"""
    cnt = s.cnt
    hp_off, hp_n, hp_cyc, hp_task = s.hp_off, s.hp_n, s.hp_cyc, s.hp_task
    if what == TR_NEXT:
        best = -1
        if cnt[C_REL] < s.m_order.shape[0]:
            best = s.m_cycle[s.m_order[cnt[C_REL]]]
        for core in range(s.par[N_]):
            if s.core_run[core] >= 0:
                e = s.core_fin[core]
            elif hp_n[core] > 0:
                e = hp_cyc[hp_off[core]]
            else:
                continue
            if best < 0 or e < best:
                best = e
        return best
    # TR_CYCLE
    n_rel = s.m_order.shape[0]
    while cnt[C_REL] < n_rel:
        m = s.m_order[cnt[C_REL]]
        if s.m_cycle[m] > c:
            break
        _emit(m, c, cnt, s.m_src, s.m_dptr, s.m_dst, s.m_flits, s.m_create, s.m_left,
              s.p_src, s.p_dst, s.p_size, s.p_ctime, s.p_itime, s.p_hops, s.p_tag, s.p_dent,
              s.p_next, s.free, s.qhead, s.qtail, s.p_mc, s.p_dcnt, s.p_copies,
              s.par[MC] == 1, s.src_busy)
        cnt[C_REL] += 1
    nxt = _NEVER
    if cnt[C_REL] < n_rel:
        nxt = s.m_cycle[s.m_order[cnt[C_REL]]]
    if cnt[C_RUNNING] == 0 and cnt[C_HEAPED] == 0:
        cnt[C_NEXT_EV] = nxt
        return 0
    for core in range(s.par[N_]):
        finished = -1
        t = s.core_run[core]
        if t >= 0 and s.core_fin[core] <= c:
            finished = t
            s.core_run[core] = -1
            cnt[C_RUNNING] -= 1
        while True:
            if finished >= 0:
                s.t_finish[finished] = c
                cnt[C_TASK_DONE] += 1
                for j in range(s.t_mptr[finished], s.t_mptr[finished + 1]):
                    _emit(s.t_midx[j], c, cnt, s.m_src, s.m_dptr, s.m_dst, s.m_flits,
                          s.m_create, s.m_left, s.p_src, s.p_dst, s.p_size, s.p_ctime,
                          s.p_itime, s.p_hops, s.p_tag, s.p_dent, s.p_next, s.free, s.qhead,
                          s.qtail, s.p_mc, s.p_dcnt, s.p_copies, s.par[MC] == 1,
                          s.src_busy)
                finished = -1
            if s.core_run[core] >= 0 or hp_n[core] == 0 or hp_cyc[hp_off[core]] > c:
                break
            t = _heap_pop(hp_off, hp_n, hp_cyc, hp_task, core)
            cnt[C_HEAPED] -= 1
            s.t_start[t] = c
            if s.t_dur[t] == 0:
                finished = t
            else:
                s.core_run[core] = t
                s.core_fin[core] = c + s.t_dur[t]
                cnt[C_RUNNING] += 1
        if s.core_run[core] >= 0:
            nxt = min(nxt, s.core_fin[core])
        elif hp_n[core] > 0:
            nxt = min(nxt, hp_cyc[hp_off[core]])
    cnt[C_NEXT_EV] = nxt
    return 0


@njit(cache=True, error_model="numpy")
def _mc_send(s, r, p, v, o, c, measuring, slot_fly, slot_ej, slot_cd):
    """Multicast input VC (r, p, v) sends its next flit on branch o; a buffered flit leaves
    (and its credit goes upstream) once every branch has sent it."""
    par = s.par
    cnt = s.cnt
    nv = par[V_]
    dep = par[D_]
    w = par[W_]
    sp = par[S_]
    n = par[N_]
    nrp = n * P
    q = (r * P + p) * nv + v
    fi = s.isent[_ix(q * P + o)]
    front = _wrap(s.vs[_ix(q * NF + F_BH)] + fi - s.vs[_ix(q * NF + F_IFRONT)], dep)
    pk = s.buf[_ix((q * dep + front) * 2)]
    size = s.p_size[_ix(pk)]
    ov = s.iovm[_ix(q * P + o)]
    oq = (r * P + o) * nv + ov
    s.ovs[_ix(oq * NO + O_CRED)] -= 1
    s.isent[_ix(q * P + o)] = fi + 1
    cnt[C_IN_NET] += 1  # one more copy in flight; the buffered original leaves below
    cnt[C_REPL] += 1
    if o == 0:
        ew = r * w + slot_ej
        s.ev_ej[_ix(slot_ej * n + s.ev_ej_n[_ix(slot_ej)])] = r
        s.ev_ej_n[_ix(slot_ej)] += 1
        s.ejw[_ix(ew * 3)] = pk
        s.ejw[_ix(ew * 3 + 1)] = fi
        s.ejw[_ix(ew * 3 + 2)] = ov
    else:
        drp = s.link_to[_ix(r * P + o)]
        lw = drp * w + slot_fly
        s.ev_ln[_ix(slot_fly * nrp + s.ev_ln_n[_ix(slot_fly)])] = drp
        s.ev_ln_n[_ix(slot_fly)] += 1
        s.lnk[_ix(lw * 3)] = pk
        s.lnk[_ix(lw * 3 + 1)] = fi
        s.lnk[_ix(lw * 3 + 2)] = ov
    if fi == 0:
        s.p_hops[_ix(pk)] += 1
    cnt[C_FLIT_HOPS] += 1
    cnt[C_PROGRESS] = c
    if measuring:
        s.link_flits[_ix(r * P + o)] += 1
    if fi == size - 1 and par[WAIT] == 0:
        s.ovs[_ix(oq * NO + O_BUSY)] = 0
    # flits every branch has sent leave the buffer
    low = size
    for b in range(P):
        if (s.vs[_ix(q * NF + F_IMC)] >> b) & 1:
            low = min(low, s.isent[_ix(q * P + b)])
    while s.vs[_ix(q * NF + F_IFRONT)] < low and s.vs[_ix(q * NF + F_BN)] > 0:
        f = s.vs[_ix(q * NF + F_IFRONT)]
        s.vs[_ix(q * NF + F_IFRONT)] = f + 1
        s.vs[_ix(q * NF + F_BH)] = _wrap(s.vs[_ix(q * NF + F_BH)] + 1, dep)
        s.vs[_ix(q * NF + F_BN)] -= 1
        s.occ[_ix(r)] -= 1
        cnt[C_IN_NET] -= 1
        cnt[C_REPL] -= 1
        tail = f == size - 1
        cnt[C_CRED] += 1
        if p == 0:
            sw = r * w + slot_cd
            k = s.swn[_ix(sw)]
            if k == 0:
                s.ev_sc[_ix(slot_cd * n + s.ev_sc_n[_ix(slot_cd)])] = r
                s.ev_sc_n[_ix(slot_cd)] += 1
            s.swq[_ix(sw * sp + k)] = 2 * v + (1 if tail else 0)
            s.swn[_ix(sw)] = k + 1
        else:
            urp = s.link_to[_ix(r * P + p)]
            cw = urp * w + slot_cd
            k = s.cwn[_ix(cw)]
            if k == 0:
                s.ev_cr[_ix(slot_cd * nrp + s.ev_cr_n[_ix(slot_cd)])] = urp
                s.ev_cr_n[_ix(slot_cd)] += 1
            s.cwq[_ix(cw * sp + k)] = 2 * v + (1 if tail else 0)
            s.cwn[_ix(cw)] = k + 1
        if tail:
            s.vs[_ix(q * NF + F_IMC)] = 0
            s.vs[_ix(q * NF + F_IFRONT)] = 0
            if s.vs[_ix(q * NF + F_BN)] == 0:
                s.vs[_ix(q * NF + F_IST)] = 0
            else:
                npk = s.buf[_ix((q * dep + s.vs[_ix(q * NF + F_BH)]) * 2)]
                s.vs[_ix(q * NF + F_IST)] = 1
                s.vawait[_ix(r)] += 1
                s.vwm[_ix(r * P + p)] |= _ONE << np.uint64(v)
                # (arrival times are only kept with rc > 0; an arrived flit has bt <= c)
                s.vs[_ix(q * NF + F_IRDY)] = c + 1 if par[RC] == 0 else max(
                    c + 1, s.bt[_ix(q * dep + s.vs[_ix(q * NF + F_BH)])] + par[RC])
                rows = par[ROWS]
                cols = par[COLS]
                yx = par[ROUTING] == 1
                if s.p_mc[_ix(npk)] == 1:
                    s.vs[_ix(q * NF + F_IMC)] = _mc_mask(
                        r, p, s.p_dent[_ix(npk)], s.p_dcnt[_ix(npk)], s.m_dst, rows, cols, yx)
                else:
                    o2, lo, hi = _route(r, s.p_src[_ix(npk)], s.p_dst[_ix(npk)], rows, cols,
                                        par[TORUS] == 1, yx, nv)
                    s.vs[_ix(q * NF + F_IOUT)] = o2
                    s.vs[_ix(q * NF + F_ILO)] = lo
                    s.vs[_ix(q * NF + F_IHI)] = hi
            break
    if s.vs[_ix(q * NF + F_BN)] == 0:
        s.pvm[_ix(r * P + p)] &= ~(_ONE << np.uint64(v))


# ------------------------------------------------------------------------------- the cycle loop


@njit(cache=True, error_model="numpy")
def run_cycles(s, c_end):
    """Simulate from cycle ``cnt[C_NOW]`` up to ``c_end`` (exclusive); returns an exit code.

    Stops early with ST_GROW (packet pool nearly full: the caller grows it and calls again),
    ST_STALL (no flit moved for ``watchdog`` cycles with flits in the network), ST_DONE (drain
    mode: every tagged packet delivered; trace mode: every message delivered and every task
    finished) or ST_TRACE_STALL (trace mode: nothing left that could make progress).

    The body is written out in one function over local arrays: a call that passes the state
    tuple costs a reference-count update per array, more than a router's whole cycle.
    """
    par = s.par
    cnt = s.cnt
    link_to = s.link_to
    vs, ovs, buf, bt = s.vs, s.ovs, s.buf, s.bt
    isent, iovm = s.isent, s.iovm
    p_mc, p_dcnt, p_copies, m_dst = s.p_mc, s.p_dcnt, s.p_copies, s.m_dst
    lnk, ejw = s.lnk, s.ejw
    cwn, cwq, swn, swq = s.cwn, s.cwq, s.swn, s.swq
    sbusy, scred, scur, sfi, svc, srr = s.sbusy, s.scred, s.scur, s.sfi, s.svc, s.srr
    qhead, qtail = s.qhead, s.qtail
    sa_g, sa_a, sa_v = s.sa_g, s.sa_a, s.sa_v
    p_src, p_dst, p_size, p_ctime, p_itime = s.p_src, s.p_dst, s.p_size, s.p_ctime, s.p_itime
    p_hops, p_tag, p_dent, p_next, free = s.p_hops, s.p_tag, s.p_dent, s.p_next, s.free
    rng, gen_prob, perm, hot, hot_frac = s.rng, s.gen_prob, s.perm, s.hot, s.hot_frac
    burst_on, gen_next, src_busy = s.burst_on, s.gen_next, s.src_busy
    acc, occ, occ_sum, link_flits = s.acc, s.occ, s.occ_sum, s.link_flits
    vawait, pvm, vwm = s.vawait, s.pvm, s.vwm
    ev_ln, ev_ln_n, ev_ej, ev_ej_n = s.ev_ln, s.ev_ln_n, s.ev_ej, s.ev_ej_n
    ev_cr, ev_cr_n, ev_sc, ev_sc_n = s.ev_cr, s.ev_cr_n, s.ev_sc, s.ev_sc_n
    h_pkt, h_net, h_flit = s.h_pkt, s.h_net, s.h_flit
    m_left, m_deliver, m_inject, m_dtask = s.m_left, s.m_deliver, s.m_inject, s.m_dtask
    d_deliver, t_left, t_es, t_ready, t_core = s.d_deliver, s.t_left, s.t_es, s.t_ready, s.t_core
    d_msg = s.d_msg
    hp_off, hp_n, hp_cyc, hp_task = s.hp_off, s.hp_n, s.hp_cyc, s.hp_task

    n = par[N_]
    nv = par[V_]
    dep = par[D_]
    w = par[W_]
    sp = par[S_]
    rows = par[ROWS]
    cols = par[COLS]
    torus = par[TORUS] == 1
    yx = par[ROUTING] == 1
    rc = par[RC]
    va_d = par[VA]
    cd = par[CD]
    # credit of a flit switched in cycle c: its buffer slot frees after switch traversal, the
    # credit crosses the link back and the upstream router takes credit_delay to process it
    cd_sw = par[ST] + par[LINK] + cd
    # credit of a flit read by a terminal: back over the ejection link, then credit_delay
    cd_ej = par[LINK] + cd
    link = par[LINK]
    fly = par[SA] + par[ST] + par[LINK]
    wait = par[WAIT] == 1
    iters = par[ITERS]
    va_islip = par[VALLOC] == 0
    sa_islip = par[SALLOC] == 0
    pv = P * nv
    pe = P * sp
    nrp = n * P
    trace = par[MODE] == MODE_TRACE
    burst = par[BURST] == 1
    pattern = par[PATTERN]
    pgen = gen_prob[0]
    log_miss = np.log1p(-pgen) if pgen < 1.0 else -np.inf
    size_synth = s.size_flits[0]
    n_hot = hot.shape[0]
    reqs = np.empty(pv, np.int64)
    grant = np.empty(pv, np.int64)
    matched = np.zeros(pv, np.int64)
    mask = np.zeros(pe, np.int64)
    gout = np.empty(P, np.int64)
    reqo = np.zeros(P, np.uint64)
    pick = np.empty(pe, np.int64)
    match_e = np.empty(pe, np.int64)
    first_e = np.empty(pe, np.int64)
    elist = np.empty(pe, np.int64)
    preq = np.empty(pv, np.int64)
    pstart = np.zeros(P + 1, np.int64)
    pfill = np.zeros(P, np.int64)
    vgrp = np.arange(nv) % sp
    vjj = np.arange(nv) // sp  # position of VC v in its crossbar input's group
    e_bidders = np.zeros(pe, np.int64)  # VCs bidding on each crossbar input this cycle
    e_vc = np.zeros(pe, np.int64)  # the last of them
    # crossbar input e = port * sp + group: its port, group and number of VCs in the group
    e_port = np.arange(pe) // sp
    e_grp = np.arange(pe) % sp
    e_ngrp = (nv - e_grp + sp - 1) // sp

    c = cnt[C_NOW]
    while c < c_end:
        if trace:
            if cnt[C_MSG_DONE] == s.m_src.shape[0] and cnt[C_TASK_DONE] == s.t_core.shape[0]:
                cnt[C_NOW] = c
                return ST_DONE
            if cnt[C_IN_NET] == 0 and cnt[C_QUEUED] == 0 and cnt[C_CRED] == 0:
                # the network is empty: skip to the next timed release, finish or start
                nxt = _trace(s, TR_NEXT, c - 1, 0)
                if nxt < 0:
                    cnt[C_NOW] = c
                    return ST_TRACE_STALL
                if nxt > c:
                    c = min(nxt, c_end)
                    cnt[C_PROGRESS] = c
                    continue
        else:
            if cnt[C_FREE] < n:
                cnt[C_NOW] = c
                return ST_GROW
            if par[DRAIN] == 1 and cnt[C_TAG_OUT] == 0:
                cnt[C_NOW] = c
                return ST_DONE
        if cnt[C_IN_NET] > 0 and c - cnt[C_PROGRESS] > par[WATCHDOG]:
            cnt[C_NOW] = c
            return ST_STALL
        measuring = par[WARM] <= c < par[MEND]
        slot = c % w
        slot_cd = (c + cd_sw) % w
        slot_cd_ej = (c + cd_ej) % w
        slot_link = (c + link) % w
        slot_fly = (c + fly) % w
        slot_ej = (c + fly + 1) % w

        # ---- 1. credits whose delay ends now
        if cnt[C_CRED] > 0:
            for ev in range(ev_cr_n[_ix(slot)]):
                rp = ev_cr[_ix(slot * nrp + ev)]
                cw = rp * w + slot
                k = cwn[_ix(cw)]
                for j in range(k):
                    cr = cwq[_ix(cw * sp + j)]  # 2 * VC + (1 for a tail's credit)
                    oq = rp * nv + (cr >> 1)
                    ovs[_ix(oq * NO + O_CRED)] += 1
                    if wait and cr & 1:
                        ovs[_ix(oq * NO + O_BUSY)] = 0
                cnt[C_CRED] -= k
                cwn[_ix(cw)] = 0
            ev_cr_n[_ix(slot)] = 0
            for ev in range(ev_sc_n[_ix(slot)]):
                r = ev_sc[_ix(slot * n + ev)]
                sw = r * w + slot
                k = swn[_ix(sw)]
                for j in range(k):
                    cr = swq[_ix(sw * sp + j)]
                    v = cr >> 1
                    scred[_ix(r * nv + v)] += 1
                    if wait and cr & 1:
                        sbusy[_ix(r * nv + v)] = 0
                cnt[C_CRED] -= k
                swn[_ix(sw)] = 0
            ev_sc_n[_ix(slot)] = 0

        # ---- 1b. flits whose link ends now; 2. ejection at the terminals
        if cnt[C_IN_NET] > 0:
            for ev in range(ev_ln_n[_ix(slot)]):
                rp = ev_ln[_ix(slot * nrp + ev)]
                r = rp // P
                lw = rp * w + slot
                pk = lnk[_ix(lw * 3)]
                lnk[_ix(lw * 3)] = -1
                v = lnk[_ix(lw * 3 + 2)]
                q = rp * nv + v
                if vs[_ix(q * NF + F_BN)] == 0:
                    pvm[_ix(rp)] |= _ONE << np.uint64(v)
                pos = q * dep + _wrap(vs[_ix(q * NF + F_BH)] + vs[_ix(q * NF + F_BN)], dep)
                buf[_ix(pos * 2)] = pk
                buf[_ix(pos * 2 + 1)] = lnk[_ix(lw * 3 + 1)]
                if rc > 0:  # only a head's arrival time matters, and only with rc > 0
                    bt[_ix(pos)] = c
                vs[_ix(q * NF + F_BN)] += 1
                occ[_ix(r)] += 1
                if vs[_ix(q * NF + F_IST)] == 0:
                    # a head at an idle VC: route now (lookahead), VC allocation from c + rc
                    vs[_ix(q * NF + F_IST)] = 1
                    vawait[_ix(r)] += 1
                    vwm[_ix(rp)] |= _ONE << np.uint64(v)
                    vs[_ix(q * NF + F_IRDY)] = c + rc
                    if p_mc[_ix(pk)] == 1:
                        vs[_ix(q * NF + F_IMC)] = _mc_mask(
                            r, rp - r * P, p_dent[_ix(pk)], p_dcnt[_ix(pk)], m_dst, rows, cols, yx)
                        vs[_ix(q * NF + F_IFRONT)] = 0
                    else:
                        o, lo, hi = _route(r, p_src[_ix(pk)], p_dst[_ix(pk)], rows, cols, torus, yx,
                                           nv)
                        vs[_ix(q * NF + F_IOUT)] = o
                        vs[_ix(q * NF + F_ILO)] = lo
                        vs[_ix(q * NF + F_IHI)] = hi
            ev_ln_n[_ix(slot)] = 0
            for ev in range(ev_ej_n[_ix(slot)]):
                r = ev_ej[_ix(slot * n + ev)]
                e = r * w + slot
                pk = ejw[_ix(e * 3)]
                ejw[_ix(e * 3)] = -1
                fi = ejw[_ix(e * 3 + 1)]
                cnt[C_EJ] += 1
                cnt[C_IN_NET] -= 1
                cnt[C_PROGRESS] = c
                if measuring:
                    acc[_ix(r)] += 1
                tagged = p_tag[_ix(pk)] == 1
                if tagged:
                    h_flit[_ix(min(c - p_ctime[_ix(pk)], HIST - 1))] += 1
                    cnt[C_T_FLITS] += 1
                    cnt[C_T_FLITSUM] += c - p_ctime[_ix(pk)]
                tail = fi == p_size[_ix(pk)] - 1
                tc = r * P * w + slot_cd_ej
                kk = cwn[_ix(tc)]
                if kk == 0:
                    ev_cr[_ix(slot_cd_ej * nrp + ev_cr_n[_ix(slot_cd_ej)])] = r * P
                    ev_cr_n[_ix(slot_cd_ej)] += 1
                cwq[_ix(tc * sp + kk)] = 2 * ejw[_ix(e * 3 + 2)] + (1 if tail else 0)
                cwn[_ix(tc)] = kk + 1
                cnt[C_CRED] += 1
                if tail:
                    if tagged:
                        lat = c - p_ctime[_ix(pk)]
                        net = c - p_itime[_ix(pk)]
                        cnt[C_T_DONE] += 1
                        cnt[C_T_PKT] += lat
                        cnt[C_T_PKT2] += lat * lat
                        cnt[C_T_NET] += net
                        cnt[C_T_NET2] += net * net
                        if p_mc[_ix(pk)] == 1:  # this copy's branch of the tree
                            cnt[C_T_HOPS] += (abs(r % cols - p_src[_ix(pk)] % cols)
                                              + abs(r // cols - p_src[_ix(pk)] // cols) + 1)
                        else:
                            cnt[C_T_HOPS] += p_hops[_ix(pk)]
                        cnt[C_MAXLAT] = max(cnt[C_MAXLAT], lat)
                        h_pkt[_ix(min(lat, HIST - 1))] += 1
                        h_net[_ix(min(net, HIST - 1))] += 1
                        cnt[C_TAG_OUT] -= 1
                    kd = p_dent[_ix(pk)]
                    if p_mc[_ix(pk)] == 1:
                        for kk in range(p_dent[_ix(pk)], p_dent[_ix(pk)] + p_dcnt[_ix(pk)]):
                            if m_dst[_ix(kk)] == r:
                                kd = kk
                    if trace:
                        # destination entry kd delivered (written out here: a call that
                        # takes the state tuple costs a reference-count update per array)
                        d_deliver[_ix(kd)] = c
                        mi = d_msg[_ix(kd)]
                        m_left[_ix(mi)] -= 1
                        if m_left[_ix(mi)] == 0:
                            m_deliver[_ix(mi)] = c
                            cnt[C_MSG_DONE] += 1
                        tk = m_dtask[_ix(kd)]
                        if tk >= 0:
                            t_left[_ix(tk)] -= 1
                            if t_left[_ix(tk)] == 0:
                                rdy = max(t_es[_ix(tk)], c)
                                t_ready[_ix(tk)] = rdy
                                _heap_push(hp_off, hp_n, hp_cyc, hp_task, t_core[_ix(tk)], rdy, tk)
                                cnt[C_HEAPED] += 1
                                cnt[C_NEXT_EV] = min(cnt[C_NEXT_EV], rdy)
                    p_copies[_ix(pk)] -= 1
                    if p_copies[_ix(pk)] == 0:
                        free[_ix(cnt[C_FREE])] = pk
                        cnt[C_FREE] += 1
            ev_ej_n[_ix(slot)] = 0

        # ---- 3. traffic
        if trace:
            if c >= cnt[C_NEXT_EV]:
                _trace(s, TR_CYCLE, c, 0)
        else:
            for r in range(n):
                if burst:
                    u = _rand(rng, r)
                    if burst_on[_ix(r)] == 1:
                        if u < gen_prob[2]:
                            burst_on[_ix(r)] = 0
                    elif u < gen_prob[1]:
                        burst_on[_ix(r)] = 1
                    if burst_on[_ix(r)] == 0:
                        continue
                    if _rand(rng, r) >= pgen:
                        continue
                else:
                    # Bernoulli trials, one per cycle, drawn as the geometric gaps between
                    # successes: the same process, one random number per packet
                    g = gen_next[_ix(r)]
                    if g > c:
                        continue
                    if g < 0:  # the first cycle: its first success is gap - 1 cycles on
                        g = c - 1 + _gap(rng, r, pgen, log_miss)
                        gen_next[_ix(r)] = g
                        if g != c:
                            continue
                    gen_next[_ix(r)] = c + _gap(rng, r, pgen, log_miss)
                if pattern == 1:
                    dst = perm[_ix(r)]
                else:
                    dst = -1
                    if pattern == 2 and _rand(rng, r) < hot_frac[0]:
                        dst = hot[_ix(min(int(_rand(rng, r) * n_hot), n_hot - 1))]
                    if dst < 0:
                        dst = min(int(_rand(rng, r) * n), n - 1)
                top = cnt[C_FREE] - 1
                cnt[C_FREE] = top
                pk = free[_ix(top)]
                p_src[_ix(pk)] = r
                p_dst[_ix(pk)] = dst
                p_size[_ix(pk)] = size_synth
                p_ctime[_ix(pk)] = c
                p_itime[_ix(pk)] = -1
                p_hops[_ix(pk)] = 0
                p_tag[_ix(pk)] = 1 if measuring else 0
                p_dent[_ix(pk)] = -1
                p_mc[_ix(pk)] = 0
                p_dcnt[_ix(pk)] = 1
                p_copies[_ix(pk)] = 1
                p_next[_ix(pk)] = -1
                if qtail[_ix(r)] >= 0:
                    p_next[_ix(qtail[_ix(r)])] = pk
                else:
                    qhead[_ix(r)] = pk
                qtail[_ix(r)] = pk
                src_busy[_ix(r >> 6)] |= _ONE << np.uint64(r & 63)
                cnt[C_QUEUED] += 1
                cnt[C_GEN_PKT] += 1
                cnt[C_GEN_FLITS] += size_synth
                if measuring:
                    cnt[C_TAG_OUT] += 1
                    cnt[C_M_GEN_FLITS] += size_synth

        # ---- 4. each source sends at most one flit into its router's local input port
        for word in range(src_busy.shape[0] if cnt[C_QUEUED] > 0 else 0):
            bits = src_busy[_ix(word)]
            while bits != 0:
                # the sources with a packet queued or under way, lowest router first
                low = bits & (~bits + _ONE)
                bits ^= low
                r = word * 64 + _DB_IDX[(low * _DEBRUIJN) >> _U58]
                if scur[_ix(r)] < 0:
                    for j in range(nv):
                        v = _wrap(srr[_ix(r)] + j, nv)
                        if sbusy[_ix(r * nv + v)] == 0 and scred[_ix(r * nv + v)] > 0:
                            pk = qhead[_ix(r)]
                            qhead[_ix(r)] = p_next[_ix(pk)]
                            if qhead[_ix(r)] < 0:
                                qtail[_ix(r)] = -1
                            scur[_ix(r)] = pk
                            sfi[_ix(r)] = 0
                            svc[_ix(r)] = v
                            sbusy[_ix(r * nv + v)] = 1
                            srr[_ix(r)] = _wrap(v + 1, nv)
                            p_itime[_ix(pk)] = c
                            if trace:
                                mi = d_msg[_ix(p_dent[_ix(pk)])]
                                if m_inject[_ix(mi)] < 0:
                                    m_inject[_ix(mi)] = c
                            break
                pk = scur[_ix(r)]
                if pk < 0:
                    continue
                v = svc[_ix(r)]
                if scred[_ix(r * nv + v)] <= 0:
                    continue
                scred[_ix(r * nv + v)] -= 1
                fi = sfi[_ix(r)]
                lw = (r * P) * w + slot_link
                ev_ln[_ix(slot_link * nrp + ev_ln_n[_ix(slot_link)])] = r * P
                ev_ln_n[_ix(slot_link)] += 1
                lnk[_ix(lw * 3)] = pk
                lnk[_ix(lw * 3 + 1)] = fi
                lnk[_ix(lw * 3 + 2)] = v
                cnt[C_INJ] += 1
                cnt[C_IN_NET] += 1
                cnt[C_PROGRESS] = c
                if fi == p_size[_ix(pk)] - 1:
                    if not wait:
                        sbusy[_ix(r * nv + v)] = 0
                    scur[_ix(r)] = -1
                    cnt[C_QUEUED] -= 1
                    if qhead[_ix(r)] < 0:
                        src_busy[_ix(word)] &= ~low
                else:
                    sfi[_ix(r)] = fi + 1

        # ---- 5. VC allocation and switch allocation, router by router
        for r in range(n):
            if occ[_ix(r)] == 0:
                continue
            base = r * pv
            # -- VC allocation: heads waiting for an output VC on their route
            nreq = 0
            ports = 0
            for pp in range(P if vawait[_ix(r)] > 0 else 0):
                mw = vwm[_ix(r * P + pp)]
                while mw != 0:
                    # the VCs of this port whose head waits, lowest first
                    low = mw & (~mw + _ONE)
                    mw ^= low
                    i = pp * nv + _DB_IDX[(low * _DEBRUIJN) >> _U58]
                    q = base + i
                    waiting = vs[_ix(q * NF + F_IST)] == 1 and vs[_ix(q * NF + F_IRDY)] <= c
                    if waiting and vs[_ix(q * NF + F_IMC)] != 0:
                        # multicast head: an output VC on every branch at once, or none
                        ok = True
                        for o in range(P):
                            if (vs[_ix(q * NF + F_IMC)] >> o) & 1:
                                iovm[_ix(q * P + o)] = -1
                                for j in range(nv):
                                    ov = _wrap(vs[_ix(q * NF + F_VA_A)] + j, nv)
                                    if ovs[_ix((base + o * nv + ov) * NO + O_BUSY)] == 0:
                                        iovm[_ix(q * P + o)] = ov
                                        break
                                if iovm[_ix(q * P + o)] < 0:
                                    ok = False
                        if ok:
                            for o in range(P):
                                if (vs[_ix(q * NF + F_IMC)] >> o) & 1:
                                    oq = base + o * nv + iovm[_ix(q * P + o)]
                                    ovs[_ix(oq * NO + O_BUSY)] = 1
                                    isent[_ix(q * P + o)] = 0
                            vs[_ix(q * NF + F_VA_A)] = _wrap(vs[_ix(q * NF + F_VA_A)] + 1, nv)
                            vs[_ix(q * NF + F_IST)] = 2
                            vawait[_ix(r)] -= 1
                            vwm[_ix(r * P + pp)] &= ~low
                            vs[_ix(q * NF + F_IRDY)] = c + va_d
                    elif waiting:
                        reqs[_ix(nreq)] = i
                        nreq += 1
                        matched[_ix(i)] = 0
                        ports |= 1 << vs[_ix((base + i) * NF + F_IOUT)]
            if nreq == 1 and va_islip:
                # one requester: every free output VC on its route grants it, and it accepts
                # the one nearest after its pointer (what the iterations below compute)
                i = reqs[0]
                q = base + i
                for j in range(nv):
                    ov = _wrap(vs[_ix(q * NF + F_VA_A)] + j, nv)
                    if ov < vs[_ix(q * NF + F_ILO)] or ov >= vs[_ix(q * NF + F_IHI)]:
                        continue
                    oq = base + vs[_ix(q * NF + F_IOUT)] * nv + ov
                    if ovs[_ix(oq * NO + O_BUSY)] != 0:
                        continue
                    _va_grant(vs, ovs, vawait, vwm, matched, base, r, i, oq, ov, c + va_d, True,
                              pv, nv)
                    break
                nreq = 0
            for it in range(iters if nreq > 0 else 0):
                if va_islip:
                    # requesters grouped by output port (in input order)
                    if it == 0:
                        for o in range(P + 1):
                            pstart[_ix(o)] = 0
                        for k in range(nreq):
                            pstart[_ix(vs[_ix((base + reqs[_ix(k)]) * NF + F_IOUT)] + 1)] += 1
                        for o in range(P):
                            pstart[_ix(o + 1)] += pstart[_ix(o)]
                            pfill[_ix(o)] = pstart[_ix(o)]
                        for k in range(nreq):
                            o = vs[_ix((base + reqs[_ix(k)]) * NF + F_IOUT)]
                            preq[_ix(pfill[_ix(o)])] = reqs[_ix(k)]
                            pfill[_ix(o)] += 1
                    # grant: every free output VC picks a requester round-robin from its pointer
                    for k in range(nreq):
                        grant[_ix(reqs[_ix(k)])] = -1  # reused below as "accepted output VC"
                    for o in range(P):
                        if not (ports >> o) & 1:
                            continue
                        for ov in range(nv):
                            oq = base + o * nv + ov
                            if ovs[_ix(oq * NO + O_BUSY)] != 0:
                                continue
                            best = -1
                            bestd = pv
                            for k in range(pstart[_ix(o)], pstart[_ix(o + 1)]):
                                i = preq[_ix(k)]
                                q = base + i
                                if (matched[_ix(i)] or ov < vs[_ix(q * NF + F_ILO)]
                                        or ov >= vs[_ix(q * NF + F_IHI)]):
                                    continue
                                d = _wrap(i - ovs[_ix(oq * NO + O_VA_G)], pv)
                                if d < bestd:
                                    bestd = d
                                    best = i
                            if best < 0:
                                continue
                            # accept: the requester keeps the grant nearest its own pointer
                            qb = base + best
                            cur = grant[_ix(best)]
                            a = vs[_ix(qb * NF + F_VA_A)]
                            if cur < 0 or _wrap(ov - a, nv) < _wrap(cur - a, nv):
                                grant[_ix(best)] = ov
                    for k in range(nreq):
                        i = reqs[_ix(k)]
                        ov = grant[_ix(i)]
                        if matched[_ix(i)] or ov < 0:
                            continue
                        oq = base + vs[_ix((base + i) * NF + F_IOUT)] * nv + ov
                        _va_grant(vs, ovs, vawait, vwm, matched, base, r, i, oq, ov, c + va_d,
                                  it == 0, pv, nv)
                else:
                    # input-first: each requester picks its next free VC, output VCs arbitrate
                    for k in range(nreq):
                        i = reqs[_ix(k)]
                        q = base + i
                        grant[_ix(i)] = -1
                        if matched[_ix(i)]:
                            continue
                        span = vs[_ix(q * NF + F_IHI)] - vs[_ix(q * NF + F_ILO)]
                        for j in range(span):
                            lo = vs[_ix(q * NF + F_ILO)]
                            ov = lo + (vs[_ix(q * NF + F_VA_A)] - lo + j) % span
                            oq = base + vs[_ix(q * NF + F_IOUT)] * nv + ov
                            if ovs[_ix(oq * NO + O_BUSY)] == 0:
                                grant[_ix(i)] = ov
                                break
                    for k in range(nreq):
                        i = reqs[_ix(k)]
                        if matched[_ix(i)] or grant[_ix(i)] < 0:
                            continue
                        o = vs[_ix((base + i) * NF + F_IOUT)]
                        ov = grant[_ix(i)]
                        oq = base + o * nv + ov
                        if ovs[_ix(oq * NO + O_BUSY)] != 0:
                            continue
                        best = -1
                        bestd = pv
                        for k2 in range(nreq):
                            i2 = reqs[_ix(k2)]
                            if (matched[_ix(i2)] or grant[_ix(i2)] != ov
                                    or vs[_ix((base + i2) * NF + F_IOUT)] != o):
                                continue
                            d = _wrap(i2 - ovs[_ix(oq * NO + O_VA_G)], pv)
                            if d < bestd:
                                bestd = d
                                best = i2
                        _va_grant(vs, ovs, vawait, vwm, matched, base, r, best, oq, ov, c + va_d,
                                  it == 0, pv, nv)

            # -- switch allocation over (input port x speedup) crossbar inputs; VC v of an
            #    input port uses crossbar input v % speedup
            nre = 0
            omask = 0
            for p in range(P):
                m = pvm[_ix(r * P + p)]
                while m != 0:
                    # the non-empty VCs of this port, lowest first
                    low = m & (~m + _ONE)
                    m ^= low
                    v = _DB_IDX[(low * _DEBRUIJN) >> _U58]
                    q = base + p * nv + v
                    if vs[_ix(q * NF + F_IST)] != 2 or vs[_ix(q * NF + F_IRDY)] > c:
                        continue
                    bids = 0
                    if vs[_ix(q * NF + F_IMC)] == 0:
                        oq = base + vs[_ix(q * NF + F_IOUT)] * nv + vs[_ix(q * NF + F_IOVC)]
                        if ovs[_ix(oq * NO + O_CRED)] > 0:
                            bids = 1 << vs[_ix(q * NF + F_IOUT)]
                    else:
                        size = p_size[_ix(buf[_ix((q * dep + vs[_ix(q * NF + F_BH)]) * 2)])]
                        for o in range(P):
                            f = isent[_ix(q * P + o)]
                            oq = base + o * nv + iovm[_ix(q * P + o)]
                            if ((vs[_ix(q * NF + F_IMC)] >> o) & 1 and f < size
                                    and f < vs[_ix(q * NF + F_IFRONT)] + vs[_ix(q * NF + F_BN)]
                                    and ovs[_ix(oq * NO + O_CRED)] > 0):
                                bids |= 1 << o
                    if bids != 0:
                        e = p * sp + vgrp[_ix(v)]
                        if mask[_ix(e)] == 0:
                            elist[_ix(nre)] = e
                            nre += 1
                            match_e[_ix(e)] = -1
                            e_bidders[_ix(e)] = 0
                        e_bidders[_ix(e)] += 1
                        e_vc[_ix(e)] = v
                        mask[_ix(e)] |= bids
                        omask |= bids
            if nre == 0:
                continue
            matched_o = 0
            if nre == 1:
                # one crossbar input: it takes the requested output nearest after its pointer
                # (both allocators come to this)
                e = elist[0]
                mk = mask[_ix(e)]
                if mk & (mk - 1) == 0:  # one output requested (every unicast VC): that one
                    o = _LOW_BIT[_ix(mk)]
                else:
                    a = sa_a[_ix(r * pe + e)]
                    for j in range(P):
                        o = _wrap(a + j, P)
                        if (mk >> o) & 1:
                            break
                match_e[_ix(e)] = o
                first_e[_ix(e)] = 0
                matched_o = 1 << o
            if nre > 1 and sa_islip and pe <= 64:
                # iSLIP over bit masks of crossbar inputs (the same grants as the loops below)
                for o in range(P):
                    reqo[_ix(o)] = 0
                unm = np.uint64(0)
                for k in range(nre):
                    e = elist[_ix(k)]
                    unm |= _ONE << np.uint64(e)
                    for o in range(P):
                        if (mask[_ix(e)] >> o) & 1:
                            reqo[_ix(o)] |= _ONE << np.uint64(e)
                for it in range(iters):
                    # grant: each requested output picks the input nearest after its pointer
                    gm = 0
                    for o in range(P):
                        gout[_ix(o)] = -1
                        if (matched_o >> o) & 1:
                            continue
                        rq = reqo[_ix(o)] & unm
                        if rq == 0:
                            continue
                        hi = rq & ~((_ONE << np.uint64(sa_g[_ix(r * P + o)])) - _ONE)
                        if hi != 0:
                            rq = hi
                        low = rq & (~rq + _ONE)
                        gout[_ix(o)] = _DB_IDX[(low * _DEBRUIJN) >> _U58]
                        gm |= 1 << o
                    if gm == 0:
                        break
                    # accept: each input takes the grant nearest after its pointer
                    for o0 in range(P):
                        if not (gm >> o0) & 1:
                            continue
                        e = gout[_ix(o0)]
                        if match_e[_ix(e)] >= 0:
                            continue
                        a = sa_a[_ix(r * pe + e)]
                        best = -1
                        for j in range(P):
                            o = _wrap(a + j, P)
                            if (gm >> o) & 1 and gout[_ix(o)] == e:
                                best = o
                                break
                        match_e[_ix(e)] = best
                        first_e[_ix(e)] = it
                        matched_o |= 1 << best
                        unm &= ~(_ONE << np.uint64(e))
            for it in range(iters if nre > 1 and not (sa_islip and pe <= 64) else 0):
                if sa_islip:
                    # grant: each requested output picks the input nearest after its pointer
                    for o in range(P):
                        gout[_ix(o)] = -1
                        if not (omask >> o) & 1 or (matched_o >> o) & 1:
                            continue
                        g = sa_g[_ix(r * P + o)]
                        bestd = pe
                        for k in range(nre):
                            e = elist[_ix(k)]
                            if match_e[_ix(e)] < 0 and (mask[_ix(e)] >> o) & 1:
                                d = _wrap(e - g, pe)
                                if d < bestd:
                                    bestd = d
                                    gout[_ix(o)] = e
                    # accept: each input takes the grant nearest after its pointer
                    for k in range(nre):
                        e = elist[_ix(k)]
                        if match_e[_ix(e)] >= 0:
                            continue
                        a = sa_a[_ix(r * pe + e)]
                        best = -1
                        bestd = P
                        for o in range(P):
                            if gout[_ix(o)] == e:
                                d = _wrap(o - a, P)
                                if d < bestd:
                                    bestd = d
                                    best = o
                        if best >= 0:
                            match_e[_ix(e)] = best
                            first_e[_ix(e)] = it
                            matched_o |= 1 << best
                else:
                    # input-first: each input picks an output, each output one of its pickers
                    for k in range(nre):
                        e = elist[_ix(k)]
                        pick[_ix(e)] = -1
                        if match_e[_ix(e)] >= 0:
                            continue
                        a = sa_a[_ix(r * pe + e)]
                        for j in range(P):
                            o = _wrap(a + j, P)
                            if not (matched_o >> o) & 1 and (mask[_ix(e)] >> o) & 1:
                                pick[_ix(e)] = o
                                break
                    for o in range(P):
                        if (matched_o >> o) & 1:
                            continue
                        g = sa_g[_ix(r * P + o)]
                        best = -1
                        bestd = pe
                        for k in range(nre):
                            e = elist[_ix(k)]
                            if match_e[_ix(e)] < 0 and pick[_ix(e)] == o:
                                d = _wrap(e - g, pe)
                                if d < bestd:
                                    bestd = d
                                    best = e
                        if best >= 0:
                            match_e[_ix(best)] = o
                            first_e[_ix(best)] = it
                            matched_o |= 1 << o
            # -- traversal: each matched crossbar input sends the front flit of one of its VCs
            for k in range(nre):
                e = elist[_ix(k)]
                mask[_ix(e)] = 0
                o = match_e[_ix(e)]
                if o < 0:
                    continue
                p = e_port[_ix(e)]
                grp = e_grp[_ix(e)]
                n_grp = e_ngrp[_ix(e)]
                v = -1
                jj = 0
                q = base + p * nv + e_vc[_ix(e)]
                if e_bidders[_ix(e)] == 1 and vs[_ix(q * NF + F_IMC)] == 0:
                    # the only VC that bid on this input: the scan below would find it
                    v = e_vc[_ix(e)]
                    jj = vjj[_ix(v)]
                start = sa_v[_ix(r * pe + e)]
                for j in range(n_grp if v < 0 else 0):
                    jj = _wrap(start + j, n_grp)
                    q = base + p * nv + grp + jj * sp
                    if (vs[_ix(q * NF + F_IST)] != 2 or vs[_ix(q * NF + F_BN)] == 0
                            or vs[_ix(q * NF + F_IRDY)] > c):
                        continue
                    if vs[_ix(q * NF + F_IMC)] == 0:
                        oq = base + o * nv + vs[_ix(q * NF + F_IOVC)]
                        if vs[_ix(q * NF + F_IOUT)] == o and ovs[_ix(oq * NO + O_CRED)] > 0:
                            v = grp + jj * sp
                            break
                    else:
                        f = isent[_ix(q * P + o)]
                        size = p_size[_ix(buf[_ix((q * dep + vs[_ix(q * NF + F_BH)]) * 2)])]
                        oq = base + o * nv + iovm[_ix(q * P + o)]
                        if ((vs[_ix(q * NF + F_IMC)] >> o) & 1 and f < size
                                and f < vs[_ix(q * NF + F_IFRONT)] + vs[_ix(q * NF + F_BN)]
                                and ovs[_ix(oq * NO + O_CRED)] > 0):
                            v = grp + jj * sp
                            break
                if first_e[_ix(e)] == 0:
                    sa_g[_ix(r * P + o)] = _wrap(e + 1, pe)
                    sa_a[_ix(r * pe + e)] = _wrap(o + 1, P)
                    sa_v[_ix(r * pe + e)] = _wrap(jj + 1, n_grp)
                q = base + p * nv + v
                if vs[_ix(q * NF + F_IMC)] != 0:
                    # the crossbar input drives every free output that wants the same flit
                    fi = isent[_ix(q * P + o)]
                    branches = 1 << o
                    for b in range(P):
                        ob = base + b * nv + iovm[_ix(q * P + b)]
                        if (b != o and (vs[_ix(q * NF + F_IMC)] >> b) & 1
                                and not (matched_o >> b) & 1 and isent[_ix(q * P + b)] == fi
                                and ovs[_ix(ob * NO + O_CRED)] > 0):
                            branches |= 1 << b
                            matched_o |= 1 << b
                    for b in range(P):
                        if (branches >> b) & 1:
                            _mc_send(s, r, p, v, b, c, measuring, slot_fly, slot_ej, slot_cd)
                    continue
                slot_b = q * dep + vs[_ix(q * NF + F_BH)]
                pk = buf[_ix(slot_b * 2)]
                fi = buf[_ix(slot_b * 2 + 1)]
                vs[_ix(q * NF + F_BH)] = _wrap(vs[_ix(q * NF + F_BH)] + 1, dep)
                vs[_ix(q * NF + F_BN)] -= 1
                if vs[_ix(q * NF + F_BN)] == 0:
                    pvm[_ix(r * P + p)] &= ~(_ONE << np.uint64(v))
                occ[_ix(r)] -= 1
                ov = vs[_ix(q * NF + F_IOVC)]
                oq = base + o * nv + ov
                ovs[_ix(oq * NO + O_CRED)] -= 1
                tail = fi == p_size[_ix(pk)] - 1
                # the freed buffer slot's credit goes back upstream
                tc = slot_cd
                cnt[C_CRED] += 1
                if p == 0:
                    sw = r * w + tc
                    k = swn[_ix(sw)]
                    if k == 0:
                        ev_sc[_ix(tc * n + ev_sc_n[_ix(tc)])] = r
                        ev_sc_n[_ix(tc)] += 1
                    swq[_ix(sw * sp + k)] = 2 * v + (1 if tail else 0)
                    swn[_ix(sw)] = k + 1
                else:
                    urp = link_to[_ix(r * P + p)]
                    cw = urp * w + tc
                    k = cwn[_ix(cw)]
                    if k == 0:
                        ev_cr[_ix(tc * nrp + ev_cr_n[_ix(tc)])] = urp
                        ev_cr_n[_ix(tc)] += 1
                    cwq[_ix(cw * sp + k)] = 2 * v + (1 if tail else 0)
                    cwn[_ix(cw)] = k + 1
                # the flit: onto the link, or to the terminal (read one cycle after arrival)
                if o == 0:
                    ew = r * w + slot_ej
                    ev_ej[_ix(slot_ej * n + ev_ej_n[_ix(slot_ej)])] = r
                    ev_ej_n[_ix(slot_ej)] += 1
                    ejw[_ix(ew * 3)] = pk
                    ejw[_ix(ew * 3 + 1)] = fi
                    ejw[_ix(ew * 3 + 2)] = ov
                else:
                    drp = link_to[_ix(r * P + o)]
                    lw = drp * w + slot_fly
                    ev_ln[_ix(slot_fly * nrp + ev_ln_n[_ix(slot_fly)])] = drp
                    ev_ln_n[_ix(slot_fly)] += 1
                    lnk[_ix(lw * 3)] = pk
                    lnk[_ix(lw * 3 + 1)] = fi
                    lnk[_ix(lw * 3 + 2)] = ov
                if fi == 0:
                    p_hops[_ix(pk)] += 1
                cnt[C_FLIT_HOPS] += 1
                cnt[C_PROGRESS] = c
                if measuring:
                    link_flits[_ix(r * P + o)] += 1
                if tail:
                    if not wait:
                        ovs[_ix(oq * NO + O_BUSY)] = 0
                    if vs[_ix(q * NF + F_BN)] == 0:
                        vs[_ix(q * NF + F_IST)] = 0
                    else:
                        # the next packet's head is at the front: VC allocation from c + 1
                        # the next packet's head is at the front: VC allocation from c + 1
                        npk = buf[_ix((q * dep + vs[_ix(q * NF + F_BH)]) * 2)]
                        vs[_ix(q * NF + F_IST)] = 1
                        vawait[_ix(r)] += 1
                        vwm[_ix(r * P + p)] |= _ONE << np.uint64(v)
                        vs[_ix(q * NF + F_IRDY)] = c + 1 if rc == 0 else max(
                            c + 1, bt[_ix(q * dep + vs[_ix(q * NF + F_BH)])] + rc)
                        if p_mc[_ix(npk)] == 1:
                            vs[_ix(q * NF + F_IMC)] = _mc_mask(
                                r, p, p_dent[_ix(npk)], p_dcnt[_ix(npk)], m_dst, rows, cols, yx)
                            vs[_ix(q * NF + F_IFRONT)] = 0
                        else:
                            o2, lo, hi = _route(r, p_src[_ix(npk)], p_dst[_ix(npk)], rows, cols,
                                                torus, yx, nv)
                            vs[_ix(q * NF + F_IOUT)] = o2
                            vs[_ix(q * NF + F_ILO)] = lo
                            vs[_ix(q * NF + F_IHI)] = hi
        if measuring:
            for r in range(n):
                occ_sum[_ix(r)] += occ[_ix(r)]
        c += 1
    cnt[C_NOW] = c
    return ST_END
