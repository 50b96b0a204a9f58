"""Minibatch training of a :class:`Network` with hardware-aware options.

Every random draw (shuffling, weight noise) comes from ``numpy.random.default_rng(seed)``;
with the same seed and data the trained weights are bit-identical (BLAS runs single-threaded
per chunk, see :mod:`sim.training.parallel`).

Learning rate: Adam's step is about ``lr`` per weight whatever the weight's scale, but the
layers of a ScRRAMBLe network start at very different scales (He init over routed fan-ins of
~10^3..10^4; the capsule layer ~100x smaller still, so its norms start near 0.5). With
``layer_lr_scaling`` (default) each layer's step is ``lr * rms(W_layer) / max_l rms(W_l)``
(RMS at the start of training), i.e. the same relative step everywhere; ``lr`` keeps its
usual meaning for the layer with the largest weights. Without it, lr = 1e-3 is ~5x the
capsule layer's weights and the margin loss blows up (measured, one epoch on 10k
Fashion-MNIST samples: loss 7.5 and 56 % test accuracy; with the scaling 0.20 and 82 %).

Hardware-aware options:
- ``weight_noise`` (relative sigma): for every minibatch a fresh Gaussian perturbation with
  sigma = weight_noise * max|W| per core (ScRRAMBLe) or per layer (dense weights; biases are
  digital and stay clean) is added; forward and backward use the noisy weights and the update
  is applied to the clean weights (noise-injection training, e.g. Joshi et al., Nat. Commun.
  11, 2473 (2020)).
- ``weight_clip`` (absolute c): weights are clipped to [-c, c] after every step (and once
  before training), bounding the conductance range the mapping must cover.

Checkpoints (:mod:`sim.training.checkpoint`): with ``checkpoint=PATH`` the complete training
state (weights, Adam moments and step count, learning-rate factors, Generator state, metrics,
config and a fingerprint of architecture, initial weights and data) is written atomically after
every epoch; ``resume=True`` continues from it, bit-identically to an uninterrupted run.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from mappings.checks import check_seed, positive_int
from mappings.network import DTYPE, Network
from sim.training.backprop import TrainableNetwork, readout_backward
from sim.training.checkpoint import (
    Checkpoint,
    CheckpointError,
    check_matches,
    load_checkpoint,
    run_fingerprint,
    save_checkpoint,
)
from sim.training.losses import LOSSES, get_loss
from sim.training.optim import OPTIMIZERS, SCHEDULES, learning_rate, make_optimizer
from sim.training.parallel import Workers


class TrainConfigError(ValueError):
    """Invalid training configuration or training data."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run (besides the data and initial network).

    lr is the peak Adam step size (of the layer with the largest weights if
    layer_lr_scaling). schedule: 'cosine' (default; anneals lr to 0 over all steps), 'step'
    (lr * step_gamma every step_epochs epochs) or 'constant'. weight_clip: None or an absolute
    bound c > 0. The defaults (10 epochs, batch 128, lr 3e-3, cosine, margin loss) reach
    ~90 % on Fashion-MNIST with the default ScRRAMBLe network.
    """

    epochs: int = 10
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 0.0
    optimizer: str = "adam"
    loss: str = "margin"
    weight_noise: float = 0.0
    weight_clip: float | None = None
    seed: int = 0
    schedule: str = "cosine"
    step_epochs: int = 5
    step_gamma: float = 0.5
    layer_lr_scaling: bool = True

    def __post_init__(self) -> None:
        def bad(field: str, expected: str) -> TrainConfigError:
            return TrainConfigError(
                f"TrainConfig.{field} = {getattr(self, field)!r}; expected {expected}"
            )

        for field in ("epochs", "batch_size", "step_epochs"):
            v = getattr(self, field)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise bad(field, "a positive integer")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise bad("lr", "a positive finite number")
        for field in ("weight_decay", "weight_noise"):
            v = getattr(self, field)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise bad(field, "a finite number >= 0")
        if self.weight_clip is not None and not (
            isinstance(self.weight_clip, (int, float))
            and math.isfinite(self.weight_clip)
            and self.weight_clip > 0
        ):
            raise bad("weight_clip", "None or a positive finite number")
        if self.optimizer not in OPTIMIZERS:
            raise bad("optimizer", f"one of {OPTIMIZERS}")
        if self.loss not in LOSSES:
            raise bad("loss", f"one of {LOSSES}")
        if self.schedule not in SCHEDULES:
            raise bad("schedule", f"one of {SCHEDULES}")
        if not (0 < self.step_gamma <= 1):
            raise bad("step_gamma", "a factor in (0, 1]")
        check_seed(self.seed, "TrainConfig.seed", TrainConfigError)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def _check_data(network: Network, x: np.ndarray, y: np.ndarray, what: str) -> tuple:
    x = np.asarray(x)
    y = np.asarray(y)
    shape = network.input_spec.image_shape
    flat = int(np.prod(shape))
    if x.ndim < 2 or (tuple(x.shape[1:]) != tuple(shape) and tuple(x.shape[1:]) != (flat,)):
        raise TrainConfigError(
            f"{what} samples shaped {x.shape}; expected (N, {', '.join(map(str, shape))}) or "
            f"(N, {flat})"
        )
    if y.shape != (x.shape[0],):
        raise TrainConfigError(f"{what} labels shaped {y.shape}; expected ({x.shape[0]},)")
    if y.dtype.kind not in "iu":
        raise TrainConfigError(f"{what} labels have dtype {y.dtype}; expected integers")
    n = network.n_classes
    if y.size and (y.min() < 0 or y.max() >= n):
        raise TrainConfigError(f"{what} labels span {y.min()}..{y.max()}; expected 0..{n - 1}")
    return x, y.astype(np.int64)


def _noisy_params(tn: TrainableNetwork, sigma: float, rng: np.random.Generator) -> list[np.ndarray]:
    """Clean parameters plus fresh relative Gaussian noise on the weights."""
    out = []
    for st in tn.layers:
        for j, p in enumerate(st.params):
            if j > 0:  # dense bias: digital, no noise
                out.append(p)
                continue
            noise = rng.standard_normal(p.shape, dtype=DTYPE)
            if st.kind == "scrramble":
                scale = sigma * np.abs(p).max(axis=(1, 2))
                noise *= scale.astype(DTYPE)[:, None, None]
            else:
                noise *= DTYPE(sigma * float(np.abs(p).max(initial=0.0)))
            noise += p
            out.append(noise)
    return out


def layer_lr_scales(tn: TrainableNetwork) -> list[float]:
    """Per parameter array: its layer's weight RMS divided by the largest layer weight RMS."""
    rms = [float(np.sqrt(np.mean(np.square(st.params[0], dtype=np.float64)))) for st in tn.layers]
    top = max(rms)
    if not (top > 0 and math.isfinite(top)):
        return [1.0] * len(tn.params)
    return [max(r, 1e-12 * top) / top for st, r in zip(tn.layers, rms) for _ in st.params]


