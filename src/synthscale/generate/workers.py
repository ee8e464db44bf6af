"""Generation across workers and machines: split the input into K parts, run each part as a resumable job, merge.

``generate_with_workers(options, executor=..., workers=K)`` runs ``generate_command(**options)``
K times, each on one part of the input: a part holds the items whose key (document id,
or topic index) hashes to it (plan.part_of, sha256: the same in every process and on
every machine), so the parts are disjoint and together hold the whole input. Every part
is an ordinary resumable run folder; a merge step then writes one manifest, one summary
and one dataset card for the whole output:

    OUT/
      parts/part-00000-of-00002/    part 0's run folder (shards/, index/, manifest.json, ...) with
                                    part.json (which part it is), task.json (what its worker runs),
                                    worker.log (local workers' output) and _COMPLETE.json (the marker)
      shards/shard-00000.jsonl.gz   the merged corpus: every part's shards, hard-linked, part by part
      manifest.json                 shards (counts, sha256, their part) and parts, for the whole output
      generate_config.json, failures.jsonl, summary.json, dataset_card.md (reassembled.jsonl.gz)
      workers.json                  the split (number of parts, key): a rerun must use the same --workers

Executors: ``local`` (K processes on this machine, ``python -m synthscale.generate.worker
TASK``; with GPUs, each worker sees its own through CUDA_VISIBLE_DEVICES: one engine per
GPU, or per tensor-parallel group for vLLM), ``ray`` (K Ray tasks, on a fresh local
instance or ``ray_address``) and ``slurm`` (K submitit jobs; ``slurm={"cluster": "local"}``
runs the same code path with submitit's local executor). All run ``run_worker_task``.

A worker that dies (SIGKILL, out of memory, node lost) loses nothing that was answered:
its part's journal keeps every finished batch. The other workers finish; the command then
fails naming the part, and rerunning the same command relaunches only the parts without a
completion marker for these options, which resume where they stopped. A token target is
shared out: each part stops at ``ceil(target / K)`` tokens.

This launcher is small on purpose and parallel to study/executors (which run training
runs, not generation parts): generate cannot import study, which imports generate.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import os
import time
from pathlib import Path
from typing import Any, Callable

from .._io import atomic_write_text, read_json, stable_hash, to_json, write_json
from ..corpus import write_documents
from ..errors import ConfigError, SynthscaleError
from ..progress import progress_bar
from .backends import backend_plugins
from .card import build_summary, render_card
from .chunking import reassemble
from .commands import generate_command
from .gates import GateConfig
from .job_config import PART_FILE, PARTITION_KEY, GenerateJob
from .launchers import Launcher, make_launcher
from .parts import TASK_FILE, TASK_FORMAT, PartTask, part_dir
from .store import MANIFEST_FORMAT, OutputStore, folder_lock, link_or_copy
from .style_files import resolve_style

EXECUTORS = ("local", "ray", "slurm")
WORKERS_FILE = "workers.json"
POLL_S = 0.5


def generate_with_workers(options: dict[str, Any], *, executor: str = "local", workers: int = 2,
                          progress: bool = True, ray_address: str | None = None,
                          slurm: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run ``generate_command(**options)`` split over ``workers`` parts on ``executor``, then merge.

    ``options`` are generate_command's keyword arguments (``out`` is the whole output).
    ``ray_address`` picks a Ray cluster (default: a fresh local instance, stopped after);
    ``slurm`` holds submitit parameters (``cluster``: ``slurm`` (default) or ``local``,
    ``timeout_min``, ``cpus_per_task``, ``mem_gb``, ``gpus_per_node``, ``slurm_partition``, ...).
    Returns the merged summary (also OUT/summary.json); raises SynthscaleError naming the
    parts whose worker did not finish (rerun the same call to resume them).
    """
    if executor not in EXECUTORS:
        raise ConfigError(f"--executor: unknown executor '{executor}' (choose from {', '.join(EXECUTORS)})")
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise ConfigError(f"--workers must be an integer >= 1, got {workers!r}")
    options = _jsonable(_complete(options))
    if not options.get("out"):
        raise ConfigError("generate: give --out, the output folder")
    out = Path(options["out"])
    out.mkdir(parents=True, exist_ok=True)
    with folder_lock(out):
        _claim_split(out, workers)
        tasks = [_prepare_task(out, options, k, workers) for k in range(workers)]
        pending = [t for t in tasks if not t.done()]
        for task in pending:
            task.marker.unlink(missing_ok=True)  # a marker for other options says nothing about these
        launcher = make_launcher(executor, out, options, ray_address, slurm)
        if pending:
            _run(launcher, pending, tasks, progress, options)
        lost = [t for t in tasks if not t.done()]
        if lost:
            reasons: dict[str, list[int]] = {}
            for task in lost:
                reasons.setdefault(task.failure or "no completion marker", []).append(task.part)
            why = "; ".join(f"part{'s' if len(ps) > 1 else ''} {', '.join(map(str, ps))}: {reason}"
                            for reason, ps in reasons.items())
            raise SynthscaleError(f"generate: {len(lost)} of {workers} workers did not finish ({why}; "
                                  f"{launcher.logs_hint(out)}); everything they answered is kept: rerun the same "
                                  "command to resume")
        return merge_parts(out, workers, options, executor, {t.part: t.this_run() for t in tasks},
                           key=stable_hash([t.key for t in tasks], 16))


