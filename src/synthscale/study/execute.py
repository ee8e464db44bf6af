"""One run from its folder: claim it, train and evaluate, record the outcome.

``execute_run(run_dir)`` is the one function every executor (local pool, Slurm, Ray)
calls, in whatever process it gives the run. The folder holds a self-contained
``config.json``; the run writes beside it:

- ``claim.json``, ``status.json``, ``run.log``, ``history.jsonl`` (run_folder.py),
- ``metrics.jsonl``, ``checkpoints/``, ``train_summary.json`` (the trainer), ``eval.json``.

A failure never escapes: an exception, a diverged loss (RunError), out-of-memory are
recorded as ``failed`` with a reason. A worker that dies (SIGKILL, OOM killer, lost node)
cannot record anything itself; its executor then calls ``record_lost_worker``.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
import time
import traceback
from pathlib import Path
from typing import Any

from .._io import read_json, sha256_file, write_json
from ..errors import RunError, SynthscaleError
from ..evaluate import evaluate_model, load_eval_set
from ..model.checkpoint import load_model
from ..model.llama import ModelConfig
from ..tokens import MixtureStream
from ..train import TrainConfig, train
from ..train.distributed import torchrun_command
from . import claims
from .artifacts import FINAL_CHECKPOINT, checkpoint_record
from .run_folder import (
    BUSY,
    CLAIM_FILE,
    DONE,
    FAILED,
    LOG_FILE,
    PENDING,
    RUNNING,
    STATUS_FILE,
    append_history,
    last_metrics,
    log_line,
    log_tail,
    output_to,
    read_history,
    reset_failed,
    run_status,
    where_running,
)

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
        with output_to(run_dir / LOG_FILE, enabled=capture_output):
            status = _attempt(run_dir, claim, threads, device, nproc, progress, redo)
    return {**status, "run_id": run_dir.name}


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
    write_json(run_dir / STATUS_FILE, {**where_running(), "state": RUNNING, "started": started, "attempt": attempt,
                                       "threads": threads, "device": device, "nproc": nproc, **redo})
    append_history(run_dir, "started", f"attempt {attempt}" + (" (evaluation only)" if reevaluate else ""))
    log_line(run_dir, f"[synthscale] run {run_dir.name} attempt {attempt} on {socket.gethostname()} pid {os.getpid()}"
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
        log_line(run_dir, traceback.format_exc())
        if not isinstance(e, Exception):  # interrupted (Ctrl-C, requeue signal): not a failure
            write_json(run_dir / STATUS_FILE, {"state": PENDING, "interrupted": time.time(), "attempt": attempt,
                                               **redo})
            append_history(run_dir, "interrupted", type(e).__name__)
            raise
        status = {
            **where_running(), "state": FAILED, "reason": classify_failure(e),
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
    status = {**where_running(), "state": DONE, "attempt": attempt, "nproc": nproc, "threads": threads,
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


    settings = config["settings"]
    train_cfg = run_train_config(config, threads, device)
    model_cfg = ModelConfig(**settings["model_config"])
    stream = run_stream(config, train_cfg)
    eval_sets = {d: load_eval_set(p) for d, p in config["data"]["eval_sets"].items()}

    def eval_fn(model: torch.nn.Module) -> dict:
        return evaluate_model(model, eval_sets, settings["eval_batch_size"])

    # the stream itself is restartable: a run taken over or requeued resumes from its newest checkpoint
    summary = train(model_cfg, train_cfg, stream, run_dir, eval_fn=eval_fn if eval_sets else None,
                    progress=progress)
    summary_dict = summary.to_dict()
    domains = summary_dict.pop("eval", None)
    if not eval_sets:  # a run without eval sets (``synthscale train`` without --eval-set)
        return summary_dict, []
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


    settings = config["settings"]
    train_cfg = run_train_config(config, threads, device)
    device = train_cfg.device
    stream = run_stream(config, train_cfg)
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


def run_train_config(config: dict, threads: int | None, device: str | None):
    """The run's TrainConfig from its ``config.json``, with the executor's threads and device.

    ``threads`` (None: the config's) and ``device`` (None: the config's, where "auto" is CUDA when
    visible, else CPU, on the machine the run executes on) are runtime fields: they change speed, not
    the numbers (see TrainConfig.RUNTIME_FIELDS).
    """

    cfg = TrainConfig.from_dict(config["settings"]["train"])
    return dataclasses.replace(cfg, threads=cfg.threads if threads is None else threads,
                               device=device or cfg.resolved_device())


def run_stream(config: dict, train_cfg):
    """The run's training data: the mixture of its token shards (a restartable MixtureStream)."""

    shards = config["data"]["shards"]
    return MixtureStream(sources={k: list(v) for k, v in shards.items()},
                         weights=config["weights"], total_tokens=train_cfg.tokens, seq_len=train_cfg.seq_len,
                         seed=config["mixture_seed"])


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


