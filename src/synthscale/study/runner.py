"""Run a study: prepare data once, execute every planned run, collect results.

Each run lives in ``STUDY/runs/<run_id>/`` and needs nothing but that folder's
``config.json`` (paths to shards and eval sets, model and training settings), so any
executor (local process pool, Slurm, Ray; see executors/) runs it with the same
``execute_run``. Finished runs are skipped; failed runs are left alone unless
``retry_failed``; runs held by live workers elsewhere are waited for; runs left by dead
workers are taken over. Failures are listed in ``failures.json``.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._io import read_json, sha256_file, stable_hash, write_json
from ..errors import RunError
from ..laws import analyze_results, write_analysis
from ..model import ladder
from ..report import load_results, write_report
from .checks import check_spec_inputs
from .drive import execute_tasks
from .execute import execute_run
from .executors import RunTask, make_executor, resources_for
from .plan import PlannedRun, plan_runs, run_settings
from .prepare import DIAGNOSTICS_FILE, PreparedData, _write_diagnostics, prepare_study
from .results import check_runs, collect_results, missing_runs, rows_per_run, write_results
from .rounds import add_source, generator_run, max_rounds, next_round_variant
from .run_folder import DONE, FAILED, PENDING, RUNNING, mark_incomplete, reset_failed, run_status, status_problem
from .spec import StudySpec

__all__ = ["DONE", "FAILED", "PENDING", "RUNNING", "StudyOutcome", "execute_run", "plan_study", "run_settings_for",
           "run_status", "run_study", "write_run_config", "write_study_report"]


@dataclass
class StudyOutcome:
    """What a study run did: counts, failures and where its outputs are."""

    study_dir: Path
    trained: int = 0
    skipped: int = 0
    not_retried: int = 0  # failed earlier and left alone (no --retry-failed)
    failed: list[dict[str, Any]] = field(default_factory=list)
    executor: str = ""
    results_csv: Path | None = None
    report: Path | None = None
    planned: int = 0  # runs in the plan
    repaired: list[dict[str, Any]] = field(default_factory=list)  # done runs found incomplete, redone
    missing: list[dict[str, Any]] = field(default_factory=list)  # planned runs without rows, and why
    rows: int = 0  # rows of results.csv
    planned_rows: int = 0  # rows the whole plan implies

    @property
    def complete(self) -> bool:
        """True when every planned run finished and contributed all its rows."""
        return not self.failed and not self.missing


def run_settings_for(spec: StudySpec, vocab_size: int):
    """A function (model, tokens, seed) -> resolved model + training settings for that run."""

    def settings(model: str, tokens: int, seed: int) -> dict[str, Any]:
        cfg = ladder.model_config(model, vocab_size, spec.training.seq_len)
        budgets = tuple(b for b in spec.budgets if b < tokens) if spec.training.schedule == "wsd" else ()
        return run_settings(model, cfg, spec.training, tokens=tokens, seed=seed, budgets=budgets,
                            eval_batch_size=spec.evaluation.batch_size)

    return settings


def plan_study(spec: StudySpec, study_dir: Path, progress: bool = True) -> tuple[list[PlannedRun], PreparedData]:
    """Prepare the shared data and expand the grid into runs (nothing is trained)."""
    prepared = prepare_study(spec, study_dir, progress=progress)
    runs = plan_runs(spec, prepared.key, prepared.generators, run_settings_for(spec, prepared.vocab_size),
                     prepared.variants)
    return runs, prepared


def run_study(spec: StudySpec, study_dir: str | Path, *, progress: bool = True, report: bool = True,
              threads: int | None = None, executor: str | None = None, workers: int | None = None,
              retry_failed: bool = False) -> StudyOutcome:
    """Plan, execute every unfinished run, then write results, failures, analysis and report.

    ``executor`` (local, slurm, ray) and ``workers`` override the spec's ``executor``
    section; ``threads`` (else ``training.threads``) sets torch threads per run for the
    local executor. Runs that failed before are retried only with ``retry_failed``.
    """

    check_spec_inputs(spec)  # missing or empty corpora, budgets below one step: before anything is built
    study_dir = Path(study_dir)
    runner = make_executor(spec.executor, study_dir, spec.name, kind=executor, workers=workers,
                           threads=threads or spec.training.threads)
    study_dir.mkdir(parents=True, exist_ok=True)
    write_json(study_dir / "spec.resolved.json", spec.model_dump(by_alias=True))
    runs, prepared = plan_study(spec, study_dir, progress=progress)
    write_json(study_dir / "plan.json", [r.to_dict() for r in runs])
    outcome = StudyOutcome(study_dir=study_dir, planned=len(runs),
                           planned_rows=sum(rows_per_run(spec, r) for r in runs))
    outcome.repaired = audit_runs(spec, runs, study_dir)
    tasks = _runs_to_execute(spec, runs, prepared, study_dir, retry_failed, outcome)

    outcome.executor = runner.describe()
    if tasks:
        outcome.trained = execute_tasks(runner, tasks, progress=progress)[DONE]
    runs += _collapse_rounds(spec, study_dir, runs, prepared, runner, retry_failed, outcome, progress)

    outcome.failed = failure_summary(runs, study_dir)
    write_json(study_dir / "failures.json", outcome.failed)
    checks = check_runs(spec, runs, study_dir)
    df = collect_results(spec, runs, study_dir, checks)
    outcome.missing = missing_runs(spec, runs, study_dir, checks)
    outcome.rows = len(df)
    outcome.results_csv = write_results(df, study_dir)
    if report and len(df):
        outcome.report = write_study_report(spec, study_dir, df, runs, outcome.failed)
    return outcome


def _collapse_rounds(spec: StudySpec, study_dir: Path, runs: list[PlannedRun], prepared: PreparedData, runner,
                     retry_failed: bool, outcome: StudyOutcome, progress: bool) -> list[PlannedRun]:
    """Rounds 1..n-1 of every kind with ``rounds`` (study/rounds.py): generate with round k-1's trained
    model, encode, plan and execute round k's runs; return the runs added."""

    added: list[PlannedRun] = []
    prep = study_dir / "prepared"
    for round_ in range(1, max_rounds(spec)):
        for kind, source in spec.corpora.synthetic.items():
            rounds = source.generate.rounds if source.generate is not None else None
            if rounds is None or rounds.n <= round_:
                continue
            run = generator_run(spec, kind, runs + added, round_ - 1)
            if run_status(study_dir / "runs" / run.run_id).get("state") != DONE:
                raise RunError(f"corpora.synthetic.{kind}.generate.rounds: round {round_ - 1}'s generator run "
                               f"{run.run_id} did not finish; fix it and rerun the study")
            previous = [v for v in prepared.variants[kind]]
            variant = next_round_variant(spec, kind, study_dir / "runs" / run.run_id, prep, previous,
                                         prepared.tokenizer_path, progress)
            add_source(prepared, variant, prep, progress)
        new = plan_runs(spec, prepared.key, prepared.generators, run_settings_for(spec, prepared.vocab_size),
                        prepared.variants, rounds={round_})
        new = [r for r in new if r.round == round_]
        added += new
        write_json(study_dir / "plan.json", [r.to_dict() for r in runs + added])
        outcome.planned += len(new)
        outcome.planned_rows += sum(rows_per_run(spec, r) for r in new)
        tasks = _runs_to_execute(spec, new, prepared, study_dir, retry_failed, outcome)
        if tasks:
            outcome.trained += execute_tasks(runner, tasks, progress=progress)[DONE]
    if added:
        _write_diagnostics(study_dir / DIAGNOSTICS_FILE, spec, prepared, prepared.tokenizer_path, progress)
    return added