def _clip(tn: TrainableNetwork, c: float) -> None:
    # The largest float32 not above c, so |w| <= c holds exactly, not just to float32 rounding.
    c32 = DTYPE(c)
    if float(c32) > c:
        c32 = np.nextafter(c32, DTYPE(0))
    for p, is_weight in zip(tn.params, tn.weight_flags()):
        if is_weight:
            np.clip(p, -c32, c32, out=p)


def train(
    network: Network,
    train_x: np.ndarray,
    train_y: np.ndarray,
    config: TrainConfig,
    *,
    test_x: np.ndarray | None = None,
    test_y: np.ndarray | None = None,
    progress: bool = True,
    threads: int = 2,
    checkpoint: str | os.PathLike | None = None,
    resume: bool = False,
    overwrite: bool = False,
) -> tuple[Network, dict]:
    """Train a copy of ``network``; return (new trained Network, metrics).

    metrics: ``history`` (per epoch: epoch, loss, train_accuracy -- running accuracy over the
    epoch's minibatches, with noisy weights if weight_noise > 0 -- test_accuracy (None without
    test data), lr at the epoch's end, seconds), ``final_train_accuracy``,
    ``final_test_accuracy``, ``seconds`` (training time over all sessions) and
    ``resumed_from_epoch`` (0 unless resumed). ``threads``: worker threads, each running
    single-threaded BLAS on its share of cores / columns (see :mod:`sim.training.parallel`).
    The returned network's metadata holds the original metadata plus ``training``.

    ``checkpoint``: file written atomically after every epoch. An existing file is an error
    unless ``resume``; with ``resume`` it is continued (from the epoch after the one it
    records; a finished one just returns its network), or training starts fresh if it does not
    exist. Pass the same initial ``network``, data and config as the interrupted run: any
    difference raises :class:`CheckpointError` listing the differing fields. ``overwrite``
    (without ``resume``): an existing checkpoint is not an error; training starts fresh and
    the first epoch's checkpoint replaces it (atomically).
    """
    if not isinstance(config, TrainConfig):
        raise TrainConfigError(f"config must be a TrainConfig, got {type(config).__name__}")
    train_x, train_y = _check_data(network, train_x, train_y, "training")
    if (test_x is None) != (test_y is None):
        raise TrainConfigError("pass both test_x and test_y, or neither")
    if test_x is not None:
        test_x, test_y = _check_data(network, test_x, test_y, "test")
    n = len(train_x)
    if n == 0:
        raise TrainConfigError("training data is empty")
    threads = positive_int(threads, "threads", TrainConfigError)
    ckpt = _Checkpointing.open(
        checkpoint, resume, network, config, train_x, train_y, test_x, test_y, overwrite
    )

    with threadpool_limits(limits=1, user_api="blas"), Workers(int(threads)) as workers:
        return _train(network, train_x, train_y, config, test_x, test_y, progress, workers, ckpt)


