"""Functional chip simulation: ideal equivalence, exact read noise, converters, determinism.

Statistical checks allow 5 standard errors of the estimate for the sample size.
"""

from __future__ import annotations

import itertools
import json
import math
import pickle

import numpy as np
import pytest

from mappings.activations import Activation
from mappings.builders import build_dense_network, build_scrramble_network
from mappings.network import DenseLayer, InputSpec, Network, Readout
from sim.chip.config import chip_config_from_dict
from sim.chip.functional import ChipRunner, SimulationError, calibrate, simulate
from sim.chip.programming import age, program_chip

Z = 5.0


def config(encoding="single", preset="ideal", dac=16, adc=16, act_bits=0, grid=8, **sections):
    d = {
        "chip": {"grid_rows": grid, "grid_cols": grid, "core_rows": 64, "core_cols": 64,
                 "slot_size": 16},
        "device": {"preset": preset},
        "dac": {"bits": dac},
        "adc": {"bits": adc},
        "mapping": {"encoding": encoding, "activation_bits": act_bits},
        "simulation": {"batch_chunk": 128, "calibration_samples": 256},
    }
    for name, values in sections.items():
        d.setdefault(name, {}).update(values)
    return chip_config_from_dict(d, source="<test chip>")


@pytest.fixture(scope="module")
def scr_net():
    return build_scrramble_network(
        hidden_cores=(6,), core_size=64, slot_size=16, p=0.3, rng=np.random.default_rng(0)
    )


@pytest.fixture(scope="module")
def dense_net():
    return build_dense_network(hidden=(100, 50), rng=np.random.default_rng(1))


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(2).random((256, 28, 28), dtype=np.float32)


CAL = np.random.default_rng(9).random((128, 28, 28), dtype=np.float32)  # calibration set


def rel(a, b) -> float:
    return float(np.linalg.norm(np.asarray(a, np.float64) - b) / np.linalg.norm(b))


def chip_outputs(net, cfg, x, seed=0, prog_seed=1, **kw):
    runner = ChipRunner(net, program_chip(net, cfg, prog_seed), cfg, seed, **kw)
    xf = net.input_spec.prepare(x)
    runner.calibrate(xf)
    return runner, xf, runner.forward(xf, 0)


# ----------------------------------------------------------------------------- ideal chip

IDEAL_CASES = [("scr", "single"), ("scr", "differential"), ("scr", "offset"),
               ("dense", "differential"), ("dense", "offset")]


@pytest.mark.parametrize("act_bits", [0, 16])
@pytest.mark.parametrize("kind, encoding", IDEAL_CASES)
def test_ideal_chip_equals_network(kind, encoding, act_bits, scr_net, dense_net, images):
    """Acceptance: ideal devices + 16-bit converters reproduce the float network.

    Every layer's chip output equals the ideal layer applied to the chip's own input of that
    layer within 1e-4 (relative Frobenius error), and the network output equals the ideal
    network forward within 1e-4 -- except the 'offset' encoding, whose reference subtraction
    after the ADC loses ~5 bits to the common-mode current (the column current carries
    g0 * sum(x), whose spread over the batch sets the ADC range): 3e-4 there with the 16-bit
    ADC, and 1e-4 with an ideal ADC (which isolates the pipeline from that physics).
    """
    net = scr_net if kind == "scr" else dense_net
    cfg = config(encoding, act_bits=act_bits, grid=16).replace(adc={"granularity": "column"})
    runner, xf, outs = chip_outputs(net, cfg, images)
    if kind == "dense":
        assert runner.instance.plan.layers[0].row_tiles >= 8  # several row tiles
    inputs = [xf, *outs[:-1]]
    for layer, x_in, out in zip(net.layers, inputs, outs):
        assert rel(out, layer.activation.apply(layer.preactivation(x_in))) <= 1e-4
    ideal = net.forward_features(xf)
    scores = net.readout.scores(outs[-1])
    limit = 3e-4 if encoding == "offset" else 1e-4
    assert rel(scores, net.readout.scores(ideal[-1])) <= limit
    if encoding == "offset":
        _, xf, outs = chip_outputs(net, config(encoding, adc=0, act_bits=act_bits, grid=16), images)
        assert rel(net.readout.scores(outs[-1]), net.readout.scores(ideal[-1])) <= 1e-4