def audit_runs(spec: StudySpec, runs: list[PlannedRun], study_dir: Path) -> list[dict[str, Any]]:
    """Check the artifacts of every done run (artifacts.py) and of every status.json before executing.

    A done run whose eval.json or final checkpoint is missing or damaged is set back to
    pending with the reason (re-evaluated from its checkpoint, else retrained); a run whose
    status.json is damaged is run again. Each is said on stderr and returned.
    """

    found = []
    for run in runs:
        run_dir = study_dir / "runs" / run.run_id
        problem = status_problem(run_dir)
        if problem:
            found.append({"run_id": run.run_id, "problem": problem, "action": "run again"})
    checks = check_runs(spec, runs, study_dir)
    for run in runs:
        check = checks.get(run.run_id)
        if check is None or check.ok:
            continue
        if mark_incomplete(study_dir / "runs" / run.run_id, check.problem, reevaluate=check.reevaluable,
                           stale_after_s=spec.executor.stale_after_s):
            found.append({"run_id": run.run_id, "problem": check.problem, "action": check.action})
    for entry in found:
        print(f"warning: run {entry['run_id']} is incomplete: {entry['problem']}; it will be {entry['action']}"
              if entry["action"] != "run again" else
              f"warning: run {entry['run_id']}: {entry['problem']}; the run will be run again",
              file=sys.stderr, flush=True)
    return found


