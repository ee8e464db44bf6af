"""Atomic claims: one worker at a time works on a run directory (or builds shared data).

A claim is a small JSON file created with ``O_CREAT | O_EXCL``, which is atomic on local
and NFS (v3+) file systems, so of several workers racing for a run exactly one wins,
whatever executor or driver started them. It records who holds it (host, pid, the
process start time, boot and pid-namespace ids, Slurm job id, a random token) and a
heartbeat time that the holder refreshes from a background thread.

A claim is *stale* when its holder is gone:
- same machine (host, boot and pid namespace all equal): the process no longer exists,
  or the pid now belongs to a younger process;
- same Slurm job (a requeued job finds the claim of its previous incarnation): always;
- another machine: the heartbeat is older than ``stale_after_s``.

A stale claim is taken over atomically: the taker holds a short *takeover lock* (a second
``O_EXCL`` file), checks that the claim is still the stale one it judged, and replaces it
with its own (``os.replace``). A holder that finds a foreign token in its claim at the
next heartbeat knows it lost the claim (``Claim.lost``) and must not write results.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._io import atomic_write_text, read_json, to_json

HEARTBEAT_S = 30.0
STALE_AFTER_S = 600.0
UNREADABLE_CLAIM_S = 30.0  # a claim file that does not parse for this long is damaged: taken over
TAKEOVER_LOCK_STALE_S = 60.0


@dataclass(frozen=True)
class Staleness:
    """Whether a claim's holder is gone, and why (for logs and status)."""

    stale: bool
    why: str


def holder_identity() -> dict[str, Any]:
    """Who this process is, as recorded in a claim it takes."""
    pid = os.getpid()
    return {
        "host": socket.gethostname(),
        "pid": pid,
        "pid_start": _process_start(pid),
        "boot_id": _read_text("/proc/sys/kernel/random/boot_id"),
        "pid_ns": _pid_namespace(),
        "job": slurm_job_key(),
    }


def slurm_job_key() -> str | None:
    """``JOBID[_ARRAYTASK]`` of the Slurm job this process runs in (None outside Slurm)."""
    job = os.environ.get("SLURM_ARRAY_JOB_ID") or os.environ.get("SLURM_JOB_ID")
    if not job:
        return None
    task = os.environ.get("SLURM_ARRAY_TASK_ID")
    return f"{job}_{task}" if task and os.environ.get("SLURM_ARRAY_JOB_ID") else job


