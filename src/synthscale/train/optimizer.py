"""The optimizer of a run: AdamW with weight decay on the matrices only (see TrainConfig)."""

from __future__ import annotations

import torch
from torch import nn

from synthscale.train.config import TrainConfig

# Parameters with two or more dimensions get weight decay, except these (rare tokens'
# embeddings are not pulled to zero; a head tied to the embedding is listed as the embedding).
NO_DECAY = ("embed_tokens.weight",)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """[{decayed matrices, ``weight_decay``}, {norm scales and the embedding, 0.0}], in parameter order."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():  # a tied head is listed once, as the embedding
        (decay if p.ndim >= 2 and name not in NO_DECAY else no_decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def build_optimizer(model: nn.Module, cfg: TrainConfig, fused: bool | None = None) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices except the token embedding (see TrainConfig).

    ``fused=None`` uses the fused kernel where torch has one for the device (CPU and
    CUDA in torch >= 2.4), else the foreach one; False forces foreach (FSDP2's sharded
    parameters).
    """
    groups = param_groups(model, cfg.weight_decay)
    kwargs = dict(lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps)
    if fused is not False:
        try:
            return torch.optim.AdamW(groups, fused=True, **kwargs)
        except (RuntimeError, ValueError):  # no fused kernel for this device/dtype
            pass
    return torch.optim.AdamW(groups, foreach=True, **kwargs)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set the learning rate of every parameter group."""
    for group in optimizer.param_groups:
        group["lr"] = lr
