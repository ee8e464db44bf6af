"""One run from its folder: claim it, train and evaluate, record the outcome.

``execute_run(run_dir)`` is the one function every executor (local pool, Slurm, Ray)
calls, in whatever process it gives the run. The folder holds a self-contained
``config.json``; the run writes beside it:

- ``claim.json`` while a worker holds the run (see claims.py),
- ``status.json``: pending / running / done / failed (+ reason, error, log tail),
- ``run.log``: everything the run printed (stdout and stderr, native code included),
- ``history.jsonl``: one line per event (started, done, failed, interrupted, taken over),
- ``metrics.jsonl``, ``checkpoints/``, ``train_summary.json`` (the trainer), ``eval.json``.

A failure never escapes: an exception, a diverged loss (RunError), out-of-memory are
recorded as ``failed`` with a reason. A worker that dies (SIGKILL, OOM killer, lost node)
cannot record anything itself; its executor then calls ``record_lost_worker``.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any
from collections.abc import Iterator

from .._io import atomic_write_text, read_json, sha256_file, write_json
from ..errors import RunError, SynthscaleError
from . import claims
from .artifacts import FINAL_CHECKPOINT, checkpoint_record

DONE, FAILED, RUNNING, PENDING = "done", "failed", "running", "pending"
BUSY = "busy"  # an outcome, never written: a live worker elsewhere holds the run
CLAIM_FILE, STATUS_FILE, LOG_FILE, HISTORY_FILE = "claim.json", "status.json", "run.log", "history.jsonl"
LOG_TAIL_LINES = 30
# what a pending run carries into its next attempt when it was marked incomplete (see mark_incomplete)
REDO_KEYS = ("redo", "incomplete", "checkpoint", "summary", "threads")


def execute_run(run_dir: str | os.PathLike, *, threads: int | None = None, device: str | None = None,
                nproc: int = 1, progress: bool = False, heartbeat_s: float = claims.HEARTBEAT_S,
                stale_after_s: float = claims.STALE_AFTER_S, capture_output: bool = True,
                retry_failed: bool = False) -> dict[str, Any]:
    """Claim, train and evaluate the run in ``run_dir``; return its final status (or a ``busy`` outcome).

    ``threads``: torch CPU threads (default: torch's); ``device``: torch device (default:
    cuda when visible, else cpu); ``nproc`` > 1 launches the run with torchrun on that many
    GPUs. A run already done is not redone, a failed one is not retried unless
    ``retry_failed``; a run held by a live worker elsewhere returns ``{"state": "busy"}`` untouched.
    """
    run_dir = Path(run_dir)
    finished = (DONE,) if retry_failed else (DONE, FAILED)
    if run_status(run_dir).get("state") in finished:
        return {**run_status(run_dir), "run_id": run_dir.name}
    claim = claims.try_claim(run_dir / CLAIM_FILE, purpose="run", heartbeat_s=heartbeat_s,
                             stale_after_s=stale_after_s)
    if claim is None:
        holder = claims.read_claim(run_dir / CLAIM_FILE) or {}
        return {"state": BUSY, "run_id": run_dir.name, "holder": f"{holder.get('host')}:{holder.get('pid')}"}
    with claim:
        status = run_status(run_dir)
        if status.get("state") in finished:  # finished by another worker while we were claiming
            return {**status, "run_id": run_dir.name}
        if status.get("state") == FAILED:
            reset_failed(run_dir)
        if claim.took_over_from:
            old = claim.took_over_from
            append_history(run_dir, "taken_over", f"from {old.get('host')}:{old.get('pid')}")
        redo = {k: status[k] for k in REDO_KEYS if k in status}
        with _output_to(run_dir / LOG_FILE, enabled=capture_output):
            status = _attempt(run_dir, claim, threads, device, nproc, progress, redo)
    return {**status, "run_id": run_dir.name}


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
        status = {**_where(), "state": FAILED, "reason": reason, "error": error, "log_tail": tail,
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
    record = {"time": round(time.time(), 3), "event": event, **_where(), "detail": detail}
    lines = [json.dumps(r, sort_keys=True) for r in read_history(run_dir)]
    lines.append(json.dumps(record, sort_keys=True))
    atomic_write_text(run_dir / HISTORY_FILE, "".join(line + "\n" for line in lines))


def classify_failure(exc: BaseException) -> str:
    """A short reason for a failed run: diverged, out_of_memory or error."""
    text = str(exc).lower()
    if isinstance(exc, RunError) and "diverged" in text:
        return "diverged"
    if isinstance(exc, MemoryError) or "out of memory" in text or "can't allocate memory" in text:
        return "out_of_memory"
    return "error"


def _attempt(run_dir: Path, claim: claims.Claim, threads: int | None, device: str | None, nproc: int,
             progress: bool, redo: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train and evaluate once (or only evaluate again, see ``redo``), under the claim; write and
    return the final status."""
    redo = redo or {}
    reevaluate = redo.get("redo") == "reevaluate" and _checkpoint_intact(run_dir, redo.get("checkpoint"))
    attempt = 1 + sum(1 for e in read_history(run_dir) if e["event"] == "started")
    started = time.time()
    write_json(run_dir / STATUS_FILE, {**_where(), "state": RUNNING, "started": started, "attempt": attempt,
                                       "threads": threads, "device": device, "nproc": nproc, **redo})
    append_history(run_dir, "started", f"attempt {attempt}" + (" (evaluation only)" if reevaluate else ""))
    _log(run_dir, f"[synthscale] run {run_dir.name} attempt {attempt} on {socket.gethostname()} pid {os.getpid()}"
         + (f"; evaluating again from its checkpoint ({redo.get('incomplete')})" if reevaluate else ""))
    try:
        config = read_json(run_dir / "config.json", what="run config",
                           fix="rerun `synthscale study run SPEC`, which writes it again")
        if reevaluate:
            # the same threads as the training run, so the numbers are the ones it would have written
            summary, evals = reevaluate_run(config, run_dir, redo.get("threads", threads), device)
            summary = redo.get("summary") or summary
        elif nproc > 1:
            summary, evals = _train_with_torchrun(run_dir, nproc, threads)
        else:
            summary, evals = train_and_evaluate(config, run_dir, threads, device, progress)
        checkpoint = checkpoint_record(run_dir)  # checked whenever results are collected (artifacts.py)
    except BaseException as e:  # record every failure; the study goes on
        _log(run_dir, traceback.format_exc())
        if not isinstance(e, Exception):  # interrupted (Ctrl-C, requeue signal): not a failure
            write_json(run_dir / STATUS_FILE, {"state": PENDING, "interrupted": time.time(), "attempt": attempt,
                                               **redo})
            append_history(run_dir, "interrupted", type(e).__name__)
            raise
        status = {
            **_where(), "state": FAILED, "reason": classify_failure(e),
            "error": f"{type(e).__name__}: {e}".splitlines()[0][:500],
            "log_tail": log_tail(run_dir), "last_metrics": last_metrics(run_dir),
            "attempt": attempt, "wall_s": round(time.time() - started, 3), "failed_at": time.time(),
        }
        if claim.still_held():
            write_json(run_dir / STATUS_FILE, status)
            append_history(run_dir, FAILED, f"{status['reason']}: {status['error']}")
        return status
    if not claim.still_held():  # taken over while we trained: the new holder's outcome counts
        return {"state": BUSY, "lost_claim": True}
    write_json(run_dir / "eval.json", {"evals": evals})
    status = {**_where(), "state": DONE, "attempt": attempt, "nproc": nproc, "threads": threads,
              "wall_s": round(time.time() - started, 3), "finished": time.time(), "summary": summary,
              "checkpoint": checkpoint}
    if reevaluate:
        status.update(threads=redo.get("threads", threads), reevaluated=redo.get("incomplete", True))
    write_json(run_dir / STATUS_FILE, status)
    append_history(run_dir, DONE, f"{summary.get('tokens_trained')} tokens in {status['wall_s']} s")
    return status


