"""One progress display for long work: a rich bar on stderr that can be switched off.

    with progress_bar("encode shard", total=len(docs), unit="docs", enabled=show) as advance:
        for batch in batches:
            ...
            advance(len(batch))

``progress_bar`` yields an ``Advance``: call it to count work done, and, in the same call,
to change the description, set a free-text status, or set extra counters declared up
front (``counters={"tokens": "tokens written"}`` then ``advance(n, tokens=12345)``).
``advance.say(line)`` prints a line above the bar. Disabled, nothing is drawn and every
call is a no-op, so callers never branch on the flag.

The line reads: description, a bar (a spinner without a total), the count
(``done/total unit``), the counters and status, the elapsed time and, with
``remaining=True``, rich's estimate of the time left.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any


class Advance:
    """The callback a ``progress_bar`` block yields (a no-op when built without a bar)."""

    def __init__(self, bar: Any = None, task: Any = None, counters: Mapping[str, str] | None = None):
        self._bar, self._task = bar, task
        self._labels = dict(counters or {})
        self._values: dict[str, float] = {}
        self._status = ""

    def __call__(self, n: float = 1, *, description: str | None = None, status: str | None = None,
                 **counters: float) -> None:
        """Count ``n`` more units done; optionally set the description, the status text and counters."""
        unknown = sorted(set(counters) - set(self._labels))
        if unknown:
            raise TypeError(f"unknown progress counter(s) {', '.join(unknown)} (declared: {', '.join(self._labels)})")
        if self._bar is None:
            return
        self._values.update(counters)
        if status is not None:
            self._status = status
        counts = ", ".join(f"{self._values[name]:,.0f} {label}"
                           for name, label in self._labels.items() if name in self._values)
        fields: dict[str, Any] = {"extra": " · ".join(text for text in (counts, self._status) if text)}
        if description is not None:
            fields["description"] = description
        self._bar.update(self._task, advance=n, **fields)

    def say(self, message: str) -> None:
        """Print a line above the bar (rich markup allowed; nothing when disabled)."""
        if self._bar is not None:
            self._bar.console.print(message, highlight=False)


@contextmanager
def progress_bar(description: str, total: float | None = None, *, enabled: bool = True, unit: str = "",
                 counters: Mapping[str, str] | Sequence[str] = (), completed: float = 0, transient: bool = True,
                 remaining: bool = False) -> Iterator[Advance]:
    """Show a progress line on stderr while the block runs; yield its ``Advance``.

    ``total`` None shows a spinner and a plain count; ``unit`` follows the count;
    ``counters`` declares extra counts by name (a mapping gives each a label, a sequence
    uses the names); ``completed`` is the count to start from (resumed work);
    ``transient`` erases the line at the end; ``remaining`` adds rich's time-left
    estimate (needs a total). ``enabled=False``: nothing is shown, calls are no-ops.
    """
    labels = dict(counters) if isinstance(counters, Mapping) else {name: name for name in counters}
    if not enabled:
        yield Advance(counters=labels)
        return
    from rich.console import Console
    from rich.progress import (BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)

    suffix = f" {unit}" if unit else ""
    count = "{task.completed:,.0f}" + ("/{task.total:,.0f}" if total is not None else "") + suffix
    columns = [TextColumn("{task.description}"), BarColumn() if total is not None else SpinnerColumn(),
               TextColumn(count), TextColumn("{task.fields[extra]}"), TimeElapsedColumn()]
    if remaining:
        columns.append(TimeRemainingColumn())
    with Progress(*columns, transient=transient, console=Console(stderr=True)) as bar:
        task = bar.add_task(description, total=total, completed=completed, extra="")
        yield Advance(bar, task, labels)