def test_ideal_chip_accuracy_and_snr(scr_net, images):
    labels = np.random.default_rng(3).integers(0, 10, len(images))
    inst = program_chip(scr_net, config("differential"), 1)
    res = simulate(scr_net, inst, images, labels=labels, seed=0, calibration=images)
    assert res.accuracy == res.ideal_accuracy
    expect = float(np.mean(scr_net.predict(images) == labels))
    assert res.ideal_accuracy == pytest.approx(expect)
    assert min(res.snr_db) > 70 and min(res.snr_db_end_to_end) > 70
    assert res.n_samples == len(images) and res.predictions.shape == (len(images),)
    assert res.n_devices == inst.n_devices


# ----------------------------------------------------------------------------- read noise


def one_layer_net(rng, n_in=64, n_out=16):
    w = rng.normal(0, 1 / math.sqrt(n_in), (n_in, n_out)).astype(np.float32)
    b = rng.normal(0, 0.1, n_out).astype(np.float32)
    layer = DenseLayer(w, b, Activation("none"))
    return Network((layer,), InputSpec((8, 8), (8, 8)), Readout("logits", n_out))


@pytest.mark.parametrize("encoding", ["differential", "offset"])
def test_read_noise_matches_brute_force_devices(encoding):
    """The output-referred noise (one normal per conversion, variance S2 @ x^2) has the same
    mean, variance and cross-output covariance as a brute-force simulation that draws
    sigma_ij * N(0, 1) for every device on every read."""
    rng = np.random.default_rng(4)
    net = one_layer_net(rng)
    c = 0.05  # read sigma = 5 % of G
    cfg = config(encoding, dac=0, adc=0, device={"read": {"kind": "proportional", "coeffs": [c]}})
    inst = program_chip(net, cfg, 1)
    x = rng.random((1, 8, 8), dtype=np.float32)
    reps = 8000
    runner = ChipRunner(net, inst, cfg, seed=7)
    runner.calibrate(net.input_spec.prepare(x))
    chip = runner.forward(net.input_spec.prepare(np.repeat(x, reps, axis=0)), 0)[0].T  # (reps, 16)

    dev = inst.layers[0]
    t = dev.tiling
    assert t.row_tiles == (2 if encoding == "differential" else 1)
    xv = net.input_spec.prepare(x)[:, 0].astype(np.float64)
    brute = np.zeros((reps, t.n_out))
    bias = net.layers[0].bias.astype(np.float64)
    for r in range(t.row_tiles):
        xs = xv[r * t.inputs_per_tile : (r + 1) * t.inputs_per_tile]
        k = len(xs)
        for name, sign in (("g_pos", 1.0), ("g_neg", -1.0)):
            g = getattr(dev.current, name)
            if g is None:
                continue
            g = g[r, : t.n_out, :k].astype(np.float64)
            z = rng.standard_normal((reps, t.n_out, k))
            brute += sign * ((g + c * g * z) @ xs)
        if dev.current.g_ref is not None:
            gr = dev.current.g_ref[r, :k].astype(np.float64)
            zr = rng.standard_normal((reps, k))
            i_ref = (gr + c * gr * zr) @ xs  # one reference read shared by the tile's outputs
            brute -= dev.ref_coeff.astype(np.float64)[None] * i_ref[:, None]
    brute = dev.out_scale.astype(np.float64)[None] * brute + bias

    m1, m2 = chip.mean(0), brute.mean(0)
    v1, v2 = chip.var(0), brute.var(0)
    assert np.all(v2 > 0)
    assert np.all(np.abs(m1 - m2) < Z * np.sqrt((v1 + v2) / reps))
    assert np.all(np.abs(v1 - v2) < Z * v2 * math.sqrt(4 / reps))
    corr1, corr2 = np.corrcoef(chip.T), np.corrcoef(brute.T)
    assert np.all(np.abs(corr1 - corr2) < Z * math.sqrt(2 / reps) + 1e-3)
    if encoding == "offset":  # the shared reference read correlates the outputs
        off = ~np.eye(t.n_out, dtype=bool)
        assert np.abs(corr2[off]).mean() > 0.1


def test_constant_sigma_shortcut_equals_full_variance_product(scr_net, images):
    """Constant read sigma takes the row-sum shortcut; as a 1-term polynomial it goes through
    the full S2 @ x^2 product: the same noise up to rounding."""
    outs = []
    for kind in ("constant", "polynomial"):
        cfg = config("differential", adc=0, device={"read": {"kind": kind, "coeffs": [0.4]}})
        outs.append(chip_outputs(scr_net, cfg, images[:64], seed=3)[2][-1])
    np.testing.assert_allclose(outs[0], outs[1], rtol=1e-4, atol=3e-5 * np.abs(outs[1]).max())
    quiet = chip_outputs(scr_net, config("differential", adc=0), images[:64], seed=3)[2][-1]
    assert rel(outs[0], quiet) > 1e-3  # and the noise is really there


