"""Generation as a stage of a study: the synthetic kinds a spec declares with ``generate:``.

Each (kind, generator) is one resumable generation run (generate/job.py ``run_generation``,
or generate/workers.py for ``workers > 1``) in a content-addressed folder
``STUDY/prepared/generated/<hash>/``: the hash covers the generation settings and the input
corpus's content, not the kind's name, so every run (and every kind) that asks for the same
generation shares it, and a study killed while generating continues it on the next run
(the run's journal keeps every answered batch). The finished run's documents are written
once to ``corpus.jsonl.gz`` in that folder, which the study then encodes like any corpus.

Each corpus is a ``Variant`` of its kind: the source name its shards go under, the
``generator`` value its runs' results carry, its collapse round, and the generator's size
and FLOPs per token (2 x parameters; parameters counted from the model's safetensors when
the spec does not give them; toyworld: 0 FLOPs).
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import synthscale.toyworld  # noqa: F401  (registers the toyworld backend)

from .._io import read_json, sha256_file, stable_hash, write_json
from ..corpus import corpus_fingerprint, read_documents, write_documents
from ..errors import ConfigError, SynthscaleError
from ..generate.backends import make_backend
from ..generate.backends.config import BACKEND_CONFIGS, backend_config
from ..generate.chunking import DEFAULT_CHUNK_TOKENS
from ..generate.commands import gate_config
from ..generate.job import GenerateJob, run_generation
from ..generate.store import run_documents
from ..generate.workers import generate_with_workers
from ..laws.results import NATURAL
from .spec import Source, StudySpec, SyntheticSource
from .spec_generate import GenerateSpec, GeneratorSpec

GENERATED_DIR = "generated"  # under STUDY/prepared/
CORPUS_FILE = "corpus.jsonl.gz"
CORPUS_STAMP = "corpus.json"  # {"manifest": sha256 of the manifest the corpus was written from}
GENERATION_FILE = "generation.json"  # the resolved generation settings of the folder


@dataclass
class Variant:
    """One corpus of a synthetic kind: a generator's (and a round's) output, or the kind's ``path``."""

    kind: str
    source: str  # source name: shards, run weights and eval epochs are keyed by it
    generator: str  # the `generator` value of its runs' results
    path: str  # the corpus file
    round: int = 0
    params: float | None = None
    flops_per_token: float | None = None
    folder: str | None = None  # the generation folder (generated kinds)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return asdict(self)


def has_generated(spec: StudySpec) -> bool:
    """True when some synthetic kind of ``spec`` is generated in the study."""
    return any(s.generate is not None for s in spec.corpora.synthetic.values())


def source_name(kind: str, generator: str | None, n_generators: int, round_: int = 0) -> str:
    """The source name of one corpus of ``kind``: the kind itself when it has one corpus."""
    name = kind if n_generators == 1 or not generator else f"{kind}.{generator}"
    return name if round_ == 0 else f"{name}.r{round_}"


def generate_kinds(spec: StudySpec, prep: Path, tokenizer: Path | None, progress: bool = True
                   ) -> dict[str, list[Variant]]:
    """Generate (or resume, or reuse) the round-0 corpus of every generator of every generated kind."""
    out: dict[str, list[Variant]] = {}
    for kind, source in spec.corpora.synthetic.items():
        if source.generate is None:
            continue
        gens = source.generate.resolved_generators()
        out[kind] = [generate_variant(spec, kind, source, g, prep, tokenizer, len(gens), progress=progress)
                     for g in gens]
    return out


def generate_variant(spec: StudySpec, kind: str, source: SyntheticSource, gen: GeneratorSpec, prep: Path,
                     tokenizer: Path | None, n_generators: int = 1, *, round_: int = 0,
                     style: str | None = None, style_files: tuple[str, ...] | None = None,
                     sampling: dict[str, Any] | None = None, chunk_tokens: int | None = None,
                     label: str | None = None, input_path: str | None = None, gates: Any = None,
                     progress: bool = True) -> Variant:
    """Run one generation of ``kind`` with ``gen`` into its content-addressed folder; return its Variant.

    The keyword arguments override the kind's settings (collapse rounds > 0 use them).
    """

    g = source.generate
    assert g is not None
    where = f"corpora.synthetic.{kind}.generate"
    fields = (spec.corpora.natural.text_field, spec.corpora.natural.id_field) if g.from_ == NATURAL \
        else (source.text_field, source.id_field)
    topics = g.topics if input_path is None else None  # collapse rounds > 0 continue documents, not topics
    if input_path is not None:
        fields = ("text", "id")
    input_path = input_path or (spec.corpora.natural.path if g.from_ == NATURAL else g.from_)
    if gates is not None:
        g = g.model_copy(update={"gates": gates})
    style = style or g.style
    style_files = tuple(g.style_files) if style_files is None else style_files
    sampling = dict(g.sampling) if sampling is None else sampling
    chunk = (DEFAULT_CHUNK_TOKENS if g.chunk_tokens is None else g.chunk_tokens) if chunk_tokens is None \
        else chunk_tokens
    seed = spec.seed if g.seed is None else g.seed
    use_tokenizer = str(tokenizer) if g.target_tokens is not None and tokenizer is not None else None
    if g.target_tokens is not None and use_tokenizer is None:
        raise ConfigError(f"{where}.target_tokens: counting tokens needs the study's tokenizer")
    settings = {
        "input": corpus_fingerprint(topics or input_path), "fields": list(fields), "style": style,
        "style_files": {Path(f).name: sha256_file(f) for f in style_files},
        "backend": gen.backend, "model": gen.model, "options": gen.options, "sampling": sampling,
        "target_tokens": g.target_tokens, "max_docs": g.max_docs, "gates": g.gates.model_dump(),
        "chunk_tokens": chunk, "seed": seed, "workers": g.workers,
        "tokenizer": sha256_file(use_tokenizer) if use_tokenizer else None,
    }
    folder = prep / GENERATED_DIR / stable_hash(settings, 16)
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / GENERATION_FILE, {**settings, "input_path": topics or input_path})
    if progress:
        print(f"generate {kind}{f' ({gen.name})' if gen.name else ''}{f' round {round_}' if round_ else ''}: "
              f"{style} with {gen.backend} into {folder}", file=sys.stderr, flush=True)
    job_args = dict(style=style, input=None if topics else input_path, topics=topics, style_files=style_files,
                    seed=seed, sampling=sampling,
                    max_docs=g.max_docs, target_tokens=g.target_tokens, tokenizer=use_tokenizer, chunk_tokens=chunk,
                    batch_size=g.batch_size, text_field=fields[0], id_field=fields[1])
    try:
        summary = _run(folder, gen, g, job_args, progress, spec)
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None
    if not summary.get("written"):
        raise SynthscaleError(f"{where}: the generation wrote no documents ({summary.get('failed', 0)} of "
                              f"{summary.get('requests', 0)} requests failed, {summary.get('rejected', 0)} rejected "
                              f"by the gates); see {folder}/failures.jsonl")
    corpus = _write_corpus(folder)
    params = gen.params if gen.params is not None else count_params(gen.model)
    flops = gen.flops_per_token if gen.flops_per_token is not None else (
        2.0 * params if params else (0.0 if gen.backend == "toyworld" else source.generator_flops_per_token))
    name = label or gen.name or _first_generator(corpus) or gen.backend
    return Variant(kind=kind, source=source_name(kind, gen.name, n_generators, round_), generator=name,
                   path=str(corpus), round=round_, params=params, flops_per_token=flops, folder=str(folder))


