"""Drive the runs of a study through an executor, with a live progress bar.

The executor reports each run's outcome. A ``busy`` outcome means a live worker outside
this driver holds the run (the jobs of an earlier driver that was killed, or a second
driver on the same study): the driver waits for that holder, counts the run when it
ends, and executes it itself if the holder dies without an outcome.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from .._io import read_json
from ..progress import Advance, progress_bar
from .claims import read_claim, staleness
from .executors.base import Executor, RunTask
from .run_folder import BUSY, CLAIM_FILE, DONE, FAILED, RUNNING, last_metrics, run_status

WAIT_POLL_S = 1.0
REFRESH_S = 2.0


def execute_tasks(executor: Executor, tasks: Sequence[RunTask], *, progress: bool = True) -> Counter:
    """Execute every task (done or failed in the end); return the count of runs per final state."""
    counts: Counter = Counter()
    by_id = {t.run_id: t for t in tasks}
    held: list[RunTask] = []
    todo = list(tasks)
    with RunProgress(tasks, executor.describe(), enabled=progress) as bar:

        def on_outcome(status: dict[str, Any]) -> None:
            task = by_id[status["run_id"]]
            if status["state"] == BUSY:
                held.append(task)
                return
            counts[status["state"]] += 1
            bar.finished(task, status)

        while todo:
            held.clear()
            executor.run(todo, on_outcome, on_tick=bar.tick)
            todo = _wait_for_holders(list(held), executor.stale_after_s, on_outcome, bar)
    return counts


def _wait_for_holders(held: list[RunTask], stale_after_s: float, on_outcome, bar: RunProgress) -> list[RunTask]:
    """Wait until each held run ends; return those whose holder died without an outcome."""
    orphaned: list[RunTask] = []
    remaining = list(held)
    if remaining:
        bar.say(f"{len(remaining)} runs are held by workers outside this driver; waiting for them")
    while remaining:
        still = []
        for task in remaining:
            status = run_status(task.run_dir)
            if status.get("state") in (DONE, FAILED):
                on_outcome({**status, "run_id": task.run_id})
                continue
            claim = read_claim(task.run_dir / CLAIM_FILE)
            if claim is None or staleness(claim, stale_after_s).stale:
                orphaned.append(task)
            else:
                still.append(task)
        remaining = still
        if remaining:
            bar.tick()
            time.sleep(WAIT_POLL_S)
    return orphaned


class RunProgress:
    """A live bar over runs: finished / total, how many are running and how far, failures."""

    def __init__(self, tasks: Sequence[RunTask], title: str, enabled: bool = True):
        self.enabled = enabled
        self.open = {t.run_id: t for t in tasks}
        self.failed = 0
        self._last_refresh = -float("inf")
        self._stack = ExitStack()
        self._advance = Advance()  # a no-op until the bar is shown
        self._showing = False
        self.title = title
        self.total = len(tasks)
        # overall ETA: tokens of the runs to do, and how fast they are going since the start
        self.budgets = {t.run_id: _budget(t.run_dir) for t in tasks}
        self.tokens_finished = 0
        self._started = time.monotonic()

    def __enter__(self) -> RunProgress:
        self._advance = self._stack.enter_context(
            progress_bar("runs", self.total, enabled=self.enabled, transient=False))
        self._showing = self.enabled
        self.say(f"executing {self.total} runs with {self.title}")
        return self

    def __exit__(self, *exc: object) -> None:
        self._refresh(force=True)
        self._stack.close()
        self._advance, self._showing = Advance(), False

    def finished(self, task: RunTask, status: dict[str, Any]) -> None:
        """Count one run that ended (done or failed)."""
        self.open.pop(task.run_id, None)
        self.tokens_finished += self.budgets.get(task.run_id, 0)
        if status["state"] == FAILED:
            self.failed += 1
            self.say(f"[red]failed[/red] {task.run_id}: {status.get('reason', 'error')}: {status.get('error', '')}")
        self._advance(1)
        self._refresh(force=True)

    def tick(self) -> None:
        """Refresh the running runs' progress (at most every couple of seconds)."""
        self._refresh(force=False)

    def say(self, message: str) -> None:
        """Print a line above the bar."""
        self._advance.say(message)

    def _refresh(self, force: bool) -> None:
        if not self._showing or (not force and time.monotonic() - self._last_refresh < REFRESH_S):
            return
        self._last_refresh = time.monotonic()
        running = {t.run_id: f for t in self.open.values() if (f := _running_fraction(t.run_dir)) is not None}
        fractions = list(running.values())
        info = f"{len(fractions)} running"
        if fractions:
            info += f" ({100 * sum(fractions) / len(fractions):.0f}% on average)"
        eta = self.eta_s(sum(f * self.budgets.get(run_id, 0) for run_id, f in running.items()))
        if eta is not None:
            info += f" · ETA {_duration(eta)}"
        if self.failed:
            info += f" · [red]{self.failed} failed[/red]"
        self._advance(0, status=info)

    def eta_s(self, tokens_running: float, now: float | None = None) -> float | None:
        """Seconds left for all runs: the tokens still to train at the rate trained so far (None before any)."""
        total = sum(self.budgets.values())
        done = self.tokens_finished + tokens_running
        elapsed = (time.monotonic() if now is None else now) - self._started
        if done <= 0 or elapsed <= 0 or total <= 0:
            return None
        return max(0.0, total - done) / (done / elapsed)


def _budget(run_dir: Path) -> int:
    """The token budget of a run (from its config.json; 0 when unreadable)."""
    try:
        return int(read_json(run_dir / "config.json")["tokens"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}"


def _running_fraction(run_dir: Path) -> float | None:
    """How far a running run is (tokens done / budget), None when it is not running."""
    if run_status(run_dir).get("state") != RUNNING:
        return None
    record = last_metrics(run_dir) or {}
    try:
        budget = read_json(run_dir / "config.json")["tokens"]
    except (OSError, ValueError, KeyError):
        return 0.0
    return min(1.0, float(record.get("tokens", 0)) / max(1, int(budget)))
