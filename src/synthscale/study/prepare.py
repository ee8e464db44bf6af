"""Shared preparation of a study: tokenizer, token shards and eval sets, built once.

Everything lands under ``STUDY/prepared/`` with content-addressed names (a hash of the
source files and the tokenizer), so a rerun reuses it and a changed corpus rebuilds.
Preparation holds a claim on ``prepared/prepare.claim`` (see claims.py): of several
drivers started on the same study, one builds and the others wait, then reuse its work.
"""

from __future__ import annotations

import itertools
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._io import read_json, stable_hash, write_json
from ..corpus import corpus_fingerprint, read_documents
from ..diagnostics import CorpusRef
from ..diagnostics.study import DIAGNOSTICS_VERSION, STUDY_MAX_DOCS, study_diagnostics
from ..errors import InputError
from ..evaluate import build_eval_set, load_eval_set, save_eval_set
from ..evaluate.baselines import study_baselines
from ..laws.results import NATURAL
from ..tokens import encode_corpus, load_tokenizer, open_shard, read_shard_info, train_tokenizer
from ..tokens.tokenizer import split_text
from . import claims
from .checks import check_prepared
from .generation import Variant, generate_kinds, variant_source
from .spec import Source, StudySpec

PREPARE_CLAIM = "prepare.claim"
BASELINES_FILE = "baselines.json"  # in the study folder, beside results.csv (docs/contracts.md)
DIAGNOSTICS_FILE = "diagnostics.json"  # corpus diagnostics, beside baselines.json (docs/contracts.md)
WAIT_POLL_S = 1.0


@dataclass
class PreparedData:
    """Paths and hashes of the prepared data a study's runs read."""

    tokenizer_path: Path
    tokenizer_hash: str
    vocab_size: int
    shards: dict[str, str] = field(default_factory=dict)  # source -> shard prefix
    eval_sets: dict[str, str] = field(default_factory=dict)  # domain -> eval set path
    key: dict[str, Any] = field(default_factory=dict)  # hashes that enter run ids
    generators: dict[str, str] = field(default_factory=dict)  # synthetic kind -> generator
    source_tokens: dict[str, int] = field(default_factory=dict)
    variants: dict[str, list[Any]] = field(default_factory=dict)  # kind -> its corpora (generation.Variant)


def prepare_study(spec: StudySpec, study_dir: Path, progress: bool = True) -> PreparedData:
    """Train or load the tokenizer, encode every corpus and build the fixed eval sets (once, locked)."""
    prep = study_dir / "prepared"
    prep.mkdir(parents=True, exist_ok=True)
    with _prepare_claim(prep, spec.executor.heartbeat_s, spec.executor.stale_after_s, progress):
        return _prepare(spec, prep, progress)


def _prepare_claim(prep: Path, heartbeat_s: float, stale_after_s: float, progress: bool) -> claims.Claim:
    """Claim the preparation of ``prep``, waiting while another live driver holds it."""
    said = False
    while True:
        claim = claims.try_claim(prep / PREPARE_CLAIM, purpose="prepare", heartbeat_s=heartbeat_s,
                                 stale_after_s=stale_after_s)
        if claim is not None:
            return claim
        if progress and not said:
            holder = claims.read_claim(prep / PREPARE_CLAIM) or {}
            print(f"waiting for {holder.get('host')}:{holder.get('pid')} to finish preparing {prep}",
                  file=sys.stderr, flush=True)
            said = True
        time.sleep(WAIT_POLL_S)


