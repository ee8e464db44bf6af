"""When a run is done: its artifacts say so, checked every time results are collected.

``status.json`` saying ``done`` is not enough. A run is complete only when

- ``eval.json`` parses and holds one record per budget of its plan (the run's budget;
  for a wsd run also every decay-branch budget), each with every eval domain of the
  study and a finite loss and bits-per-byte, and
- ``checkpoints/final.safetensors`` exists and has the size and sha256 that
  ``status.json`` recorded when the run finished (runs finished before the hash was
  recorded: a readable safetensors header).

``check_run`` says what is wrong in one line. The driver (runner.py) marks such a run
incomplete (status pending, with the reason, in status.json and history.jsonl); the rerun
then re-evaluates it from its checkpoint when only its evaluation is lost (a run with one
budget and an intact checkpoint), and retrains it otherwise. Hashes of large checkpoints
are not computed again for a checkpoint whose (size, mtime, inode) are those recorded when
the run finished, and are cached in ``STUDY/.artifact_hashes.json`` by the same key
otherwise, so a rerun does not read every checkpoint again.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._io import read_json, read_safetensors_metadata, sha256_file, write_json
from ..errors import InputError

EVAL_FILE = "eval.json"
FINAL_CHECKPOINT = "checkpoints/final.safetensors"
HASH_CACHE_FILE = ".artifact_hashes.json"
EVAL_FIX = "rerun `synthscale study run SPEC`: the run is evaluated again from its checkpoint, or retrained"


def expected_budgets(settings: dict[str, Any], tokens: int) -> list[int]:
    """The budgets a run's eval.json must hold: its own, plus its wsd decay branches."""
    train = settings.get("train") or {}
    return sorted({int(tokens), *(int(b) for b in train.get("budgets") or [])})


def checkpoint_record(run_dir: str | os.PathLike) -> dict[str, Any]:
    """What status.json records about the final checkpoint of a finished run: file, bytes, sha256, and
    the file's (size, mtime_ns, inode) when it was hashed, so that an untouched file is not hashed again."""
    path = Path(run_dir) / FINAL_CHECKPOINT
    st = path.stat()
    return {"file": FINAL_CHECKPOINT, "bytes": st.st_size, "sha256": sha256_file(path),
            "stat": [st.st_size, st.st_mtime_ns, st.st_ino]}


class HashCache:
    """sha256 of files, remembered by (size, mtime_ns, inode) in a JSON file (None: no file, no memory)."""

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = Path(path) if path is not None else None
        self._entries: dict[str, Any] = {}
        self._changed = False
        if self.path is not None:
            try:
                loaded = read_json(self.path, missing_ok=True)
            except ValueError:  # damaged: it is only a cache, start again
                loaded = None
            self._entries = loaded if isinstance(loaded, dict) else {}

    def sha256(self, file: Path) -> str:
        """The sha256 of ``file`` (read again only when its size, mtime or inode changed)."""
        st = file.stat()
        key = [st.st_size, st.st_mtime_ns, st.st_ino]
        entry = self._entries.get(str(file.resolve()))
        if isinstance(entry, dict) and entry.get("stat") == key and isinstance(entry.get("sha256"), str):
            return entry["sha256"]
        digest = sha256_file(file)
        self._entries[str(file.resolve())] = {"stat": key, "sha256": digest}
        self._changed = True
        return digest

    def save(self) -> None:
        """Write the cache back (when it changed and has a file)."""
        if self.path is not None and self._changed:
            write_json(self.path, self._entries)
            self._changed = False


@dataclass
class RunCheck:
    """The verdict on a done run's artifacts."""

    problem: str | None = None  # one line; None when the run is complete
    evals: list[dict[str, Any]] | None = None  # eval.json's records of the planned budgets, when complete
    reevaluable: bool = False  # the checkpoint is intact and one evaluation covers every budget

    @property
    def ok(self) -> bool:
        """True when the run is complete."""
        return self.problem is None

    @property
    def action(self) -> str:
        """What a rerun does about it: 're-evaluated from its checkpoint' or 'retrained'."""
        return "re-evaluated from its checkpoint" if self.reevaluable else "retrained"


