"""Resumable training checkpoints: everything a run needs to continue bit for bit after a kill.

A checkpoint is a folder ``run_dir/checkpoints/step_00000120/`` holding

    model.safetensors       weights (the format of model/checkpoint.py: load_model reads it)
    optimizer.safetensors   AdamW moments and step counts under parameter names
    rng.safetensors         torch CPU (and CUDA) generator states, numpy's MT19937 key
    state.json              the RunState (train/state.py: step done, data position, the
                            metrics so far, budget evals, configs), the optimizer's param
                            groups, python and numpy RNG scalars

It is written into a hidden temporary folder and renamed into place, so a folder named
``step_*`` is always complete; a kill mid-write leaves only a temporary folder, removed
on the next start. Model and optimizer state are gathered through
torch.distributed.checkpoint.state_dict, so DDP and FSDP2 runs save the same full,
unsharded tensors as a single process, and load them back into any of the three.

The model's own checkpoint file (weights + ModelConfig) is model/checkpoint.py's; its
names are importable from here too, as they were before it moved.
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)

from synthscale._io import read_json, read_safetensors, write_json
from synthscale.errors import ConfigError, InputError
from synthscale.model.checkpoint import (  # noqa: F401  (re-exported: imported from here elsewhere)
    CHECKPOINT_FIX,
    CHECKPOINT_FORMAT,
    load_model,
    model_metadata,
    read_checkpoint_metadata,
    save_model,
    save_weights,
)
from synthscale.model.llama import ModelConfig
from synthscale.train.config import TrainConfig
from synthscale.train.distributed import DistContext, barrier
from synthscale.train.state import RunState

STATE_FORMAT = "synthscale.train_state/1"
STATE_FIX = "delete this checkpoints/step_* folder and rerun: the run resumes from an earlier state or starts over"
PREFIX = "step_"
TIED_HEAD = "lm_head.weight"


def checkpoint_dir(run_dir: Path) -> Path:
    """The folder holding a run's checkpoints."""
    return run_dir / "checkpoints"


def latest_state(run_dir: Path) -> Path | None:
    """The newest complete resumable checkpoint folder of ``run_dir``, or None."""
    folders = [p for p in checkpoint_dir(run_dir).glob(f"{PREFIX}*") if (p / "state.json").is_file()]
    return max(folders, key=lambda p: int(p.name[len(PREFIX):]), default=None)


def full_model_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's full (unsharded) weights on CPU; on every rank for DDP, on rank 0 only for FSDP."""
    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return get_model_state_dict(model, options=options)


def save_state(run_dir: Path, model: nn.Module, optimizer: torch.optim.Optimizer, state: RunState,
               ctx: DistContext, keep: int) -> Path | None:
    """Write the checkpoint of ``state.step`` steps done (collective: every rank calls it); rank 0 returns its folder.

    Only the ``keep`` newest checkpoint folders remain.
    """
    step = state.step
    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    weights = get_model_state_dict(model, options=options)
    optim = get_optimizer_state_dict(model, optimizer, options=options)
    final = checkpoint_dir(run_dir) / f"{PREFIX}{step:08d}"
    if ctx.is_main:
        cfg: ModelConfig = model.cfg
        tensors = {k: v.contiguous() for k, v in weights.items() if not (cfg.tie_embeddings and k == TIED_HEAD)}
        optim_tensors = {f"{name}/{key}": t.contiguous() for name, per_param in optim.get("state", {}).items()
                         for key, t in per_param.items()}
        optim_values = {"param_groups": optim.get("param_groups", [])}
        rng_tensors, rng_values = _rng_state()
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
        try:
            save_file(tensors, str(tmp / "model.safetensors"),
                      metadata=model_metadata(cfg, {"step": step, "tokens": state.tokens}))
            save_file(optim_tensors, str(tmp / "optimizer.safetensors"))
            save_file(rng_tensors, str(tmp / "rng.safetensors"))
            write_json(tmp / "state.json", {"format": STATE_FORMAT, **state.to_json(),
                                            "optimizer": optim_values, "rng": rng_values})
            _fsync_folder(tmp)
            if final.exists():  # a checkpoint of the same step from an earlier attempt
                shutil.rmtree(final)
            os.replace(tmp, final)
            _fsync_folder(final.parent)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        prune(run_dir, keep)
    barrier(ctx)
    return final if ctx.is_main else None


