"""Training of ScRRAMBLe and dense networks: losses, backprop, optimisers, trainer, checkpoints."""

from sim.training.checkpoint import Checkpoint, CheckpointError, load_checkpoint, save_checkpoint
from sim.training.losses import LOSSES, LossError, cross_entropy, get_loss, margin_loss
from sim.training.optim import OPTIMIZERS, SCHEDULES, OptimizerError
from sim.training.trainer import (
    TrainConfig,
    TrainConfigError,
    evaluate_accuracy,
    parallel_predict,
    train,
)

__all__ = [
    "LOSSES",
    "OPTIMIZERS",
    "SCHEDULES",
    "Checkpoint",
    "CheckpointError",
    "LossError",
    "OptimizerError",
    "TrainConfig",
    "TrainConfigError",
    "cross_entropy",
    "evaluate_accuracy",
    "get_loss",
    "load_checkpoint",
    "margin_loss",
    "parallel_predict",
    "save_checkpoint",
    "train",
]