def _runs_to_execute(spec: StudySpec, runs: list[PlannedRun], prepared: PreparedData, study_dir: Path,
                     retry_failed: bool, outcome: StudyOutcome) -> list:
    """Tasks for every run not done (failed ones only with ``retry_failed``); counts the others."""

    tasks = []
    for run in runs:
        run_dir = study_dir / "runs" / run.run_id
        state = run_status(run_dir).get("state")
        if state == DONE:
            outcome.skipped += 1
            continue
        if state == FAILED and not retry_failed:
            outcome.not_retried += 1
            continue
        if state == FAILED:
            reset_failed(run_dir)
        write_run_config(run, prepared, spec, run_dir)
        tasks.append(RunTask(run_dir, resources_for(run.settings, run.tokens, spec.executor)))
    return tasks


def failure_summary(runs: list[PlannedRun], study_dir: Path) -> list[dict[str, Any]]:
    """One entry per failed run: what it was, why it failed, where its log is."""
    failures = []
    for run in runs:
        status = run_status(study_dir / "runs" / run.run_id)
        if status.get("state") != FAILED:
            continue
        failures.append({
            "run_id": run.run_id, "recipe": run.recipe, "model": run.model, "tokens": run.tokens, "seed": run.seed,
            "reason": status.get("reason", "error"), "error": status.get("error", ""),
            "attempt": status.get("attempt"), "host": status.get("host"),
            "log": f"runs/{run.run_id}/run.log",
        })
    return failures


def refit_study_report(study_dir: str | Path, bootstrap: int | None = None) -> Path:
    """Fit the laws again and rewrite the report of a study folder, as ``study run`` does: with the
    study's own analysis settings (spec.resolved.json), its plan and failures; ``bootstrap``
    overrides the spec's ``analysis.bootstrap``. Nothing is trained."""
    study_dir = Path(study_dir)
    spec = StudySpec.model_validate(read_json(study_dir / "spec.resolved.json"))
    if bootstrap is not None:
        spec = spec.model_copy(update={"analysis": spec.analysis.model_copy(update={"bootstrap": bootstrap})})
    runs = [PlannedRun(**run) for run in read_json(study_dir / "plan.json")]
    failures = read_json(study_dir / "failures.json", missing_ok=True) or []
    df, _ = load_results(study_dir)
    return write_study_report(spec, study_dir, df, runs, failures, force=True)


