"""Shared fixtures: where ../shared is, a helper to run the CLI in a subprocess, and the check that the
suite leaves nothing running (every service a test starts, the test stops)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


@pytest.fixture
def shared_dir() -> Path:
    """../shared beside the repository; skips the test when it is absent."""
    if not (SHARED / "corpora").is_dir():
        pytest.skip("../shared/corpora is absent")
    return SHARED


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run `python -m synthscale.cli ARGS` in a subprocess and capture its output."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "synthscale.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def processes_mentioning(text: str, environ_entry: str | None = None) -> dict[int, str]:
    """pid -> command line of every running process (zombies left out, this one too) whose command line
    holds ``text``, or whose environment has the entry ``environ_entry`` (e.g. "SLURM_CONF=/x/slurm.conf")."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            environ = (entry / "environ").read_bytes().split(b"\0") if environ_entry else []
        except (OSError, IndexError):
            continue  # gone meanwhile, or not ours to read
        if state != "Z" and (text in cmdline or (environ_entry and environ_entry.encode() in environ)):
            found[int(entry.name)] = cmdline
    return found


# --- nothing left running ----------------------------------------------------------------------
# At the end of the session, every process started during it in this process group (what tests
# start and do not detach: servers, executors' workers, torchrun, Ray) or whose command line names
# the session's temp folder (what detaches: daemons started with a folder of a test) must be gone.
# Daemons that detach elsewhere (the single-node Slurm cluster) are stopped and checked by the
# fixture that starts them (test_study_slurm.py). Interpreter helpers that end with pytest are
# left out.
LEFTOVER_GRACE_S = 15.0
HELPERS = ("multiprocessing.resource_tracker", "multiprocessing.forkserver", "compile_worker")
_AT_START: set[int] = set()


def _ancestors() -> set[int]:
    pids, pid = set(), os.getpid()
    while pid > 1:
        pids.add(pid)
        try:
            pid = int((Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            break
    return pids


def leftover_processes(basetemp: str | None) -> dict[int, str]:
    """pid -> command line of the running processes this session started and did not stop."""
    group, mine = os.getpgrp(), _ancestors()
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in mine or int(entry.name) in _AT_START:
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except (OSError, IndexError):
            continue
        state, pgrp = fields[0], int(fields[2])
        if state == "Z" or any(h in cmdline for h in HELPERS):
            continue
        if pgrp == group or (basetemp and basetemp in cmdline):
            found[int(entry.name)] = cmdline[:200]
    return found


def pytest_sessionstart(session: pytest.Session) -> None:
    _AT_START.update(int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit())


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not Path("/proc/self/stat").exists():
        return
    factory = getattr(session.config, "_tmp_path_factory", None)
    basetemp = str(factory.getbasetemp()) if factory is not None and factory._basetemp is not None else None
    deadline = time.monotonic() + LEFTOVER_GRACE_S
    while (left := leftover_processes(basetemp)) and time.monotonic() < deadline:
        time.sleep(0.5)
    if left:
        listing = "\n".join(f"  {pid}: {cmd}" for pid, cmd in sorted(left.items()))
        writer = session.config.get_terminal_writer()
        writer.line()
        writer.line(f"tests left {len(left)} processes running (a test must stop what it starts):\n{listing}",
                    red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
