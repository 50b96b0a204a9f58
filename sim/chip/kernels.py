"""Numba kernels of the functional chip simulation (float32 data, one pass per job).

What runs here, per layer and batch chunk (the matrix products themselves are BLAS calls in
:mod:`sim.chip.functional`):

- :func:`dac_tiles` / :func:`dac_codes_kernel` / :func:`dac_plane`: input DAC (multilevel codes
  or sign-magnitude bit planes), cut into zero-padded row tiles, plus the squared inputs that
  the read-noise variance product needs.
- :func:`adc_accumulate`: the fused per-tile post-processing. Column currents ``I`` get their
  read noise (``sqrt(V + (noise_lsb * LSB)**2) * z``, exact in distribution, see
  docs/simulation.md), go through the ADC (clip + round onto ``2**bits`` levels) and are added,
  times a digital weight, into the partial-sum accumulators; partial sums of row tiles other
  than the first are saturated at ``psum_bits`` (:func:`psum_finish` for bit-serial inputs).
- :func:`route_slots`: the digital ScRRAMBLe routing in a fixed summation order.
- :func:`decode_outputs`: offset-reference subtraction, rescale to weight units, bias,
  activation and activation quantisation, in place.

Random numbers. The kernels need one standard normal per ADC conversion (hundreds of millions
per run), so the normals come from a counter-based generator inside the kernels instead of a
``numpy.random.Generator`` call per value: Philox4x32-10 (Salmon et al., "Parallel random
numbers: as easy as 1, 2, 3", SC 2011) keyed by 64 bits that the caller draws from its seeded
``numpy.random.Generator``, turned into normals by a vectorised float32 Box-Muller transform
(section "normals" below). Each value is a pure function of (key, stream, counter row, *global*
sample index), so results do not depend on the thread count, on how rows are split into jobs,
or on how a dataset is split into shards and batch chunks.
Measured on the development machine (one core): numba's ``Generator.standard_normal`` inside
a kernel costs about 2.4 ns per value, numpy's vectorised float32 ``standard_normal`` about
8 ns, a scalar ziggurat on Philox words about 1.1 ns, Philox + vectorised Box-Muller about
0.8 ns -- the difference that makes exact per-read noise affordable.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

# ----------------------------------------------------------------------------- Philox4x32-10

_PHILOX_M0 = np.uint64(0xD2511F53)
_PHILOX_M1 = np.uint64(0xCD9E8D57)
_PHILOX_W0 = np.uint32(0x9E3779B9)
_PHILOX_W1 = np.uint32(0xBB67AE85)
_LOW32 = np.uint64(0xFFFFFFFF)
_SHIFT32 = np.uint64(32)


@njit(cache=True, inline="always", error_model="numpy")
def _philox(c0, c1, c2, c3, k0, k1):
    """Philox4x32 with 10 rounds: counter (c0..c3) and key (k0, k1), all uint32."""
    for _ in range(10):
        p0 = np.uint64(c0) * _PHILOX_M0
        p1 = np.uint64(c2) * _PHILOX_M1
        hi0 = np.uint32(p0 >> _SHIFT32)
        lo0 = np.uint32(p0 & _LOW32)
        hi1 = np.uint32(p1 >> _SHIFT32)
        lo1 = np.uint32(p1 & _LOW32)
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
        k0 = np.uint32(k0 + _PHILOX_W0)
        k1 = np.uint32(k1 + _PHILOX_W1)
    return c0, c1, c2, c3


@njit(cache=True, error_model="numpy")
def _philox_block(counter, key):
    out = np.empty(4, np.uint32)
    a, b, c, d = _philox(
        np.uint32(counter[0]),
        np.uint32(counter[1]),
        np.uint32(counter[2]),
        np.uint32(counter[3]),
        np.uint32(key[0]),
        np.uint32(key[1]),
    )
    out[0], out[1], out[2], out[3] = a, b, c, d
    return out


def philox4x32(counter, key) -> np.ndarray:
    """One Philox4x32-10 block (4 uint32) for a 4-word counter and 2-word key (for tests)."""
    c = np.asarray(counter, dtype=np.uint64).astype(np.uint32)
    k = np.asarray(key, dtype=np.uint64).astype(np.uint32)
    if c.shape != (4,) or k.shape != (2,):
        raise ValueError(f"counter must hold 4 and key 2 words, got {c.shape} and {k.shape}")
    return _philox_block(c, k)


# ----------------------------------------------------------------------------- normals
#
# Box-Muller (Box & Muller, Ann. Math. Stat. 29, 1958) in float32 with branch-free polynomial
# logarithm and sine / cosine, so that the loops vectorise.
#
# Keying by sample. A row (one column read of one tile, or the calibration of one) has one
# normal per *global* sample index g, so that any split of a dataset into shards and batch
# chunks draws the same normal for the same sample. Samples come in groups of GROUP = 256
# (group m: g = 256m .. 256m + 255); group m takes its 128 radius words w1 from the Philox
# blocks (64m + b, row, stream, 0), b = 0..31, and its 128 angle words w2 from the blocks
# (64m + 32 + b, row, stream, 0); pair p < 128 gives the samples g = 256m + p and
# 256m + 128 + p:
#   L = -2 ln(u), u = (w1 + 1/2) 2^-32, theta = 2 pi (w2 + 1/2) 2^-32,
#   z_{256m+p} = sqrt(L) cos(theta), z_{256m+128+p} = sqrt(L) sin(theta).
# (Each half of a group is one contiguous span of 128 samples with contiguous radius / angle
# words, so the conversion loops vectorise; the forward pass works in aligned blocks of 1024.)
# ln(u) is computed without cancellation: for u >= 1/2 from q = 1 - u (exact from the integer),
# for u < 1/2 after exact power-of-two scaling; either way the argument m of the final
# ln(m) = -2 atanh((1 - m) / (1 + m)) lies in [1/sqrt(2), sqrt(2)), 1 - m is exact (Sterbenz),
# and the atanh series to t^9 (|t| <= 0.1716) is truncated below 3e-9. The angle is split into
# a quadrant (top two bits) and phi in (-pi/4, pi/4) with Taylor series to phi^9 / phi^10
# (truncation < 3e-9). All results agree with float64 Box-Muller to a few float32 ulps (tested).
# u = 2^-33 (w1 = 0, probability 2^-32) would cap the radius at 6.8; such pairs extend u with
# further words of the spare blocks (P, row, stream, a >= 1), P = 128m + p the global pair
# index (u = (w + 1/2) 2^-64, ...), so the tail is not truncated.

_F = np.float32
_LN2 = np.float32(math.log(2.0))
_PI_2 = np.float32(math.pi / 2.0)
_SQRT_HALF = np.float32(math.sqrt(0.5))
_TWO_M32 = 2.0**-32
GROUP = 256  # samples per group of normals (128 pairs)
HALF = 128


@njit(cache=True, inline="always", error_model="numpy")
def _groups(s0, n):
    """(first group, number of groups) covering the global samples s0 .. s0 + n - 1."""
    g0 = s0 // GROUP
    return g0, (s0 + n - 1) // GROUP - g0 + 1


@njit(cache=True, inline="always", error_model="numpy")
def _row_words(wbuf, g0, ng, row, stream, k0, k1):
    """wbuf[:GROUP ng] = the words of Philox blocks (GROUP / 4 g0 + q, row, stream, 0) in
    counter order: group g0 + gi's HALF radius words at wbuf[GROUP gi : GROUP gi + HALF], its
    HALF angle words right after (see the section comment)."""
    r32 = np.uint32(row)
    s32 = np.uint32(stream)
    zero = np.uint32(0)
    per = GROUP // 4  # Philox blocks per group
    first = per * g0
    for q in range(per * ng):
        a, b, c, d = _philox(np.uint32(first + q), r32, s32, zero, k0, k1)
        wbuf[4 * q] = a
        wbuf[4 * q + 1] = b
        wbuf[4 * q + 2] = c
        wbuf[4 * q + 3] = d


@njit(cache=True, error_model="numpy")
def _long_radius(pair, row, stream, k0, k1):
    """-2 ln(u) for a pair whose radius word is 0: u = (w + 1/2) 2^-32j from the first nonzero
    word w of the spare blocks (pair, row, stream, a >= 1), j counting the words used."""
    bits = 32.0
    attempt = 1
    words = np.empty(4, np.uint32)
    while True:
        words[0], words[1], words[2], words[3] = _philox(
            np.uint32(pair), np.uint32(row), np.uint32(stream), np.uint32(attempt), k0, k1
        )
        for i in range(4):
            bits += 32.0
            if words[i] != 0:
                return -2.0 * (math.log(np.float64(words[i]) + 0.5) - bits * math.log(2.0))
        attempt += 1


@njit(cache=True, inline="always", error_model="numpy")
def _row_polar(lbuf, cbuf, sbuf, rad, ang, npair, p0, row, stream, k0, k1):
    """For every pair p < npair: lbuf[p] = -2 ln(u), (cbuf[p], sbuf[p]) = (cos, sin)(theta),
    from the radius words rad[p] and angle words ang[p] (uint32; p0: the global index of pair
    0, for the tail extension)."""
    wi = rad.view(np.int32)
    wa = ang.view(np.int32)
    one = _F(1.0)
    half = _F(0.5)
    two = _F(2.0)
    zero = _F(0.0)
    # q = hi ? 1 - u : u in (0, 1/2] (sbuf), then exactly q = m 2^-k with m in [1/2, 1) read
    # from q's float32 bits (exponent e: k = 126 - e; q >= 2^-33 is never subnormal): m in
    # lbuf, k in cbuf. Three simple loops, each vectorised (a bit cast inside one loop is not).
    for p in range(npair):
        q = np.abs(_F(wi[p]) + half) * _F(_TWO_M32)  # radius word as int32: w1 - 2^32 if >= 2^31
        sbuf[p] = q
        lbuf[p] = q
    mi = lbuf[:npair].view(np.int32)
    for p in range(npair):
        bits = mi[p]
        cbuf[p] = _F(np.int32(126) - (bits >> np.int32(23)))
        mi[p] = (bits & np.int32(0x7FFFFF)) | np.int32(0x3F000000)
    for p in range(npair):  # branch-free, vectorisable
        s1 = wi[p]
        s2 = wa[p]
        hi = s1 < 0  # u >= 1/2
        q = sbuf[p]
        m = lbuf[p]
        k = cbuf[p]
        # one more halving step puts the argument in [1/sqrt(2), sqrt(2)): |t| <= 0.1716
        up = m < _SQRT_HALF  # u < 1/2: m in [1/2, 1/sqrt(2)) -> 2m, k + 1
        m = m * two if up else m
        k += one if up else zero
        hq = q > _F(1.0 - math.sqrt(0.5))  # u >= 1/2 and u < 1/sqrt(2): use 2u, k = 1
        num = (q + q - one if hq else q) if hi else one - m  # 1 - m, exact (Sterbenz)
        den = (_F(3.0) - q - q if hq else two - q) if hi else one + m
        k = (one if hq else zero) if hi else k
        t = num / den
        t2 = t * t
        at = t * (one + t2 * (_F(1 / 3) + t2 * (_F(1 / 5) + t2 * (_F(1 / 7) + t2 * _F(1 / 9)))))
        lbuf[p] = two * k * _LN2 + _F(4.0) * at
        quad = (s2 >> np.int32(30)) & np.int32(3)
        f = (_F(s2 & np.int32(0x3FFFFFFF)) + half) * _F(2.0**-30)
        ph = (f - half) * _PI_2
        p2 = ph * ph
        sn = ph * (
            one - p2 * (_F(1 / 6) - p2 * (_F(1 / 120) - p2 * (_F(1 / 5040) - p2 * _F(1 / 362880))))
        )
        cs = one - p2 * (
            half
            - p2
            * (_F(1 / 24) - p2 * (_F(1 / 720) - p2 * (_F(1 / 40320) - p2 * _F(1 / 3628800))))
        )
        cc = (cs - sn) * _SQRT_HALF  # angle pi/4 + phi
        ss = (cs + sn) * _SQRT_HALF
        odd = (quad & np.int32(1)) != 0  # rotate by quad * pi/2: (c, s) -> (-s, c) -> ...
        neg = (quad & np.int32(2)) != 0
        a = -ss if odd else cc
        b = cc if odd else ss
        cbuf[p] = -a if neg else a
        sbuf[p] = -b if neg else b
    n_zero = 0
    for p in range(npair):  # a separate reduction: inside the loop above it would stop
        n_zero += wi[p] == 0  # the vectorisation
    if n_zero:
        for p in range(npair):
            if wi[p] == 0:
                lbuf[p] = _F(_long_radius(p0 + p, row, stream, k0, k1))


@njit(cache=True, inline="always", error_model="numpy")
def _row_polar_for(wbuf, lbuf, cbuf, sbuf, s0, n, row, stream, k0, k1):
    """Words (wbuf, GROUP per group) and polar parts (lbuf, cbuf, sbuf: HALF pairs per group)
    of the groups covering samples s0 .. s0 + n - 1; returns the first group g0."""
    g0, ng = _groups(s0, n)
    _row_words(wbuf, g0, ng, row, stream, k0, k1)
    for gi in range(ng):
        w = GROUP * gi
        p = HALF * gi
        _row_polar(lbuf[p : p + HALF], cbuf[p : p + HALF], sbuf[p : p + HALF],
                   wbuf[w : w + HALF], wbuf[w + HALF : w + GROUP], HALF, HALF * (g0 + gi), row,
                   stream, k0, k1)
    return g0


@njit(cache=True, inline="always", error_model="numpy")
def _span_bounds(g0, gi, h, s0, n):
    """Local [start, stop) of half h of group g0 + gi within samples s0 .. s0 + n - 1, and
    the index of its first pair in the row's buffers."""
    a = GROUP * (g0 + gi) + HALF * h - s0  # local index of the half's first sample
    start = max(a, 0)
    stop = min(a + HALF, n)
    return start, stop, HALF * gi + (start - a)