@dataclass(frozen=True)
class _Checkpointing:
    """Where to write checkpoints, the run's fingerprint and the state to resume (if any)."""

    path: Path
    fingerprint: dict
    state: Checkpoint | None

    @classmethod
    def open(cls, path, resume, network, config, train_x, train_y, test_x, test_y, overwrite):
        if not isinstance(resume, bool):
            raise TrainConfigError(f"resume must be True or False, got {resume!r}")
        if path is None:
            if resume:
                raise TrainConfigError("resume=True needs a checkpoint path")
            return None
        path = Path(path)
        if path.is_dir():
            raise CheckpointError(f"{path}: is a directory; expected a checkpoint file path")
        if not path.parent.is_dir():
            raise CheckpointError(f"{path}: directory {path.parent} does not exist")
        fingerprint = run_fingerprint(network, train_x, train_y, test_x, test_y)
        state = None
        if path.exists() and (resume or not overwrite):
            if not resume:
                raise CheckpointError(
                    f"{path}: checkpoint already exists; resume it (resume=True / --resume) or "
                    "remove it (or choose another path) to start over"
                )
            state = load_checkpoint(path)
            check_matches(state, path, config.as_dict(), fingerprint)
            if (state.lr_scale is not None) != config.layer_lr_scaling:
                raise CheckpointError(
                    f"{path}: /checkpoint/optimizer/lr_scale is "
                    f"{'present' if state.lr_scale is not None else 'missing'} but "
                    f"layer_lr_scaling is {config.layer_lr_scaling}; corrupted checkpoint?"
                )
        return cls(path, fingerprint, state)


def _restore(tn: TrainableNetwork, opt, state: Checkpoint, path: Path, steps_per_epoch: int):
    """Load weights and optimiser state of ``state`` into ``tn`` / ``opt`` (in place)."""
    if state.adam_t != state.epoch * steps_per_epoch:
        raise CheckpointError(
            f"{path}: optimizer step count {state.adam_t} != {state.epoch} epochs x "
            f"{steps_per_epoch} steps; corrupted checkpoint?"
        )
    resumed = TrainableNetwork(state.network)
    for p, q, m, v, m0, v0 in zip(
        tn.params, resumed.params, opt.m, opt.v, state.adam_m, state.adam_v
    ):
        p[...] = q
        m[...] = m0
        v[...] = v0
    opt.t = state.adam_t