def workers_command(executor: str, workers: int, ray_address: str | None = None,
                    slurm: dict[str, Any] | None = None) -> Callable[..., dict[str, Any]]:
    """A function with generate_command's signature that runs it over ``workers`` parts on ``executor``
    (``ray_address`` and ``slurm`` as for generate_with_workers)."""
    signature = inspect.signature(generate_command)

    def run(*args: Any, **kwargs: Any) -> dict[str, Any]:
        options = dict(signature.bind(*args, **kwargs).arguments)
        progress = options.pop("progress", True)
        return generate_with_workers(options, executor=executor, workers=workers, progress=progress,
                                     ray_address=ray_address, slurm=slurm)

    return run


# --- the parts ------------------------------------------------------------------------------

def _claim_split(out: Path, workers: int) -> None:
    """Record the split in OUT/workers.json; refuse a folder split otherwise or holding a one-process run."""
    path = out / WORKERS_FILE
    split = {"parts": workers, "key": PARTITION_KEY}
    if path.exists():
        stored = read_json(path, what="worker split", fix="restore it, or generate into a new --out folder")
        if stored != split:
            raise ConfigError(f"{out}: was generated split over {stored.get('parts')} workers; rerun with --workers "
                              f"{stored.get('parts')} or choose another --out")
        return
    if (out / "manifest.json").exists() or (out / "index").exists():
        raise ConfigError(f"{out}: holds a one-process generate run; rerun it without --workers/--executor, "
                          "or choose another --out")
    write_json(path, split)


def _prepare_task(out: Path, options: dict[str, Any], part: int, parts: int) -> PartTask:
    """Write part ``part``'s part.json and task.json (when they change); return the task."""
    folder = part_dir(out, part, parts)
    folder.mkdir(parents=True, exist_ok=True)
    _write_if_changed(folder / PART_FILE, to_json({"part": part, "parts": parts, "key": PARTITION_KEY}))
    # absolute paths (a Ray or Slurm worker may start elsewhere); reassembled once, after the merge
    worker_options = {**_absolute(options), "out": str(folder.resolve()), "reassemble": False}
    if options.get("target_tokens"):
        worker_options["target_tokens"] = math.ceil(options["target_tokens"] / parts)
    key = stable_hash({"options": worker_options, "part": part, "parts": parts}, 16)
    task = {"format": TASK_FORMAT, "part": part, "parts": parts, "key": key, "options": worker_options,
            "plugins": sorted(set(backend_plugins().values()))}
    _write_if_changed(folder / TASK_FILE, to_json(task))
    return PartTask(part, parts, folder, key)


PATH_OPTIONS = ("input", "topics", "tokenizer", "chunk_tokenizer", "model")


def _absolute(options: dict[str, Any]) -> dict[str, Any]:
    """``options`` with the local files and folders they name made absolute (hub ids, URLs, hf:// left alone)."""
    def absolute(value: Any) -> Any:
        return str(Path(value).resolve()) if isinstance(value, str) and value and Path(value).exists() else value

    result = {k: absolute(v) if k in PATH_OPTIONS else v for k, v in options.items()}
    if result.get("style_files"):
        result["style_files"] = [absolute(v) for v in result["style_files"]]
    if isinstance(result.get("style"), str) and result["style"].endswith((".yaml", ".yml")):
        result["style"] = absolute(result["style"])
    return result


def _write_if_changed(path: Path, text: str) -> None:
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        atomic_write_text(path, text)