def write_study_report(spec: StudySpec, study_dir: Path, df, runs: list[PlannedRun], failures: list[dict],
                       force: bool = False) -> Path:
    """Fit the laws (analysis.json) and write report.md / report.html (unless they are current and not ``force``)."""

    summary = {
        "name": spec.name, "models": spec.models, "budgets": spec.budgets, "seeds": spec.seeds,
        "recipes": sorted({r.recipe for r in runs}), "eval_domains": list(spec.eval),
        "tokenizer": f"byte-level BPE, vocab {spec.tokenizer.vocab_size}" if not spec.tokenizer.path
        else spec.tokenizer.path,
        "runs": len(runs), "failures": failures,
        # styles the spec declares; the report falls back to the kind's name for the others, and says so
        "kind_styles": {kind: source.paper_style() for kind, source in sorted(spec.corpora.synthetic.items())
                        if source.paper_style()},
    }
    generator_params, generator_flops = _generator_facts(spec, study_dir)
    if generator_params:
        summary["generator_params"] = generator_params
    # A rerun with the same results, settings and analysis code reuses the analysis and report it wrote.
    baselines = study_dir / "baselines.json"  # read by the report (written by the prepare step)
    diagnostics = study_dir / "diagnostics.json"  # likewise
    key = stable_hash({"results": sha256_file(study_dir / "results.csv"), "analysis": spec.analysis.model_dump(),
                       "seed": spec.seed, "summary": summary,
                       "baselines": sha256_file(baselines) if baselines.exists() else None,
                       "diagnostics": sha256_file(diagnostics) if diagnostics.exists() else None,
                       "code": _analysis_code_hash()})
    html = study_dir / "report" / "report.html"
    key_file = study_dir / "report" / "inputs.json"
    if not force and html.exists() and _outputs_current(study_dir, key_file, key):
        return html
    # the laws are fitted on the first collapse round (later rounds are compared in the report's finding 7)
    rounds = df is not None and "round" in df.columns and df["round"].nunique() >= 2
    base = df[df["round"] == df["round"].min()] if rounds else df
    analysis = analyze_results(base, metric_domain=spec.analysis.metric_domain,
                               bootstrap=spec.analysis.bootstrap, seed=spec.seed,
                               max_extrapolation=spec.analysis.max_extrapolation,
                               generator_flops=generator_flops or None)
    write_analysis(study_dir / "analysis.json", analysis)
    paths = write_report(study_dir, results_df=df, analysis=analysis, spec_summary=summary)
    outputs = [study_dir / "analysis.json", *(Path(p) for p in paths.values())]
    write_json(key_file, {"key": key, "files": {os.path.relpath(p, study_dir): sha256_file(p)
                                                for p in outputs if p.is_file()}})
    return Path(paths.get("html", html))


def _generator_facts(spec: StudySpec, study_dir: Path) -> tuple[dict[str, float], dict[str, float]]:
    """(generator -> parameters, generator or kind -> FLOPs per generated token) of the study's corpora.

    From the prepared variants (prepared/prepared.json), else the spec's ``generator_flops_per_token``.
    """
    params: dict[str, float] = {}
    flops: dict[str, float] = {}
    try:
        prepared = read_json(study_dir / "prepared" / "prepared.json", missing_ok=True) or {}
    except ValueError:
        prepared = {}
    for kind, variants in (prepared.get("variants") or {}).items():
        for v in variants:
            if v.get("params"):
                params[v["generator"]] = float(v["params"])
            if v.get("flops_per_token") is not None and v.get("generator"):
                flops[v["generator"]] = float(v["flops_per_token"])
    for kind, source in spec.corpora.synthetic.items():
        if source.generator_flops_per_token is not None:
            flops.setdefault(kind, float(source.generator_flops_per_token))
    return params, flops


def _outputs_current(study_dir: Path, key_file: Path, key: str) -> bool:
    """True when analysis.json and the report were written for ``key`` and are all still intact."""
    try:
        written = read_json(key_file, missing_ok=True)
    except ValueError:  # damaged: the analysis and report are simply written again
        return False
    if not isinstance(written, dict) or written.get("key") != key or not isinstance(written.get("files"), dict):
        return False
    files = written["files"]
    if "analysis.json" not in files:
        return False
    for name, digest in files.items():
        path = study_dir / name
        if not path.is_file() or sha256_file(path) != digest:
            return False
    return True


def _analysis_code_hash() -> str:
    """A hash of the laws/ and report/ source, so that upgrading synthscale refits the laws."""
    package = Path(__file__).resolve().parents[1]
    files = sorted(p for sub in ("laws", "report") for p in (package / sub).glob("*.py"))
    return stable_hash({str(p.relative_to(package)): sha256_file(p) for p in files})


def write_run_config(run: PlannedRun, prepared: PreparedData, spec: StudySpec, run_dir: Path) -> None:
    """Write the self-contained ``config.json`` a worker needs to train and evaluate the run."""
    run_dir.mkdir(parents=True, exist_ok=True)
    config = run.to_dict()
    if not config.get("round"):  # written only for collapse rounds > 0 (configs keep `synthscale train`'s shape)
        config.pop("round", None)
    config["study"] = spec.name
    config["mixture_seed"] = spec.seed
    config["data"] = {
        "tokenizer": str(prepared.tokenizer_path),
        "shards": {k: [prepared.shards[k]] for k in run.weights},
        "eval_sets": prepared.eval_sets,
    }
    write_json(run_dir / "config.json", config)
    if not (run_dir / "status.json").exists():
        write_json(run_dir / "status.json", {"state": PENDING})
