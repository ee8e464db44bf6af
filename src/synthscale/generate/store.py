"""The output folder of a resumable generation run: numbered shards, a manifest, a journal, a lock.

    OUT/
      shards/shard-00000.jsonl.gz     the synthetic corpus (read this folder; nothing else is in it)
      rejected/shard-00000.jsonl.gz   outputs the quality gates dropped, with their reasons
      index/shard-00000.tsv           request id, status (ok/rejected/failed), training tokens
      index/shard-00000.failures.jsonl
      index/open.journal              answers of the shard being filled (one JSON line each)
      manifest.json                   shards, their counts and sha256, run state
      generate_config.json            the resolved configuration (its identity part must match on resume)
      failures.jsonl                  requests that failed after retries, with the reason

Crash safety: each batch's answers are appended to the journal and fsynced before the
next batch starts, so a finished request is never asked again, even after SIGKILL (a
half-written last line is cut off on resume). A full journal becomes a shard: the shard,
its rejected file and its index are written atomically, then the manifest (the commit
point), then the journal is removed. A crash between any two steps is repaired on the
next open. A lock (flock on OUT/.lock) keeps two runs from writing the same folder.
"""

from __future__ import annotations

import fcntl
import json
import os
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from .._io import atomic_write_text, read_json, sha256_file, to_json, write_json
from ..corpus import Document, read_documents, write_documents
from ..errors import ConfigError, InputError

MANIFEST_FORMAT = "synthscale.generate/1"
STATUSES = ("ok", "rejected", "failed")
OUT_FIX = "restore it, or generate into a new --out folder"


