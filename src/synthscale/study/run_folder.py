"""A run folder's bookkeeping: its status, history and log, read and written under its claim.

The files beside a run's ``config.json`` (see execute.py for who writes them when):

- ``status.json``: pending / running / done / failed (+ reason, error, log tail),
- ``history.jsonl``: one line per event (started, done, failed, interrupted, taken over),
- ``run.log``: everything the run printed (stdout and stderr, native code included),
- ``claim.json`` while a worker holds the run (claims.py).

Only the holder of a run's claim writes these; anyone may read them.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .._io import atomic_write_text, read_json, write_json
from . import claims
from .artifacts import FINAL_CHECKPOINT

DONE, FAILED, RUNNING, PENDING = "done", "failed", "running", "pending"
BUSY = "busy"  # an outcome, never written: a live worker elsewhere holds the run
CLAIM_FILE, STATUS_FILE, LOG_FILE, HISTORY_FILE = "claim.json", "status.json", "run.log", "history.jsonl"
LOG_TAIL_LINES = 30


def run_status(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The run's ``status.json`` ({} when the run was never planned, or its status.json is damaged:
    such a run is run again; see ``status_problem``)."""
    try:
        status = read_json(Path(run_dir) / STATUS_FILE)
    except (FileNotFoundError, ValueError):
        return {}
    return status if isinstance(status, dict) else {}


def status_problem(run_dir: str | os.PathLike) -> str | None:
    """What is wrong with the run's status.json, when it exists but cannot be used (else None)."""
    path = Path(run_dir) / STATUS_FILE
    try:
        status = read_json(path, what=STATUS_FILE)
    except FileNotFoundError:
        left = [name for name in ("eval.json", FINAL_CHECKPOINT) if (Path(run_dir) / name).exists()]
        return f"{STATUS_FILE} is missing (the folder holds {' and '.join(left)})" if left else None
    except ValueError as e:
        return str(e).replace(f"{path}: ", "", 1).split("; ")[0]
    if not isinstance(status, dict) or status.get("state") not in (DONE, FAILED, RUNNING, PENDING):
        return f"{STATUS_FILE} holds no known run state"
    return None


def mark_incomplete(run_dir: str | os.PathLike, problem: str, *, reevaluate: bool,
                    stale_after_s: float = claims.STALE_AFTER_S) -> bool:
    """Set a done run whose artifacts are incomplete back to pending, with the reason (see artifacts.py).

    With ``reevaluate`` the next attempt evaluates the run again from its final checkpoint
    (when that still has the recorded hash) instead of training it. Returns False when the
    run is not done or a live worker holds it.
    """
    run_dir = Path(run_dir)
    claim = claims.try_claim(run_dir / CLAIM_FILE, purpose="mark incomplete", stale_after_s=stale_after_s)
    if claim is None:
        return False
    try:
        status = run_status(run_dir)
        if status.get("state") != DONE:
            return False
        pending: dict[str, Any] = {"state": PENDING, "incomplete": problem, "attempt": status.get("attempt"),
                                   "redo": "reevaluate" if reevaluate else "retrain"}
        if reevaluate:
            pending.update({k: status[k] for k in ("checkpoint", "summary", "threads") if k in status})
        write_json(run_dir / STATUS_FILE, pending)
        append_history(run_dir, "incomplete", f"{problem}; to be {'re-evaluated' if reevaluate else 'retrained'}")
        return True
    finally:
        claim.release()