def load_state(folder: Path, model: nn.Module, optimizer: torch.optim.Optimizer,
               model_cfg: ModelConfig, train_cfg: TrainConfig) -> RunState:
    """Load a checkpoint folder into ``model`` and ``optimizer`` (every rank), restore the RNGs, return its RunState.

    Raises ConfigError when the checkpoint was written by a run with another model or
    another training config (RUNTIME_FIELDS such as threads or device may differ).
    """
    path = folder / "state.json"
    saved = read_json(path, what="training state", fix=STATE_FIX)
    fmt = saved.pop("format", None)
    if fmt != STATE_FORMAT:
        raise InputError(f"not a synthscale training state (format {fmt!r})", path=str(path))
    optim_values, rng_values = saved.pop("optimizer"), saved.pop("rng")
    state = RunState.from_json(saved, path=str(path))
    _check_same_run(folder, state, model_cfg, train_cfg)
    weights = _read_tensors(folder / "model.safetensors")
    if model_cfg.tie_embeddings:
        weights[TIED_HEAD] = weights["embed_tokens.weight"]
    per_param: dict[str, dict[str, torch.Tensor]] = {}
    for key, t in _read_tensors(folder / "optimizer.safetensors").items():
        name, _, field = key.rpartition("/")
        per_param.setdefault(name, {})[field] = t
    groups = [{k: tuple(v) if k == "betas" else v for k, v in g.items()} for g in optim_values["param_groups"]]
    optim = {"state": per_param, "param_groups": groups}
    options = StateDictOptions(full_state_dict=True)
    set_model_state_dict(model, weights, options=options)
    set_optimizer_state_dict(model, optimizer, optim, options=options)
    _set_rng_state(_read_tensors(folder / "rng.safetensors"), rng_values)
    return state


def prune(run_dir: Path, keep: int) -> None:
    """Remove all but the ``keep`` newest checkpoint folders, and temporary folders of interrupted writes."""
    folder = checkpoint_dir(run_dir)
    if not folder.is_dir():
        return
    for tmp in folder.glob(f".{PREFIX}*.tmp"):
        shutil.rmtree(tmp, ignore_errors=True)
    complete = sorted((p for p in folder.glob(f"{PREFIX}*") if (p / "state.json").is_file()),
                      key=lambda p: int(p.name[len(PREFIX):]))
    for old in complete[:-keep] if keep else complete:
        shutil.rmtree(old, ignore_errors=True)


def _check_same_run(folder: Path, state: RunState, model_cfg: ModelConfig, train_cfg: TrainConfig) -> None:
    if state.model_config != model_cfg.to_dict():
        raise ConfigError(f"{folder}: this checkpoint belongs to a run with another model config; "
                          "use a fresh run folder")
    theirs = TrainConfig.from_dict(state.train_config).resume_fields()
    for field, ours in train_cfg.resume_fields().items():
        if theirs.get(field) != ours:
            raise ConfigError(f"{folder}: TrainConfig.{field} is {ours!r} but the checkpoint was trained with "
                              f"{theirs.get(field)!r}; use a fresh run folder")


def _rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"torch_cuda_{i}"] = s
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    tensors["numpy_keys"] = torch.from_numpy(np.asarray(keys, dtype=np.uint32).view(np.int32).copy())
    version, internal, gauss_next = random.getstate()
    values = {"numpy": [kind, int(pos), int(has_gauss), float(cached)],
              "python": [version, list(internal), gauss_next]}
    return tensors, values


def _set_rng_state(tensors: dict[str, torch.Tensor], values: dict[str, Any]) -> None:
    torch.set_rng_state(tensors["torch_cpu"])
    cuda_keys = sorted((k for k in tensors if k.startswith("torch_cuda_")), key=lambda k: int(k.rsplit("_", 1)[1]))
    cuda = [tensors[k] for k in cuda_keys]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda[:torch.cuda.device_count()])
    kind, pos, has_gauss, cached = values["numpy"]
    np.random.set_state((kind, tensors["numpy_keys"].numpy().view(np.uint32), pos, has_gauss, cached))
    version, internal, gauss_next = values["python"]
    random.setstate((version, tuple(internal), gauss_next))


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    return read_safetensors(path, what="training state file", fix=STATE_FIX)[0]


def _fsync_folder(folder: Path) -> None:
    """Flush every file in ``folder`` and the folder entry itself to disk."""
    for path in folder.iterdir():
        if path.is_file():
            with open(path, "rb") as f:
                os.fsync(f.fileno())
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