def _complete(options: dict[str, Any]) -> dict[str, Any]:
    """Every generate_command option, the defaults filled in (so that the same command gives the same key).

    Backend options left unset (None, as the CLI passes them) are dropped, so the CLI and the Python API
    give the same key for the same command.
    """
    try:
        bound = inspect.signature(generate_command).bind(**{k: v for k, v in options.items() if k != "progress"})
    except TypeError as e:
        raise ConfigError(f"generate with workers: {e}") from None
    bound.apply_defaults()
    options = {k: v for k, v in bound.arguments.items() if k != "progress"}
    given = options.get("backend_options")
    if isinstance(given, dict):
        options["backend_options"] = {k: v for k, v in given.items() if v is not None} or None
    return options


def _jsonable(options: dict[str, Any]) -> dict[str, Any]:
    """The options as plain JSON values (paths as strings, tuples as lists); ConfigError for anything else."""
    def plain(value: Any) -> Any:
        if isinstance(value, os.PathLike):
            return os.fspath(value)
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {str(k): plain(v) for k, v in value.items()}
        if value is None or isinstance(value, (str, int, float, bool)):
            return value
        raise ConfigError(f"generate with workers: option value {value!r} cannot be sent to a worker (not JSON)")

    return {k: plain(v) for k, v in options.items()}


# --- running the workers ----------------------------------------------------------------------

def _run(launcher: "Launcher", pending: list[PartTask], tasks: list[PartTask], progress: bool,
         options: dict[str, Any]) -> None:
    """Start the pending parts and wait for every one, showing progress over all parts."""
    for task in pending:
        task.ran = True
    style = str(options.get("style", "generate"))
    with progress_bar(f"generate {style} on {len(tasks)} workers", enabled=progress, unit="requests answered",
                      counters={"tokens": "tokens written"}) as advance:
        shown = _answered(tasks)
        try:
            launcher.start(pending)
            running = {t.part: t for t in pending}
            while running:
                for part, failure in launcher.poll().items():
                    task = running.pop(part)
                    task.failure = None if task.done() else (failure or "the worker ended without a marker")
                now = _answered(tasks)
                advance(now - shown, tokens=_written_tokens(tasks))
                shown = now
                if running:
                    time.sleep(POLL_S)
        finally:
            launcher.stop()


def _answered(tasks: list[PartTask]) -> int:
    """Requests answered so far over all parts: sealed shards plus journal lines."""
    n = 0
    for task in tasks:
        manifest = _read_quietly(task.dir / "manifest.json")
        n += sum(s["tally"]["requests"] for s in manifest.get("shards", [])) if manifest else 0
        try:
            n += max(0, (task.dir / "index" / "open.journal").read_bytes().count(b"\n") - 1)
        except OSError:
            pass
    return n


def _written_tokens(tasks: list[PartTask]) -> int:
    manifests = (_read_quietly(t.dir / "manifest.json") for t in tasks)
    return sum(s["tally"]["written_tokens"] for m in manifests if m for s in m.get("shards", []))


