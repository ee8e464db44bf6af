"""The results table: one row per (run, budget, eval domain), read by laws/ and report/."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pandas as pd

from .._io import atomic_write_bytes, atomic_write_text, read_table
from ..errors import RunError
from ..laws.results import NATURAL
from .artifacts import HASH_CACHE_FILE, HashCache, RunCheck, check_run, expected_budgets
from .plan import PlannedRun
from .run_folder import DONE, FAILED, run_status
from .spec import StudySpec

COLUMNS = [
    "study", "run_id", "recipe", "kind", "ratio", "generator", "model", "params_total",
    "params_nonembedding", "tokens", "train_flops", "domain", "loss", "bpb", "seed",
    "epochs_natural", "epochs_synthetic", "round",
]


def check_runs(spec: StudySpec, runs: list[PlannedRun], study_dir: Path,
               hashes: HashCache | None = None) -> dict[str, RunCheck]:
    """The artifact check (artifacts.py) of every planned run whose status says done."""

    hashes = hashes if hashes is not None else HashCache(study_dir / HASH_CACHE_FILE)
    checks = {}
    for run in runs:
        run_dir = study_dir / "runs" / run.run_id
        status = run_status(run_dir)
        if status.get("state") == DONE:
            checks[run.run_id] = check_run(run_dir, status, expected_budgets(run.settings, run.tokens),
                                           sorted(spec.eval), hashes)
    hashes.save()
    return checks


def rows_per_run(spec: StudySpec, run: PlannedRun) -> int:
    """Rows a finished run contributes: (its budgets) x (eval domains + the mean)."""
    return len(expected_budgets(run.settings, run.tokens)) * (len(spec.eval) + 1)


def collect_results(spec: StudySpec, runs: list[PlannedRun], study_dir: Path,
                    checks: dict[str, RunCheck] | None = None) -> pd.DataFrame:
    """The results table of every finished run: one row per (run, budget, eval domain + mean), sorted.

    Only runs whose artifacts are complete contribute (``checks``, computed when not
    given), each with all its rows; the row count is checked against the plan.
    """
    checks = checks if checks is not None else check_runs(spec, runs, study_dir)
    domains = sorted(spec.eval)
    rows = []
    expected = 0
    for run in runs:
        check = checks.get(run.run_id)
        if check is None or not check.ok:
            continue
        expected += rows_per_run(spec, run)
        settings = run.settings
        for ev in check.evals:
            tokens = int(ev["tokens"])
            epochs = ev.get("epochs", {})
            synthetic_epochs = [v for k, v in epochs.items() if k != NATURAL]
            base = {
                "study": spec.name, "run_id": run.run_id, "recipe": run.recipe, "kind": run.kind,
                "ratio": float(run.ratio), "generator": run.generator, "model": run.model,
                "params_total": int(settings["params_total"]),
                "params_nonembedding": int(settings["params_nonembedding"]),
                "tokens": tokens,
                "train_flops": float(settings["train_flops_per_token"]) * tokens,
                "seed": int(run.seed),
                "epochs_natural": float(epochs.get(NATURAL, 0.0)),
                "epochs_synthetic": float(max(synthetic_epochs)) if synthetic_epochs else 0.0,
                "round": int(run.round),
            }
            values = ev["domains"]
            for domain in domains:
                rows.append({**base, "domain": domain, "loss": float(values[domain]["loss"]),
                             "bpb": float(values[domain]["bpb"])})
            rows.append({**base, "domain": "mean",
                         "loss": sum(float(values[d]["loss"]) for d in domains) / len(domains),
                         "bpb": sum(float(values[d]["bpb"]) for d in domains) / len(domains)})
    if len(rows) != expected:  # cannot happen for checked runs; never write a short table silently
        raise RunError(f"{study_dir}: the finished runs give {len(rows)} result rows, their plan {expected}")
    df = pd.DataFrame(rows, columns=COLUMNS)
    if not (df["round"] > 0).any():  # the round column is there when the study has collapse rounds
        df = df.drop(columns="round")
    return df.sort_values(["model", "recipe", "tokens", "seed", "domain"], kind="mergesort").reset_index(drop=True)


def missing_runs(spec: StudySpec, runs: list[PlannedRun], study_dir: Path,
                 checks: dict[str, RunCheck]) -> list[dict[str, Any]]:
    """The planned runs with no rows in the results table: run_id, rows missing, state and why."""

    missing = []
    for run in runs:
        check = checks.get(run.run_id)
        if check is not None and check.ok:
            continue
        status = run_status(study_dir / "runs" / run.run_id)
        state = status.get("state", "not started")
        if check is not None:
            state, why = "incomplete", check.problem
        elif state == FAILED:
            why = f"failed: {status.get('reason', 'error')}: {status.get('error', '')}"
        else:
            why = f"not finished (state: {state})"
        missing.append({"run_id": run.run_id, "rows": rows_per_run(spec, run), "state": state, "reason": why})
    return missing


def write_results(df: pd.DataFrame, study_dir: Path) -> Path:
    """Write ``results.csv`` and ``results.parquet`` atomically; return the csv path."""
    csv_path = study_dir / "results.csv"
    atomic_write_text(csv_path, df.to_csv(index=False, lineterminator="\n"))
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    atomic_write_bytes(study_dir / "results.parquet", buf.getvalue())
    return csv_path


def read_results(path: str | Path) -> pd.DataFrame:
    """Read a results table (.csv or .parquet)."""
    return read_table(path, what="results table",
                      fix="rerun `synthscale study run SPEC`: it rebuilds results.parquet and results.csv "
                          "from the runs")
