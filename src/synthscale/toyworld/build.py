"""build_toyworld: write the world, its natural corpus, the synthetic corpora and the held-out evals.

The synthetic corpora go through the generate stage exactly as an LLM-generated corpus
would: ``run_generation`` with the ``ToyworldBackend``, one resumable run folder per kind
under ``generate/KIND/`` (shards, manifest, summary, dataset card). Each corpus file
``synthetic/KIND.jsonl.gz`` is its run's corpus in request order: a hard link to the run's
one shard (or, past SHARD_SIZE requests, the shards' documents written in order). An
interrupted build resumes those runs; a completion marker holding the config hash makes a
second call with the same config a no-op; a different config (or a moved folder) starts
the runs afresh.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from .._io import atomic_write_text, read_json, write_json
from ..corpus import Document, read_documents, write_documents
from ..errors import SynthscaleError
from ..generate.gates import GateConfig
from ..generate.job import job_identity, run_generation
from ..generate.job_config import GenerateJob
from ..generate.store import link_or_copy, run_documents
from .backend import ToyworldBackend
from .config import TOYWORLD_VERSION, ToyworldConfig, load_toyworld_config
from .evalsets import encyclopedia_articles, held_out, probe_statements
from .natural import NaturalWriter
from .textbook import topic_catalogue
from .world import World, make_world

MARKER = "_COMPLETE.json"
SYNTHETIC_KINDS = ("hq", "qa", "textbook")
EVAL_DOMAINS = ("web", "encyclopedia", "probes")
GENERATE_DIR = "generate"  # the run folders of the synthetic corpora, one per kind
RUN_STAMP = "_toyworld.json"  # which config and folder the run folders belong to
BATCH_SIZE = 1024  # requests per journaled batch (the outputs do not depend on it)
SHARD_SIZE = 100_000  # one shard per kind for every preset: the corpus file is that shard
# toyworld's answers are never gated (every fact is stated by construction); only an empty answer is dropped
TOYWORLD_GATES = dataclasses.replace(GateConfig.off(), min_words=1)


@dataclass(frozen=True)
class ToyworldCorpora:
    """Paths of a built toyworld (all under ``root``)."""

    root: Path
    natural: Path
    synthetic: dict[str, Path]
    eval: dict[str, Path]
    world: Path
    config: Path

    @classmethod
    def under(cls, root: Path) -> "ToyworldCorpora":
        """The standard layout of a toyworld folder."""
        return cls(root=root, natural=root / "natural.jsonl.gz",
                   synthetic={k: root / "synthetic" / f"{k}.jsonl.gz" for k in SYNTHETIC_KINDS},
                   eval={d: root / "eval" / f"{d}.jsonl.gz" for d in EVAL_DOMAINS},
                   world=root / "world.json", config=root / "toyworld_config.json")

    def files(self) -> list[Path]:
        """Every file the build writes (except the completion marker)."""
        return [self.natural, *self.synthetic.values(), *self.eval.values(), self.world, self.config]


def build_toyworld(out_dir: str | Path, config: ToyworldConfig | None = None, *,
                   progress: bool = True) -> ToyworldCorpora:
    """Build every toyworld corpus under ``out_dir``; return at once if this config is already built."""
    config = config or ToyworldConfig()
    corpora = ToyworldCorpora.under(Path(out_dir))
    marker = corpora.root / MARKER
    if _is_complete(corpora, config):
        return corpora
    marker.unlink(missing_ok=True)  # an interrupted rebuild must not look complete
    start = time.perf_counter()

    world = make_world(config)
    write_json(corpora.world, world.to_json())
    write_json(corpora.config, config.model_dump())

    natural = list(NaturalWriter(world, config, "natural").documents(config.n_natural_docs, "web"))
    write_documents(corpora.natural, natural)
    synthetic = _write_synthetic(corpora, world, config, progress)

    training_texts = {d.text for docs in (natural, *synthetic.values()) for d in docs}
    candidates = {
        "web": NaturalWriter(world, config, "eval-web").documents(2 * config.n_eval_web_docs + 10, "webeval"),
        "encyclopedia": encyclopedia_articles(world, config.n_eval_encyclopedia_docs, config.seed),
        "probes": probe_statements(world, config.n_eval_probe_docs, config.seed),
    }
    wanted = {"web": config.n_eval_web_docs, "encyclopedia": config.n_eval_encyclopedia_docs,
              "probes": config.n_eval_probe_docs}
    held = {d: held_out(candidates[d], training_texts, wanted[d]) for d in EVAL_DOMAINS}
    for domain, docs in held.items():
        write_documents(corpora.eval[domain], docs)

    sizes = {"natural": _size(natural), **{f"synthetic/{k}": _size(v) for k, v in synthetic.items()},
             **{f"eval/{d}": _size(v) for d, v in held.items()}}
    write_json(marker, {"config_hash": config.hash(), "version": TOYWORLD_VERSION,
                        "seconds": round(time.perf_counter() - start, 3), "corpora": sizes})
    return corpora


def _size(docs: list[Document]) -> dict[str, int]:
    return {"documents": len(docs), "characters": sum(len(d.text) for d in docs)}


def _write_synthetic(corpora: ToyworldCorpora, world: World, config: ToyworldConfig,
                     progress: bool) -> dict[str, list[Document]]:
    """Generate (or resume) each synthetic kind with run_generation, then assemble its corpus file; return
    the documents of each."""
    runs = corpora.root / GENERATE_DIR
    _claim_runs(runs, config)
    topics = [t.text for t in topic_catalogue(world)]
    _write_topics(runs / "textbook_topics.txt", [topics[i % len(topics)] for i in range(config.n_textbook_chapters)])
    synthetic: dict[str, list[Document]] = {}
    with ToyworldBackend(world, config.textbook_error_rate) as backend:
        for kind in SYNTHETIC_KINDS:
            job = toyworld_job(kind, corpora, config)
            _drop_if_stale(Path(job.out), job_identity(job, backend))
            summary = run_generation(job, backend, progress=progress)
            if summary["written"] != summary["requests"] or summary["state"] != "complete":
                raise SynthscaleError(f"toyworld {kind}: {summary['failed']} of {summary['requests']} requests "
                                      f"failed and {summary['rejected']} were empty; see {job.out}/failures.jsonl")
            shards = [Path(job.out) / s["file"] for s in read_json(Path(job.out) / "manifest.json")["shards"]]
            if len(shards) == 1:
                link_or_copy(shards[0], corpora.synthetic[kind])
            else:
                write_documents(corpora.synthetic[kind], run_documents(job.out))
            synthetic[kind] = list(read_documents(corpora.synthetic[kind]))
    return synthetic


def toyworld_job(kind: str, corpora: ToyworldCorpora, config: ToyworldConfig) -> GenerateJob:
    """The generation job of one synthetic kind: hq and qa rewrite every natural document whole, textbook
    writes one chapter per line of ``generate/textbook_topics.txt``; no quality gates beyond non-empty."""
    source = {"topics": str(corpora.root / GENERATE_DIR / "textbook_topics.txt")} if kind == "textbook" \
        else {"input": str(corpora.natural)}
    return GenerateJob(out=str(corpora.root / GENERATE_DIR / kind), style=kind, seed=config.seed, chunk_tokens=0,
                       batch_size=BATCH_SIZE, shard_size=SHARD_SIZE, gates=TOYWORLD_GATES, **source)


def _claim_runs(runs: Path, config: ToyworldConfig) -> None:
    """Empty the run folders when they were made for another config or in another place (they are resumed
    only by a build of the same world); then record whose they are."""
    stamp = {"config_hash": config.hash(), "root": str(runs.parent.resolve())}
    path = runs / RUN_STAMP
    try:
        current = read_json(path) if path.exists() else None
    except (OSError, ValueError):
        current = None
    if current != stamp and runs.exists():
        shutil.rmtree(runs)
    if current != stamp:
        runs.mkdir(parents=True, exist_ok=True)
        write_json(path, stamp)


def _drop_if_stale(run: Path, identity: dict) -> None:
    """Remove a run folder made with another identity (a changed style or engine): it is generated afresh."""
    path = run / "generate_config.json"
    try:
        stored = read_json(path).get("identity") if path.exists() else identity
    except (OSError, ValueError, AttributeError):
        stored = None
    if stored != identity:
        shutil.rmtree(run)


def _write_topics(path: Path, topics: list[str]) -> None:
    """One topic per line (rewritten only when it changes, so that a finished run stays untouched)."""
    for topic in topics:
        if topic != topic.strip() or "\n" in topic or not topic or topic.startswith("#"):
            raise SynthscaleError(f"toyworld topic {topic!r} cannot be written as a line of a topics file")
    text = "".join(f"{t}\n" for t in topics)
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        atomic_write_text(path, text)


def _is_complete(corpora: ToyworldCorpora, config: ToyworldConfig) -> bool:
    marker = corpora.root / MARKER
    if not marker.exists():
        return False
    try:
        done = read_json(marker)
    except (OSError, ValueError):
        return False
    return done.get("config_hash") == config.hash() and all(p.exists() for p in corpora.files())


def build_toyworld_command(out_dir: Path, size: str = "default", seed: int | None = None,
                           config_path: Path | None = None, textbook_error_rate: float | None = None,
                           progress: bool = True) -> dict:
    """CLI entry: build a toyworld of a named ``size`` (or from a JSON config) and return its summary.

    ``seed`` and ``textbook_error_rate``, when given, override the preset or the config file.
    The summary holds the paths and the size of every corpus.
    """
    values = load_toyworld_config(config_path).model_dump() if config_path is not None else {}
    if seed is not None:
        values["seed"] = seed
    if textbook_error_rate is not None:
        values["textbook_error_rate"] = textbook_error_rate
    config = ToyworldConfig.preset("default" if config_path is not None else size, **values)
    corpora = build_toyworld(out_dir, config, progress=progress)
    done = read_json(corpora.root / MARKER)
    return {"root": str(corpora.root), "config_hash": done["config_hash"], "seconds": done["seconds"],
            "corpora": done["corpora"], "world": str(corpora.world)}
