"""Collapse rounds: the synthetic data of round k+1 is written by a model the study trained in round k.

For a generated kind with ``rounds: {n: K, mode}``, after round k's runs are trained, the
round's generator run (``rounds.model``, ``rounds.ratio``, ``rounds.tokens``, the first seed)
is exported to a Hugging Face folder (model/hf.py ``export_hf``) and, with the transformers
backend, continues the first ``prefix_tokens`` words of the same natural seed documents
(style ``continue``: the tiny models a study trains here have a 128-token context and cannot
follow instructions). ``replace``: round k+1 trains on that corpus alone; ``accumulate``: on
the corpora of rounds 0..k+1 together. Each round's runs carry ``round`` in the results;
the generator column keeps the round-0 generator's name (the lineage), so finding 7 can
compare rounds. Everything is content-addressed under ``STUDY/prepared/generated/``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

from .._io import atomic_write_text, stable_hash
from ..corpus import Document, corpus_fingerprint, read_documents, write_documents
from ..errors import RunError
from ..model.hf import export_hf
from ..tokens import encode_corpus, load_tokenizer, read_shard_info
from .generation import GENERATED_DIR, Variant, generate_variant
from .plan import PlannedRun, recipe_points
from .spec import StudySpec
from .spec_generate import GateSpec, GeneratorSpec

CONTINUE_STYLE = "continue"


def max_rounds(spec: StudySpec) -> int:
    """The most collapse rounds any generated kind asks for (1: none)."""
    return max([s.generate.rounds.n for s in spec.corpora.synthetic.values()
                if s.generate is not None and s.generate.rounds is not None] or [1])


def generator_run(spec: StudySpec, kind: str, runs: list[PlannedRun], round_: int) -> PlannedRun:
    """The run of ``round_`` whose model writes the next round's data of ``kind``."""
    rounds = spec.corpora.synthetic[kind].generate.rounds  # type: ignore[union-attr]
    model = rounds.model or spec.models[-1]
    ratios = [p.ratio for p in recipe_points(spec) if p.kinds == (kind,)]
    if not ratios:
        raise RunError(f"corpora.synthetic.{kind}.generate.rounds: no recipe trains on '{kind}' alone")
    ratio = rounds.ratio if rounds.ratio is not None else max(ratios)
    tokens = rounds.tokens or max(r.tokens for r in runs)
    for run in runs:
        if (run.round == round_ and run.kind == kind and run.model == model and abs(run.ratio - ratio) < 1e-9
                and run.tokens == tokens and run.seed == spec.seeds[0]):
            return run
    raise RunError(f"corpora.synthetic.{kind}.generate.rounds: no round-{round_} run of model {model}, ratio "
                   f"{ratio:g}, {tokens} tokens, seed {spec.seeds[0]} to generate the next round with")


def next_round_variant(spec: StudySpec, kind: str, run_dir: Path, prep: Path, previous: list[Variant],
                       tokenizer: Path, progress: bool = True) -> Variant:
    """Export the trained run in ``run_dir`` and generate ``kind``'s next round with it; return its Variant."""

    source = spec.corpora.synthetic[kind]
    g = source.generate
    rounds = g.rounds  # type: ignore[union-attr]
    round_ = previous[-1].round + 1
    gen_dir = prep / GENERATED_DIR
    model_dir = gen_dir / "models" / run_dir.name
    if not (model_dir / "config.json").exists():
        export_hf(run_dir, model_dir, tokenizer)
    prefixes = _prefix_corpus(spec, gen_dir, g.max_docs, rounds.prefix_tokens)
    style_file = gen_dir / f"{CONTINUE_STYLE}.yaml"
    atomic_write_text(style_file, yaml.safe_dump({
        "name": CONTINUE_STYLE, "kind": "rephrase", "template": "{document}",
        "description": "The model continues the start of a document (for models that cannot follow instructions).",
        "postprocess": ["strip"], "length_ratio": None}, sort_keys=False))
    gen = GeneratorSpec(name=None, backend="transformers", model=str(model_dir),
                        options={"device": "cpu", "threads": 1, "chat": "none", "dtype": "float32"})
    variant = generate_variant(
        spec, kind, source, gen, prep, tokenizer, round_=round_, style=CONTINUE_STYLE, style_files=(str(style_file),),
        sampling={"temperature": rounds.temperature, "max_tokens": rounds.max_tokens}, chunk_tokens=0,
        label=previous[0].generator, input_path=str(prefixes), gates=GateSpec(action="off"), progress=progress)
    variant.source = f"{previous[0].source}.r{round_}"
    if rounds.mode == "accumulate":
        paths = [v.path for v in previous] + [variant.path]
        out = gen_dir / f"accumulate-{stable_hash(paths, 16)}.jsonl.gz"
        if not out.exists():
            write_documents(out, (d for p in paths for d in read_documents(p)))
        variant.path = str(out)
    return variant


def _prefix_corpus(spec: StudySpec, gen_dir: Path, max_docs: int | None, words: int) -> Path:
    """The first ``words`` words of each natural seed document (same ids), written once."""

    nat = spec.corpora.natural
    out = gen_dir / f"prefixes-{stable_hash([corpus_fingerprint(nat.path), max_docs, words], 16)}.jsonl.gz"
    if not out.exists():
        docs = read_documents(nat.path, text_field=nat.text_field, id_field=nat.id_field, limit=max_docs)
        write_documents(out, (Document(id=d.id, text=" ".join(d.text.split()[:words])) for d in docs))
    return out


def say(progress: bool, text: str) -> None:
    """Print a progress line on stderr."""
    if progress:
        print(text, file=sys.stderr, flush=True)


def add_source(prepared: Any, variant: Variant, prep: Path, progress: bool) -> None:
    """Encode a new round's corpus into a content-addressed shard and register it with ``prepared``."""

    tok = load_tokenizer(prepared.tokenizer_path)
    key = stable_hash({'src': corpus_fingerprint(variant.path), 'tok': tok.hash}, 12)
    prefix = prep / "shards" / f"{variant.source}-{key}"
    if not Path(str(prefix) + ".json").exists():
        encode_corpus(read_documents(variant.path), tok, prefix, progress=progress)
    prepared.shards[variant.source] = str(prefix)
    prepared.key["sources"][variant.source] = prefix.name
    prepared.source_tokens[variant.source] = read_shard_info(prefix).n_tokens
    prepared.variants.setdefault(variant.kind, []).append(variant)