# ----------------------------------------------------------------------------- determinism


def noisy_config(**sections):
    sections = {"simulation": {"batch_chunk": 1000, "calibration_samples": 128}, **sections}
    return config("single", preset="rram_wan2022", dac=6, adc=5, act_bits=4,
                  **sections).replace(adc={"noise_lsb": 0.5})


def test_same_seed_same_result(scr_net, images):
    labels = np.random.default_rng(3).integers(0, 10, 23)
    x = images[:23]
    cfg = noisy_config(simulation={"batch_chunk": 5, "calibration_samples": 128})
    inst = program_chip(scr_net, cfg, 1)
    seen = []
    a = simulate(scr_net, inst, x, labels=labels, seed=4, progress=seen.append, calibration=CAL)
    assert seen == [5, 10, 15, 20, 23] and a.n_chunks == 5
    b = simulate(scr_net, inst, x, labels=labels, seed=4, calibration=CAL)
    np.testing.assert_array_equal(a.predictions, b.predictions)
    assert a.snr_db == b.snr_db and a.snr_db_end_to_end == b.snr_db_end_to_end
    c = simulate(scr_net, inst, x, labels=labels, seed=5, calibration=CAL)
    assert c.snr_db != a.snr_db  # other read noise
    assert a.calibration_samples == 128 and a.sample_offset == 0


@pytest.mark.slow
def test_shards_and_chunks_give_identical_predictions(scr_net):
    """Acceptance (issue 9): 10,000 samples simulated whole, in 3 uneven shards (each with its
    sample_offset) and with another batch chunk give identical predictions; the read noise is
    keyed by the global sample index, not by the chunk."""
    x = np.random.default_rng(5).random((10_000, 28, 28), dtype=np.float32)
    cfg = noisy_config()
    inst = program_chip(scr_net, cfg, 1)
    cal = calibrate(scr_net, inst, CAL, seed=3)
    whole = simulate(scr_net, inst, x, seed=7, calibration=cal, reference=False)
    bounds = [0, 3333, 3400, 10_000]
    seen = []
    parts = [
        simulate(scr_net, inst, x[a:b], seed=7, calibration=cal, sample_offset=a,
                 reference=False, progress=seen.append).predictions
        for a, b in itertools.pairwise(bounds)
    ]
    np.testing.assert_array_equal(np.concatenate(parts), whole.predictions)
    assert seen[-1] == 10_000 - 3400
    other = simulate(scr_net, inst, x, seed=7, calibration=cal, reference=False,
                     config=cfg.replace(simulation={"batch_chunk": 500}))
    assert other.n_chunks != whole.n_chunks
    np.testing.assert_array_equal(other.predictions, whole.predictions)
    # the noise is real: another seed, or the shards without their offsets, differ
    assert np.mean(simulate(scr_net, inst, x[:512], seed=8, calibration=cal,
                            reference=False).predictions != whole.predictions[:512]) > 0.01
    shifted = simulate(scr_net, inst, x[3400:3912], seed=7, calibration=cal, reference=False)
    assert np.any(shifted.predictions != whole.predictions[3400:3912])


def test_runner_outputs_bitwise_equal_across_splits(scr_net):
    cfg = noisy_config()
    inst = program_chip(scr_net, cfg, 1)
    x = scr_net.input_spec.prepare(np.random.default_rng(6).random((300, 28, 28), np.float32))
    runner = ChipRunner(scr_net, inst, cfg, 3)
    runner.calibrate(scr_net.input_spec.prepare(CAL))
    whole = runner.forward(x, 1000)
    pieces = [runner.forward(x[:, a:b], 1000 + a) for a, b in ((0, 1), (1, 130), (130, 300))]
    for i in range(len(whole)):
        np.testing.assert_array_equal(np.concatenate([p[i] for p in pieces], axis=1), whole[i])


