"""The one adapter between sweeps and the chip simulation: a :class:`PointTask` -> a result.

Everything the sweep needs from :mod:`sim.chip` goes through this module (programming,
aging, calibration, simulation), so a change of the simulator's API changes only this file.

Reuse: a :class:`PointEvaluator` keeps, for the tasks it is given, the loaded networks and
datasets, the programmed chip instances keyed by what programming depends on (network, chip
geometry, device except its read noise, encoding, scaling, seed) and the aged instances
(plus ``[retention]`` and the read-noise model). Points that differ only in read-time settings (DAC / ADC, read noise,
activation bits, batch size) share one programmed instance. The converters are calibrated
once per point (one (instance, read-time configuration) pair) on the first
``[simulation] calibration_samples`` images of the train split, never on scored test images.

Determinism: the instance is programmed and aged with the point's seed and the read noise is
drawn from the point's seed, so a result depends on the point only, never on the worker or
the order; BLAS runs on one thread.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
from threadpoolctl import ThreadpoolController

from sim.sweep.spec import PointTask

READ_TIME_DEVICE_KEYS: tuple[str, ...] = ("read",)  # device keys not used by programming
POINT_FORMAT = "scrramble-sweep-point"


class PointError(ValueError):
    """A point could not be evaluated (the message names the point)."""


def program_key(network: str, config: Mapping[str, Any], seed: int) -> str:
    """What a programmed instance depends on: network, [chip], [device] except read noise,
    encoding, scaling, placement (the instance carries it), seed."""
    device = {k: v for k, v in config["device"].items() if k not in READ_TIME_DEVICE_KEYS}
    mapping = {k: config["mapping"].get(k) for k in ("encoding", "scaling", "placement")}
    return json.dumps(
        {"network": network, "chip": config["chip"], "device": device, "mapping": mapping,
         "seed": int(seed)},
        sort_keys=True,
    )


@contextlib.contextmanager
def one_thread(controller: ThreadpoolController | None = None) -> Iterator[None]:
    """BLAS and Numba on one thread for the block (restored afterwards). A sweep's
    parallelism is its worker processes; threads inside a point only contend with them (and
    Numba's pool costs ~10 ms a call on a loaded machine, measured on small layers).
    ``controller``: a ThreadpoolController to reuse (creating one scans the loaded libraries)."""
    import numba

    controller = ThreadpoolController() if controller is None else controller
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        with controller.limit(limits=1):
            yield
    finally:
        numba.set_num_threads(before)


def _finite(v: float | None) -> float | None:
    return None if v is None or not math.isfinite(v) else float(v)


class PointEvaluator:
    """Evaluates point tasks, reusing networks, data and chip instances between them."""

    def __init__(self) -> None:
        self._networks: dict[str, Any] = {}
        self._data: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
        self._programmed: dict[str, Any] = {}
        self._aged: dict[tuple[str, str], Any] = {}
        self.programmed_count = 0
        self._threads = ThreadpoolController()

    def network(self, path: str):
        from mappings.h5format import load_network

        if path not in self._networks:
            self._networks[path] = load_network(path)
        return self._networks[path]

    def split(self, dataset: str, data: str | None, split: str) -> tuple[np.ndarray, np.ndarray]:
        from sim.datasets import load_dataset

        key = (dataset, data, split)
        if key not in self._data:
            self._data[key] = load_dataset(dataset, data, split)
        return self._data[key]

    def instance(self, task: PointTask, network, config):
        """The programmed and aged instance of ``task``, shared with earlier tasks that
        differ only in read-time settings, carrying ``config`` (its read-time settings)."""
        from sim.chip.programming import age, program_chip

        pkey = program_key(task.network, task.config, task.seed)
        if pkey not in self._programmed:
            self._programmed[pkey] = program_chip(network, config, task.seed)
            self.programmed_count += 1
        # aged per read-noise model too: an aged instance may hold derived read variances
        akey = (pkey, json.dumps([task.config["retention"], task.config["device"].get("read")],
                                 sort_keys=True))
        if akey not in self._aged:
            inst = self._programmed[pkey]
            t = config.retention.time_s
            if t > 0:
                inst = age(dataclasses.replace(inst, config=config, _cache={}), t, task.seed)
            self._aged[akey] = inst
        # the same devices read with this point's converters and read-noise model
        return dataclasses.replace(self._aged[akey], config=config, _cache={})

    def evaluate(
        self, task: PointTask, progress: Callable[[int], None] | None = None
    ) -> dict[str, Any]:
        """Program (or reuse), calibrate and simulate one point; a JSON-ready result.
        ``progress(n)``: called with the number of test images done."""
        from sim.chip.config import chip_config_from_dict, plan_for_chip
        from sim.chip.functional import simulate
        from sim.chip.timing import mvm_timing

        t0 = time.perf_counter()
        try:
            config = chip_config_from_dict(task.config, source=f"point {task.key}")
            network = self.network(task.network)
            dataset = task.dataset or network.metadata.get("dataset", "fashion-mnist")
            test_x, test_y = self.split(dataset, task.data, "test")
            train_x, _ = self.split(dataset, task.data, "train")
            if task.samples is not None:
                test_x, test_y = test_x[: task.samples], test_y[: task.samples]
            calibration = train_x[: config.simulation.calibration_samples]
            with one_thread(self._threads):
                instance = self.instance(task, network, config)
                res = simulate(
                    network, instance, test_x, labels=test_y, seed=task.seed, config=config,
                    calibration=_calibration(network, instance, config, calibration, task.seed),
                    progress=progress,
                )
            plan = plan_for_chip(network, config, check=False)
            timing = mvm_timing(config, len(network.layers))
            energy = _energy_pj(network, instance, config, plan, timing, test_x)
        except ValueError as exc:  # every library error is a ValueError with a message
            shown = ", ".join(f"{k} = {v!r}" for k, v in task.values.items())
            raise PointError(f"point ({shown}; seed {task.seed}): {exc}") from None
        return {
            "format": POINT_FORMAT,
            "key": task.key,
            "index": list(task.index),
            "values": dict(task.values),
            "seed": task.seed,
            "network": task.network,
            "dataset": dataset,
            "n_samples": res.n_samples,
            "calibration_samples": res.calibration_samples,
            "accuracy": res.accuracy,
            "ideal_accuracy": res.ideal_accuracy,
            "snr_db": [_finite(v) for v in res.snr_db or ()],
            "snr_db_end_to_end": [_finite(v) for v in res.snr_db_end_to_end or ()],
            "n_devices": res.n_devices,
            "inter_core_bits": plan.inter_core_bits,
            "latency_ns": timing.inference_ns,
            "energy_pj": energy,
            "seconds": time.perf_counter() - t0,
            "config": task.config,
        }


ENERGY_SAMPLES = 64  # test images whose inputs set the array read energy


def _energy_pj(network, instance, config, plan, timing, samples: np.ndarray) -> float | None:
    """Energy per inference (pJ, :func:`sim.costs.energy.energy_report`) from the instance's
    conductances and placement and the first ``ENERGY_SAMPLES`` test inputs; leakage over the
    first-order MVM latency (no packet-network contention). None without ``sim.costs`` or a
    placement."""
    try:
        from sim.costs.energy import energy_report
    except ImportError:
        return None
    if getattr(instance, "placement", None) is None:
        return None
    report = energy_report(
        plan, config, positions=instance.placement.positions,
        seconds_per_inference=timing.inference_ns * 1e-9, network=network, instance=instance,
        samples=samples[:ENERGY_SAMPLES],
    )
    return float(report.total_pj)


def _calibration(network, instance, config, samples: np.ndarray, seed: int):
    """What ``simulate(calibration=...)`` takes: a calibration value where the simulator
    offers :func:`sim.chip.functional.calibrate` (calibration as a value, calibrated once on
    ``samples`` with the point's seed), else the samples (the simulator calibrates on them
    with the read-noise seed, the same thing)."""
    from sim.chip import functional

    calibrate = getattr(functional, "calibrate", None)
    if calibrate is None:
        return samples
    return calibrate(network, instance, samples, config=config, seed=seed)


def warm_numba() -> float:
    """Compile (or load from the on-disk cache) the chip kernels once in this process, on a
    tiny network: run before fanning out so workers load the cache instead of compiling.
    Returns the seconds it took."""
    from mappings.builders import build_scrramble_network
    from mappings.network import InputSpec
    from sim.chip.config import default_chip_config
    from sim.chip.functional import simulate
    from sim.chip.programming import program_chip

    t0 = time.perf_counter()
    rng = np.random.default_rng(0)
    spec = InputSpec(image_shape=(8, 8), padded_shape=(8, 8))
    net = build_scrramble_network(
        hidden_cores=(2,), n_classes=2, core_size=16, slot_size=4, input_spec=spec, rng=rng
    )
    base = default_chip_config().replace(
        chip={"core_rows": 16, "core_cols": 16, "slot_size": 4},
        simulation={"calibration_samples": 4},
    )
    x = rng.random((6, 8, 8)).astype(np.float32)
    with one_thread():
        for mode in ("multilevel", "bit_serial"):
            cfg = base.replace(dac={"mode": mode})
            inst = program_chip(net, cfg, 0)
            simulate(net, inst, x, seed=0, config=cfg, reference=False, calibration=x)
    return time.perf_counter() - t0