def _train(network, train_x, train_y, config, test_x, test_y, progress, workers, ckpt):
    tn = TrainableNetwork(network, workers=workers)
    loss_fn = get_loss(config.loss)
    opt = make_optimizer(
        config.optimizer, tn.params, config.weight_decay, tn.weight_flags(), workers
    )
    n = len(train_x)
    bs = min(config.batch_size, n)
    steps_per_epoch = -(-n // bs)
    total_steps = steps_per_epoch * config.epochs
    state = ckpt.state if ckpt is not None else None
    if state is None:
        rng = np.random.default_rng(config.seed)
        if config.weight_clip is not None:
            _clip(tn, config.weight_clip)
        lr_scale = layer_lr_scales(tn) if config.layer_lr_scaling else None
        history, start, seconds_before, lr = [], 0, 0.0, config.lr
    else:
        _restore(tn, opt, state, ckpt.path, steps_per_epoch)
        rng = state.generator()
        lr_scale = None if state.lr_scale is None else list(state.lr_scale)
        history = [dict(h) for h in state.history]
        start, seconds_before, lr = state.epoch, state.seconds, history[-1]["lr"]

    spec, readout = network.input_spec, network.readout
    step = start * steps_per_epoch
    t_start = time.perf_counter()
    for epoch in range(start, config.epochs):
        t0 = time.perf_counter()
        order = rng.permutation(n)
        loss_sum, correct = 0.0, 0
        bar = tqdm(
            total=steps_per_epoch,
            desc=f"epoch {epoch + 1}/{config.epochs}",
            file=sys.stderr,
            disable=not progress,
            leave=True,
            unit="batch",
        )
        with bar:
            for b in range(steps_per_epoch):
                idx = order[b * bs : (b + 1) * bs]
                x = spec.prepare(train_x[idx])
                labels = train_y[idx]
                params = (
                    _noisy_params(tn, config.weight_noise, rng) if config.weight_noise else None
                )
                caches, y = tn.forward(x, params)
                scores = readout.scores(y)
                loss, dscores = loss_fn(scores, labels)
                if not math.isfinite(loss):
                    raise TrainConfigError(
                        f"training diverged at epoch {epoch + 1}, step {b + 1} (loss {loss}); "
                        "lower the learning rate"
                    )
                dy = readout_backward(readout, y, scores, dscores)
                grads = tn.backward(caches, dy, params)
                lr = learning_rate(
                    config.lr,
                    config.schedule,
                    step,
                    total_steps,
                    steps_per_epoch,
                    config.step_epochs,
                    config.step_gamma,
                )
                opt.step(grads, lr, lr_scale)
                if config.weight_clip is not None:
                    _clip(tn, config.weight_clip)
                step += 1
                loss_sum += loss * len(idx)
                correct += int(np.sum(np.argmax(scores, axis=1) == labels))
                seen = b * bs + len(idx)
                if progress and (b % 20 == 0 or b == steps_per_epoch - 1):
                    bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.4f}")
                bar.update(1)
            test_acc = None
            if test_x is not None:
                test_acc = tn.accuracy(test_x, test_y)
                bar.set_postfix(
                    loss=f"{loss_sum / n:.4f}", acc=f"{correct / n:.4f}", test=f"{test_acc:.4f}"
                )
        history.append(
            {
                "epoch": epoch + 1,
                "loss": loss_sum / n,
                "train_accuracy": correct / n,
                "test_accuracy": test_acc,
                "lr": lr,
                "seconds": time.perf_counter() - t0,
            }
        )
        if ckpt is not None:
            seconds = seconds_before + time.perf_counter() - t_start
            save_checkpoint(
                ckpt.path,
                Checkpoint(
                    network=tn.to_network(
                        {**network.metadata, "checkpoint_epoch": epoch + 1, "n_train": n}
                    ),
                    epoch=epoch + 1,
                    seconds=seconds,
                    config=config.as_dict(),
                    fingerprint=ckpt.fingerprint,
                    history=history,
                    rng_state=rng.bit_generator.state,
                    adam_t=opt.t,
                    adam_m=tuple(opt.m),
                    adam_v=tuple(opt.v),
                    lr_scale=None if lr_scale is None else tuple(lr_scale),
                ),
            )
    seconds = seconds_before + time.perf_counter() - t_start
    metrics = {
        "history": history,
        "final_train_accuracy": history[-1]["train_accuracy"],
        "final_test_accuracy": history[-1]["test_accuracy"],
        "seconds": seconds,
        "resumed_from_epoch": start,
    }
    meta = dict(network.metadata)
    meta["training"] = {**config.as_dict(), **metrics, "n_train": n}
    return tn.to_network(meta), metrics


def parallel_predict(
    network: Network,
    samples: np.ndarray,
    *,
    batch_size: int = 2048,
    threads: int = 2,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Predicted classes via :meth:`Network.predict`, batches spread over ``threads`` threads.

    BLAS runs single-threaded inside each batch, so the result does not depend on
    ``threads`` (batch boundaries are fixed by ``batch_size``). ``progress(n)`` is called
    with the number of samples done after every batch (from the worker threads, serialised).
    """
    n = len(samples)
    starts = list(range(0, n, batch_size))
    preds: list[np.ndarray] = [np.zeros(0, dtype=np.int64)] * len(starts)
    lock = threading.Lock()
    done = [0]

    def chunk(sl: slice) -> None:
        for j in range(sl.start, sl.stop):
            i = starts[j]
            preds[j] = network.predict(samples[i : i + batch_size], batch_size)
            if progress is not None:
                with lock:
                    done[0] += len(preds[j])
                    progress(done[0])

    with threadpool_limits(limits=1, user_api="blas"), Workers(threads) as workers:
        workers.run(chunk, len(starts))
    return np.concatenate(preds) if preds else np.zeros(0, dtype=np.int64)


def evaluate_accuracy(
    network: Network,
    samples: np.ndarray,
    labels: np.ndarray,
    *,
    batch_size: int = 2048,
    threads: int = 2,
) -> float:
    """Ideal accuracy (NaN for no samples); see :func:`parallel_predict`."""
    if len(samples) == 0:
        return float("nan")
    pred = parallel_predict(network, samples, batch_size=batch_size, threads=threads)
    return float(np.mean(pred == np.asarray(labels)))