def test_wide_products_and_output_equal_per_tile_forward(dense_net, monkeypatch):
    """Column tiles multiplied side by side (one BLAS call per row tile) give bit-identical
    outputs to one product per column tile; ChipRunner.output is forward()[-1], for batches
    over several blocks and at unaligned offsets."""
    from sim.chip import functional

    cfg = config("offset", preset="rram_wan2022", dac=8, adc=6, act_bits=6,
                 device={"read": {"kind": "proportional", "coeffs": [0.05]}})
    inst = program_chip(dense_net, cfg, 1)
    images = np.random.default_rng(6).random((2100, 28, 28), np.float32)
    x = dense_net.input_spec.prepare(images)
    cal = calibrate(dense_net, inst, CAL, seed=3)
    runner = ChipRunner(dense_net, inst, cfg, 3)
    runner.use(cal)
    st = runner.states[0]
    assert st.dev.tiling.col_tiles > 1 and len(runner._column_groups(st)) == 1
    wide = runner.forward(x, 1000)
    out = runner.output(x, 1000)
    assert out.flags.c_contiguous and out.shape == wide[-1].shape
    np.testing.assert_array_equal(out, wide[-1])
    np.testing.assert_array_equal(runner.output(x[:, 5:40], 1005), wide[-1][:, 5:40])
    # two whole, aligned blocks (no padding) equal the blocks one at a time
    two = x[:, :2048]
    halves = [runner.forward(two[:, a : a + 1024], a) for a in (0, 1024)]
    for i, y in enumerate(runner.forward(two, 0)):
        np.testing.assert_array_equal(y, np.concatenate([h[i] for h in halves], axis=1))
    np.testing.assert_array_equal(runner.output(two, 0), np.concatenate([h[-1] for h in halves],
                                                                         axis=1))
    preds = [  # chunks of one and of two whole blocks
        simulate(dense_net, inst, images, seed=3, calibration=cal, reference=False,
                 config=cfg.replace(simulation={"batch_chunk": chunk})).predictions
        for chunk in (1000, 2048)
    ]
    np.testing.assert_array_equal(preds[0], preds[1])
    monkeypatch.setattr(functional, "WIDE_ROWS", 1)  # one column tile per product
    per_tile = ChipRunner(dense_net, inst, cfg, 3)
    per_tile.use(cal)
    assert len(per_tile._column_groups(st)) == st.dev.tiling.col_tiles
    for a, b in zip(per_tile.forward(x, 1000), wide):
        np.testing.assert_array_equal(a, b)


def test_calibration_is_a_reusable_value(scr_net, images, tmp_path):
    cfg = noisy_config()
    inst = program_chip(scr_net, cfg, 1)
    x = images[:100]
    cal = calibrate(scr_net, inst, CAL, seed=4)
    assert cal.n_samples == 128 and cal.seed == 4 and len(cal.layers) == 2
    with pytest.raises(ValueError):  # frozen arrays
        cal.layers[0].lo[...] = 0
    again = pickle.loads(pickle.dumps(cal))
    a = simulate(scr_net, inst, x, seed=4, calibration=cal)
    b = simulate(scr_net, inst, x, seed=4, calibration=again)
    c = simulate(scr_net, inst, x, seed=4, calibration=CAL)  # samples: calibrated with seed 4
    np.testing.assert_array_equal(a.predictions, b.predictions)
    np.testing.assert_array_equal(a.predictions, c.predictions)
    assert a.snr_db == c.snr_db and a.calibration_seed == 4
    # one calibration serves several read-noise seeds
    d = simulate(scr_net, inst, x, seed=5, calibration=cal)
    assert d.snr_db != a.snr_db and d.calibration_samples == 128
    # but not another instance or other read-time settings
    other = program_chip(scr_net, cfg, 2)
    with pytest.raises(SimulationError, match="another chip instance"):
        simulate(scr_net, other, x, seed=4, calibration=cal)
    with pytest.raises(SimulationError, match="adc"):
        simulate(scr_net, inst, x, seed=4, calibration=cal, config=cfg.replace(adc={"bits": 7}))
    with pytest.raises(SimulationError, match="psum_bits"):
        simulate(scr_net, inst, x, seed=4, calibration=cal,
                 config=cfg.replace(mapping={"psum_bits": 8}))


def test_simulate_does_not_calibrate_on_the_scored_samples(scr_net, images):
    """Issue 6: simulate() used to calibrate the converters on the samples it scores when no
    calibration set was given (a test-set leak); now a calibration is required."""
    inst = program_chip(scr_net, noisy_config(), 1)
    with pytest.raises(SimulationError, match="calibration is required"):
        simulate(scr_net, inst, images[:10], seed=0)
    res = simulate(scr_net, inst, images[:10], seed=0, calibration=CAL)
    assert res.calibration_samples == 128


