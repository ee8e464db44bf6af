"""The plain function behind `synthscale generate`: options in, a resumable run, its summary out.

The backend's settings come in as one ``backend_options`` mapping (option name -> value,
the names of the ``synthscale generate`` flags: ``model_batch_size``, ``base_url``, ...),
checked against the chosen backend's typed config (backends/config.py), or as such a
config itself.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..errors import ConfigError
from .backends.config import BackendConfig, backend_config
from .chunking import DEFAULT_CHUNK_TOKENS
from .gates import GateConfig
from .job import GenerateJob, run_generation
from .styles import textbook_style_name


def generate_command(input: str | None, style: str, backend: str, model: str | None, out: str,
                     max_docs: int | None = None, target_tokens: int | None = None, *,
                     topics: str | None = None, style_files: Sequence[str] = (), audience: str | None = None,
                     format: str | None = None, seed: int = 0, tokenizer: str | None = None,
                     chunk_tokens: int = DEFAULT_CHUNK_TOKENS, chunk_tokenizer: str | None = None,
                     samples: int = 1, batch_size: int = 32,
                     shard_size: int = 1000, temperature: float | None = None, top_p: float | None = None,
                     top_k: int | None = None, max_tokens: int | None = None,
                     repetition_penalty: float | None = None, stop: Sequence[str] = (),
                     gates: str = "drop", truncated: str | None = None, language: str = "en",
                     near_copy: float | None = 0.9, max_repetition: float | None = 0.3, min_words: int = 5,
                     meta_comment: bool = True, reassemble: bool = False, retry_failures: bool = False,
                     gpus: float | None = None, backend_options: Mapping[str, Any] | BackendConfig | None = None,
                     text_field: str = "text", id_field: str = "id", progress: bool = True) -> dict[str, Any]:
    """Generate a synthetic corpus from ``input`` (or ``topics``) in ``style`` with ``backend``/``model`` into ``out``.

    ``backend_options``: the backend's settings by option name (None values count as not
    given), e.g. ``{"model_batch_size": 16}`` for transformers or ``{"base_url": URL}`` for
    openai; or a BackendConfig of that backend. Resumable: rerunning the same command
    continues where it stopped and redoes nothing. Returns the run summary (also written to
    OUT/summary.json, with OUT/dataset_card.md).
    """
    if audience is not None or format is not None:
        if style != "textbook":
            raise ConfigError("--audience and --format choose a textbook style: use them with --style textbook")
        style = textbook_style_name(audience or "college", format or "unit")
    sampling = {k: v for k, v in (("temperature", temperature), ("top_p", top_p), ("top_k", top_k),
                                  ("max_tokens", max_tokens),
                                  ("repetition_penalty", repetition_penalty)) if v is not None}
    if stop:
        sampling["stop"] = list(stop)
    job = GenerateJob(
        out=out, style=style, input=input, topics=topics, style_files=tuple(style_files), seed=seed,
        sampling=sampling, max_docs=max_docs, target_tokens=target_tokens, tokenizer=tokenizer,
        chunk_tokens=chunk_tokens, chunk_tokenizer=chunk_tokenizer, samples=samples, batch_size=batch_size,
        shard_size=shard_size, gates=gate_config(gates, truncated, language, near_copy, max_repetition, min_words,
                                                 meta_comment),
        reassemble=reassemble, retry_failures=retry_failures, gpus=gpus, text_field=text_field, id_field=id_field)
    config = resolve_backend_config(backend, backend_options)
    with config.build(model) as generator:
        return run_generation(job, generator, progress=progress)


def resolve_backend_config(backend: str, options: Mapping[str, Any] | BackendConfig | None) -> BackendConfig:
    """The validated typed config of ``backend`` from ``options`` (a mapping of option values, or a config)."""
    if isinstance(options, BackendConfig):
        kind = getattr(options, "backend", None) if options.kind == "registered" else options.kind
        if kind != backend:
            raise ConfigError(f"backend_options is a config of the {kind} backend, not {backend}")
        return options
    if options is not None and not isinstance(options, Mapping):
        raise ConfigError(f"backend_options must be a mapping of option names to values, got {options!r}")
    return backend_config(backend, dict(options or {}))


DEFAULT_MAX_FAILED_SHARE = 0.1  # `generate` warns on stderr when more requests than this failed


def generation_verdict(summary: dict[str, Any], max_failed_share: float = DEFAULT_MAX_FAILED_SHARE
                       ) -> tuple[int, list[str]]:
    """(exit code, lines for stderr) of a generation run's summary, for a pipeline to trust.

    Exit 1 when every request of this run failed, or every request the folder holds failed
    (nothing written: manifest state ``failed``); a warning with counts when the share of
    failed requests is above ``max_failed_share``; else 0 and nothing to say.
    """
    requests, failed = int(summary.get("requests", 0)), int(summary.get("failed", 0))
    this_run = summary.get("this_run") or {}
    answered = int(this_run.get("answered", 0))
    out = Path(summary.get("out", "."))
    examples = _failure_examples(out / "failures.jsonl")
    where = f"see {out / 'failures.jsonl'}" + (f" (e.g. {examples})" if examples else "")
    if summary.get("state") == "failed" or (answered and this_run.get("failed") == answered):
        n = answered if answered and this_run.get("failed") == answered else requests
        return 1, [f"error: all {n} requests {'of this run ' if n != requests else ''}failed, nothing was written; "
                   f"{where}; fix the cause and rerun the same command with --retry-failures"]
    if requests and failed / requests > max_failed_share:
        return 0, [f"warning: {failed} of {requests} requests failed ({100 * failed / requests:.0f}%, more than "
                   f"{100 * max_failed_share:g}%); {where}; rerun with --retry-failures to ask them again"]
    return 0, []


def _failure_examples(path: Path, n: int = 2) -> str:
    """The first ``n`` distinct error messages of failures.jsonl, quoted ('' without any)."""
    seen: list[str] = []
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                try:
                    error = str(json.loads(line).get("error") or "").splitlines()[0][:160]
                except (ValueError, AttributeError, IndexError):
                    continue
                if error and error not in seen:
                    seen.append(error)
                if len(seen) >= n:
                    break
    except OSError:
        return ""
    return "; ".join(f"'{e}'" for e in seen)


def gate_config(action: str, truncated: str | None = None, language: str = "en", near_copy: float | None = 0.9,
                max_repetition: float | None = 0.3, min_words: int = 5, meta_comment: bool = True) -> GateConfig:
    """The GateConfig of the CLI options: ``action`` drop | flag | off; ``truncated`` drop | flag | keep
    (default: as ``action``); ``language`` a code, 'same' or 'none'; ``meta_comment`` the meta_comment gate."""
    if action not in ("drop", "flag", "off"):
        raise ConfigError(f"--gates must be drop, flag or off, got {action!r}")
    if action == "off":
        return GateConfig.off()
    return GateConfig(action=action, truncated=truncated or action, language=None if language == "none" else language,
                      near_copy=near_copy or None, max_repetition=max_repetition or None,
                      max_duplicate_lines=max_repetition or None, min_words=min_words, meta_comment=meta_comment)