def read_claim(path: str | os.PathLike) -> dict[str, Any] | None:
    """The claim at ``path`` (None when there is none, or it is being rewritten)."""
    try:
        data = read_json(path, what="claim")
    except (FileNotFoundError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def staleness(info: dict[str, Any], stale_after_s: float = STALE_AFTER_S, now: float | None = None) -> Staleness:
    """Judge whether the holder of claim ``info`` is gone (see the module docstring)."""
    me = holder_identity()
    now = time.time() if now is None else now
    same_machine = (info.get("host") == me["host"] and info.get("boot_id") == me["boot_id"]
                    and info.get("pid_ns") == me["pid_ns"] and me["boot_id"] is not None)
    if same_machine:
        pid = int(info.get("pid", -1))
        if not _pid_alive(pid):
            return Staleness(True, f"process {pid} on {info['host']} is gone")
        if info.get("pid_start") and _process_start(pid) != info["pid_start"]:
            return Staleness(True, f"process {pid} on {info['host']} is gone (pid reused)")
        return Staleness(False, f"held by live process {pid} on {info['host']}")
    if info.get("job") and info.get("job") == me["job"]:
        return Staleness(True, f"held by an earlier run of Slurm job {info['job']} (requeued)")
    age = now - float(info.get("heartbeat", 0.0))
    if age > stale_after_s:
        return Staleness(True, f"no heartbeat from {info.get('host')}:{info.get('pid')} for {age:.0f} s")
    return Staleness(False, f"held by {info.get('host')}:{info.get('pid')} (heartbeat {age:.0f} s ago)")


class Claim:
    """A claim this process holds; refreshes its heartbeat in a daemon thread until released."""

    def __init__(self, path: Path, info: dict[str, Any], heartbeat_s: float, took_over_from: dict | None):
        self.path = path
        self.info = info
        self.heartbeat_s = heartbeat_s
        self.took_over_from = took_over_from
        self.lost = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def token(self) -> str:
        """The random token that identifies this claim."""
        return str(self.info["token"])

    def start_heartbeat(self) -> Claim:
        """Start refreshing the heartbeat every ``heartbeat_s`` seconds."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._beat, name=f"heartbeat:{self.path}", daemon=True)
            self._thread.start()
        return self

    def still_held(self) -> bool:
        """True while the claim file still carries this claim's token."""
        current = read_claim(self.path)
        held = current is not None and current.get("token") == self.token
        self.lost = self.lost or not held
        return held

    def release(self) -> None:
        """Stop the heartbeat and remove the claim file if it is still ours."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.still_held():
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass

    def __enter__(self) -> Claim:
        return self.start_heartbeat()

    def __exit__(self, *exc: object) -> None:
        self.release()

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            if not self.still_held():
                return
            self.info = {**self.info, "heartbeat": time.time()}
            atomic_write_text(self.path, to_json(self.info))


def try_claim(path: str | os.PathLike, *, purpose: str = "", heartbeat_s: float = HEARTBEAT_S,
              stale_after_s: float = STALE_AFTER_S) -> Claim | None:
    """Claim ``path`` for this process; take over a stale claim; None if a live holder has it.

    The returned claim's heartbeat is not running yet: use it as a context manager or
    call ``start_heartbeat()``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    info = _new_claim_info(purpose)
    for _ in range(3):  # the holder may release between our attempts
        if _create_exclusive(path, to_json(info)):
            return Claim(path, info, heartbeat_s, None)
        current = read_claim(path)
        if current is None:
            if _unreadable_for(path) > UNREADABLE_CLAIM_S:  # damaged, not being written: nobody holds it
                claim = _take_over(path, {}, info, heartbeat_s, stale_after_s)
                if claim is not None:
                    return claim
            elif path.exists():  # being written by its creator right now
                time.sleep(0.05)
            continue
        if not staleness(current, stale_after_s).stale:
            return None
        claim = _take_over(path, current, info, heartbeat_s, stale_after_s)
        if claim is not None:
            return claim
    return None


def break_claim(path: str | os.PathLike, token: str) -> bool:
    """Remove the claim at ``path`` if it still carries ``token`` (its holder is known dead)."""
    current = read_claim(path)
    if current is None or current.get("token") != token:
        return False
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True


def _take_over(path: Path, stale: dict, info: dict, heartbeat_s: float, stale_after_s: float) -> Claim | None:
    lock = path.with_name(path.name + ".takeover")
    if not _create_exclusive(lock, to_json({**info, "taking_over": stale.get("token")})):
        _clear_abandoned_lock(lock)
        return None
    try:
        current = read_claim(path)
        if current is not None and (current.get("token") != stale.get("token")
                                    or not staleness(current, stale_after_s).stale):
            return None  # someone else took it over, or the holder came back to life
        info = {**info, "took_over": {k: stale.get(k) for k in ("host", "pid", "token", "job")}}
        atomic_write_text(path, to_json(info))
        if (read_claim(path) or {}).get("token") != info["token"]:
            return None
        return Claim(path, info, heartbeat_s, stale)
    finally:
        try:
            os.unlink(lock)
        except FileNotFoundError:
            pass


def _unreadable_for(path: Path) -> float:
    """Seconds since ``path`` was last written (0 when it does not exist)."""
    try:
        return time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def _clear_abandoned_lock(lock: Path) -> None:
    """Remove a takeover lock left by a taker that died mid-takeover (older than a minute)."""
    try:
        if time.time() - lock.stat().st_mtime > TAKEOVER_LOCK_STALE_S:
            os.unlink(lock)
    except FileNotFoundError:
        pass


def _new_claim_info(purpose: str) -> dict[str, Any]:
    now = time.time()
    return {**holder_identity(), "token": uuid.uuid4().hex, "purpose": purpose, "claimed": now, "heartbeat": now}


def _create_exclusive(path: Path, text: str) -> bool:
    """Create ``path`` holding ``text`` only if it does not exist (atomic test-and-set)."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    return True


def _pid_alive(pid: int) -> bool:
    """True if process ``pid`` exists and is not a zombie (a dead child not yet reaped)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    stat = _read_text(f"/proc/{pid}/stat")
    return stat is None or stat.rsplit(")", 1)[-1].split()[:1] != ["Z"]


def _process_start(pid: int) -> str | None:
    """The start time of process ``pid`` in clock ticks since boot (Linux), None elsewhere."""
    stat = _read_text(f"/proc/{pid}/stat")
    if stat is None:
        return None
    # the command name (field 2) may hold spaces; fields after the last ')' are fixed
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else None


def _pid_namespace() -> str | None:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def _read_text(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().strip()
    except OSError:
        return None
