"""Building the model a run trains: fresh (seeded) or from Hugging Face weights, compiled, parallelised.

``build_training_model`` is the order a run needs: build (on the meta device under
FSDP, which shards before any weight exists), compile, wrap (DDP / FSDP2), then, for a
sharded model, fill each rank's shards. Fresh weights depend only on (model config,
seed), so every path gives the weights of ``Llama(model_cfg, seed)``.
"""

from __future__ import annotations

import random

import numpy as np
import torch
from torch import nn

from synthscale.errors import ConfigError, InputError
from synthscale.model.hf import import_hf_config, load_hf_weights
from synthscale.model.ladder import train_flops_per_token
from synthscale.model.llama import Llama, ModelConfig
from synthscale.train import distributed
from synthscale.train.config import TrainConfig
from synthscale.train.distributed import DistContext


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices) RNGs."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_training_model(model_cfg: ModelConfig, cfg: TrainConfig, ctx: DistContext) -> tuple[Llama, nn.Module, bool]:
    """(model, the module that trains (model, DDP around it, or the FSDP2-sharded model), compiled?) of a run.

    The model is in train mode on ``ctx.device`` with the run's starting weights;
    ``compiled`` is ``cfg.resolved_compile`` for this model.
    """
    sharded = ctx.distributed and cfg.parallel == "fsdp"
    # FSDP: shapes only until the model is sharded, then each rank fills in its shards
    model = build_model(model_cfg, cfg, device=torch.device("meta") if sharded else ctx.device)
    model.train()
    compiled = cfg.resolved_compile(train_flops_per_token(model_cfg, cfg.seq_len))
    if compiled:
        model.compile_for_training()
    module = distributed.wrap(model, ctx, cfg)
    if sharded:
        model.to_empty(device=ctx.device)
        init_weights(model, cfg)
    return model, module, compiled


def build_model(model_cfg: ModelConfig, cfg: TrainConfig, device: torch.device | str = "cpu") -> Llama:
    """Llama(model_cfg) on ``device`` with fresh weights (seed ``cfg.seed``) or those of ``cfg.init_from_hf``.

    On the meta device the model has shapes only (for FSDP, which shards it first):
    ``to_empty`` it, then ``init_weights(model, cfg)``.
    """
    if cfg.init_from_hf is not None:
        check_hf_shape(model_cfg, cfg)  # fail before anything is built or read
    if torch.device(device).type == "meta":
        with torch.device("meta"):
            return Llama(model_cfg, seed=cfg.seed)
    model = Llama(model_cfg, seed=cfg.seed)  # weights drawn on CPU, then moved
    if cfg.init_from_hf is not None:
        _load_hf_weights(model, cfg.init_from_hf)
    return model.to(device)


def init_weights(model: Llama, cfg: TrainConfig) -> None:
    """Put fresh weights (seed ``cfg.seed``) or those of ``cfg.init_from_hf`` into a built, maybe sharded, model."""
    # also the RoPE tables, which a model built on the meta device lacks
    distributed.init_sharded_weights(model, cfg.seed)
    if cfg.init_from_hf is not None:
        _load_hf_weights(model, cfg.init_from_hf)


def check_hf_shape(model_cfg: ModelConfig, cfg: TrainConfig) -> None:
    """ConfigError unless the HF folder ``cfg.init_from_hf`` has the model shape ``model_cfg``."""
    hf_cfg = import_hf_config(cfg.init_from_hf)
    if hf_cfg != model_cfg:
        diff = [k for k, v in hf_cfg.to_dict().items() if model_cfg.to_dict()[k] != v]
        raise ConfigError(f"TrainConfig.init_from_hf: {cfg.init_from_hf} has another model shape "
                          f"(differs in {', '.join(diff)}); use import_hf_config() for the run's model config")


def _load_hf_weights(model: Llama, folder: str) -> None:
    try:
        distributed.load_full_weights(model, load_hf_weights(folder)[1])
    except ValueError as e:
        raise InputError(str(e), path=str(folder)) from None