def _read_quietly(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


# --- merging ---------------------------------------------------------------------------------

class _BackendInfo:
    """What the summary needs of a backend, read back from a part's summary (the model is not loaded here)."""

    def __init__(self, summary: dict[str, Any]):
        self.name, self.generator = summary["backend"], summary["generator"]
        self.accelerators = summary["throughput"]["accelerators"]


def merge_parts(out: str | os.PathLike, workers: int, options: dict[str, Any], executor: str = "local",
                this_run: dict[int, dict[str, int]] | None = None, *, key: str | None = None) -> dict[str, Any]:
    """Write OUT's merged corpus view, failures, config, summary, card and (last: the commit point) manifest
    from its finished parts.

    ``key`` names the parts' tasks: when OUT's manifest already holds it (and nothing ran), the existing
    merge is returned untouched.
    """
    out = Path(out)
    runs = this_run or {}
    ran = any(r.get("answered") for r in runs.values())
    current = _read_quietly(out / "manifest.json")
    if key is not None and not ran and current and current.get("key") == key and (out / "summary.json").exists():
        summary = read_json(out / "summary.json", what="generation summary")
        summary["this_run"] = {"answered": 0, "failed": 0, "already_done": summary.get("requests", 0)}
        return summary
    dirs = [part_dir(out, k, workers) for k in range(workers)]
    configs = [read_json(d / "generate_config.json", what="part config") for d in dirs]
    manifests = [read_json(d / "manifest.json", what="part manifest") for d in dirs]
    summaries = [read_json(d / "summary.json", what="part summary") for d in dirs]
    identity = {k: v for k, v in configs[0]["identity"].items() if k != "partition"}
    for k, config in enumerate(configs):
        if {key: v for key, v in config["identity"].items() if key != "partition"} != identity:
            raise ConfigError(f"{dirs[k]}: this part was generated with another configuration than part 0")
    identity["workers"] = {"parts": workers, "key": PARTITION_KEY}

    manifest = {**_merged_manifest(out, dirs, manifests), "key": key}
    view = OutputStore(out, identity, {})  # read-only use: its manifest and tallies, never opened for writing
    view.manifest = manifest
    job = _merged_job(out, configs[0]["settings"], identity, options)
    style = resolve_style(job.style, job.style_files)
    backend = _BackendInfo(summaries[0])
    tokens = [n for _, status, n in view.index_rows() if status == "ok"]
    summary = build_summary(view, job, style, backend, tokens)
    summary["this_run"] = {name: sum(runs.get(k, {}).get(name, 0) for k in range(workers))
                           for name in ("answered", "failed", "already_done")}
    summary["workers"] = {"parts": workers, "executor": executor, "key": PARTITION_KEY,
                          "per_part": [{"dir": str(d.relative_to(out)), "state": m["state"],
                                        "requests": s["requests"], "written": s["written"], "failed": s["failed"]}
                                       for d, m, s in zip(dirs, manifests, summaries)]}
    if job.reassemble:
        docs = list(reassemble(view.documents()))
        write_documents(out / "reassembled.jsonl.gz", docs)
        complete = sum(1 for d in docs if d.meta.get("complete", True))
        summary["reassembled"] = {"file": "reassembled.jsonl.gz", "documents": len(docs), "complete": complete,
                                  "incomplete": len(docs) - complete}
    failures = "".join((d / "failures.jsonl").read_text(encoding="utf-8") for d in dirs
                       if (d / "failures.jsonl").exists())
    settings = {**configs[0]["settings"], **dataclasses.asdict(job), "executor": executor, "workers": workers}
    for key in ("gates", "sampling"):  # in the identity
        del settings[key]
    _write_if_changed(out / "generate_config.json", to_json({"identity": identity, "settings": settings}))
    _write_if_changed(out / "failures.jsonl", failures)
    write_json(out / "summary.json", summary)
    atomic_write_text(out / "dataset_card.md", render_card(summary, identity, style, identity["sampling"],
                                                           configs[0]["settings"]["backend"], job))
    write_json(out / "manifest.json", manifest)  # the commit point of the merge
    return summary


def _merged_manifest(out: Path, dirs: list[Path], manifests: list[dict[str, Any]]) -> dict[str, Any]:
    """One manifest over every part's shards (paths relative to OUT), with OUT/shards/ linked to them."""
    shards, names = [], set()
    (out / "shards").mkdir(exist_ok=True)
    for k, (folder, manifest) in enumerate(zip(dirs, manifests)):
        rel = folder.relative_to(out).as_posix() + "/"
        for entry in manifest["shards"]:
            name = f"shard-{len(shards):05d}.jsonl.gz"
            link_or_copy(folder / entry["file"], out / "shards" / name)
            names.add(name)
            merged = {**entry, "file": f"shards/{name}", "part": k, "part_file": rel + entry["file"],
                      "index": rel + entry["index"]}
            for key in ("rejected_file", "failures_file"):
                if key in entry:
                    merged[key] = rel + entry[key]
            shards.append(merged)
    for stale in (out / "shards").iterdir():
        if stale.name not in names:
            stale.unlink()
    states = [m["state"] for m in manifests]
    failed = sum(s["tally"]["failed"] for s in shards)
    requests = sum(s["tally"]["requests"] for s in shards)
    reasons = sorted({m.get("stop_reason") or "" for m in manifests} - {""})
    return {"format": MANIFEST_FORMAT, "shards": shards,
            "state": "failed" if requests and failed == requests else
            ("complete" if all(s in ("complete", "failed") for s in states) else "interrupted"),
            "stop_reason": "; ".join(reasons) or None,
            "parts": [{"dir": d.relative_to(out).as_posix(), "state": m["state"], "stop_reason": m.get("stop_reason"),
                       "shards": len(m["shards"])} for d, m in zip(dirs, manifests)]}


def _merged_job(out: Path, settings: dict[str, Any], identity: dict[str, Any], options: dict[str, Any]) -> GenerateJob:
    """The GenerateJob the whole output answers (for the summary and the card), from part 0's settings."""
    names = {f.name for f in dataclasses.fields(GenerateJob)} - {"gates", "sampling", "part", "parts"}
    values = {k: v for k, v in settings.items() if k in names}
    values["style_files"] = tuple(values.get("style_files") or ())
    values.update(out=str(out), target_tokens=options.get("target_tokens"), reassemble=bool(options.get("reassemble")))
    return GenerateJob(**values, gates=GateConfig(**identity["gates"]), sampling={})