def check_run(run_dir: str | os.PathLike, status: dict[str, Any], budgets: list[int], domains: list[str],
              hashes: HashCache | None = None) -> RunCheck:
    """Check the eval.json and final checkpoint of a run whose status says done."""
    run_dir = Path(run_dir)
    checkpoint_problem = check_checkpoint(run_dir, status.get("checkpoint"), hashes or HashCache())
    try:
        evals = read_evals(run_dir / EVAL_FILE, budgets, domains)
        eval_problem = None
    except InputError as e:
        evals, eval_problem = None, _short(str(e), run_dir)
    problems = [p for p in (eval_problem, checkpoint_problem) if p]
    if not problems:
        return RunCheck(evals=evals)
    return RunCheck(problem="; ".join(problems), reevaluable=checkpoint_problem is None and len(budgets) == 1)


def check_checkpoint(run_dir: Path, recorded: Any, hashes: HashCache) -> str | None:
    """What is wrong with the run's final checkpoint (None when it is intact)."""
    path = run_dir / FINAL_CHECKPOINT
    if not path.is_file():
        return f"{FINAL_CHECKPOINT} is missing"
    if isinstance(recorded, dict) and recorded.get("sha256"):
        size = path.stat().st_size
        if recorded.get("bytes") is not None and size != recorded["bytes"]:
            return f"{FINAL_CHECKPOINT} has {size} bytes, the finished run recorded {recorded['bytes']}"
        st = path.stat()
        if recorded.get("stat") == [st.st_size, st.st_mtime_ns, st.st_ino]:
            return None  # the very file the run hashed when it finished, untouched since
        if hashes.sha256(path) != recorded["sha256"]:
            return f"{FINAL_CHECKPOINT} is damaged (its sha256 differs from the one recorded when the run finished)"
        return None
    try:  # finished before checkpoint hashes were recorded: the header at least must read
        read_safetensors_metadata(path, what="checkpoint")
    except InputError as e:
        return _short(str(e), run_dir)
    return None


def read_evals(path: Path, budgets: list[int], domains: list[str]) -> list[dict[str, Any]]:
    """eval.json's records for ``budgets`` (smallest first), each checked to hold every domain.

    Raises MissingFileError / DamagedFileError / InputError naming the file and what is wrong.
    """
    raw = read_json(path, what="run evaluation", fix=EVAL_FIX)
    records = raw.get("evals") if isinstance(raw, dict) else None
    if not isinstance(records, list):
        raise InputError(f"run evaluation has no list 'evals'; {EVAL_FIX}", path=str(path))
    by_budget: dict[int, dict[str, Any]] = {}
    for i, record in enumerate(records):
        if not isinstance(record, dict) or not isinstance(record.get("domains"), dict):
            raise InputError(f"evals[{i}] is not an evaluation record; {EVAL_FIX}", path=str(path))
        try:
            budget, tokens = int(record["budget"]), int(record["tokens"])
        except (KeyError, TypeError, ValueError):
            raise InputError(f"evals[{i}] has no integer budget and tokens; {EVAL_FIX}", path=str(path)) from None
        if budget in by_budget:
            raise InputError(f"budget {budget} is evaluated twice; {EVAL_FIX}", path=str(path))
        if tokens <= 0:
            raise InputError(f"evals[{i}].tokens must be > 0, got {tokens}; {EVAL_FIX}", path=str(path))
        by_budget[budget] = record
    out = []
    for budget in budgets:
        record = by_budget.get(budget)
        if record is None:
            raise InputError(f"no evaluation at budget {budget}; {EVAL_FIX}", path=str(path))
        for domain in domains:
            values = record["domains"].get(domain)
            if not isinstance(values, dict):
                raise InputError(f"no '{domain}' domain at budget {budget}; {EVAL_FIX}", path=str(path))
            for key in ("loss", "bpb"):
                value = values.get(key)
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                    raise InputError(f"'{domain}' at budget {budget}: {key} is {value!r}, not a finite number; "
                                     f"{EVAL_FIX}", path=str(path))
        out.append(record)
    return out


def _short(message: str, run_dir: Path) -> str:
    """An error message with the run folder's path cut to the file name inside it."""
    prefix = str(run_dir) + os.sep
    return message.replace(prefix, "").replace(f"; {EVAL_FIX}", "")
