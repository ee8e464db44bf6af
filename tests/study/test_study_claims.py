"""study/claims.py: exactly one worker wins a claim; stale claims (dead pid, old heartbeat,
requeued Slurm job) are taken over atomically; live ones are not."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from synthscale.study import claims

ROOT = Path(__file__).resolve().parents[2]
RACER = """
import sys, time
from synthscale.study.claims import try_claim
start = float(sys.argv[2])
while time.time() < start:
    pass
claim = try_claim(sys.argv[1], purpose="race")
print("won" if claim is not None else "lost", flush=True)
time.sleep(1.0)  # hold it while the others try
"""


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _write_claim(path: Path, **fields) -> dict:
    info = {**claims.holder_identity(), "token": "old", "purpose": "test", "claimed": time.time(),
            "heartbeat": time.time(), **fields}
    path.write_text(json.dumps(info))
    return info


def test_exactly_one_of_racing_processes_wins(tmp_path: Path) -> None:
    path = tmp_path / "claim.json"
    start = time.time() + 1.0
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    racers = [subprocess.Popen([sys.executable, "-c", RACER, str(path), str(start)], stdout=subprocess.PIPE,
                               text=True, env=env) for _ in range(6)]
    results = [p.communicate(timeout=60)[0].strip() for p in racers]
    assert sorted(results) == ["lost"] * 5 + ["won"]


def test_claim_released_and_reclaimable(tmp_path: Path) -> None:
    path = tmp_path / "claim.json"
    with claims.try_claim(path, heartbeat_s=0.05) as claim:
        first = json.loads(path.read_text())
        assert first["pid"] == os.getpid() and first["host"] == socket.gethostname()
        assert claims.try_claim(path) is None  # held by a live process (this one)
        time.sleep(0.3)
        assert json.loads(path.read_text())["heartbeat"] > first["heartbeat"]  # heartbeat thread refreshes it
        assert claim.still_held()
    assert not path.exists()
    assert claims.try_claim(path) is not None


def test_claim_of_dead_process_on_this_host_is_taken_over(tmp_path: Path) -> None:
    path = tmp_path / "claim.json"
    _write_claim(path, pid=_dead_pid())
    claim = claims.try_claim(path)
    assert claim is not None and claim.took_over_from["token"] == "old"
    assert json.loads(path.read_text())["took_over"]["token"] == "old"
    assert claims.staleness(json.loads(path.read_text())).stale is False


def test_reused_pid_counts_as_dead(tmp_path: Path) -> None:
    path = tmp_path / "claim.json"
    _write_claim(path, pid_start="1")  # this live pid, but a different process start time
    assert claims.staleness(json.loads(path.read_text())).why.endswith("(pid reused)")
    assert claims.try_claim(path) is not None


def test_other_host_judged_by_heartbeat(tmp_path: Path) -> None:
    path = tmp_path / "claim.json"
    info = _write_claim(path, host="elsewhere", boot_id="x", heartbeat=time.time() - 30)
    assert claims.try_claim(path, stale_after_s=60) is None  # recent heartbeat: alive
    assert json.loads(path.read_text())["token"] == "old"
    info["heartbeat"] = time.time() - 120
    path.write_text(json.dumps(info))
    claim = claims.try_claim(path, stale_after_s=60)
    assert claim is not None and "no heartbeat" in claims.staleness(info, 60).why


def test_requeued_slurm_job_takes_over_its_own_claim(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "claim.json"
    _write_claim(path, host="node1", boot_id="x", job="77_3")
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "77")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "3")
    monkeypatch.setenv("SLURM_JOB_ID", "80")
    assert claims.slurm_job_key() == "77_3"
    assert claims.try_claim(path) is not None
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "4")  # another task of the array: heartbeat rule
    _write_claim(path, host="node1", boot_id="x", job="77_3")
    assert claims.try_claim(path) is None


def test_lost_claim_is_noticed_by_its_holder(tmp_path: Path) -> None:
    path = tmp_path / "claim.json"
    claim = claims.try_claim(path)
    _write_claim(path, token="intruder")  # a taker replaced it (the holder looked dead)
    assert not claim.still_held() and claim.lost
    claim.release()
    assert json.loads(path.read_text())["token"] == "intruder"  # release leaves the new holder's claim


def test_a_damaged_claim_is_taken_over_but_one_being_written_is_not(tmp_path: Path) -> None:
    path = tmp_path / "claim.json"
    path.write_text("\x00garbage")  # just created by another process, not written yet: leave it
    assert claims.try_claim(path, purpose="t") is None
    old = time.time() - claims.UNREADABLE_CLAIM_S - 5
    os.utime(path, (old, old))  # unreadable for longer than any writer takes: damaged, nobody holds it
    claim = claims.try_claim(path, purpose="t")
    assert claim is not None and claims.read_claim(path)["token"] == claim.info["token"]
    claim.release()
    assert not path.exists()
