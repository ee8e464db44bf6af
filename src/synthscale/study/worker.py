"""``python -m synthscale.study.worker RUN_DIR``: execute one run folder from any scheduler.

This is ``execute_run`` as a program, for schedulers synthscale does not drive itself
(a hand-written sbatch script, a Kubernetes job): it claims the run, trains, evaluates
and records the outcome; the exit code is 0 for done or busy (held by a live worker
elsewhere), 1 for failed (a run that failed before is left alone without --retry-failed).

With ``--rank-program`` it is one rank of a multi-GPU run that ``execute_run`` launched
with torchrun: it trains without claiming (the launching process holds the claim), and
rank 0 writes ``rank_result.json`` for the launcher.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from .._io import read_json, write_json
from .execute import execute_run, train_and_evaluate
from .run_folder import FAILED


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments and run; see the module docstring."""
    parser = argparse.ArgumentParser(prog="python -m synthscale.study.worker", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--device", default=None, help="torch device (default: cuda when visible, else cpu)")
    parser.add_argument("--nproc", type=int, default=1, help="GPUs for this run (torchrun when > 1)")
    parser.add_argument("--retry-failed", action="store_true", help="run it again if it failed before")
    parser.add_argument("--rank-program", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rank_program:
        return _rank_program(args.run_dir, args.threads)
    status = execute_run(args.run_dir, threads=args.threads, device=args.device, nproc=args.nproc,
                         retry_failed=args.retry_failed)
    print(f"{args.run_dir.name}: {status['state']}" + (f" ({status.get('error')})" if status.get("error") else ""))
    return 1 if status["state"] == FAILED else 0


def _rank_program(run_dir: Path, threads: int | None) -> int:
    """One torchrun rank: the trainer joins the process group (each rank takes GPU LOCAL_RANK, or gloo on CPU)."""
    config = read_json(run_dir / "config.json")
    summary, evals = train_and_evaluate(config, run_dir, threads, device=None, progress=False)
    if int(os.environ.get("RANK", "0")) == 0:
        write_json(run_dir / "rank_result.json", {"summary": summary, "evals": evals})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
