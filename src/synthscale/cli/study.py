"""The study commands: `demo`, `study run|status|plan|validate`, `report`, `fit`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from ..errors import InputError
from .app import _duration, _echo_json, _exit_unless_complete, _print_outcome, app, study_app


@app.command()
def demo(
    out: Path = typer.Option(Path("demo_out"), "--out", help="Folder for the world, the study and the report."),
    profile: str = typer.Option("default", "--profile",
                                help="quick (under a minute, for tests), default (about 3.5 min on 2 cores: "
                                     "D/N 1-50, 2 seeds), full (3 sizes x the ratio grid; about 2 hours)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the world, the mixtures and the models."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress output."),
) -> None:
    """Run the whole study on the built-in toyworld corpus, on this CPU, and write the report.

    Rerunning into the same --out reuses everything already done.
    """
    from ..study.demo import run_demo

    outcome = run_demo(out, profile=profile, seed=seed, progress=not quiet)
    _print_outcome(outcome)
    _exit_unless_complete(outcome)


@study_app.command("run")
def study_run(
    spec: Path = typer.Argument(..., help="Study spec (YAML). See examples/ and docs/study.md."),
    out: Optional[Path] = typer.Option(None, "--out", help="Study folder (default: ./synthscale-out/<name>)."),
    no_report: bool = typer.Option(False, "--no-report", help="Skip fitting laws and writing the report."),
    threads: Optional[int] = typer.Option(None, "--threads", help="torch CPU threads per run."),
    executor: Optional[str] = typer.Option(None, "--executor", help="local (process pool on this machine), slurm "
                                           "(submitit job arrays) or ray; default: the spec's executor.kind, else "
                                           "local. "
                                           "See docs/cluster.md."),
    workers: Optional[int] = typer.Option(None, "--workers", help="local executor: runs at once (default: one per "
                                          "GPU, else one per CPU core)."),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Run again the runs that failed before. Without "
                                      "it, failed runs are NOT retried on a rerun (they stay in failures.json)."),
    overrides: List[str] = typer.Option([], "--set", help="Override a spec field, e.g. --set budgets=[65536,131072] "
                                        "--set training.lr=0.003 (value parsed as YAML; repeatable)."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress output."),
) -> None:
    """Plan the grid of SPEC, train every unfinished run, write results.csv/.parquet and the report.

    Rerunning the same command finishes an interrupted study and never redoes a finished run.

    A failing run is recorded (status.json, failures.json) and the others go on; it is retried only with --retry-failed.
    """
    from ..study.runner import run_study
    from ..study.spec import load_spec

    study_spec, _ = load_spec(spec, overrides)
    outcome = run_study(study_spec, out or Path("synthscale-out") / study_spec.name,
                        progress=not quiet, report=not no_report, threads=threads, executor=executor,
                        workers=workers, retry_failed=retry_failed)
    _print_outcome(outcome)
    _exit_unless_complete(outcome)


@study_app.command("status")
def study_status_cmd(
    spec: Path = typer.Argument(..., help="Study spec (YAML)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Study folder (default: ./synthscale-out/<name>)."),
    overrides: List[str] = typer.Option([], "--set", help="The same --set overrides as `study run` (the name "
                                        "decides the default folder)."),
    show_all: bool = typer.Option(False, "--all", help="List every run, not only the running ones."),
    as_json: bool = typer.Option(False, "--json", help="Print the status as JSON."),
) -> None:
    """Show counts of runs by state, progress of running runs (tokens, loss, ETA) and recent failures."""
    from ..study.spec import load_spec
    from ..study.status import format_status, study_status

    study_spec, _ = load_spec(spec, overrides)
    status = study_status(out or Path("synthscale-out") / study_spec.name,
                          stale_after_s=study_spec.executor.stale_after_s)
    if as_json:
        _echo_json(status.to_dict())
    else:
        typer.echo(format_status(status, show_all=show_all))


@study_app.command("plan")
def study_plan(
    spec: Path = typer.Argument(..., help="Study spec (YAML)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Study folder (default: ./synthscale-out/<name>)."),
    overrides: List[str] = typer.Option([], "--set", help="The same --set overrides as `study run`."),
) -> None:
    """Validate SPEC, prepare its data and list the runs it would train, with their tokens, FLOPs and an
    estimated time (trains nothing)."""
    from ..study.checks import check_spec_inputs
    from ..study.plan import estimate_plan
    from ..study.runner import plan_study, run_status
    from ..study.spec import load_spec

    study_spec, _ = load_spec(spec, overrides)
    check_spec_inputs(study_spec)
    study_dir = out or Path("synthscale-out") / study_spec.name
    runs, _ = plan_study(study_spec, Path(study_dir), progress=False)
    done = set()
    typer.echo("run_id\tmodel\trecipe\ttokens\tFLOPs\tstate")
    for r in runs:
        state = run_status(Path(study_dir) / "runs" / r.run_id).get("state", "new")
        if state == "done":
            done.add(r.run_id)
        flops = float(r.settings["train_flops_per_token"]) * r.tokens
        typer.echo(f"{r.run_id}\t{r.model}\t{r.recipe}\t{r.tokens}\t{flops:.3g}\t{state}")
    est = estimate_plan(runs, study_spec, done)
    typer.echo(f"{len(runs)} runs ({est.to_run} to run, {len(runs) - est.to_run} done): "
               f"{est.all_tokens:,} training tokens, {est.all_flops:.3g} FLOPs in all")
    if est.to_run:
        t = study_spec.executor.time
        line = (f"estimated time of the {est.to_run} runs to run: {_duration(est.compute_s)} of run time "
                f"({est.tokens:,} tokens, {est.flops:.3g} FLOPs at executor.time's {t.cpu_gflops:g} GFLOP/s per "
                f"CPU core, {t.gpu_tflops:g} TFLOP/s per GPU)")
        if est.wall_s is not None:
            line += f"; about {_duration(est.wall_s)} on this machine ({est.parallel} at once)"
        typer.echo(line + "; evaluation and start-up not included")


@study_app.command("validate")
def study_validate(
    spec: Path = typer.Argument(..., help="Study spec (YAML)."),
    overrides: List[str] = typer.Option([], "--set", help="The same --set overrides as `study run`."),
) -> None:
    """Check SPEC without training: fields and values, every corpus path exists and holds documents with
    text (reads the first ones), every budget holds at least one optimizer step, the eval token cap
    holds a window. `study plan` also checks the token counts after encoding."""
    from ..study.checks import check_spec_inputs
    from ..study.spec import load_spec

    study_spec, _ = load_spec(spec, overrides)
    check_spec_inputs(study_spec)
    typer.echo(f"{spec}: ok ({len(study_spec.models)} model sizes, {len(study_spec.budgets)} budgets, "
               f"{len(study_spec.recipes)} recipes)")


@app.command()
def report(
    study_dir: Path = typer.Argument(..., help="A study folder (holds results.parquet/csv and analysis.json)."),
    refit: bool = typer.Option(False, "--refit", help="Refit the laws (analysis.json) from the results table first: "
                               "in a study folder with the study's analysis settings (spec.resolved.json), as "
                               "`study run` does."),
    bootstrap: Optional[int] = typer.Option(None, "--bootstrap", help="With --refit: bootstrap resamples for "
                                            "intervals (default: the study's analysis.bootstrap, else 200)."),
) -> None:
    """(Re)write STUDY_DIR/report/report.md and report.html from the study's results."""
    from ..report import load_results, write_report
    from ..study.runner import refit_study_report

    if not study_dir.is_dir():
        raise InputError("no such study folder", path=str(study_dir))
    if refit and (study_dir / "spec.resolved.json").is_file():
        html = refit_study_report(study_dir, bootstrap=bootstrap)
        typer.echo(f"report: {html}\nmarkdown: {html.with_suffix('.md')}")
        return
    df = None
    if refit:
        from ..laws import analyze_results, write_analysis

        df, _ = load_results(study_dir)
        analysis = analyze_results(df, bootstrap=200 if bootstrap is None else bootstrap)
        write_analysis(study_dir / "analysis.json", analysis)
    paths = write_report(study_dir, results_df=df)
    typer.echo(f"report: {paths['html']}\nmarkdown: {paths['markdown']}")