def record_lost_worker(run_dir: str | os.PathLike, reason: str, error: str, *, extra_log: str | None = None,
                       stale_after_s: float = claims.STALE_AFTER_S) -> dict[str, Any]:
    """Mark a run failed whose worker died without recording an outcome (killed, node lost).

    Takes over the dead worker's claim first, so it never overwrites a live worker's run;
    returns the run's status (unchanged when the run was finished, or is held by a live worker).
    """
    run_dir = Path(run_dir)
    if run_status(run_dir).get("state") in (DONE, FAILED):
        return run_status(run_dir)
    claim = claims.try_claim(run_dir / CLAIM_FILE, purpose="record failure", stale_after_s=stale_after_s)
    if claim is None:
        return {"state": BUSY, "run_id": run_dir.name}
    try:
        status = run_status(run_dir)
        if status.get("state") in (DONE, FAILED):
            return status
        tail = log_tail(run_dir) + (extra_log.splitlines()[-LOG_TAIL_LINES:] if extra_log else [])
        status = {**where_running(), "state": FAILED, "reason": reason, "error": error, "log_tail": tail,
                  "last_metrics": last_metrics(run_dir), "attempt": status.get("attempt", 0),
                  "failed_at": time.time()}
        write_json(run_dir / STATUS_FILE, status)
        append_history(run_dir, FAILED, f"{reason}: {error}")
        return status
    finally:
        claim.release()


def reset_failed(run_dir: str | os.PathLike) -> bool:
    """Set a failed run back to pending (for --retry-failed); False if it was not failed."""
    run_dir = Path(run_dir)
    if run_status(run_dir).get("state") != FAILED:
        return False
    write_json(run_dir / STATUS_FILE, {"state": PENDING, "retry_of": run_status(run_dir).get("reason")})
    append_history(run_dir, "retry", "failed run queued again (--retry-failed)")
    return True


def log_tail(run_dir: str | os.PathLike, lines: int = LOG_TAIL_LINES) -> list[str]:
    """The last ``lines`` lines of the run's ``run.log`` ([] when there is none)."""
    try:
        with open(Path(run_dir) / LOG_FILE, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            text = f.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return []
    return [line for line in text.splitlines() if line.strip()][-lines:]


def last_metrics(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The last record of the run's ``metrics.jsonl`` (None before the first log step)."""
    try:
        text = (Path(run_dir) / "metrics.jsonl").read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    for line in reversed(text.splitlines()):
        try:
            return json.loads(line)
        except ValueError:
            continue
    return None


def read_history(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """Every event of the run's ``history.jsonl``, oldest first."""
    try:
        text = (Path(run_dir) / HISTORY_FILE).read_bytes().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return []
    events = []
    for line in text.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue  # a damaged line: the log keeps the events it can still read
        if isinstance(event, dict) and "event" in event:
            events.append(event)
    return events


def append_history(run_dir: Path, event: str, detail: str = "") -> None:
    """Add one event to ``history.jsonl`` (rewritten atomically; only a claim holder writes it)."""
    record = {"time": round(time.time(), 3), "event": event, **where_running(), "detail": detail}
    lines = [json.dumps(r, sort_keys=True) for r in read_history(run_dir)]
    lines.append(json.dumps(record, sort_keys=True))
    atomic_write_text(run_dir / HISTORY_FILE, "".join(line + "\n" for line in lines))


def log_line(run_dir: Path, text: str) -> None:
    """Append ``text`` to the run's log, whatever this process's stdout and stderr are."""
    sys.stdout.flush()
    sys.stderr.flush()
    with open(run_dir / LOG_FILE, "a", encoding="utf-8") as f:
        f.write(text if text.endswith("\n") else text + "\n")


def where_running() -> dict[str, Any]:
    where = {"host": socket.gethostname(), "pid": os.getpid(), "job": claims.slurm_job_key()}
    if os.environ.get("CUDA_VISIBLE_DEVICES"):
        where["cuda_visible_devices"] = os.environ["CUDA_VISIBLE_DEVICES"]
    return where


@contextlib.contextmanager
def output_to(path: Path, enabled: bool = True) -> Iterator[None]:
    """Send this process's stdout and stderr (file descriptors 1 and 2) to ``path`` for the block."""
    if not enabled:
        yield
        return
    sys.stdout.flush()
    sys.stderr.flush()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    saved = (os.dup(1), os.dup(2))
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for f in (fd, *saved):
            os.close(f)
