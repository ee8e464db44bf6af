"""A resumable generation run: plan requests, answer them in batches, gate, journal, shard, summarise.

``run_generation(job, backend)`` reads the input (a corpus, or a topics file), plans the
requests (plan.py), skips every request the output folder already holds, sends the rest
to the backend in batches, runs the quality gates, and records each answer durably
(store.py) before the next batch. It stops when the input is exhausted or when the
written documents reach ``target_tokens`` (counted with the training tokenizer, EOS
included, as token shards count them). It then seals the last shard and writes
``summary.json`` (counts, gate reasons, tokens, throughput, cost) and ``dataset_card.md``,
plus ``reassembled.jsonl.gz`` on request. Rerunning a finished job changes nothing.

A job may be one part of a split input (``part``/``parts``, or the ``part.json`` a
launcher writes into its output folder, see workers.py): it then answers only the items
of its part (plan.part_of), and the partition is part of the folder's identity.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Iterable, Iterator

from .._io import read_json
from ..corpus import Document, read_documents, write_documents
from ..errors import ConfigError, InputError
from ..progress import progress_bar
from ..tokens import load_tokenizer
from .backends.base import Backend, BackendError, GenerationRequest, GenerationResult
from .card import build_summary, render_card
from .chunking import approx_token_counts, reassemble
from .gates import GateConfig, check_output
from .job_config import JOB_FORMAT, PART_FILE, PARTITION_KEY, GenerateJob
from .plan import output_document, plan_requests
from .store import OutputStore
from .style_files import resolve_style
from .styles import Style


def run_generation(job: GenerateJob, backend: Backend, *, progress: bool = True) -> dict[str, Any]:
    """Run (or resume) ``job`` with ``backend``; return the run summary (also in OUT/summary.json)."""

    job = with_partition(job)
    style = resolve_style(job.style, job.style_files)
    sampling = {**style.sampling, **job.sampling}
    tok = load_tokenizer(job.tokenizer) if job.tokenizer else None
    counter, counter_name = _chunk_counter(backend, job.chunk_tokenizer)
    identity = _identity(job, style, sampling, backend, counter_name, tok.hash if tok else None)
    settings = {**{k: v for k, v in asdict(job).items() if k not in ("gates", "sampling")},
                "backend": backend.describe()}
    with OutputStore(job.out, identity, settings, shard_size=job.shard_size) as store:
        done = store.done_ids(job.retry_failures)
        if store.complete and _target_reached(job, store.tally().written_tokens):
            return _existing_summary(store, job, style, sampling, backend, identity)
        requests = plan_requests(_items(job), style, sampling, job.seed, chunk_tokens=job.chunk_tokens or None,
                                 count_tokens=counter, samples=job.samples,
                                 part=(job.part, job.parts) if job.parts > 1 else None)
        try:
            answered, failed, stop_reason = _answer_pending(_unique(requests, done), job, backend, style, tok,
                                                            store, progress)
        except KeyboardInterrupt:
            store.mark_interrupted()
            raise
        if answered == 0 and store.complete:
            return _existing_summary(store, job, style, sampling, backend, identity)
        store.finish(stop_reason)
        return _write_outputs(store, job, style, sampling, backend, identity, answered, len(done), failed)


def _answer_pending(requests: Iterator[GenerationRequest], job: GenerateJob, backend: Backend, style: Style,
                    tok: Any, store: OutputStore, progress: bool) -> tuple[int, int, str]:
    """Answer the requests batch by batch, journaling each batch; stop at the token target.

    Returns (requests answered, of them failed, stop reason).
    """
    written = store.tally().written_tokens
    answered = failed = 0
    with progress_bar(f"generate {style.name}", enabled=progress, unit="requests answered",
                      counters={"tokens": "tokens written"}) as advance:
        for batch in _batches(requests, job.batch_size):
            if _target_reached(job, written):
                break
            records = _answer(batch, backend, style, job.gates, tok)
            store.append(records)
            answered += len(records)
            failed += sum(1 for r in records if r["status"] == "failed")
            written += sum(r.get("tokens", 0) for r in records if r["status"] == "ok")
            advance(len(records), tokens=written)
    return answered, failed, "target tokens reached" if _target_reached(job, written) else "input exhausted"


# --- answering one batch ----------------------------------------------------------------------

def _answer(batch: list[GenerationRequest], backend: Backend, style: Style, gates: GateConfig,
            tok: Any) -> list[dict[str, Any]]:
    """One journal record per request: the document (ok/rejected) or the failure, usage and timing."""
    start = time.perf_counter()
    results = backend.generate(batch)
    seconds = (time.perf_counter() - start) / len(batch)
    check_results(backend, batch, results)
    records = [_record(request, result, style, gates, backend, seconds) for request, result in zip(batch, results)]
    ok = [r for r in records if r["status"] == "ok"]
    texts = [r["doc"]["text"] for r in ok]
    counts = [len(ids) + 1 for ids in tok.encode_batch(texts)] if tok is not None else approx_token_counts(texts)
    for record, n in zip(ok, counts):
        record["tokens"] = n
    return records


def check_results(backend: Backend, batch: list[GenerationRequest], results: list[GenerationResult]) -> None:
    """BackendError unless ``results`` answers ``batch`` one to one, in order."""
    if len(results) != len(batch) or any(r.request_id != q.request_id for q, r in zip(batch, results)):
        raise BackendError(f"backend '{backend.name}' returned {len(results)} results for {len(batch)} requests "
                           "or out of order")


def _record(request: GenerationRequest, result: GenerationResult, style: Style, gates: GateConfig,
            backend: Backend, seconds: float) -> dict[str, Any]:
    record: dict[str, Any] = {"id": request.request_id, "finish_reason": result.finish_reason,
                              "prompt_tokens": result.prompt_tokens, "completion_tokens": result.completion_tokens,
                              "seconds": seconds}
    if result.finish_reason == "error":
        attempts = result.meta.get("attempts")
        return {**record, "status": "failed", "error": result.error or "unknown error",
                **({"attempts": attempts} if attempts else {})}
    text, cleaned = style.clean_and_report(result.text)
    source = request.document.text if request.document is not None else None
    verdict = check_output(text, result.finish_reason, style, source, gates)
    # the backend kind, unless the generator's name already is it (toyworld@2 says toyworld)
    extra: dict[str, Any] = {} if backend.name == backend.model else {"backend": backend.name}
    if cleaned:
        extra["cleaned_by"] = cleaned
    if verdict.reasons:
        extra["gate_flags" if verdict.keep else "gate_reasons"] = verdict.reasons
    doc = output_document(request, result, text, style, backend.generator, extra)
    return {**record, "status": "ok" if verdict.keep else "rejected", "reasons": verdict.reasons,
            "cleaned": cleaned, "doc": doc.to_dict()}


# --- inputs -------------------------------------------------------------------------------------

def _items(job: GenerateJob) -> Iterator[Document | str]:
    if job.topics is not None:
        yield from itertools.islice(read_topics(job.topics), job.max_docs)
        return
    yield from read_documents(job.input, text_field=job.text_field, id_field=job.id_field,  # type: ignore[arg-type]
                              limit=job.max_docs)


def read_topics(path: str | Path) -> Iterator[str]:
    """The topics of a text file: one per non-blank line, stripped; lines starting with '#' are comments."""
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                topic = line.strip()
                if topic and not topic.startswith("#"):
                    yield topic
    except FileNotFoundError:
        raise InputError("no such topics file", path=str(path)) from None
    except UnicodeDecodeError as e:
        raise InputError(f"not UTF-8 text ({e.reason})", path=str(path)) from None


def _unique(requests: Iterable[GenerationRequest], done: set[str]) -> Iterator[GenerationRequest]:
    """The requests not already answered; a request id seen twice means the input repeats a document id."""
    seen: set[str] = set()
    for request in requests:
        if request.request_id in seen:
            raise InputError(f"request '{request.request_id}' appears twice: the input repeats a document id "
                             "(ids must be unique)")
        seen.add(request.request_id)
        if request.request_id not in done:
            yield request


def _batches(requests: Iterator[GenerationRequest], size: int) -> Iterator[list[GenerationRequest]]:
    while batch := list(itertools.islice(requests, size)):
        yield batch


def job_identity(job: GenerateJob, backend: Backend) -> dict[str, Any]:
    """The identity ``run_generation(job, backend)`` gives its output folder (what decides the outputs;
    resuming a folder with another identity is refused)."""

    job = with_partition(job)
    style = resolve_style(job.style, job.style_files)
    tokenizer_hash = load_tokenizer(job.tokenizer).hash if job.tokenizer else None
    return _identity(job, style, {**style.sampling, **job.sampling}, backend,
                     _chunk_counter(backend, job.chunk_tokenizer)[1], tokenizer_hash)


def with_partition(job: GenerateJob) -> GenerateJob:
    """``job`` with the partition its output folder declares (OUT/part.json); ConfigError if the job asks
    for another one."""

    path = Path(job.out) / PART_FILE
    if not path.exists():
        return job
    declared = read_json(path, what="part declaration", fix="restore it, or generate into a new --out folder")
    if not isinstance(declared, dict) or declared.get("key") != PARTITION_KEY:
        raise InputError(f"not a part declaration of this synthscale version (key {PARTITION_KEY!r})", path=str(path))
    part, parts = declared.get("part"), declared.get("parts")
    if job.parts > 1 and (job.part, job.parts) != (part, parts):
        raise ConfigError(f"{job.out}: this folder holds part {part} of {parts}, not part {job.part} of {job.parts}")
    return replace(job, part=part, parts=parts)


def _chunk_counter(backend: Backend, tokenizer: str | None) -> tuple[Any, str]:
    """The token counter for chunking and its name: ``tokenizer``, else the generator's, else approximate."""
    if tokenizer:

        tok = load_tokenizer(tokenizer)
        return (lambda texts: [len(ids) for ids in tok.encode_batch(list(texts))]), f"tokenizer {tok.hash[:16]}"
    if backend.count_tokens(["probe"]) is not None:
        return backend.count_tokens, f"{backend.generator} tokenizer"
    return approx_token_counts, "approximate (words and punctuation)"


