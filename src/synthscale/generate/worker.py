"""``python -m synthscale.generate.worker TASK.json``: one worker of a split generation (workers.py).

The local executor starts one such process per part; it runs ``run_worker_task`` (the
part's generate_command, then its completion marker) and prints a one-line error on
failure (exit 2 for a SynthscaleError).
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

from .._io import read_json, write_json
from ..errors import InputError, SynthscaleError
from .commands import generate_command
from .parts import MARKER, TASK_FORMAT


def run_worker_task(task_path: str) -> dict[str, Any]:
    """The body of every worker: run its part with generate_command, then write the completion marker."""
    task = read_json(task_path, what="generate worker task")
    if not isinstance(task, dict) or task.get("format") != TASK_FORMAT:
        raise InputError(f"not a {TASK_FORMAT} task", path=str(task_path))
    for module in task["plugins"]:  # backends registered from outside generate (e.g. toyworld's)
        importlib.import_module(module)
    summary = generate_command(**task["options"], progress=False)
    marker = {"key": task["key"], "part": task["part"], "parts": task["parts"], "state": summary["state"],
              "requests": summary["requests"], "written": summary["written"], "failed": summary["failed"],
              "this_run": summary.get("this_run", {})}
    write_json(Path(task["options"]["out"]) / MARKER, marker)
    return marker


def main(argv: list[str] | None = None) -> int:
    """Run the worker task named on the command line; return the exit code."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m synthscale.generate.worker TASK.json", file=sys.stderr)
        return 2
    try:
        run_worker_task(args[0])
    except SynthscaleError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
