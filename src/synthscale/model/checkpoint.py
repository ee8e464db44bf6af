"""Model checkpoints: safetensors weights with the ModelConfig in the file's metadata.

A checkpoint is self-contained (``load_model(path)`` needs nothing else); the model
config is also written beside it as ``model_config.json`` for people and other tools.
A tied ``lm_head`` is not stored (it is the embedding), as in Hugging Face checkpoints.

This is the model's own file format: training (train/), evaluation (evaluate/) and the
Hugging Face export (model/hf.py) all read and write weights through it. Resumable
training state (optimizer, RNGs, data position) is train/checkpoint.py's.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import save_file

from synthscale._io import atomic_target, read_safetensors, read_safetensors_metadata, write_json
from synthscale.errors import InputError
from synthscale.model.llama import Llama, ModelConfig

CHECKPOINT_FORMAT = "synthscale-llama-v1"
CHECKPOINT_FIX = "train the run again (in a study, `synthscale study run` retrains a run whose checkpoint is damaged)"
TIED_HEAD = "lm_head.weight"


def save_model(model: Llama, path: str | os.PathLike, extra: dict[str, int | str] | None = None) -> Path:
    """Write ``model``'s weights to ``path`` (.safetensors) atomically, plus model_config.json beside it.

    ``extra`` (e.g. step, tokens) goes into the safetensors metadata as strings.
    """
    return save_weights(model.state_dict(), model.cfg, path, extra)


def save_weights(state_dict: dict[str, torch.Tensor], cfg: ModelConfig, path: str | os.PathLike,
                 extra: dict[str, int | str] | None = None) -> Path:
    """``save_model`` for a full state dict (e.g. gathered from an FSDP-sharded model) of a model of ``cfg``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {
        name: t.detach().to("cpu").contiguous()
        for name, t in state_dict.items()
        if not (cfg.tie_embeddings and name == TIED_HEAD)
    }
    with atomic_target(path) as tmp:
        save_file(tensors, tmp, metadata=model_metadata(cfg, extra))
    write_json(path.parent / "model_config.json", cfg.to_dict())
    return path


def model_metadata(cfg: ModelConfig, extra: dict[str, int | str] | None = None) -> dict[str, str]:
    """The safetensors metadata of a synthscale checkpoint: format, model_config (JSON), and ``extra`` as strings."""
    metadata = {"format": CHECKPOINT_FORMAT, "model_config": json.dumps(cfg.to_dict(), sort_keys=True)}
    metadata.update({k: str(v) for k, v in (extra or {}).items()})
    return metadata


def read_checkpoint_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The metadata dict of a synthscale checkpoint (format, model_config json, step, tokens...)."""
    metadata = read_safetensors_metadata(path, what="checkpoint", fix=CHECKPOINT_FIX)
    if metadata.get("format") != CHECKPOINT_FORMAT:
        raise InputError(f"not a synthscale checkpoint (format {metadata.get('format')!r})", path=str(path))
    return metadata


def read_model_config(path: str | os.PathLike) -> ModelConfig:
    """The ModelConfig stored in a synthscale checkpoint's metadata."""
    return ModelConfig.from_dict(json.loads(read_checkpoint_metadata(path)["model_config"]))


def read_checkpoint_tensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of a synthscale checkpoint file as stored (a tied model has no ``lm_head.weight``)."""
    return read_safetensors(path, what="checkpoint", fix=CHECKPOINT_FIX)[0]


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> Llama:
    """Rebuild the Llama stored at ``path`` (a .safetensors checkpoint) on ``device``, in eval mode."""
    cfg = read_model_config(path)
    model = Llama(cfg)
    tensors = read_checkpoint_tensors(path)
    if cfg.tie_embeddings:
        tensors[TIED_HEAD] = tensors["embed_tokens.weight"]
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    if missing or unexpected:
        raise InputError(
            f"checkpoint does not match its config (missing {missing}, unexpected {unexpected})", path=str(path)
        )
    return model.to(device).eval()


def find_checkpoint(path: Path) -> tuple[Path, Path | None]:
    """(checkpoint file, run folder or None) for a run folder, checkpoints folder or checkpoint file."""
    if not path.exists():
        raise InputError("no such run folder or checkpoint file", path=str(path))
    if path.is_file():
        run_dir = path.parent.parent if path.parent.name == "checkpoints" else None
        return path, run_dir
    for candidate, run_dir in ((path / "checkpoints" / "final.safetensors", path),
                               (path / "final.safetensors", path.parent if path.name == "checkpoints" else None)):
        if candidate.is_file():
            return candidate, run_dir
    raise InputError("no checkpoint: expected a run folder with checkpoints/final.safetensors or a "
                     ".safetensors file", path=str(path))