def train_and_evaluate(config: dict, run_dir: Path, threads: int | None, device: str | None,
                       progress: bool) -> tuple[dict, list[dict]]:
    """Train the run described by ``config`` and evaluate it on its eval sets (no claim, no status)."""
    import torch

    from ..evaluate import evaluate_model, load_eval_set
    from ..model.llama import ModelConfig
    from ..tokens import MixtureStream
    from ..train import TrainConfig, train

    settings = config["settings"]
    train_kw = dict(settings["train"])
    train_kw["threads"] = threads or 0
    train_kw["device"] = device or ("cuda" if torch.cuda.is_available() else "cpu")
    # checkpointing does not change the numbers (resume is bit-exact), so it is kept out of
    # the run settings that make the run id
    train_kw["checkpoint_every"] = int(config.get("checkpoint_every", 0))
    train_cfg = TrainConfig(**train_kw)
    model_cfg = ModelConfig(**settings["model_config"])
    stream = MixtureStream(
        sources={k: [v] for k, v in config["data"]["shards"].items()},
        weights=config["weights"], total_tokens=train_cfg.tokens, seq_len=train_cfg.seq_len,
        seed=config["mixture_seed"],
    )
    eval_sets = {d: load_eval_set(p) for d, p in config["data"]["eval_sets"].items()}

    def eval_fn(model: torch.nn.Module) -> dict:
        return evaluate_model(model, eval_sets, settings["eval_batch_size"])

    # the stream itself is restartable: a run taken over or requeued resumes from its newest checkpoint
    summary = train(model_cfg, train_cfg, stream, run_dir, eval_fn=eval_fn, progress=progress)
    summary_dict = summary.to_dict()
    domains = summary_dict.pop("eval", None) or summary_dict.pop("eval_result", None)
    if domains is None:
        raise SynthscaleError("trainer returned no evaluation")
    evals = [{
        "tokens": summary_dict.get("tokens_trained", train_cfg.tokens),
        "budget": train_cfg.tokens,
        "domains": domains,
        "epochs": stream.epochs,
        "counts": stream.counts,
    }]
    if train_cfg.schedule == "wsd":
        evals = [_branch_eval(record, evals[0]) for record in summary_dict.get("budget_evals") or []] or evals
    return summary_dict, evals