@pytest.mark.parametrize("encoding", ["single", "offset"])
def test_thread_count_does_not_change_results(encoding, scr_net, images):
    """The Numba thread count of a call (simulate(threads=...), scoped to the call) changes
    nothing, bit for bit; BLAS runs on one thread whatever the caller set."""
    import numba
    from threadpoolctl import threadpool_info

    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("numba.config.NUMBA_NUM_THREADS < 2: cannot run with 2 threads")
    cfg = config(encoding, preset="rram_wan2022", dac=8, adc=6, grid=16).replace(
        adc={"noise_lsb": 0.5}
    )
    inst = program_chip(scr_net, cfg, 1)
    x = np.random.default_rng(2).random((300, 28, 28), dtype=np.float32)
    cal = calibrate(scr_net, inst, x[:64], seed=3)
    before = numba.get_num_threads()
    blas = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
    runs = [simulate(scr_net, inst, x[64:], seed=3, calibration=cal, threads=t) for t in (1, 2)]
    assert [r.threads for r in runs] == [1, 2]
    assert numba.get_num_threads() == before  # restored
    assert [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"] == blas
    np.testing.assert_array_equal(runs[0].predictions, runs[1].predictions)
    assert runs[0].snr_db == runs[1].snr_db
    # the runner's raw outputs too
    outs = []
    for t in (1, 2):
        numba.set_num_threads(t)
        try:
            runner = ChipRunner(scr_net, inst, cfg, 3)
            runner.use(cal)
            outs.append(runner.forward(scr_net.input_spec.prepare(x[64:]), 64))
        finally:
            numba.set_num_threads(before)
    for a, b in zip(*outs):
        np.testing.assert_array_equal(a, b)


def test_concurrent_simulations_in_threads(scr_net, images):
    """Several simulations in one process (Python threads, different thread counts) give the
    results they give alone, and leave BLAS as they found it."""
    from concurrent.futures import ThreadPoolExecutor

    import numba
    from threadpoolctl import threadpool_info

    cfg = noisy_config()
    inst = program_chip(scr_net, cfg, 1)
    cal = calibrate(scr_net, inst, CAL, seed=1)
    x = images[:200]
    top = min(2, numba.config.NUMBA_NUM_THREADS)
    jobs = [(seed, 1 + seed % top) for seed in range(4)]
    alone = [simulate(scr_net, inst, x, seed=s, calibration=cal, threads=t) for s, t in jobs]
    blas = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
    with ThreadPoolExecutor(max_workers=4) as pool:
        together = list(pool.map(
            lambda j: simulate(scr_net, inst, x, seed=j[0], calibration=cal, threads=j[1]), jobs
        ))
    for a, b in zip(alone, together):
        np.testing.assert_array_equal(a.predictions, b.predictions)
        assert a.snr_db == b.snr_db
    assert [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"] == blas


def test_forward_layer_matches_forward(scr_net, images):
    cfg = config("differential", preset="rram_wan2022", dac=8, adc=8)
    runner, xf, outs = chip_outputs(scr_net, cfg, images[:32], seed=2)
    np.testing.assert_array_equal(runner.forward_layer(0, xf, 0), outs[0])
    np.testing.assert_array_equal(runner.forward_layer(1, outs[0], 0), outs[1])
    assert not np.array_equal(runner.forward_layer(1, outs[0], 1), outs[1])  # other chunk


# ----------------------------------------------------------------------------- converters


@pytest.mark.parametrize("encoding", ["single", "differential", "offset"])
def test_bit_serial_dac_equals_multilevel_with_ideal_adc(encoding, scr_net, images):
    outs = {}
    for mode in ("multilevel", "bit_serial"):
        cfg = config(encoding, adc=0, dac=6).replace(dac={"mode": mode})
        runner, xf, o = chip_outputs(scr_net, cfg, images[:64])
        outs[mode] = (runner, xf, o)
    (r_ml, xf, o_ml), (r_bs, _, _) = outs["multilevel"], outs["bit_serial"]
    assert r_bs.states[0].x_max == r_ml.states[0].x_max
    for i, x_in in enumerate([xf, o_ml[0]]):
        assert rel(r_bs.forward_layer(i, x_in), r_ml.forward_layer(i, x_in)) < 1e-5


def test_bit_serial_with_adc_and_noise_runs(scr_net, images):
    """Bit-serial DAC with a real ADC and read noise: every plane is converted (a coarser
    ADC costs SNR) and gets its own read noise (noise costs SNR on top), deterministically."""
    x = images[:128]
    snr = {}
    for name, adc, sigma in (("ideal ADC", 0, 0.0), ("6-bit", 6, 0.0), ("6-bit noisy", 6, 0.8)):
        cfg = config("differential", dac=8, adc=adc,
                     device={"read": {"kind": "constant", "coeffs": [sigma]}}).replace(
            dac={"mode": "bit_serial"})
        res = simulate(scr_net, program_chip(scr_net, cfg, 1), x, seed=1, calibration=x)
        assert res.dac == "8-bit bit_serial"
        snr[name] = res.snr_db
    assert snr["ideal ADC"][0] > snr["6-bit"][0] + 1 > snr["6-bit noisy"][0] + 2
    assert np.isfinite(snr["6-bit noisy"]).all() and snr["6-bit noisy"][0] > 0


@pytest.mark.parametrize("mode, dac, exact_bits, short_bits", [
    ("multilevel", 8, 8, 5), ("bit_serial", 4, 9, 7),
])
def test_partial_sums_quantised_at_psum_bits(mode, dac, exact_bits, short_bits, dense_net,
                                             images):
    """Issue 6: partial sums between row tiles travel as psum_bits words. With psum_bits >=
    ADC bits (+ DAC planes when bit-serial) nothing the ADC produced is lost; with fewer,
    the partial sums saturate and accuracy drops -- the chip the traffic count describes."""
    base = config("offset", dac=dac, adc=8 if mode == "multilevel" else 6, grid=16).replace(
        dac={"mode": mode})
    inst = program_chip(dense_net, base, 1)
    assert inst.plan.layers[0].row_tiles > 1
    x = images[:128]
    res = {}
    for bits in (64, exact_bits, short_bits):
        cfg = base.replace(mapping={"psum_bits": bits})
        res[bits] = simulate(dense_net, inst, x, seed=0, calibration=x, config=cfg)
    np.testing.assert_array_equal(res[64].predictions, res[exact_bits].predictions)
    assert res[64].snr_db == res[exact_bits].snr_db
    assert not res[exact_bits].layer_info[0]["psum_saturation"]
    assert res[short_bits].layer_info[0]["psum_saturation"]
    assert res[short_bits].snr_db[0] < res[exact_bits].snr_db[0] - 3


def test_fewer_adc_bits_lower_snr(scr_net, images):
    snr = {}
    for bits in (4, 8):
        cfg = config("differential", dac=8, adc=bits)
        snr[bits] = simulate(scr_net, program_chip(scr_net, cfg, 1), images[:128], seed=0, calibration=CAL).snr_db
    assert snr[4][0] < snr[8][0] - 10
    assert snr[4][1] < snr[8][1] - 10


def test_adc_noise_and_granularity(scr_net, images):
    base = config("offset", dac=8, adc=8)
    inst = program_chip(scr_net, base, 1)
    clean = simulate(scr_net, inst, images[:128], seed=0, calibration=images[:128]).snr_db
    noisy = simulate(scr_net, inst, images[:128], seed=0,
                     config=base.replace(adc={"noise_lsb": 2.0}), calibration=images[:128]).snr_db
    column = simulate(scr_net, inst, images[:128], seed=0,
                      config=base.replace(adc={"granularity": "column"}), calibration=images[:128]).snr_db
    pct = simulate(scr_net, inst, images[:128], seed=0,
                   config=base.replace(adc={"calibration": "percentile", "percentile": 99.0}), calibration=images[:128])
    assert noisy[0] < clean[0] - 3
    assert column[0] > clean[0]  # a range per column fits every column better
    assert all(np.isfinite(pct.snr_db))
    assert pct.snr_db[0] != clean[0]  # clipped ranges: another quantisation
    wider = simulate(scr_net, inst, images[:128], seed=0,
                     config=base.replace(adc={"calibration": "percentile", "percentile": 90.0}), calibration=images[:128])
    assert wider.snr_db[0] < pct.snr_db[0]  # clipping 10 % of the reads costs more


def test_activation_quantisation(scr_net, images):
    snr = {}
    for bits in (0, 3):
        cfg = config("differential", act_bits=bits)
        snr[bits] = simulate(scr_net, program_chip(scr_net, cfg, 1), images[:128], seed=0, calibration=images[:128])
    assert snr[3].snr_db[0] < snr[0].snr_db[0] - 20  # layer 0's output is quantised to 3 bits
    assert snr[3].snr_db[1] > 60  # the last layer's output is not


def test_balance_correction_for_single_encoding(scr_net, images):
    """DAC rounding breaks the zero sum of the routed inputs; the digital correction removes
    the common-mode current g0 * sum(x_q) it leaves."""
    cfg = config("single", dac=6, adc=0)
    inst = program_chip(scr_net, cfg, 1)
    on = simulate(scr_net, inst, images[:128], seed=0, calibration=CAL).snr_db
    off = simulate(scr_net, inst, images[:128], seed=0, balance_correction=False, calibration=CAL).snr_db
    assert on[0] > off[0] + 3
    # the chip file's [mapping] balance_correction is the default for simulate()
    off_cfg = cfg.replace(mapping={"balance_correction": False})
    from_file = simulate(scr_net, inst, images[:128], seed=0, config=off_cfg, calibration=CAL).snr_db
    assert from_file == off


def test_balance_correction_after_uniform_drift(scr_net, images):
    """A drift that scales every conductance by the same factor is undone exactly by the
    drift compensation, also for the 'single' balance correction: the common-mode current it
    subtracts has drifted with the devices (the correction used to subtract the undrifted
    g_zero, leaving (comp - 1) * g_zero * sum(q): 28 -> 22 dB here)."""
    cfg = config("single", dac=6, adc=0, device={
        "retention": {"kind": "pcm_drift", "nu_mean": 0.05, "nu_std": 0.0}})
    inst = program_chip(scr_net, cfg, 1)
    aged = age(inst, 86400.0, 2)
    assert aged.layers[0].compensation > 1.3
    fresh = simulate(scr_net, inst, images[:128], seed=0, calibration=CAL).snr_db
    later = simulate(scr_net, aged, images[:128], seed=0, calibration=CAL).snr_db
    assert later == pytest.approx(fresh, abs=0.05)


def test_retention_compensation_restores_accuracy(scr_net, images):
    cfg = config("differential", preset="pcm_joshi2020", dac=8, adc=8,
                 device={"read": {"kind": "constant", "coeffs": [0.0]}})
    inst = program_chip(scr_net, cfg, 1)
    fresh = simulate(scr_net, inst, images[:128], seed=0, calibration=CAL).snr_db_end_to_end[-1]
    comp = simulate(scr_net, age(inst, 86400.0, 2), images[:128], seed=0, calibration=CAL)
    off_cfg = cfg.replace(retention={"drift_compensation": False})
    off_inst = age(program_chip(scr_net, off_cfg, 1), 86400.0, 2)
    off = simulate(scr_net, off_inst, images[:128], seed=0, config=off_cfg, calibration=CAL)
    assert comp.age_s == 86400.0
    assert comp.layer_info[0]["compensation"] > 1.2
    assert comp.snr_db_end_to_end[-1] > off.snr_db_end_to_end[-1] + 3
    assert comp.snr_db_end_to_end[-1] < fresh + 1  # drift spread still costs something


# ----------------------------------------------------------------------------- API


def test_result_serialisation(scr_net, images):
    inst = program_chip(scr_net, config("differential", preset="rram_wan2022"), 1)
    res = simulate(scr_net, inst, images[:20], labels=np.zeros(20, int), seed=0, calibration=CAL)
    d = json.loads(json.dumps(res.as_dict()))
    assert d["n_samples"] == 20 and len(d["snr_db"]) == 2 and d["encoding"] == "differential"
    assert set(d["faults"]) == {"stuck_at_gmin", "stuck_at_gmax"}
    text = res.table()
    assert "chip accuracy" in text and "SNR dB (layer)" in text
    no_ref = simulate(scr_net, inst, images[:20], seed=0, reference=False, calibration=CAL)
    assert no_ref.snr_db is None and no_ref.ideal_accuracy is None and no_ref.accuracy is None
    np.testing.assert_array_equal(no_ref.predictions, res.predictions)


def test_simulation_errors(scr_net, dense_net, images):
    cfg = config("differential")
    inst = program_chip(scr_net, cfg, 1)
    with pytest.raises(SimulationError, match=r"samples must be shaped \(N, 28, 28\)"):
        simulate(scr_net, inst, images[:, :10], seed=0, calibration=CAL)
    with pytest.raises(SimulationError, match="labels must be integers shaped \\(256,\\)"):
        simulate(scr_net, inst, images, labels=np.zeros(3, int), seed=0, calibration=CAL)
    bad = images[:4].copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(SimulationError, match="NaN"):
        simulate(scr_net, inst, bad, seed=0, calibration=CAL)
    with pytest.raises(SimulationError, match="different network"):
        simulate(dense_net, inst, images, seed=0, calibration=CAL)
    with pytest.raises(SimulationError, match=r"\[device\] differs"):
        simulate(scr_net, inst, images, seed=0, config=config("differential", "rram_wan2022"), calibration=CAL)
    with pytest.raises(SimulationError, match="encoding differs"):
        simulate(scr_net, inst, images, seed=0, config=config("offset"), calibration=CAL)
    with pytest.raises(SimulationError, match="seed"):
        simulate(scr_net, inst, images, seed=-1, calibration=CAL)
    # the runner checks the same (it used to accept any config, e.g. another device's noise)
    with pytest.raises(SimulationError, match=r"\[device\] differs"):
        ChipRunner(scr_net, inst, config("differential", "rram_wan2022"), 0)
    with pytest.raises(SimulationError, match="different network"):
        ChipRunner(dense_net, inst, cfg, 0)
    with pytest.raises(SimulationError, match="seed"):
        ChipRunner(scr_net, inst, cfg, -2)


def test_adc_kernels_compile_once(dense_net, scr_net, images):
    """Every call of the ADC kernels has the same argument types -- one- and several-row-tile
    layers, a fresh and a reused (read-only) calibration, multilevel and bit-serial, per tile
    and per column -- so Numba compiles each once (each specialisation of the parallel kernel
    costs tens of seconds on a fresh machine, e.g. in CI)."""
    from sim.chip import kernels

    cases = [
        (dense_net, config("offset", dac=8, adc=8, grid=16, device={"preset": "rram_wan2022"})),
        (scr_net, config("single", dac=8, adc=6).replace(adc={"granularity": "column"})),
        (dense_net, config("offset", dac=4, adc=6, grid=16, mapping={"psum_bits": 7}).replace(
            dac={"mode": "bit_serial"})),
    ]
    for net, cfg in cases:
        inst = program_chip(net, cfg, 1)
        cal = calibrate(net, inst, images[:64], seed=0)  # read-only ranges
        simulate(net, inst, images[:64], seed=0, calibration=cal, reference=False)
        simulate(net, inst, images[:64], seed=0, calibration=images[:64], reference=False)
    for name in ("_adc_accumulate", "psum_finish"):
        assert len(getattr(kernels, name).signatures) == 1, name
    with pytest.raises(ValueError, match="acc must be a writable C-contiguous float32"):
        z = np.zeros((1, 2, 256), np.float32)
        kernels.adc_accumulate(z, z, False, z[0, :, :1], z[0, :, :1], 15, 0.0, 1, 2, 0, 0, 2, 0,
                               1.0, np.zeros((2, 256)), np.zeros(256, np.float32), 1, 0, 0,
                               np.zeros((0, 0, 0)), 1.0)


@pytest.mark.parametrize("kind, encoding", [("dense", "offset"), ("dense", "differential"),
                                            ("scr", "single")])
def test_skipping_zero_inputs_changes_nothing(kind, encoding, dense_net, images, monkeypatch):
    """[simulation] skip_zero_inputs: the products leave out the inputs that are always 0
    (the images' zero padding: 240 of the dense network's 1024 first-layer inputs, whole
    row tiles among them; routed ScRRAMBLe inputs whose sources are all padding) -- with
    read noise, ADC and partial sums the results are bit for bit those of multiplying every
    input, and the runner counts what it left out."""
    from sim.chip import functional

    monkeypatch.setattr(functional, "SKIP_MIN", 1)  # skip wherever one input is zero
    net = dense_net
    if kind == "scr":  # sparse routing: some routed inputs come from padding slots only
        net = build_scrramble_network(hidden_cores=(6,), core_size=64, slot_size=16, p=0.05,
                                      rng=np.random.default_rng(0))
    cfg = config(encoding, dac=8, adc=8, grid=16, act_bits=8,
                 device={"preset": "rram_wan2022", "read": {"kind": "proportional",
                                                            "coeffs": [0.02]}})
    off = cfg.replace(simulation={"skip_zero_inputs": False})
    assert cfg.simulation.skip_zero_inputs and not off.simulation.skip_zero_inputs
    inst = program_chip(net, cfg, 1)
    cal = calibrate(net, inst, CAL, seed=0)
    x = np.concatenate([images, images[:60]])  # 316 samples: a partial block
    on_res = simulate(net, inst, x, seed=3, calibration=cal, sample_offset=900)
    off_res = simulate(net, inst, x, seed=3, calibration=cal, sample_offset=900, config=off)
    np.testing.assert_array_equal(on_res.predictions, off_res.predictions)
    assert on_res.snr_db == off_res.snr_db
    assert on_res.snr_db_end_to_end == off_res.snr_db_end_to_end
    xf = net.input_spec.prepare(x)
    outs = {}
    for name, c in (("on", cfg), ("off", off)):
        runner = ChipRunner(net, inst, c, 3)
        runner.use(cal)
        outs[name] = runner.forward(xf, 900)
        outs[name + "_skipped"] = runner.skipped_inputs
    for a, b in zip(outs["on"], outs["off"]):
        np.testing.assert_array_equal(a, b)
    skipped, total = outs["on_skipped"]
    blocks = 2  # samples 900 .. 1215: two 1024-sample blocks
    if kind == "dense":  # every block leaves out the padding of the first layer (and the
        assert skipped >= 240 * blocks and total > skipped  # padding of partial row tiles)
    else:  # routed slots of padding only: fewer, but some
        assert 0 < skipped < total
    assert outs["off_skipped"] == [0, 0]