@njit(cache=True, inline="always", error_model="numpy")
def _row_normals(zbuf, wbuf, lbuf, cbuf, sbuf, s0, n, row, stream, k0, k1):
    """zbuf[:n] = the normals of (key, stream, row) for the global samples s0 .. s0 + n - 1.
    Buffers: wbuf >= GROUP ng words, lbuf / cbuf / sbuf >= HALF ng (ng: groups covered)."""
    g0 = _row_polar_for(wbuf, lbuf, cbuf, sbuf, s0, n, row, stream, k0, k1)
    ng = _groups(s0, n)[1]
    for gi in range(ng):
        for h in range(2):
            start, stop, q = _span_bounds(g0, gi, h, s0, n)
            m = stop - start
            zz = zbuf[start:stop]
            ll = lbuf[q : q + m]
            tt = cbuf[q : q + m] if h == 0 else sbuf[q : q + m]
            for i in range(m):
                zz[i] = np.sqrt(ll[i]) * tt[i]


def _scratch_len(n: int) -> int:
    """Words per row scratch for n samples at any offset (whole groups, one spare)."""
    return GROUP * ((n + GROUP - 1) // GROUP + 1)


@njit(cache=True, inline="always", error_model="numpy")
def _scratch_len_nb(n):
    return GROUP * ((n + GROUP - 1) // GROUP + 1)


@njit(cache=True, parallel=True, error_model="numpy")
def _normals_kernel(out, s0, key0, key1, stream):
    rows, n = out.shape
    k0, k1 = np.uint32(key0), np.uint32(key1)
    m = _scratch_len_nb(n)
    for r in prange(rows):
        wbuf = np.empty(m, np.uint32)
        lbuf = np.empty(m // 2, np.float32)
        cbuf = np.empty(m // 2, np.float32)
        sbuf = np.empty(m // 2, np.float32)
        _row_normals(out[r], wbuf, lbuf, cbuf, sbuf, s0, n, r, stream, k0, k1)


def standard_normals(
    shape: tuple[int, int], key: tuple[int, int], stream: int = 0, start: int = 0
) -> np.ndarray:
    """(rows, n) float32 standard normals of the kernels' generator: row r, column s is the
    normal of counter row r for the global sample index start + s.

    Exposed for tests and for anyone who wants to reproduce the kernels' noise.
    """
    rows, n = (int(v) for v in shape)
    out = np.empty((rows, n), np.float32)
    if n:
        _normals_kernel(out, int(start), np.uint32(key[0]), np.uint32(key[1]), np.uint32(stream))
    return out


def philox_words(n_groups: int, key: tuple[int, int], row: int = 0, stream: int = 0,
                 first_group: int = 0) -> np.ndarray:
    """The uint32 words the kernels use for sample groups first_group .. + n_groups - 1 of a
    row (for tests), 64 per group: the group's 32 radius words, then its 32 angle words."""
    out = np.empty(GROUP * int(n_groups), np.uint32)
    _words_kernel(out, int(first_group), int(n_groups), row, stream, np.uint32(key[0]),
                  np.uint32(key[1]))
    return out


def normals_from_words(
    words: np.ndarray, key: tuple[int, int] = (0, 0), row: int = 0, stream: int = 0,
    first_pair: int = 0,
) -> np.ndarray:
    """The 2 npair float32 normals the kernels make from npair radius words followed by npair
    angle words (for tests): the cos samples of the pairs, then their sin samples (the order
    within one group); key, row, stream and first_pair only matter for a zero radius word
    (the tail extension)."""
    w = np.ascontiguousarray(words, dtype=np.uint32)
    if w.size % 2:
        raise ValueError("words must hold npair radius words and npair angle words")
    npair = w.size // 2
    out = np.empty(2 * npair, np.float32)
    _normals_from_words_kernel(out, w, npair, int(first_pair), row, stream,
                               np.uint32(key[0]), np.uint32(key[1]))
    return out


@njit(cache=True, error_model="numpy")
def _words_kernel(out, g0, ng, row, stream, k0, k1):
    _row_words(out, g0, ng, row, stream, k0, k1)


@njit(cache=True, error_model="numpy")
def _normals_from_words_kernel(out, wbuf, npair, p0, row, stream, k0, k1):
    lbuf = np.empty(npair, np.float32)
    cbuf = np.empty(npair, np.float32)
    sbuf = np.empty(npair, np.float32)
    _row_polar(lbuf, cbuf, sbuf, wbuf[:npair], wbuf[npair : 2 * npair], npair, p0, row, stream,
               k0, k1)
    for p in range(npair):
        r = np.sqrt(lbuf[p])
        out[p] = r * cbuf[p]
        out[npair + p] = r * sbuf[p]


# ----------------------------------------------------------------------------- DAC


def tile_rows(n_blocks: int, block_in: int, row_tiles: int, ipt: int) -> np.ndarray:
    """The row table of :func:`dac_tiles` that lays a block's inputs out in order: tile row
    (r, i) takes input r * ipt + i, the rows beyond block_in stay zero (-1)."""
    src = np.arange(row_tiles * ipt, dtype=np.int64)
    src[src >= block_in] = -1
    return np.ascontiguousarray(np.broadcast_to(src.reshape(row_tiles, ipt),
                                                (n_blocks, row_tiles, ipt)))


@njit(cache=True, parallel=True, error_model="numpy")
def dac_tiles(x, rows, levels, x_max, inv_step, step, xt, x2, want_sq):
    """Multilevel DAC into row tiles.

    x (blocks, block_in, B) float32; xt, x2 (blocks, row_tiles, ipt, B); rows (blocks,
    row_tiles, ipt) int64: the input each tile row takes, -1 for a zero row
    (:func:`tile_rows`: in order, zero-padded; a table with a row tile's live inputs first
    lets the products use only its leading rows). ``levels`` = 0: ideal (copy); else q =
    rint(clip(x, -x_max, x_max) * inv_step) * step (``inv_step`` and ``step`` float32, as
    devices.converters.dac_quantize). x2 = q * q when ``want_sq``.
    """
    nb, nbatch = x.shape[0], x.shape[2]
    rt, ipt = xt.shape[1], xt.shape[2]
    xm = np.float32(x_max)
    lo = -xm
    inv = np.float32(inv_step)
    st = np.float32(step)
    for job in prange(nb * rt * ipt):
        b = job // (rt * ipt)
        rem = job - b * rt * ipt
        r = rem // ipt
        i = rem - r * ipt
        src = rows[b, r, i]
        if src < 0:
            for s in range(nbatch):
                xt[b, r, i, s] = 0.0
            if want_sq:
                for s in range(nbatch):
                    x2[b, r, i, s] = 0.0
            continue
        if levels == 0:
            for s in range(nbatch):
                xt[b, r, i, s] = x[b, src, s]
        else:
            for s in range(nbatch):
                v = min(max(x[b, src, s], lo), xm)
                xt[b, r, i, s] = np.rint(v * inv) * st
        if want_sq:
            for s in range(nbatch):
                v = xt[b, r, i, s]
                x2[b, r, i, s] = v * v


@njit(cache=True, parallel=True, error_model="numpy")
def dac_codes_kernel(x, x_max, inv_step, codes):
    """Signed DAC codes rint(clip(x, -x_max, x_max) * inv_step) (int32), as dac_codes."""
    nb, n, nbatch = x.shape
    xm = np.float32(x_max)
    inv = np.float32(inv_step)
    for job in prange(nb * n):
        b = job // n
        i = job - b * n
        for s in range(nbatch):
            v = min(max(x[b, i, s], -xm), xm)
            codes[b, i, s] = np.int32(np.rint(v * inv))


@njit(cache=True, parallel=True, error_model="numpy")
def dac_plane(codes, plane, xt, x2, want_sq):
    """Bit plane ``plane`` (LSB = 0) of sign-magnitude codes into zero-padded row tiles:
    sign(c) * ((|c| >> plane) & 1) in {-1, 0, 1}; x2 = its square (= |xt|).

    codes (1, block_in, B) int32; xt, x2 (row_tiles, ipt, B).
    """
    block_in, nbatch = codes.shape[1], codes.shape[2]
    rt, ipt = xt.shape[0], xt.shape[1]
    for job in prange(rt * ipt):
        r = job // ipt
        i = job - r * ipt
        src = r * ipt + i
        for s in range(nbatch):
            v = np.float32(0.0)
            if src < block_in:
                c = codes[0, src, s]
                bit = (abs(c) >> plane) & 1
                v = np.float32(bit if c >= 0 else -bit)
            xt[r, i, s] = v
            if want_sq:
                x2[r, i, s] = abs(v)


@njit(cache=True, error_model="numpy")
def accumulate_sum(xt, weight, out):
    """out[s] += weight * sum_{r, i} xt[r, i, s] (digital sum of a block's DAC inputs)."""
    rt, ipt, nbatch = xt.shape
    w = np.float32(weight)
    tmp = np.zeros(nbatch, np.float32)
    for r in range(rt):
        for i in range(ipt):
            for s in range(nbatch):
                tmp[s] += xt[r, i, s]
    for s in range(nbatch):
        out[s] += w * tmp[s]


# ----------------------------------------------------------------------------- noise + ADC


@njit(cache=True, parallel=True, error_model="numpy")
def scaled_energy(xt, scale, out):
    """out[r, 0, s] = scale * sum_i xt[r, i, s]**2: the read-noise variance of every column
    when all devices have the same read sigma (scale = sigma^2 * devices per input)."""
    rt, ipt, nbatch = xt.shape
    sc = np.float32(scale)
    for r in prange(rt):
        for s in range(nbatch):
            out[r, 0, s] = 0.0
        for i in range(ipt):
            for s in range(nbatch):
                v = xt[r, i, s]
                out[r, 0, s] += v * v
        for s in range(nbatch):
            out[r, 0, s] *= sc


@njit(cache=True, parallel=True, error_model="numpy")
def add_read_noise(currents, variance, key0, key1, stream, row_base, row_stride, s0):
    """In place: currents += sqrt(variance) * z (calibration reads, no ADC).

    currents (row_tiles, R, B); variance (row_tiles, R or 1, B); (r, j) uses the normals of
    counter row row_base + r * row_stride + j for the global samples s0 .. s0 + B - 1, as in
    :func:`adc_accumulate`.
    """
    rt, nr, nbatch = currents.shape
    k0, k1 = np.uint32(key0), np.uint32(key1)
    var_step = 1 if variance.shape[1] > 1 else 0
    m = _scratch_len_nb(nbatch)
    for job in prange(rt * nr):
        r = job // nr
        j = job - r * nr
        wbuf = np.empty(m, np.uint32)
        lbuf = np.empty(m // 2, np.float32)
        cbuf = np.empty(m // 2, np.float32)
        sbuf = np.empty(m // 2, np.float32)
        zbuf = np.empty(nbatch, np.float32)
        _row_normals(zbuf, wbuf, lbuf, cbuf, sbuf, s0, nbatch,
                     row_base + r * row_stride + j, stream, k0, k1)
        vj = j * var_step
        for s in range(nbatch):
            currents[r, j, s] += np.sqrt(variance[r, vj, s]) * zbuf[s]


@njit(cache=True, inline="always", error_model="numpy")
def _adc_span(out, cur, var, use_var, extra, lbuf, tbuf, q, start, stop, lo, step, fl, clo,
              chi, half, collect, pw):
    """Samples start .. stop - 1 of one ADC row, noisy: y = cur + sqrt((var + extra) * L) *
    trig (= cur + sqrt(var + extra) * z, one square root), L and trig of pairs q, q + 1, ...;
    code = clip(rint((y - lo) / step), clo, chi); out += code * step + lo, or (``collect``)
    out += pw * (code - half). fl = 0: ideal ADC, out += y. (Views keep the loops simple
    enough to vectorise.)"""
    m = stop - start
    o = out[start:stop]
    c = cur[start:stop]
    ll = lbuf[q : q + m]
    tt = tbuf[q : q + m]
    if use_var:
        vv = var[start:stop]
    else:
        vv = var[:0]
    if fl > 0:
        if collect:
            for i in range(m):
                v = vv[i] + extra if use_var else extra
                y = c[i] + np.sqrt(v * ll[i]) * tt[i]
                code = min(max(np.rint((y - lo) / step), clo), chi)
                o[i] += pw * (np.float64(code) - half)
        elif use_var:
            for i in range(m):
                y = c[i] + np.sqrt((vv[i] + extra) * ll[i]) * tt[i]
                code = min(max(np.rint((y - lo) / step), clo), chi)
                o[i] += code * step + lo
        else:
            for i in range(m):
                y = c[i] + np.sqrt(extra * ll[i]) * tt[i]
                code = min(max(np.rint((y - lo) / step), clo), chi)
                o[i] += code * step + lo
    elif use_var:
        for i in range(m):
            o[i] += c[i] + np.sqrt((vv[i] + extra) * ll[i]) * tt[i]
    else:
        for i in range(m):
            o[i] += c[i] + np.sqrt(extra * ll[i]) * tt[i]


@njit(cache=True, inline="always", error_model="numpy")
def _adc_quiet(out, cur, n, lo, step, fl, clo, chi, half, collect, pw):
    """A noise-free ADC row (see :func:`_adc_span`)."""
    if fl > 0:
        if collect:
            for s in range(n):
                code = min(max(np.rint((cur[s] - lo) / step), clo), chi)
                out[s] += pw * (np.float64(code) - half)
        else:
            for s in range(n):
                code = min(max(np.rint((cur[s] - lo) / step), clo), chi)
                out[s] += code * step + lo
    else:
        for s in range(n):
            out[s] += cur[s]


@njit(cache=True, inline="always", error_model="numpy")
def _adc_row(out, cur, var, noisy, use_var, extra, wbuf, lbuf, cbuf, sbuf, s0, n, row, stream,
             k0, k1, lo, step, fl, clo, chi, half, collect, pw):
    """One ADC row of n samples (global s0 ..): noise from the row's groups of normals."""
    if noisy:
        g0 = _row_polar_for(wbuf, lbuf, cbuf, sbuf, s0, n, row, stream, k0, k1)
        for gi in range(_groups(s0, n)[1]):
            start, stop, q = _span_bounds(g0, gi, 0, s0, n)
            _adc_span(out, cur, var, use_var, extra, lbuf, cbuf, q, start, stop, lo, step, fl,
                      clo, chi, half, collect, pw)
            start, stop, q = _span_bounds(g0, gi, 1, s0, n)
            _adc_span(out, cur, var, use_var, extra, lbuf, sbuf, q, start, stop, lo, step, fl,
                      clo, chi, half, collect, pw)
    else:
        _adc_quiet(out, cur, n, lo, step, fl, clo, chi, half, collect, pw)


@njit(cache=True, parallel=True, error_model="numpy")
def _adc_accumulate(
    currents,
    variance,
    use_variance,
    lo,
    hi,
    levels,
    noise_lsb,
    key0,
    key1,
    stream,
    row_base,
    row_stride,
    has_ref,
    weight,
    acc,
    ref_acc,
    n_jobs,
    s0,
    psum_limit,
    psum,
    psum_weight,
    first_row,
    n_rows,
    row_acc,
    r_offset,
    last,
):
    """The kernel of :func:`adc_accumulate` (every argument given, normalised types)."""
    rt, n_all, nbatch = currents.shape
    nr = n_all - first_row if n_rows < 0 else n_rows
    col_step = 1 if lo.shape[1] > 1 else 0  # index multipliers (per column or shared)
    var_step = 1 if variance.shape[1] > 1 else 0
    k0, k1 = np.uint32(key0), np.uint32(key1)
    w = np.float32(weight)
    fl = np.float32(levels)
    half = np.float64((levels + 1) // 2)
    collect = psum.shape[0] > 0 and levels > 0
    pw = np.float64(psum_weight)
    m = _scratch_len_nb(nbatch)
    n_jobs = max(1, min(nr, n_jobs))
    for job in prange(n_jobs):  # scratch allocated once per job, not per row
        wbuf = np.empty(m, np.uint32)
        lbuf = np.empty(m // 2, np.float32)
        cbuf = np.empty(m // 2, np.float32)
        sbuf = np.empty(m // 2, np.float32)
        own_sum = np.empty(nbatch, np.float32)
        for j in range(job * nr // n_jobs, (job + 1) * nr // n_jobs):
            if row_acc.shape[0] == 0:
                row_sum = own_sum
                row_sum[:] = 0.0
            else:
                row_sum = row_acc[first_row + j]
                if r_offset == 0:
                    row_sum[:] = 0.0
            for r in range(rt):
                lo_v = lo[r, j * col_step]
                step = (hi[r, j * col_step] - lo_v) / fl if levels > 0 else np.float32(1.0)
                extra = np.float32(0.0)
                if levels > 0 and noise_lsb > 0:
                    extra = np.float32((noise_lsb * step) ** 2)
                clo = np.float32(0.0)
                chi = fl
                if psum_limit > 0 and r + r_offset > 0 and levels > 0:
                    clo = max(clo, np.float32(half - psum_limit))
                    chi = min(chi, np.float32(half + psum_limit - 1))
                noisy = use_variance or extra > 0
                row = row_base + r * row_stride + j
                var = variance[r, (first_row + j) * var_step]
                cur = currents[r, first_row + j]
                if collect:
                    _adc_row(psum[r, first_row + j], cur, var, noisy, use_variance, extra, wbuf,
                             lbuf, cbuf, sbuf, s0, nbatch, row, stream, k0, k1, lo_v, step, fl,
                             clo, chi, half, True, pw)
                else:
                    _adc_row(row_sum, cur, var, noisy, use_variance, extra, wbuf, lbuf, cbuf,
                             sbuf, s0, nbatch, row, stream, k0, k1, lo_v, step, fl, clo, chi,
                             half, False, pw)
            if collect or not last:
                continue
            dest = ref_acc if has_ref and j == 0 else acc[j - has_ref]
            for s in range(nbatch):
                dest[s] += w * row_sum[s]


_NO_ROW_ACC = np.zeros((0, 0), np.float32)


def _input(a: np.ndarray) -> np.ndarray:
    """A C-contiguous, writable float32 array (copied only when it is not one already), so
    that every call of a kernel has the same argument types: Numba compiles one
    specialisation per combination of layouts and read-only flags."""
    return np.require(a, np.float32, ("C", "W"))


def _output(a: np.ndarray, what: str, dtype=np.float32) -> np.ndarray:
    if a.dtype != dtype or not a.flags.c_contiguous or not a.flags.writeable:
        raise ValueError(f"{what} must be a writable C-contiguous {np.dtype(dtype)} array")
    return a


def adc_accumulate(
    currents: np.ndarray,
    variance: np.ndarray,
    use_variance: bool,
    lo: np.ndarray,
    hi: np.ndarray,
    levels: int,
    noise_lsb: float,
    key0: int,
    key1: int,
    stream: int,
    row_base: int,
    row_stride: int,
    has_ref: int,
    weight: float,
    acc: np.ndarray,
    ref_acc: np.ndarray,
    n_jobs: int,
    s0: int,
    psum_limit: int,
    psum: np.ndarray,
    psum_weight: float,
    first_row: int = 0,
    n_rows: int = -1,
    row_acc: np.ndarray | None = None,
    r_offset: int = 0,
    last: bool = True,
) -> None:
    """Read noise + ADC + digital partial-sum accumulation for the tiles of one column tile.

    currents: (row_tiles, M, B) float32 column currents of the row tiles of one (block,
    column tile), or of several column tiles side by side (one wide matrix product): the
    tile's R rows are first_row .. first_row + R - 1 (R = ``n_rows``, or -1: all rows from
    first_row); row 0 of the tile is the reference column when ``has_ref``. variance: (row_tiles,
    M, B) laid out like currents, or (row_tiles, 1, B) when every column has the same
    variance; read only when ``use_variance``. lo, hi: (row_tiles, L) ADC ranges, L = 1 (one
    per tile) or R (per column). levels = 2**bits - 1, or 0 for an ideal ADC (no clipping, rounding or ADC noise).
    noise_lsb: ADC input noise in LSB.

    Per conversion: y = I + sqrt(V + (noise_lsb * step)**2) * z with z ~ N(0, 1) the normal
    of counter row row_base + r * row_stride + j for the global sample s0 + s
    (:func:`standard_normals`), code = clip(rint((y - lo) / step), 0, levels), value = code *
    step + lo (as devices.converters.adc_quantize). acc[j - has_ref, s] += weight * (sum over
    row tiles of value), ref_acc[s] for the reference column. ``n_jobs``: how many parallel
    jobs the rows are split into (the result does not depend on it).

    Partial sums (row tiles r > 0 send theirs to row tile 0, see docs/simulation.md):
    ``psum_limit`` = 2**(psum_bits - 1) > 0 saturates the signed code (code - 2**(bits - 1))
    of those row tiles to [-psum_limit, psum_limit - 1] (one pass per input: the partial sum is
    the code); 0: no saturation. With ``psum`` (row_tiles, M, B) float64 laid out like
    currents (shape (0, 0, 0): off) the kernel instead adds psum_weight * (code - 2**(bits -
    1)) to psum (bit-serial passes; :func:`psum_finish` saturates and adds the sums) and leaves
    acc alone.

    Row tiles one call at a time (their currents then need no memory at once): with
    ``row_acc`` (M, B) float32 laid out like currents, the currents are row tiles
    r_offset .. r_offset + row_tiles - 1 of the column tile (lo, hi and the counter rows
    given for those), the sum over row tiles of the ADC values is kept in row_acc (reset
    when r_offset = 0) and added, times weight, to acc only when ``last``.
    """
    _adc_accumulate(
        _input(currents), _input(variance), bool(use_variance), _input(lo), _input(hi),
        int(levels), float(noise_lsb), int(key0), int(key1), int(stream), int(row_base),
        int(row_stride), int(has_ref), float(weight), _output(acc, "acc"),
        _output(ref_acc, "ref_acc"), int(n_jobs), int(s0), int(psum_limit),
        _output(psum, "psum", np.float64), float(psum_weight), int(first_row), int(n_rows),
        _NO_ROW_ACC if row_acc is None else _output(row_acc, "row_acc"), int(r_offset),
        bool(last),
    )


@njit(cache=True, parallel=True, error_model="numpy")
def psum_finish(psum, lo, hi, levels, limit, weight0, weight_sum, has_ref, acc, ref_acc):
    """Bit-serial partial sums: S = psum[r, j, s] (signed code sums sum_k 2^k (code_k -
    2**(bits - 1))) is saturated to [-limit, limit - 1] for row tiles r > 0 (limit =
    2**(psum_bits - 1)), and every row tile adds step * weight0 * S + (lo + 2**(bits - 1) *
    step) * weight_sum to acc[j - has_ref] (ref_acc for the reference column); psum is
    zeroed for the next column tile."""
    rt, nr, nbatch = psum.shape
    col_step = 1 if lo.shape[1] > 1 else 0
    fl = np.float64(levels)
    half = np.float64((levels + 1) // 2)
    lim = np.float64(limit)
    for j in prange(nr):
        dest = ref_acc if has_ref and j == 0 else acc[j - has_ref]
        for r in range(rt):
            lo_v = np.float64(lo[r, j * col_step])
            step = (np.float64(hi[r, j * col_step]) - lo_v) / fl
            a = np.float32(step * weight0)
            b = np.float32((lo_v + half * step) * weight_sum)
            for s in range(nbatch):
                v = psum[r, j, s]
                if r > 0:
                    v = min(max(v, -lim), lim - 1.0)
                dest[s] += a * np.float32(v) + b
                psum[r, j, s] = 0.0


# ----------------------------------------------------------------------------- routing


_ROUTE_SPAN = 512  # values per column piece: all source rows' pieces stay in cache


@njit(cache=True, parallel=True, error_model="numpy")
def route_slots(x, row_ptr, src, sign, out):
    """ScRRAMBLe routing, digital and exact in a fixed order: out[d] = sum_e sign[e] *
    x[src[e]] over the entries e of destination slot d (row_ptr[d] .. row_ptr[d + 1], sorted
    by source slot). x (source slots, slot * B), out (destination slots, slot * B). The
    columns are processed in pieces of _ROUTE_SPAN values, every destination of a piece in
    turn, so the piece's source values are read from memory once (cache-resident)."""
    nd, n = out.shape
    pieces = (n + _ROUTE_SPAN - 1) // _ROUTE_SPAN
    for job in prange(pieces):
        a = job * _ROUTE_SPAN
        b = min(n, a + _ROUTE_SPAN)
        for d in range(nd):
            o = out[d, a:b]
            o[:] = 0.0
            for e in range(row_ptr[d], row_ptr[d + 1]):
                sg = np.float32(sign[e])
                xs = x[src[e], a:b]
                for i in range(b - a):
                    o[i] += sg * xs[i]


# ----------------------------------------------------------------------------- decode

ACT_NONE, ACT_RELU, ACT_QRELU = 0, 1, 2


@njit(cache=True, parallel=True, error_model="numpy")
def decode_outputs(
    acc,
    ref_acc,
    ref_index,
    out_scale,
    ref_coeff,
    bias,
    act_kind,
    act_ceiling,
    act_inv_step,
    act_step,
    q_levels,
    q_lo,
    q_hi,
    q_inv_step,
    q_step,
):
    """In place on acc (n_out, B): decode, bias, activation, activation quantisation.

    y = out_scale * (acc - ref_coeff * ref_acc[ref_index]) + bias (ref_index < 0: no
    reference), then the activation (none / relu / qrelu: rint(clip(y, 0, ceiling) *
    act_inv_step) * act_step, as mappings.activations), then, when q_levels > 0,
    rint(clip(y, q_lo, q_hi) * q_inv_step) * q_step (as devices.converters.quantize_unsigned
    for q_lo = 0).
    """
    n_out, nbatch = acc.shape
    ceil = np.float32(act_ceiling)
    a_inv = np.float32(act_inv_step)
    a_st = np.float32(act_step)
    qlo = np.float32(q_lo)
    qhi = np.float32(q_hi)
    q_inv = np.float32(q_inv_step)
    q_st = np.float32(q_step)
    zero = np.float32(0.0)
    for f in prange(n_out):
        sc = out_scale[f]
        b = bias[f]
        k = ref_index[f]
        rc = ref_coeff[f]
        for s in range(nbatch):
            v = acc[f, s]
            if k >= 0:
                v = v - rc * ref_acc[k, s]
            y = sc * v + b
            if act_kind == 1:
                y = max(y, zero)
            elif act_kind == 2:
                y = np.rint(min(max(y, zero), ceil) * a_inv) * a_st
            if q_levels > 0:
                y = np.rint(min(max(y, qlo), qhi) * q_inv) * q_st
            acc[f, s] = y