@app.command()
def fit(
    input: Path = typer.Option(..., "--input", help="A table (.csv or .parquet), ours or anyone's."),
    form: str = typer.Option("data", "--form", help="data: E + B*D^-beta; model: E + A*N^-alpha; "
                             "chinchilla: E + A*N^-alpha + B*D^-beta; ratio: L(N, D, r), prints r* at every "
                             "trained (N, D) next to the grid's best trained ratio (see docs/laws.md)."),
    col: List[str] = typer.Option([], "--col", help="ROLE=COLUMN mapping, roles params, tokens, loss, ratio, run "
                                  "(repeatable). Defaults: params = a non-embedding column (N_no_emb, "
                                  "params_nonembedding, non_embedding_params, ...) when the table has one, else "
                                  "params, params_N, N; tokens, tokens_D, D; loss, final_val_loss, val_loss; ratio, "
                                  "r."),
    where: List[str] = typer.Option([], "--where", help="COL=VALUE: keep only these rows (repeatable; numbers "
                                    "compared as numbers), e.g. --where params_N=2.81e9 --where domain=web."),
    group_by: List[str] = typer.Option([], "--group-by", help="COL: fit each group of this column on its own "
                                       "(repeatable), e.g. --group-by params_N for one data law per model size."),
    bootstrap: int = typer.Option(0, "--bootstrap", help="Bootstrap resamples for 95% intervals (0: none)."),
    holdout: Optional[str] = typer.Option(None, "--holdout", help="'largest': fit without the largest budget/size, "
                                          "predict it and report the relative error."),
    seed: int = typer.Option(0, "--seed", help="Bootstrap seed."),
    as_json: bool = typer.Option(False, "--json", help="Print the fit as JSON (form, verdict, reasons, n_points, "
                                 "objective, params, columns, best_ratio; with --group-by {\"groups\": [...]})."),
) -> None:
    """Fit a scaling law (Huber on log loss, L-BFGS-B from a grid of starts) to any table.

    Prints the verdict (ok / weak / unusable, with reasons) and the column
    used for each variable (params: a non-embedding column when there is one).
    A table holding groups the form does not model (several model sizes for
    --form data, token budgets for --form model, eval domains, mixtures)
    stops with an error that lists them: keep one group with --where, or fit
    each with --group-by. --form ratio prints r* at every trained (N, D),
    only inside the trained ratios, next to the grid's best trained ratio.

    Examples:

    \b
      synthscale fit --input runs.csv --form chinchilla --col params=N
        --col tokens=D --col loss=L --bootstrap 200 --json
      synthscale fit --input runs.csv --form data --where params_N=2.81e9
      synthscale fit --input runs.csv --form data --group-by params_N
      synthscale fit --input results.csv --form ratio --where kind=hq
        --bootstrap 200
    """
    from ..laws import fit_table, parse_col_options, summarize_fit

    result = fit_table(str(input), form, parse_col_options(col), bootstrap, holdout, seed,
                       where=where, group_by=group_by)
    typer.echo(json.dumps(result, indent=2, sort_keys=True) if as_json else summarize_fit(result))
