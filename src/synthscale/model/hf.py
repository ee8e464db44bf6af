"""Hugging Face interchange: export a synthscale run as a LlamaForCausalLM folder, and read one back.

``export_hf`` writes a folder that ``transformers.AutoModelForCausalLM.from_pretrained``,
``AutoTokenizer.from_pretrained``, vLLM and lm-evaluation-harness load as they are:

    config.json               LlamaConfig (model_type "llama", float32)
    generation_config.json    eos/pad token ids (no sampling defaults)
    model.safetensors         weights under HF names (``model.`` prefix; no lm_head when tied)
    tokenizer.json            the training tokenizer
    tokenizer_config.json     PreTrainedTokenizerFast, eos = bos = pad = the EOS token
    special_tokens_map.json
    synthscale.json           where the export came from (checkpoint, sha256, step, tokens, tokenizer hash)

Our parameter names are HF's without the ``model.`` prefix and our RoPE uses HF's
rotate-half layout (see model/llama.py), so the conversion only renames tensors.
The tokenizer adds no BOS (the models were trained on documents separated by EOS).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from .._io import read_json, read_safetensors, sha256_file, write_json
from ..errors import ConfigError, InputError
from ..tokens import load_tokenizer
from .checkpoint import find_checkpoint, read_checkpoint_metadata, read_checkpoint_tensors
from .llama import ModelConfig

HF_PREFIX = "model."
HEAD = "lm_head.weight"
EXPORT_MARKER = "synthscale.json"


def export_hf(run_dir_or_checkpoint: str | os.PathLike, out_dir: str | os.PathLike,
              tokenizer: str | os.PathLike | None = None) -> Path:
    """Write a LlamaForCausalLM folder for a synthscale run folder or checkpoint; return ``out_dir``.

    ``run_dir_or_checkpoint`` is a run folder (``checkpoints/final.safetensors``), a
    checkpoints folder, or a ``.safetensors`` checkpoint. The tokenizer is ``tokenizer``
    when given, else the run's ``config.json`` ``data.tokenizer``.
    """
    checkpoint, run_dir = find_checkpoint(Path(run_dir_or_checkpoint))
    metadata = read_checkpoint_metadata(checkpoint)
    cfg = ModelConfig.from_dict(json.loads(metadata["model_config"]))
    tok = load_tokenizer(tokenizer if tokenizer is not None else _run_tokenizer(run_dir, checkpoint))
    if tok.vocab_size > cfg.vocab_size:
        raise ConfigError(f"tokenizer {tok.source} has {tok.vocab_size} ids but the model only "
                          f"{cfg.vocab_size}: not the tokenizer this model was trained with")

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tensors = _hf_tensors(checkpoint, cfg)
    _save_safetensors(tensors, out / "model.safetensors")
    write_json(out / "config.json", hf_config(cfg, tok.eos_id))
    write_json(out / "generation_config.json", {"eos_token_id": tok.eos_id, "pad_token_id": tok.eos_id,
                                                "bos_token_id": tok.eos_id})
    tok.save(out / "tokenizer.json")
    specials = {"bos_token": tok.eos_token, "eos_token": tok.eos_token, "pad_token": tok.eos_token,
                "unk_token": None}
    write_json(out / "tokenizer_config.json", {
        "tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": cfg.max_seq_len,
        "clean_up_tokenization_spaces": False, "add_bos_token": False, "add_eos_token": False, **specials})
    write_json(out / "special_tokens_map.json", {k: v for k, v in specials.items() if v is not None})
    write_json(out / EXPORT_MARKER, {
        "format": "synthscale.hf_export/1", "checkpoint": str(checkpoint.resolve()),
        "checkpoint_sha256": sha256_file(checkpoint), "step": metadata.get("step"),
        "tokens": metadata.get("tokens"), "tokenizer": tok.source, "tokenizer_hash": tok.hash,
        "model_config": cfg.to_dict()})
    return out


def export_hf_command(run_dir_or_checkpoint: str, out_dir: str, tokenizer: str | None = None) -> dict[str, Any]:
    """CLI entry (`synthscale export RUN --hf OUT`): export and return the folder, its files and where it came from."""
    out = export_hf(run_dir_or_checkpoint, out_dir, tokenizer)
    return {"out": str(out), "files": sorted(p.name for p in out.iterdir()), **read_json(out / EXPORT_MARKER)}


def hf_config(cfg: ModelConfig, eos_id: int | None = None) -> dict[str, Any]:
    """The HF LlamaConfig dict (config.json) of a synthscale ModelConfig.

    ``rope_theta`` is written both at the top level (transformers < 5, vLLM) and inside
    ``rope_parameters`` (transformers >= 5).
    """
    return {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "vocab_size": cfg.vocab_size, "hidden_size": cfg.dim, "intermediate_size": cfg.ffn_dim,
        "num_hidden_layers": cfg.n_layers, "num_attention_heads": cfg.n_heads,
        "num_key_value_heads": cfg.n_kv_heads, "head_dim": cfg.head_dim,
        "max_position_embeddings": cfg.max_seq_len, "rms_norm_eps": cfg.norm_eps,
        "rope_theta": float(cfg.rope_theta),
        "rope_parameters": {"rope_type": "default", "rope_theta": float(cfg.rope_theta)},
        "tie_word_embeddings": cfg.tie_embeddings, "hidden_act": "silu", "attention_bias": False,
        "mlp_bias": False, "attention_dropout": 0.0, "initializer_range": cfg.init_std,
        "pretraining_tp": 1, "use_cache": True, "torch_dtype": "float32",
        "bos_token_id": eos_id, "eos_token_id": eos_id, "pad_token_id": eos_id,
    }


def import_hf_config(folder: str | os.PathLike) -> ModelConfig:
    """The synthscale ModelConfig of an HF Llama folder (its config.json); ConfigError if it is not one we can run."""
    folder = Path(folder)
    if not folder.exists():
        raise InputError("no such model folder", path=str(folder))
    if not folder.is_dir():
        raise InputError("expected a Hugging Face model folder (with config.json), found a file", path=str(folder))
    path = folder / "config.json"
    if not path.is_file():
        raise InputError("no config.json: not a Hugging Face model folder", path=str(path))
    hf = read_json(path, what="model config", fix="export the model again")
    if not isinstance(hf, dict):
        raise InputError("model config must be a JSON object", path=str(path))
    if hf.get("model_type") != "llama":
        raise ConfigError(f"{path}: model_type must be 'llama', got {hf.get('model_type')!r}")
    for key, wanted in (("hidden_act", "silu"), ("attention_bias", False), ("mlp_bias", False)):
        if hf.get(key, wanted) != wanted:
            raise ConfigError(f"{path}: {key}={hf[key]!r} is not supported (synthscale's Llama has {wanted!r})")
    rope = hf.get("rope_parameters") or hf.get("rope_scaling") or {}
    if rope.get("rope_type", rope.get("type", "default")) != "default":
        raise ConfigError(f"{path}: rope type {rope.get('rope_type') or rope.get('type')!r} is not supported "
                          "(only the default RoPE)")
    dim, heads = _field(hf, "hidden_size", path), _field(hf, "num_attention_heads", path)
    if hf.get("head_dim") not in (None, dim // heads):
        raise ConfigError(f"{path}: head_dim={hf['head_dim']} differs from hidden_size/num_attention_heads")
    return ModelConfig(
        vocab_size=_field(hf, "vocab_size", path), dim=dim, n_layers=_field(hf, "num_hidden_layers", path),
        n_heads=heads, n_kv_heads=hf.get("num_key_value_heads") or heads,
        ffn_dim=_field(hf, "intermediate_size", path), max_seq_len=_field(hf, "max_position_embeddings", path),
        rope_theta=float(rope.get("rope_theta", hf.get("rope_theta", 10000.0))),
        norm_eps=float(hf.get("rms_norm_eps", 1e-6)), tie_embeddings=bool(hf.get("tie_word_embeddings", False)),
        init_std=float(hf.get("initializer_range", 0.02)))


def load_hf_weights(folder: str | os.PathLike) -> tuple[ModelConfig, dict[str, torch.Tensor]]:
    """(ModelConfig, state dict under synthscale names) of an HF Llama folder; ``Llama(cfg).load_state_dict`` takes it.

    Reads model.safetensors or a sharded model.safetensors.index.json. A tied model's
    ``lm_head.weight`` is the embedding tensor.
    """
    folder = Path(folder)
    cfg = import_hf_config(folder)
    tensors: dict[str, torch.Tensor] = {}
    for file in _weight_files(folder):
        for name, tensor in read_safetensors(file, what="model weights", fix="export the model again")[0].items():
            if name.endswith("rotary_emb.inv_freq"):
                continue  # a buffer some exporters save; we recompute it
            tensors[name[len(HF_PREFIX):] if name.startswith(HF_PREFIX) else name] = tensor
    if cfg.tie_embeddings or HEAD not in tensors:
        if not cfg.tie_embeddings:
            raise InputError("lm_head.weight is missing and tie_word_embeddings is false", path=str(folder))
        tensors[HEAD] = tensors["embed_tokens.weight"]
    return cfg, tensors


def _run_tokenizer(run_dir: Path | None, checkpoint: Path) -> str:
    config = run_dir / "config.json" if run_dir else None
    if config is None or not config.is_file():
        raise ConfigError(f"{checkpoint}: no run config.json names the tokenizer; pass tokenizer=")
    tokenizer = (read_json(config, what="run config").get("data") or {}).get("tokenizer")
    if not isinstance(tokenizer, str) or not tokenizer:
        raise ConfigError(f"{config}: data.tokenizer is missing; pass tokenizer=")
    return tokenizer


def _hf_tensors(checkpoint: Path, cfg: ModelConfig) -> dict[str, torch.Tensor]:
    tensors = {}
    for name, tensor in read_checkpoint_tensors(checkpoint).items():
        if cfg.tie_embeddings and name == HEAD:
            continue
        tensors[name if name == HEAD else HF_PREFIX + name] = tensor.contiguous()
    return tensors


def _save_safetensors(tensors: dict[str, torch.Tensor], path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(tensors, str(tmp), metadata={"format": "pt"})
    os.replace(tmp, path)


def _weight_files(folder: Path) -> list[Path]:
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(read_json(index, what="weight index", fix="export the model again")
                            .get("weight_map", {}).values()))
        return [folder / s for s in shards]
    single = folder / "model.safetensors"
    if single.is_file():
        return [single]
    raise InputError("no model.safetensors (or .index.json) in the folder", path=str(folder))


def _field(hf: dict[str, Any], key: str, path: Path) -> int:
    value = hf.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(f"{path}: {key} must be an integer, got {value!r}")
    return value