def _prepare(spec: StudySpec, prep: Path, progress: bool) -> PreparedData:
    # the tokenizer learns from the corpora given as files (generated ones do not exist yet: it counts
    # their target tokens); a study without generated kinds trains it on every training corpus, as before
    given: dict[str, Source] = {NATURAL: spec.corpora.natural,
                                **{k: s for k, s in spec.corpora.synthetic.items() if s.generate is None}}
    eval_sources = {f"eval-{d}": s for d, s in spec.eval.items()}

    def fingerprint(s: Source) -> str:
        return stable_hash({"file": corpus_fingerprint(s.path), "text": s.text_field, "id": s.id_field}, 16)

    fingerprints = {name: fingerprint(s) for name, s in {**given, **eval_sources}.items()}
    if spec.tokenizer.path:
        tok_path = Path(spec.tokenizer.path)
    else:
        tok_key = stable_hash({"sources": {k: fingerprints[k] for k in given},
                               "vocab_size": spec.tokenizer.vocab_size,
                               "train_bytes": spec.tokenizer.train_bytes}, 12)
        tok_path = prep / f"tokenizer-{tok_key}.json"
        if _damaged(tok_path, load_tokenizer, "tokenizer") or not tok_path.exists():
            texts = _tokenizer_training_texts(list(given.values()), spec.tokenizer.train_bytes)
            train_tokenizer(texts, spec.tokenizer.vocab_size, tok_path)
    tok = load_tokenizer(tok_path)

    variants: dict[str, list[Variant]] = generate_kinds(spec, prep, tok_path, progress)
    for kind, source in spec.corpora.synthetic.items():
        if source.generate is None:
            variants[kind] = [Variant(kind=kind, source=kind, generator=source.generator or _generator_of(source),
                                      path=source.path or "", flops_per_token=source.generator_flops_per_token)]
    train_sources: dict[str, Source] = {NATURAL: spec.corpora.natural}
    for kind in spec.corpora.synthetic:
        for v in variants[kind]:
            train_sources[v.source] = spec.corpora.synthetic[kind] if v.source == kind and \
                spec.corpora.synthetic[kind].generate is None else variant_source(v)
    fingerprints.update({name: fingerprint(s) for name, s in train_sources.items() if name not in fingerprints})

    data = PreparedData(tokenizer_path=tok_path, tokenizer_hash=tok.hash, vocab_size=tok.vocab_size)
    for name, source in {**train_sources, **eval_sources}.items():
        prefix = prep / "shards" / f"{name}-{stable_hash({'src': fingerprints[name], 'tok': tok.hash}, 12)}"
        if _damaged(Path(str(prefix) + ".json"), open_shard, "token shard") or not Path(str(prefix) + ".json").exists():
            encode_corpus(_documents(source), tok, prefix, progress=progress)
        data.shards[name] = str(prefix)
        data.source_tokens[name] = read_shard_info(prefix).n_tokens
    data.variants = variants
    check_prepared(spec, data.source_tokens, {k: {v.source: v.path for v in vs} for k, vs in variants.items()})

    seq_len, max_tokens = spec.training.seq_len, spec.evaluation.max_tokens_per_domain
    for domain in spec.eval:
        shard = data.shards[f"eval-{domain}"]
        key = stable_hash({'shard': Path(shard).name, 'seq': seq_len, 'max': max_tokens}, 12)
        path = prep / "eval" / f"{domain}-{key}"
        if not _eval_set_exists(path) or _damaged(path, load_eval_set, "eval set"):
            save_eval_set(build_eval_set(shard, tok, seq_len, max_tokens), path)
        data.eval_sets[domain] = str(path)

    _write_baselines(prep.parent / BASELINES_FILE, data, tok.hash)
    _write_diagnostics(prep.parent / DIAGNOSTICS_FILE, spec, data, tok_path, progress)

    data.generators = {kind: vs[0].generator for kind, vs in variants.items()}
    data.key = {
        "tokenizer": tok.hash,
        "sources": {name: Path(data.shards[name]).name for name in train_sources},
        "eval": {d: Path(p).name for d, p in sorted(data.eval_sets.items())},
    }
    write_json(prep / "prepared.json", {
        "tokenizer": str(tok_path), "tokenizer_hash": tok.hash, "vocab_size": tok.vocab_size,
        "shards": data.shards, "eval_sets": data.eval_sets, "generators": data.generators,
        "source_tokens": data.source_tokens,
        "variants": {k: [v.to_dict() for v in vs] for k, vs in variants.items()},
    })
    return data