@dataclass
class Tally:
    """Counts over answered requests (a shard's, or a whole run's)."""

    requests: int = 0
    written: int = 0
    rejected: int = 0
    failed: int = 0
    truncated_kept: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    written_tokens: int = 0
    written_chars: int = 0
    seconds: float = 0.0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    flagged_by_reason: dict[str, int] = field(default_factory=dict)
    cleaned_by_step: dict[str, int] = field(default_factory=dict)

    def add(self, record: dict[str, Any]) -> None:
        """Count one journal record."""
        self.requests += 1
        self.prompt_tokens += record.get("prompt_tokens", 0)
        self.completion_tokens += record.get("completion_tokens", 0)
        self.seconds += record.get("seconds", 0.0)
        status = record["status"]
        if status == "failed":
            self.failed += 1
            return
        _bump(self.cleaned_by_step, record.get("cleaned", []))
        if status == "rejected":
            self.rejected += 1
            _bump(self.rejected_by_reason, record.get("reasons", []))
            return
        self.written += 1
        self.written_tokens += record.get("tokens", 0)
        self.written_chars += len(record["doc"]["text"])
        self.truncated_kept += record.get("finish_reason") == "length"
        _bump(self.flagged_by_reason, record.get("reasons", []))

    def merge(self, other: "Tally") -> None:
        """Add another tally's counts to this one."""
        for name, value in asdict(other).items():
            if isinstance(value, dict):
                for key, n in value.items():
                    getattr(self, name)[key] = getattr(self, name).get(key, 0) + n
            else:
                setattr(self, name, getattr(self, name) + value)

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (seconds rounded)."""
        d = asdict(self)
        d["seconds"] = round(self.seconds, 3)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Tally":
        """The tally a manifest entry stored."""
        return cls(**d)


def _bump(counts: dict[str, int], keys: Iterable[str]) -> None:
    for key in keys:
        counts[key] = counts.get(key, 0) + 1


class OutputStore:
    """One run folder (see the module docstring). Use as a context manager: holds the lock while open."""

    def __init__(self, root: str | os.PathLike, identity: dict[str, Any], config: dict[str, Any],
                 shard_size: int = 1000):
        if shard_size < 1:
            raise ConfigError(f"shard_size must be >= 1, got {shard_size}")
        self.root = Path(root)
        self.identity, self.config, self.shard_size = identity, config, shard_size
        self.manifest: dict[str, Any] = {}
        self.journal: list[dict[str, Any]] = []
        self._lock_file: Any = None

    # --- opening, recovery -----------------------------------------------------------------

    def __enter__(self) -> "OutputStore":
        self.root.mkdir(parents=True, exist_ok=True)
        for sub in ("shards", "rejected", "index"):
            (self.root / sub).mkdir(exist_ok=True)
        self._lock()
        try:
            self._check_identity()
            self.manifest = self._read_manifest()
            self.journal = self._recover_journal()
        except BaseException:
            self._unlock()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._unlock()

    def _lock(self) -> None:
        self._lock_file = open(self.root / ".lock", "a+")
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_file.close()
            self._lock_file = None
            raise ConfigError(f"{self.root}: another generate run is writing this folder") from None

    def _unlock(self) -> None:
        if self._lock_file is not None:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None

    def _check_identity(self) -> None:
        path = self.root / "generate_config.json"
        if path.exists():
            stored = read_json(path, what="generation config", fix=OUT_FIX).get("identity", {})
            if stored != self.identity:
                where = _first_difference(stored, self.identity)
                raise ConfigError(f"{self.root}: was generated with a different configuration ({where} differs); "
                                  "rerun with the same options or choose another --out")
        text = to_json({"identity": self.identity, "settings": self.config})
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            atomic_write_text(path, text)

    def _read_manifest(self) -> dict[str, Any]:
        path = self.root / "manifest.json"
        if not path.exists():
            return {"format": MANIFEST_FORMAT, "shards": [], "state": "running", "stop_reason": None}
        manifest = read_json(path, what="generation manifest", fix=OUT_FIX)
        if manifest.get("format") != MANIFEST_FORMAT:
            raise InputError(f"not a {MANIFEST_FORMAT} manifest", path=str(path))
        return manifest

    def _recover_journal(self) -> list[dict[str, Any]]:
        """The journal's complete records; drops a torn last line and a journal already made into a shard."""
        path = self.journal_path
        if not path.exists():
            return []
        data = path.read_bytes()
        good = data[:data.rfind(b"\n") + 1]
        records = []
        for line in good.splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                break  # cannot happen for fsynced lines; stop at the first damaged one
        header, records = (records[0], records[1:]) if records and "journal" in records[0] else ({}, records)
        if header.get("journal") is not None and header["journal"] < len(self.manifest["shards"]):
            path.unlink()  # the crash came after the manifest commit: this shard is already written
            return []
        if len(good) != len(data):
            with open(path, "r+b") as f:
                f.truncate(len(good))
        return records

    # --- state ------------------------------------------------------------------------------

    @property
    def journal_path(self) -> Path:
        """The journal of the shard being filled."""
        return self.root / "index" / "open.journal"

    @property
    def complete(self) -> bool:
        """True when a previous run finished (input exhausted or token target reached)."""
        return self.manifest.get("state") == "complete"

    def done_ids(self, retry_failures: bool = False) -> set[str]:
        """Ids of every answered request; with ``retry_failures``, failed ones that never succeeded are left out."""
        done, failed = set(), set()
        for request_id, status, _ in self.index_rows():
            (failed if status == "failed" else done).add(request_id)
        return done if retry_failures else done | failed

    def index_rows(self) -> Iterator[tuple[str, str, int]]:
        """(request id, status, training tokens) of every answered request: shards, then the journal."""
        for entry in self.manifest["shards"]:
            with open(self.root / entry["index"], encoding="utf-8") as f:
                for line in f:
                    request_id, status, tokens = line.rstrip("\n").split("\t")
                    yield request_id, status, int(tokens)
        for record in self.journal:
            yield record["id"], record["status"], record.get("tokens", 0)

    def tally(self) -> Tally:
        """Counts over everything answered so far."""
        total = Tally()
        for entry in self.manifest["shards"]:
            total.merge(Tally.from_dict(entry["tally"]))
        for record in self.journal:
            total.add(record)
        return total

    # --- writing ----------------------------------------------------------------------------

    def append(self, records: list[dict[str, Any]]) -> None:
        """Append one batch's records durably (write + fsync); a shard is sealed each time shard_size is reached."""
        if records and self.manifest.get("state") != "running":
            self.manifest["state"] = "running"
            write_json(self.root / "manifest.json", self.manifest)
        while records:
            room = self.shard_size - len(self.journal)
            self._write_journal(records[:room])
            records = records[room:]
            if len(self.journal) >= self.shard_size:
                self.seal_shard()

    def _write_journal(self, records: list[dict[str, Any]]) -> None:
        lines = []
        if not self.journal_path.exists() or self.journal_path.stat().st_size == 0:
            lines.append(json.dumps({"journal": len(self.manifest["shards"])}) + "\n")
        lines.extend(json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n" for r in records)
        with open(self.journal_path, "a", encoding="utf-8") as f:
            f.write("".join(lines))
            f.flush()
            os.fsync(f.fileno())
        self.journal.extend(records)

    def seal_shard(self) -> None:
        """Turn the journal into the next numbered shard (no-op when the journal is empty)."""
        if not self.journal:
            return
        k = len(self.manifest["shards"])
        name = f"shard-{k:05d}"
        ok = [Document.from_dict(r["doc"]) for r in self.journal if r["status"] == "ok"]
        rejected = [Document.from_dict(r["doc"]) for r in self.journal if r["status"] == "rejected"]
        failures = [{"request_id": r["id"], "error": r.get("error"), "attempts": r.get("attempts")}
                    for r in self.journal if r["status"] == "failed"]
        shard = self.root / "shards" / f"{name}.jsonl.gz"
        write_documents(shard, ok)
        entry: dict[str, Any] = {"index": f"index/{name}.tsv", "file": f"shards/{name}.jsonl.gz",
                                 "sha256": sha256_file(shard), "documents": len(ok)}
        if rejected:
            write_documents(self.root / "rejected" / f"{name}.jsonl.gz", rejected)
            entry["rejected_file"] = f"rejected/{name}.jsonl.gz"
        if failures:
            atomic_write_text(self.root / "index" / f"{name}.failures.jsonl",
                              "".join(json.dumps(f, ensure_ascii=False) + "\n" for f in failures))
            entry["failures_file"] = f"index/{name}.failures.jsonl"
        atomic_write_text(self.root / entry["index"],
                          "".join(f"{r['id']}\t{r['status']}\t{r.get('tokens', 0)}\n" for r in self.journal))
        tally = Tally()
        for record in self.journal:
            tally.add(record)
        entry["tally"] = tally.to_dict()
        self.manifest["shards"].append(entry)
        write_json(self.root / "manifest.json", self.manifest)  # the commit point
        self.journal_path.unlink()
        self.journal = []

    def finish(self, stop_reason: str) -> None:
        """Seal the last shard, rewrite failures.jsonl and mark the run complete, or failed when every
        request answered so far failed (nothing written; a rerun with retry_failures asks them again)."""
        self.seal_shard()
        self.write_failures()
        tally = self.tally()
        state = "failed" if tally.requests and tally.failed == tally.requests else "complete"
        self.manifest.update(state=state, stop_reason=stop_reason)
        write_json(self.root / "manifest.json", self.manifest)

    def mark_interrupted(self) -> None:
        """Record that the run stopped early (its journal keeps every finished request)."""
        self.manifest["state"] = "interrupted"
        write_json(self.root / "manifest.json", self.manifest)

    def write_failures(self) -> int:
        """Rewrite failures.jsonl: every failed request that never succeeded later, with its reason."""
        succeeded = {rid for rid, status, _ in self.index_rows() if status != "failed"}
        lines = []
        for failure in self._failures():
            if failure["request_id"] not in succeeded:
                lines.append(json.dumps(failure, ensure_ascii=False) + "\n")
                succeeded.add(failure["request_id"])  # once each, the latest attempt first seen
        atomic_write_text(self.root / "failures.jsonl", "".join(lines))
        return len(lines)

    def documents(self) -> Iterator[Document]:
        """Every written document, shard by shard."""
        for entry in self.manifest["shards"]:
            yield from read_documents(self.root / entry["file"])

    def write_text(self, name: str, text: str) -> Path:
        """Write a file at the top of the folder atomically."""
        path = self.root / name
        atomic_write_text(path, text)
        return path

    def write_json(self, name: str, obj: Any) -> Path:
        """Write a JSON file at the top of the folder atomically."""
        return self.write_text(name, to_json(obj))

    def _failures(self) -> Iterator[dict[str, Any]]:
        """Failure records, latest first: the journal's, then each shard's from the last one back."""
        for record in reversed(self.journal):
            if record["status"] == "failed":
                yield {"request_id": record["id"], "error": record.get("error"), "attempts": record.get("attempts")}
        for entry in reversed(self.manifest["shards"]):
            if "failures_file" in entry:
                with open(self.root / entry["failures_file"], encoding="utf-8") as f:
                    yield from (json.loads(line) for line in f if line.strip())


def link_or_copy(source: str | os.PathLike, target: str | os.PathLike) -> None:
    """Make ``target`` the same file as ``source``: a hard link (a copy where links are impossible), put in
    place atomically; nothing is done when it already is."""
    source, target = Path(source), Path(target)
    if target.exists() and os.path.samefile(source, target):
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.link-tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(source, tmp)
    except OSError:
        import shutil

        shutil.copyfile(source, tmp)
    os.replace(tmp, target)


@contextmanager
def folder_lock(root: str | os.PathLike) -> Iterator[None]:
    """Hold the run folder's lock (flock on ROOT/.lock) for the ``with`` block; ConfigError when another
    generate run holds it."""
    with open(Path(root) / ".lock", "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(f"{root}: another generate run is writing this folder") from None
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def run_documents(out: str | os.PathLike) -> Iterator[Document]:
    """Every written document of a finished run folder (one job's, or a merged one), shard by shard in
    manifest order (which is request order for one job)."""
    root = Path(out)
    manifest = read_json(root / "manifest.json", what="generation manifest", fix=OUT_FIX)
    for entry in manifest.get("shards", []):
        yield from read_documents(root / entry["file"])


def _first_difference(a: Any, b: Any, path: str = "") -> str:
    """The dotted path of the first field where two JSON values differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                return _first_difference(a.get(key), b.get(key), f"{path}.{key}" if path else key)
    return path or "the configuration"
