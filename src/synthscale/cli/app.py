"""The `synthscale` app and its command groups, and what the commands share (output helpers)."""

from __future__ import annotations

import json

import typer

app = typer.Typer(
    help="synthscale: does synthetic data help LLM pre-training, which kind, and how much?\n\n"
         "Start with `synthscale demo`: it builds a small fictional world, trains a ladder of tiny "
         "models on natural and synthetic mixtures, fits scaling laws and writes a report.",
    no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False,
    rich_markup_mode=None,  # help texts are plain text: [/CONFIG] in an address is not markup
)
corpus_app = typer.Typer(help="Inspect corpora (jsonl, jsonl.gz, jsonl.zst, parquet, txt, hf://).",
                         no_args_is_help=True, rich_markup_mode=None)
study_app = typer.Typer(help="Plan and run studies described by a YAML spec.",
                        no_args_is_help=True, rich_markup_mode=None)
tokens_app = typer.Typer(help="Tokenizers, token shards and mixtures.",
                         no_args_is_help=True, rich_markup_mode=None)
toyworld_app = typer.Typer(help="The built-in fictional world and its corpora.",
                           no_args_is_help=True, rich_markup_mode=None)
app.add_typer(toyworld_app, name="toyworld")
app.add_typer(corpus_app, name="corpus")
app.add_typer(study_app, name="study")
app.add_typer(tokens_app, name="tokens")

_state = {"debug": False}


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors.")) -> None:
    _state["debug"] = debug


def _duration(seconds: float) -> str:
    """H:MM:SS (or D days H:MM:SS)."""
    seconds = int(round(seconds))
    days, rem = divmod(seconds, 86400)
    h, rem = divmod(rem, 3600)
    m, s = divmod(rem, 60)
    return (f"{days} days " if days else "") + f"{h}:{m:02d}:{s:02d}"


def _echo_json(obj) -> None:
    typer.echo(json.dumps(obj, indent=2, sort_keys=True, default=str))


def _print_outcome(outcome) -> None:
    typer.echo(f"trained {outcome.trained} runs, skipped {outcome.skipped} finished runs, "
               f"{len(outcome.failed)} failed")
    for f in outcome.failed:
        typer.echo(f"  failed: {f['run_id']}: {f.get('reason', 'error')}: {f['error']} (log: {f.get('log', '')})")
    if getattr(outcome, "repaired", None):
        typer.echo(f"  {len(outcome.repaired)} runs found incomplete were redone (re-evaluated or retrained; "
                   "see the warnings on stderr)")
    if getattr(outcome, "not_retried", 0):
        typer.echo(f"  {outcome.not_retried} runs that failed before were not retried (use --retry-failed)")
    if outcome.results_csv:
        typer.echo(f"results: {outcome.results_csv} ({outcome.rows} of {outcome.planned_rows} planned rows, "
                   f"{outcome.planned - len(outcome.missing)} of {outcome.planned} runs)")
        for m in outcome.missing:
            typer.echo(f"  missing {m['rows']} rows of {m['run_id']}: {m['reason']}")
    if outcome.report:
        typer.echo(f"report: {outcome.report}")


def _exit_unless_complete(outcome) -> None:
    """Exit 1 (after the outcome is printed) when any run failed or has no results: pipelines can trust exit 0."""
    if outcome.failed:
        typer.echo(f"error: {len(outcome.failed)} of {outcome.planned} runs failed; see "
                   f"{outcome.study_dir / 'failures.json'}", err=True)
        raise typer.Exit(1)
    if outcome.missing:
        typer.echo(f"error: {len(outcome.missing)} of {outcome.planned} runs have no results "
                   f"({outcome.rows} of {outcome.planned_rows} rows); see the lines above", err=True)
        raise typer.Exit(1)
