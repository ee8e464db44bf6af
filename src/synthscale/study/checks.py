"""What can be checked about a study before anything is trained.

``check_spec_inputs`` (used by `study validate`, `study plan` and `study run` before
preparing anything) reads only the first documents of each corpus and the ladder's
rules: every corpus path exists and holds documents with text in the spec's text field,
a given tokenizer exists, every token budget holds at least one optimizer step of every
model (with the batch size the run will use), and the eval token cap holds at least one
window. ``check_prepared`` (the prepare step, so also `study plan` and `study run`)
checks the encoded data: every training source and every eval domain has enough tokens
for one sequence. All problems are reported together in one ConfigError.
"""

from __future__ import annotations

from pathlib import Path

from ..corpus import read_documents
from ..errors import ConfigError, InputError
from ..laws.results import NATURAL
from ..model import ladder
from .plan import recipe_points
from .spec import Source, StudySpec

MAX_EMPTY_DOCS = 10_000  # documents read to find one with text before calling a corpus empty


def check_spec_inputs(spec: StudySpec, *, read_corpora: bool = True) -> None:
    """Raise one ConfigError listing every problem found (see the module docstring)."""
    problems: list[str] = []
    if read_corpora:
        sources = {"corpora.natural": spec.corpora.natural,
                   **{f"corpora.synthetic.{k}": s for k, s in spec.corpora.synthetic.items() if s.path},
                   **{f"corpora.synthetic.{k}.generate.from": Source(path=s.generate.from_, text_field=s.text_field,
                                                                     id_field=s.id_field)
                      for k, s in spec.corpora.synthetic.items() if s.generate and s.generate.from_ != NATURAL},
                   **{f"eval.{d}": s for d, s in spec.eval.items()}}
        problems += [p for where, source in sources.items() if (p := corpus_problem(where, source))]
    if spec.tokenizer.path and not spec.tokenizer.path.startswith("hf://") \
            and not Path(spec.tokenizer.path).exists():
        problems.append(f"tokenizer.path: {spec.tokenizer.path}: no such tokenizer file or folder")
    problems += budget_problems(spec)
    if spec.evaluation.max_tokens_per_domain < spec.training.seq_len:
        problems.append(f"evaluation.max_tokens_per_domain ({spec.evaluation.max_tokens_per_domain}) is less than "
                        f"one window of training.seq_len ({spec.training.seq_len}) tokens: no token would be scored")
    _raise(problems)


def corpus_problem(where: str, source: Source) -> str | None:
    """Why the corpus of ``source`` cannot be used (None when its first documents read and hold text)."""
    path = source.path
    if path.startswith("hf://"):
        return None  # streamed from the hub at prepare time; not fetched to validate
    p = Path(path)
    if not p.exists():
        return f"{where}: {path}: no such file or folder"
    if p.is_file() and p.stat().st_size == 0:
        return f"{where}: {path}: the file is empty"
    try:
        for i, doc in enumerate(read_documents(p, text_field=source.text_field, id_field=source.id_field)):
            if doc.text.strip():
                return None
            if i + 1 >= MAX_EMPTY_DOCS:
                return f"{where}: {path}: the first {MAX_EMPTY_DOCS} documents have no text " \
                       f"(text_field '{source.text_field}')"
    except InputError as e:
        return f"{where}: {e}"
    return f"{where}: {path}: the corpus holds no documents with text (text_field '{source.text_field}')"


def budget_problems(spec: StudySpec, vocab_size: int | None = None) -> list[str]:
    """Budgets smaller than one optimizer step (batch_size x seq_len tokens) of a model, and
    training settings the trainer would reject."""

    budgets = spec.budgets[-1:] if spec.training.schedule == "wsd" else spec.budgets
    problems = []
    for model in spec.models:
        cfg = ladder.model_config(model, vocab_size or spec.tokenizer.vocab_size, spec.training.seq_len)
        nonembedding = ladder.param_counts(cfg)[1]
        for tokens in budgets:
            branches = [b for b in spec.budgets if b < tokens] if spec.training.schedule == "wsd" else []
            batch = spec.training.batch_size_for(nonembedding, tokens)
            per_step = batch * spec.training.seq_len
            small = [b for b in sorted({tokens, *branches}) if b < per_step]
            for budget in small:
                problems.append(
                    f"budgets: {budget} tokens is less than one optimizer step of model {model} "
                    f"(batch_size {batch} x seq_len {spec.training.seq_len} = {per_step} tokens); "
                    f"use budgets of at least {per_step} tokens or a smaller training.batch_size")
            if not small:
                try:
                    spec.training.for_run(nonembedding, tokens=tokens, seed=spec.seeds[0], budgets=tuple(branches))
                except ConfigError as e:
                    problems.append(f"training (model {model}, budget {tokens}): {e}")
    return list(dict.fromkeys(problems))


def check_prepared(spec: StudySpec, source_tokens: dict[str, int],
                   variants: dict[str, dict[str, str]] | None = None) -> None:
    """Raise one ConfigError when a training source in use or an eval domain has too few tokens
    (``source_tokens``: encoded tokens by source name, eval domains as ``eval-DOMAIN``; ``variants``:
    kind -> {source name: corpus path} for kinds with several corpora, e.g. one per generator)."""
    need = spec.training.seq_len + 1
    problems = []
    used = {name for point in recipe_points(spec) for name, w in point.weights().items() if w > 0}
    variants = variants or {}
    for name, source in {NATURAL: spec.corpora.natural, **spec.corpora.synthetic}.items():
        for source_name, path in (variants.get(name) or {name: source.path}).items():
            n = source_tokens.get(source_name, 0)
            if name in used and n < need:
                where = "corpora.natural" if name == NATURAL else f"corpora.synthetic.{name}"
                problems.append(f"{where}: {path}: {n} tokens, fewer than one training sequence "
                                f"(training.seq_len + 1 = {need})")
    for domain, source in spec.eval.items():
        n = source_tokens.get(f"eval-{domain}", 0)
        if n < need:
            problems.append(f"eval.{domain}: {source.path}: {n} tokens, fewer than one eval window "
                            f"(training.seq_len + 1 = {need}): no token to score")
    _raise(problems)


def _raise(problems: list[str]) -> None:
    if problems:
        more = f" (and {len(problems) - 1} more: {'; '.join(problems[1:])})" if len(problems) > 1 else ""
        raise ConfigError(problems[0] + more)