def _run(folder: Path, gen: GeneratorSpec, g: GenerateSpec, job_args: dict[str, Any], progress: bool,
         spec: StudySpec) -> dict[str, Any]:
    """The generation itself: one resumable job in this process, or ``g.workers`` workers on the generate
    block's executor (default: the study's executor kind, with its Ray address or Slurm settings)."""

    gates = g.gates
    if g.workers > 1:
        sampling = dict(job_args.pop("sampling"))
        stop = sampling.pop("stop", [])
        unknown = [k for k in sampling if k not in ("temperature", "top_p", "top_k", "max_tokens",
                                                    "repetition_penalty")]
        if unknown:
            raise ConfigError(f"sampling.{unknown[0]}: not available with workers > 1")
        options = {**job_args, "style_files": list(job_args["style_files"]), **sampling, "stop": stop,
                   "backend": gen.backend, "model": gen.model, "out": str(folder), "gates": gates.action,
                   "truncated": gates.truncated, "language": gates.language, "near_copy": gates.near_copy,
                   "max_repetition": gates.max_repetition, "min_words": gates.min_words, **gen.options,
                   "progress": False}
        executor = g.executor or spec.executor.kind
        slurm = spec.executor.slurm
        slurm_params = {"cluster": slurm.cluster, **({"slurm_partition": slurm.partition} if slurm.partition else {}),
                        **({"slurm_account": slurm.account} if slurm.account else {})}
        return generate_with_workers(options, executor=executor, workers=g.workers, progress=progress,
                                     ray_address=spec.executor.ray.address, slurm=slurm_params)
    job = GenerateJob(out=str(folder), gates=gate_config(gates.action, gates.truncated, gates.language,
                                                         gates.near_copy, gates.max_repetition, gates.min_words),
                      **job_args)
    with build_backend(gen) as backend:
        return run_generation(job, backend, progress=progress)


def build_backend(gen: GeneratorSpec):
    """The backend of ``gen``: built-in kinds from their typed config (options checked), others by name."""
    if gen.backend in BACKEND_CONFIGS:
        return backend_config(gen.backend, gen.options).build(gen.model)
    return make_backend(gen.backend, gen.model, **gen.options)


def _write_corpus(folder: Path) -> Path:
    """``folder/corpus.jsonl.gz``: the run's documents, rewritten only when its manifest changed."""
    corpus, stamp = folder / CORPUS_FILE, folder / CORPUS_STAMP
    key = sha256_file(folder / "manifest.json")
    try:
        current = corpus.exists() and read_json(stamp, missing_ok=True) == {"manifest": key}
    except ValueError:
        current = False
    if not current:
        write_documents(corpus, run_documents(folder))
        write_json(stamp, {"manifest": key})
    return corpus


def _first_generator(path: Path) -> str:
    """The generator named by the first document of a corpus ("" when none)."""
    for doc in read_documents(path):
        return doc.generator or str(doc.meta.get("generator", ""))
    return ""


def count_params(model: str | None) -> float | None:
    """Parameters of a local model (a folder of .safetensors files, or one file), from the headers only."""
    if not model:
        return None
    p = Path(model)
    files = [p] if p.is_file() and p.suffix == ".safetensors" else sorted(p.glob("*.safetensors")) if p.is_dir() else []
    total = 0
    for f in files:
        try:
            with open(f, "rb") as fh:
                n = int.from_bytes(fh.read(8), "little")
                header = json.loads(fh.read(n))
        except (OSError, ValueError):
            return None
        total += sum(math.prod(v["shape"]) for k, v in header.items() if k != "__metadata__")
    return float(total) if total else None


def variant_source(variant: Variant) -> Source:
    """The corpus of a variant as a study Source (generated corpora use the standard fields)."""
    return Source(path=variant.path)
