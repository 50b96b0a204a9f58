"""Training of ScRRAMBLe and dense networks: losses, backprop, optimisers, trainer."""

from sim.training.losses import cross_entropy, get_loss, margin_loss
from sim.training.trainer import TrainConfig, TrainConfigError, train

__all__ = ["TrainConfig", "TrainConfigError", "cross_entropy", "get_loss", "margin_loss", "train"]
