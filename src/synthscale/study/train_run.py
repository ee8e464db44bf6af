"""``synthscale train``: one run from token shards, through the same path as a study's runs.

``train_command`` resolves the run (model shape from a ladder rung or a Hugging Face folder,
batch size and learning rate from the ladder rules where not given, the data mixture, the
eval sets) into ``RUN_DIR/config.json``, the same self-contained run config a study writes,
and runs it with ``execute_run``: claimed, logged, its outcome in ``status.json``, on this
process or, with ``nproc`` > 1, on that many torchrun ranks (``python -m
synthscale.study.worker --rank-program``). Running the same command again resumes an
interrupted run from its newest checkpoint, retries a failed one, and leaves a done one.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from .._io import read_json, write_json
from ..errors import ConfigError, RunError
from ..model.ladder import model_config
from ..model.llama import ModelConfig
from ..train.config import TrainConfig
from .execute import execute_run
from .plan import run_settings
from .run_folder import DONE

CONFIG_FILE = "config.json"


def train_command(out: str, data: list[str], *, weights: list[str] | None = None, model: str = "cpu-micro",
                  hf_config: str | None = None, init_from_hf: str | None = None, eval_sets: list[str] | None = None,
                  eval_batch_size: int = 16, nproc: int = 1, progress: bool = True, **settings: Any) -> dict[str, Any]:
    """Train one model on a mixture of token shards; return the run's summary (a dict).

    - ``data``: ``NAME=PREFIX[,PREFIX...]`` token shards per source; ``weights``:
      ``NAME=FRACTION`` of training tokens (default: equal).
    - ``settings``: the run's TrainConfig fields (``tokens`` required; ``batch_size`` and
      ``lr`` omitted or None for the ladder rules of the model's size; ``device`` default
      "auto": CUDA when visible, else CPU).
    - Model: the ladder rung ``model``, or the shape of the HF Llama folder ``hf_config``
      (fresh weights), or the shape and weights of ``init_from_hf`` (continued training).
    - ``eval_sets``: ``NAME=PATH`` saved eval sets, evaluated at the end and at each budget.
    - ``nproc`` > 1 runs torchrun with that many processes (gloo on CPU, nccl on CUDA).
    """
    if nproc < 1:
        raise ConfigError(f"nproc: expected a positive integer, got {nproc}")
    settings = TrainConfig(**settings)
    if settings.tokens is None:
        raise ConfigError("tokens: the run's token budget is required")
    run_dir = Path(out)
    config = run_config(run_dir, data, settings, weights=weights, model=model, hf_config=hf_config,
                        init_from_hf=init_from_hf, eval_sets=eval_sets, eval_batch_size=eval_batch_size)
    run_dir.mkdir(parents=True, exist_ok=True)
    _check_same_run(run_dir / CONFIG_FILE, config)
    write_json(run_dir / CONFIG_FILE, config)
    status = execute_run(run_dir, threads=settings.threads or None, device=None, nproc=nproc,
                         progress=progress, capture_output=False, retry_failed=True)
    if status.get("state") != DONE:
        raise RunError(f"{run_dir}: the run {status.get('state')}: {status.get('error') or status.get('holder', '')}"
                       f" (log: {run_dir / 'run.log'})")
    summary = dict(status["summary"])
    evals = read_json(run_dir / "eval.json").get("evals") or []
    summary["eval"] = evals[-1]["domains"] if evals else None
    return summary


def run_config(run_dir: Path, data: list[str], settings: TrainConfig, *, weights: list[str] | None, model: str,
               hf_config: str | None, init_from_hf: str | None, eval_sets: list[str] | None,
               eval_batch_size: int) -> dict[str, Any]:
    """The run's ``config.json``: the same fields a study's run has (see study/runner.write_run_config)."""
    from ..tokens import MixtureStream

    sources = {name: [str(Path(p).resolve()) for p in value.split(",")] for name, value in _pairs(data, "data").items()}
    fractions = {name: float(v) for name, v in _pairs(weights, "weight").items()} if weights else \
        {name: 1.0 for name in sources}
    vocab_size = MixtureStream(sources, fractions, total_tokens=settings.seq_len, seq_len=settings.seq_len,
                               seed=settings.seed).vocab_size
    model_cfg = _model_config(model, hf_config, init_from_hf, vocab_size, settings.seq_len)
    if init_from_hf:
        settings = dataclasses.replace(settings, init_from_hf=str(Path(init_from_hf).resolve()))
    name = f"hf:{Path(hf_config or init_from_hf).name}" if (hf_config or init_from_hf) else model
    run_settings_ = run_settings(name, model_cfg, settings, tokens=settings.tokens, seed=settings.seed,
                                 budgets=settings.budgets, eval_batch_size=eval_batch_size)
    return {
        "run_id": run_dir.name, "recipe": "+".join(sorted(fractions)), "kind": "+".join(sorted(fractions)),
        "ratio": None, "weights": fractions, "model": name, "tokens": settings.tokens, "seed": settings.seed,
        "generator": "", "settings": run_settings_, "study": None, "mixture_seed": settings.seed,
        "data": {"tokenizer": None, "shards": sources,
                 "eval_sets": {n: str(Path(p).resolve()) for n, p in _pairs(eval_sets, "eval-set").items()}},
    }


def _check_same_run(path: Path, config: dict[str, Any]) -> None:
    """Refuse to resume a run folder with other settings than those it was started with."""
    if not path.exists():
        return
    before = read_json(path, what="run config")
    numbers = ("weights", "data", "mixture_seed")
    changed = [k for k in numbers if before.get(k) != config.get(k)]
    old, new = before.get("settings", {}), config["settings"]
    changed += [f"settings.{k}" for k in ("model_config", "eval_batch_size") if old.get(k) != new.get(k)]
    old_train = TrainConfig.from_dict(old["train"]).resume_fields() if "train" in old else {}
    changed += [f"train.{k}" for k, v in TrainConfig.from_dict(new["train"]).resume_fields().items()
                if old_train.get(k) != v]
    if changed:
        raise ConfigError(f"{path}: this run folder was started with other settings ({', '.join(changed)}); "
                          "use a new folder, or the same options")


def _model_config(model: str, hf_config: str | None, init_from_hf: str | None, vocab_size: int,
                  seq_len: int) -> ModelConfig:
    if hf_config and init_from_hf:
        raise ConfigError("give hf_config (shape only) or init_from_hf (shape and weights), not both")
    folder = init_from_hf or hf_config
    if folder is None:
        return model_config(model, vocab_size=vocab_size, seq_len=seq_len)
    from ..model.hf import import_hf_config

    cfg = import_hf_config(folder)
    if cfg.vocab_size < vocab_size:
        raise ConfigError(f"{folder}: the model has {cfg.vocab_size} token ids but the data uses {vocab_size}")
    if cfg.max_seq_len < seq_len:
        raise ConfigError(f"{folder}: max_position_embeddings={cfg.max_seq_len} is less than seq_len={seq_len}")
    return cfg


def _pairs(items: list[str] | None, option: str) -> dict[str, str]:
    pairs = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise ConfigError(f"--{option} {item!r}: expected NAME=VALUE")
        pairs[name] = value
    return pairs
