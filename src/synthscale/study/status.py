"""Where a study stands: runs by state, progress of the running ones, recent failures.

Read-only: it reads ``plan.json`` and each run folder's ``status.json``, ``claim.json``
and ``metrics.jsonl``, so it can be called any time, from any machine that sees the
study folder, while drivers and workers are busy. A run whose status says running but
whose worker is gone (no live claim) is shown as ``stalled``: the next ``study run``
takes it over.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .._io import read_json
from ..errors import InputError
from .artifacts import EVAL_FILE, FINAL_CHECKPOINT, expected_budgets, read_evals
from .claims import STALE_AFTER_S, read_claim, staleness
from .run_folder import CLAIM_FILE, DONE, FAILED, PENDING, RUNNING, last_metrics, run_status

STALLED = "stalled"
INCOMPLETE = "incomplete"  # status says done, but eval.json or the final checkpoint is missing or damaged
STATE_ORDER = (DONE, INCOMPLETE, RUNNING, STALLED, PENDING, FAILED)


@dataclass
class RunState:
    """One run's state and, while it runs, its progress."""

    run_id: str
    model: str
    recipe: str
    budget: int
    state: str
    tokens_done: int = 0
    loss: float | None = None
    tokens_per_s: float | None = None
    eta_s: float | None = None
    holder: str | None = None
    reason: str | None = None
    error: str | None = None
    last_log: str | None = None
    attempt: int | None = None
    updated: float | None = None

    @property
    def fraction(self) -> float:
        """Tokens done / budget."""
        return min(1.0, self.tokens_done / max(1, self.budget))


@dataclass
class StudyStatus:
    """The whole study: counts per state, every run, and the failures (most recent first)."""

    study_dir: str
    name: str
    counts: dict[str, int] = field(default_factory=dict)
    runs: list[RunState] = field(default_factory=list)
    failures: list[RunState] = field(default_factory=list)

    @property
    def total(self) -> int:
        """Planned runs."""
        return len(self.runs)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"study_dir": self.study_dir, "name": self.name, "total": self.total, "counts": self.counts,
                "runs": [asdict(r) for r in self.runs], "failures": [r.run_id for r in self.failures]}


def study_status(study_dir: str | Path, stale_after_s: float = STALE_AFTER_S) -> StudyStatus:
    """Read the state of every planned run of the study in ``study_dir``."""
    study_dir = Path(study_dir)
    plan = _plan(study_dir)
    now = time.time()
    domains = _eval_domains(study_dir)
    runs = [_run_state(study_dir / "runs" / p["run_id"], p, stale_after_s, now, domains) for p in plan]
    counts = Counter(r.state for r in runs)
    failures = sorted((r for r in runs if r.state == FAILED), key=lambda r: -(r.updated or 0))
    name = _study_name(study_dir)
    return StudyStatus(str(study_dir), name, {s: counts.get(s, 0) for s in STATE_ORDER}, runs, failures)


def format_status(status: StudyStatus, max_failures: int = 5, show_all: bool = False) -> str:
    """A human-readable summary: counts, running runs with progress and ETA, recent failures."""
    if not status.runs:
        return f"{status.study_dir}: no planned runs yet (run `synthscale study run` or `study plan` first)"
    counts = ", ".join(f"{n} {s}" for s, n in status.counts.items() if n)
    lines = [f"study {status.name} ({status.study_dir}): {status.total} runs: {counts}"]
    incomplete = [r for r in status.runs if r.state == INCOMPLETE
                  or (r.state == PENDING and r.reason == "incomplete")]
    if incomplete:
        lines += ["", f"incomplete runs ({len(incomplete)}; `study run` re-evaluates or retrains them):"]
        lines += [f"  {r.run_id}: {r.error}" for r in incomplete[:max_failures]]
    running = [r for r in status.runs if r.state in (RUNNING, STALLED)]
    shown = status.runs if show_all else running
    if shown:
        lines.append("")
        lines += _table(["run", "state", "progress", "tokens", "loss", "tok/s", "ETA", "worker"],
                        [[r.run_id, r.state, f"{100 * r.fraction:5.1f}%", f"{r.tokens_done}/{r.budget}",
                          _num(r.loss, "{:.3f}"), _num(r.tokens_per_s, "{:.0f}"), _duration(r.eta_s),
                          r.holder or ""] for r in shown])
    if status.failures:
        lines += ["", f"recent failures ({len(status.failures)} in all; `study run --retry-failed` retries them):"]
        for r in status.failures[:max_failures]:
            lines.append(f"  {r.run_id}: {r.reason}: {r.error}")
            if r.last_log:
                lines.append(f"    log: {r.last_log}")
    return "\n".join(lines)