def _target_reached(job: GenerateJob, written_tokens: int) -> bool:
    return job.target_tokens is not None and written_tokens >= job.target_tokens


def _identity(job: GenerateJob, style: Style, sampling: dict[str, Any], backend: Backend, counter: str,
              tokenizer_hash: str | None) -> dict[str, Any]:
    """What decides the outputs: resuming with a different identity is refused."""
    source = job.topics if job.topics is not None else job.input
    return {"format": JOB_FORMAT, "input": str(Path(source).resolve()) if Path(str(source)).exists() else source,
            "input_kind": "topics" if job.topics is not None else "documents", "style": style.describe(),
            "sampling": sampling, "seed": job.seed, "generator": backend.generator, "backend": backend.name,
            "chunk_tokens": job.chunk_tokens, "chunk_counter": counter, "samples": job.samples,
            "gates": job.gates.to_dict(), "tokenizer_hash": tokenizer_hash,
            "fields": [job.text_field, job.id_field],
            **({"partition": {"part": job.part, "parts": job.parts, "key": PARTITION_KEY}} if job.parts > 1 else {})}


# --- outputs ------------------------------------------------------------------------------------

def _write_outputs(store: OutputStore, job: GenerateJob, style: Style, sampling: dict[str, Any], backend: Backend,
                   identity: dict[str, Any], new: int, skipped: int, failed: int = 0) -> dict[str, Any]:
    tokens = [n for _, status, n in store.index_rows() if status == "ok"]
    summary = build_summary(store, job, style, backend, tokens)
    summary["this_run"] = {"answered": new, "failed": failed, "already_done": skipped}
    if job.reassemble:
        summary["reassembled"] = _reassemble(store)
    store.write_json("summary.json", summary)
    store.write_text("dataset_card.md", render_card(summary, identity, style, sampling, backend.describe(), job))
    return summary


def _existing_summary(store: OutputStore, job: GenerateJob, style: Style, sampling: dict[str, Any],
                      backend: Backend, identity: dict[str, Any]) -> dict[str, Any]:
    """A finished run: return its summary without touching any file (rebuilt only if it is missing)."""

    path = store.root / "summary.json"
    try:
        summary = read_json(path, what="generation summary", missing_ok=True)
    except ValueError:  # damaged: rebuilt below from the output folder, which it only summarises
        summary = None
    if isinstance(summary, dict) and (store.root / "dataset_card.md").exists():
        summary["this_run"] = {"answered": 0, "failed": 0, "already_done": summary.get("requests", 0)}
        return summary
    return _write_outputs(store, job, style, sampling, backend, identity, 0, store.tally().requests)


def _reassemble(store: OutputStore) -> dict[str, Any]:
    docs = list(reassemble(store.documents()))
    write_documents(store.root / "reassembled.jsonl.gz", docs)
    complete = sum(1 for d in docs if d.meta.get("complete", True))
    return {"file": "reassembled.jsonl.gz", "documents": len(docs), "complete": complete,
            "incomplete": len(docs) - complete}
