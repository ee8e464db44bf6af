"""The accelerators this process may use: one answer for the study executors and the generation launchers."""

from __future__ import annotations

import os

import torch


def visible_gpus() -> list[str]:
    """The GPUs this process may use, as CUDA_VISIBLE_DEVICES entries ([] without CUDA)."""
    if not torch.cuda.is_available():
        return []
    n = torch.cuda.device_count()
    parent = [d.strip() for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    return parent[:n] if parent else [str(i) for i in range(n)]
