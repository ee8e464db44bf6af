"""synthscale.model: the Llama decoder and the size ladder (shapes, parameter and FLOP counts)."""

from synthscale.model.ladder import (
    LADDER,
    Rung,
    default_batch_size,
    default_batch_tokens,
    default_lr,
    flops_6n_per_token,
    get_rung,
    model_config,
    param_counts,
    train_flops_per_token,
)
from synthscale.model.llama import Llama, ModelConfig

__all__ = [
    "LADDER",
    "Llama",
    "ModelConfig",
    "Rung",
    "default_batch_size",
    "default_batch_tokens",
    "default_lr",
    "flops_6n_per_token",
    "get_rung",
    "model_config",
    "param_counts",
    "train_flops_per_token",
]
