"""The parts of a split generation: where each part's run folder is, and what its worker runs.

A part of ``parts`` is an ordinary resumable run folder ``OUT/parts/part-KKKKK-of-NNNNN/`` holding,
besides the run's own files, ``task.json`` (the options its worker runs, TASK_FORMAT),
``worker.log`` (a local worker's output) and ``_COMPLETE.json`` (the completion marker, written
by the worker when its part is done). See workers.py for the whole flow.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from .._io import read_json

TASK_FORMAT = "synthscale.generate_task/1"
TASK_FILE = "task.json"
MARKER = "_COMPLETE.json"
LOG_FILE = "worker.log"


def part_dir(out: str | os.PathLike, part: int, parts: int) -> Path:
    """The run folder of part ``part`` of ``parts`` under OUT."""
    return Path(out) / "parts" / f"part-{part:05d}-of-{parts:05d}"


@dataclasses.dataclass
class PartTask:
    """One part: its folder, the options its worker runs, the key of those options."""

    part: int
    parts: int
    dir: Path
    key: str
    failure: str | None = None
    ran: bool = False  # its worker was started in this call

    @property
    def path(self) -> Path:
        """The task file its worker reads."""
        return self.dir / TASK_FILE

    @property
    def marker(self) -> Path:
        """The completion marker."""
        return self.dir / MARKER

    def done(self) -> bool:
        """True when the part finished for these very options (marker with this key, manifest present)."""
        if not self.marker.exists() or not (self.dir / "manifest.json").exists():
            return False
        try:
            return read_json(self.marker).get("key") == self.key
        except (OSError, ValueError, AttributeError):
            return False

    def this_run(self) -> dict[str, int]:
        """What its worker did in this call (nothing, when the part was already done)."""
        marker = read_json(self.marker)
        return marker["this_run"] if self.ran else {"answered": 0, "failed": 0, "already_done": marker["requests"]}
