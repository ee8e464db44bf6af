"""Plain functions behind the ``synthscale evaluate`` CLI commands; each returns a JSON-able dict."""

from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError
from ..model.checkpoint import find_checkpoint, load_model
from ..tokens import load_tokenizer, shard_prefix
from .evalset import build_eval_set, load_eval_set, save_eval_set
from .evaluator import evaluate_model


def build_eval_sets_command(shards: list[str], tokenizer: str, seq_len: int, max_tokens: int,
                            out_dir: str) -> dict:
    """Build one fixed eval set per eval shard into ``out_dir/NAME.safetensors`` (NAME = shard name)."""
    tok = load_tokenizer(tokenizer)
    written = {}
    for shard in shards:
        eval_set = build_eval_set(shard, tok, seq_len, max_tokens)
        path = save_eval_set(eval_set, Path(out_dir) / shard_prefix(shard).name)
        written[eval_set.name] = {"path": str(path), "windows": eval_set.n_windows, "tokens": eval_set.n_targets,
                                  "bytes": eval_set.n_bytes, "digest": eval_set.digest}
    return written


def evaluate_checkpoint_command(checkpoint: str, eval_sets: list[str], batch_size: int = 8,
                                device: str = "cpu") -> dict:
    """Per-domain loss and bpb of a saved model; ``eval_sets`` are ``PATH`` or ``DOMAIN=PATH``."""
    checkpoint_file, _ = find_checkpoint(Path(checkpoint))  # a run folder, its checkpoints/ or the file
    sets = {}
    for item in eval_sets:
        domain, sep, path = item.partition("=")
        eval_set = load_eval_set(path if sep else item)
        name = domain if sep else eval_set.name
        if name in sets:
            raise ConfigError(f"eval domain '{name}' is given twice; name them DOMAIN=PATH")
        sets[name] = eval_set
    model = load_model(checkpoint_file, device=device)
    return evaluate_model(model, sets, batch_size)
