"""Training of ScRRAMBLe and dense networks: losses, backprop, optimisers, trainer, checkpoints."""

from sim.training.checkpoint import Checkpoint, CheckpointError, load_checkpoint
from sim.training.losses import cross_entropy, get_loss, margin_loss
from sim.training.trainer import TrainConfig, TrainConfigError, train

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "TrainConfig",
    "TrainConfigError",
    "cross_entropy",
    "get_loss",
    "load_checkpoint",
    "margin_loss",
    "train",
]
