"""synthscale.train: one pre-training run (config, schedules, loop, checkpoints, resume, torchrun)."""

from synthscale.model.checkpoint import load_model, read_checkpoint_metadata, save_model, save_weights
from synthscale.train.build import build_model, seed_everything
from synthscale.train.config import TrainConfig
from synthscale.train.loop import TrainSummary, train
from synthscale.train.optimizer import build_optimizer
from synthscale.train.schedule import CosineSchedule, WSDSchedule, make_schedule
from synthscale.train.state import RunState
from synthscale.train.step import train_step

__all__ = [
    "CosineSchedule",
    "RunState",
    "TrainConfig",
    "TrainSummary",
    "WSDSchedule",
    "build_model",
    "build_optimizer",
    "load_model",
    "make_schedule",
    "read_checkpoint_metadata",
    "save_model",
    "save_weights",
    "seed_everything",
    "train",
    "train_step",
]