def _is_current(path: Path, key: dict) -> bool:
    """True when the derived file at ``path`` was written for ``key``; missing or unreadable: rebuild it."""
    if not path.exists():
        return False
    try:
        return read_json(path).get("key") == key
    except (ValueError, OSError, AttributeError):
        return False


def _write_baselines(path: Path, data: PreparedData, tokenizer_hash: str) -> None:
    """Write ``STUDY/baselines.json`` (uniform and unigram loss per eval domain) unless it is current."""

    key = {"natural": Path(data.shards[NATURAL]).name,
           "eval": {d: Path(p).name for d, p in sorted(data.eval_sets.items())}}
    if _is_current(path, key):
        return
    baselines = study_baselines(data.shards[NATURAL], data.eval_sets, data.vocab_size, tokenizer_hash)
    write_json(path, {**baselines, "key": key})


def _write_diagnostics(path: Path, spec: StudySpec, data: PreparedData, tok_path: Path, progress: bool) -> None:
    """Write ``STUDY/diagnostics.json`` (each synthetic kind against natural) unless it is current.

    Keyed by the content-addressed shard names (corpus content + tokenizer) and the
    diagnostics settings and version, so a rerun reuses it and a changed corpus redoes it.
    """

    corpora = {v.source: v for vs in data.variants.values() for v in vs}  # one per generator and round
    key = {"natural": Path(data.shards[NATURAL]).name,
           "synthetic": {name: Path(data.shards[name]).name for name in sorted(corpora)},
           "max_docs": STUDY_MAX_DOCS, "version": DIAGNOSTICS_VERSION}
    if _is_current(path, key):
        return

    def ref(source: Source) -> CorpusRef:
        return CorpusRef(source.path, source.text_field, source.id_field)

    if progress:
        print("corpus diagnostics: each synthetic kind against natural", file=sys.stderr, flush=True)
    synthetic = {name: ref(spec.corpora.synthetic[v.kind]) if name == v.kind and v.folder is None
                 else CorpusRef(v.path, "text", "id") for name, v in corpora.items()}
    result = study_diagnostics(ref(spec.corpora.natural), synthetic, tok_path, max_docs=STUDY_MAX_DOCS,
                               progress=progress)
    write_json(path, {**result, "key": key})


def _damaged(path: Path, load, what: str) -> bool:
    """True (and said on stderr) when ``path`` exists but ``load`` cannot read it: it is rebuilt."""
    if not path.exists() and not _eval_set_exists(path):
        return False
    try:
        load(path)
    except InputError as e:
        print(f"warning: the prepared {what} is damaged; building it again ({e})", file=sys.stderr, flush=True)
        return True
    return False


def _eval_set_exists(path: Path) -> bool:
    return any(path.parent.glob(path.name + "*")) if path.parent.exists() else False


def _documents(source: Source):
    return read_documents(source.path, text_field=source.text_field, id_field=source.id_field)


def _tokenizer_training_texts(sources: list[Source], max_bytes: int) -> list[str]:
    """Round-robin documents from every training source until ``max_bytes`` of text."""

    iters = [iter(_documents(s)) for s in sources]
    texts, total = [], 0
    for doc in itertools.chain.from_iterable(itertools.zip_longest(*iters)):
        if doc is None:
            continue
        # a document longer than a piece counts piece by piece, so one huge document stops at the cap
        for piece in split_text(doc.text):
            texts.append(piece)
            total += len(piece.encode("utf-8"))
            if total >= max_bytes:
                return texts
    return texts


def _generator_of(source: Source) -> str:
    """The ``generator`` of the first document of a synthetic corpus ('' if absent)."""
    for doc in _documents(source):
        return doc.generator or str(doc.meta.get("generator", ""))
    return ""