def reevaluate_run(config: dict, run_dir: Path, threads: int | None, device: str | None) -> tuple[dict, list[dict]]:
    """Evaluate a trained run again from its final checkpoint: the eval.json records it had.

    For runs with one budget (cosine, or wsd without decay branches): the branches of a wsd
    run are not kept, so such a run is retrained instead (artifacts.py decides).
    """
    import torch

    from ..evaluate import evaluate_model, load_eval_set
    from ..tokens import MixtureStream
    from ..train import TrainConfig
    from ..train.checkpoint import load_model

    settings = config["settings"]
    train_cfg = TrainConfig(**{**settings["train"], "threads": threads or 0, "device": "cpu"})
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    stream = MixtureStream(
        sources={k: [v] for k, v in config["data"]["shards"].items()},
        weights=config["weights"], total_tokens=train_cfg.tokens, seq_len=train_cfg.seq_len,
        seed=config["mixture_seed"],
    )
    eval_sets = {d: load_eval_set(p) for d, p in config["data"]["eval_sets"].items()}
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        model = load_model(run_dir / FINAL_CHECKPOINT, device=device)
        domains = evaluate_model(model, eval_sets, settings["eval_batch_size"])
    finally:
        torch.set_num_threads(previous)
    evals = [{"tokens": train_cfg.tokens_trained, "budget": train_cfg.tokens, "domains": domains,
              "epochs": stream.epochs, "counts": stream.counts}]
    summary = {"tokens_trained": train_cfg.tokens_trained, "steps": train_cfg.steps}
    return summary, evals


def _checkpoint_intact(run_dir: Path, recorded: Any) -> bool:
    """True when the final checkpoint still has the size and sha256 recorded when the run finished."""
    path = run_dir / FINAL_CHECKPOINT
    if not isinstance(recorded, dict) or not path.is_file():
        return False
    try:
        return path.stat().st_size == recorded.get("bytes") and sha256_file(path) == recorded.get("sha256")
    except OSError:
        return False


def _branch_eval(record: dict, final: dict) -> dict:
    """One budget of a wsd run (a decay branch, or the end of the main run) as an eval entry.

    Epochs per source at a branch are the run's epochs scaled by the tokens the branch saw
    (the stream's sources are interleaved evenly, so this is exact to within a block).
    """
    share = record["tokens"] / final["tokens"] if final["tokens"] else 1.0
    return {
        "tokens": record["tokens"], "budget": record["budget"], "domains": record["eval"],
        "epochs": {k: v * share for k, v in final["epochs"].items()},
        "counts": {k: round(v * share) for k, v in final["counts"].items()},
        "decay_steps": record.get("decay_steps"), "fork_step": record.get("fork_step"),
    }


def _train_with_torchrun(run_dir: Path, nproc: int, threads: int | None) -> tuple[dict, list[dict]]:
    """Run the rank program of worker.py under torchrun with ``nproc`` processes on this node.

    The ranks train one model together (the trainer's DDP: one GPU each, or gloo on CPU);
    rank 0 writes ``rank_result.json``, which becomes this run's summary and evaluation.
    """
    from ..train.distributed import torchrun_command

    result_path = run_dir / "rank_result.json"
    result_path.unlink(missing_ok=True)
    args = ["--rank-program", str(run_dir), *(["--threads", str(threads)] if threads else [])]
    launcher = subprocess.Popen(torchrun_command(nproc, "synthscale.study.worker", args))
    try:
        code = launcher.wait()
    except BaseException:  # interrupted (requeue signal, Ctrl-C): stop the ranks before leaving
        launcher.terminate()  # torchrun passes SIGTERM on to its ranks
        try:
            launcher.wait(timeout=30)
        except subprocess.TimeoutExpired:
            launcher.kill()
        raise
    if code != 0 or not result_path.exists():
        raise RunError(f"{run_dir}: torchrun with {nproc} processes exited with code {code}")
    result = read_json(result_path)
    return result["summary"], result["evals"]


def _log(run_dir: Path, text: str) -> None:
    """Append ``text`` to the run's log, whatever this process's stdout and stderr are."""
    sys.stdout.flush()
    sys.stderr.flush()
    with open(run_dir / LOG_FILE, "a", encoding="utf-8") as f:
        f.write(text if text.endswith("\n") else text + "\n")


def _where() -> dict[str, Any]:
    where = {"host": socket.gethostname(), "pid": os.getpid(), "job": claims.slurm_job_key()}
    if os.environ.get("CUDA_VISIBLE_DEVICES"):
        where["cuda_visible_devices"] = os.environ["CUDA_VISIBLE_DEVICES"]
    return where


@contextlib.contextmanager
def _output_to(path: Path, enabled: bool = True) -> Iterator[None]:
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