def _run_state(run_dir: Path, planned: dict[str, Any], stale_after_s: float, now: float,
               domains: list[str] | None = None) -> RunState:
    status = run_status(run_dir)
    state = status.get("state", PENDING)
    run = RunState(run_id=planned["run_id"], model=planned.get("model", ""), recipe=planned.get("recipe", ""),
                   budget=int(planned.get("tokens", 0)), state=state, attempt=status.get("attempt"))
    if state == DONE:
        run.tokens_done = run.budget
        run.loss = (status.get("summary") or {}).get("final_loss")
        run.updated = status.get("finished")
        problem = _artifact_problem(run_dir, status, planned, domains)
        if problem:  # `study run` re-evaluates or retrains it
            run.state, run.reason, run.error = INCOMPLETE, "incomplete", problem
        return run
    if state == PENDING and status.get("incomplete"):
        run.reason, run.error = "incomplete", status["incomplete"]
    if state == FAILED:
        tail = status.get("log_tail") or []
        run.reason, run.error, run.updated = status.get("reason", "error"), status.get("error"), status.get("failed_at")
        run.last_log = tail[-1] if tail else None
        _add_metrics(run, last_metrics(run_dir), now=None)
        return run
    claim = read_claim(run_dir / CLAIM_FILE)
    live = claim is not None and not staleness(claim, stale_after_s, now).stale
    if claim is not None:
        run.holder = f"{claim.get('host')}:{claim.get('pid')}"
    if state == RUNNING and not live:
        run.state = STALLED
    elif state == PENDING and live:
        run.state = RUNNING  # claimed, not started training yet
    if run.state == RUNNING:
        _add_metrics(run, last_metrics(run_dir), now)
    return run


def _add_metrics(run: RunState, record: dict[str, Any] | None, now: float | None) -> None:
    if not record:
        return
    run.tokens_done = int(record.get("tokens", 0))
    run.loss = record.get("loss")
    run.tokens_per_s = record.get("tokens_per_s")
    if now is not None and run.tokens_per_s:
        run.eta_s = max(0.0, (run.budget - run.tokens_done) / run.tokens_per_s)


def _artifact_problem(run_dir: Path, status: dict[str, Any], planned: dict[str, Any],
                      domains: list[str] | None) -> str | None:
    """A quick form of artifacts.check_run (no checkpoint hashing): eval.json and the checkpoint's size."""
    path = run_dir / FINAL_CHECKPOINT
    recorded = status.get("checkpoint") or {}
    if not path.is_file():
        return f"{FINAL_CHECKPOINT} is missing"
    if recorded.get("bytes") is not None and path.stat().st_size != recorded["bytes"]:
        return f"{FINAL_CHECKPOINT} has {path.stat().st_size} bytes, the finished run recorded {recorded['bytes']}"
    budgets = expected_budgets(planned.get("settings") or {}, int(planned.get("tokens", 0)))
    try:
        read_evals(run_dir / EVAL_FILE, budgets, domains or [])
    except InputError as e:
        return str(e).replace(str(run_dir) + "/", "").split("; ")[0]
    return None


def _eval_domains(study_dir: Path) -> list[str]:
    try:
        spec = read_json(study_dir / "spec.resolved.json")
        return sorted(spec["eval"])
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return []


def _plan(study_dir: Path) -> list[dict[str, Any]]:
    try:
        plan = read_json(study_dir / "plan.json")
    except (FileNotFoundError, ValueError):
        plan = None
    if isinstance(plan, list):
        return plan
    runs = sorted(p for p in (study_dir / "runs").glob("*/config.json")) if (study_dir / "runs").is_dir() else []
    plan = []
    for path in runs:
        try:
            config = read_json(path)
        except ValueError:  # damaged: shown from its folder name; `study run` writes it again
            config = {"run_id": path.parent.name}
        plan.append(config if isinstance(config, dict) and "run_id" in config else {"run_id": path.parent.name})
    return plan


def _study_name(study_dir: Path) -> str:
    try:
        return str(read_json(study_dir / "spec.resolved.json")["name"])
    except (FileNotFoundError, ValueError, KeyError):
        return study_dir.name


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    return ["  " + "  ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=True)).rstrip()
            for row in [header, *rows]]


def _num(value: float | None, fmt: str) -> str:
    return "" if value is None else fmt.format(value)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
