"""Ctrl-C on a long command: exit code 130 and a line saying how to continue (typer alone exits silently)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _default_sigint() -> None:
    # a test suite started in the background inherits SIGINT ignored; the child must see Ctrl-C
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_says_to_rerun_the_same_command(tmp_path):
    out = tmp_path / "demo"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen([sys.executable, "-m", "synthscale.cli", "demo", "--profile", "quick", "--out", str(out)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_default_sigint)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None and not out.exists():
        time.sleep(0.1)
    time.sleep(0.5)  # inside the command's work, not its start-up
    assert proc.poll() is None, "the demo ended before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted; rerun the same command to continue" in err
    assert "Traceback" not in err
