"""The `synthscale` command line: parse, call a stage function, print.

Any SynthscaleError (bad input, bad spec) is printed as one line and exits with code 2;
`synthscale --debug ...` shows the traceback instead.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional

import typer

from .errors import InputError, SynthscaleError

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
    from .study.demo import run_demo

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
                                           "(submitit job arrays) or ray; default: the spec's executor.kind, else local. "
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
    from .study.runner import run_study
    from .study.spec import load_spec

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
    from .study.spec import load_spec
    from .study.status import format_status, study_status

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
    from .study.checks import check_spec_inputs
    from .study.plan import estimate_plan
    from .study.runner import plan_study, run_status
    from .study.spec import load_spec

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
    from .study.checks import check_spec_inputs
    from .study.spec import load_spec

    study_spec, _ = load_spec(spec, overrides)
    check_spec_inputs(study_spec)
    typer.echo(f"{spec}: ok ({len(study_spec.models)} model sizes, {len(study_spec.budgets)} budgets, "
               f"{len(study_spec.recipes)} recipes)")


@app.command()
def report(
    study_dir: Path = typer.Argument(..., help="A study folder (holds results.parquet/csv and analysis.json)."),
    refit: bool = typer.Option(False, "--refit", help="Refit the laws (analysis.json) from the results table first."),
    bootstrap: int = typer.Option(200, "--bootstrap", help="With --refit: bootstrap resamples for intervals."),
) -> None:
    """(Re)write STUDY_DIR/report/report.md and report.html from the study's results."""
    from .report import load_results, write_report

    if not study_dir.is_dir():
        raise InputError("no such study folder", path=str(study_dir))
    df = None
    if refit:
        from .laws import analyze_results, write_analysis

        df, _ = load_results(study_dir)
        write_analysis(study_dir / "analysis.json", analyze_results(df, bootstrap=bootstrap))
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
                                  "params, params_N, N; tokens, tokens_D, D; loss, final_val_loss, val_loss; ratio, r."),
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
    from .laws import fit_table, parse_col_options, summarize_fit

    result = fit_table(str(input), form, parse_col_options(col), bootstrap, holdout, seed,
                       where=where, group_by=group_by)
    typer.echo(json.dumps(result, indent=2, sort_keys=True) if as_json else summarize_fit(result))


@corpus_app.command("stats")
def corpus_stats_cmd(
    files: List[str] = typer.Argument(..., help="Corpus files, folders or hf://ORG/NAME[/CONFIG][:SPLIT]."),
    skip_bad: bool = typer.Option(False, "--skip-bad", help="Skip malformed or undecodable (not UTF-8) lines and "
                                  "count them instead of stopping."),
    text_field: str = typer.Option("text", "--text-field", help="Record field holding the text (as a spec's "
                                   "text_field)."),
    id_field: str = typer.Option("id", "--id-field", help="Record field holding the document id (as a spec's "
                                 "id_field)."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per corpus."),
) -> None:
    """Print documents, bytes and documents per domain of each corpus."""
    from .corpus import corpus_stats

    for f in files:
        s = corpus_stats(f, skip_bad=skip_bad, text_field=text_field, id_field=id_field).as_dict()
        if as_json:
            typer.echo(json.dumps(s, sort_keys=True))
            continue
        domains = ", ".join(f"{k}: {v}" for k, v in s["domains"].items())
        typer.echo(f"{s['source']}\n  documents: {s['documents']}\n  bytes: {s['bytes']} "
                   f"(mean {s['mean_bytes']}/doc)\n  synthetic: {s['synthetic']}\n  domains: {domains}")
        if s["skipped"]:
            typer.echo(f"  skipped malformed: {s['skipped']}"
                       + (f" (first: {', '.join(s['skipped_where'][:3])})" if s.get("skipped_where") else ""))


@corpus_app.command("compare")
def corpus_compare_cmd(
    a: str = typer.Argument(..., help="Reference corpus A (e.g. the natural text): file, folder or hf:// address."),
    b: str = typer.Argument(..., help="Corpus B compared with A (e.g. its rewrites, or a synthetic corpus)."),
    tokenizer: Optional[str] = typer.Option(None, "--tokenizer", help="tokenizer.json or HF folder shared by both "
                                            "sides. Default: train a byte-level BPE on the texts of A and B."),
    vocab_size: int = typer.Option(2048, "--vocab-size", help="Vocabulary of the BPE trained when no --tokenizer "
                                   "is given."),
    text_field: str = typer.Option("text", "--text-field", help="Record field holding the text, both sides."),
    id_field: str = typer.Option("id", "--id-field", help="Record field holding the document id, both sides."),
    a_text_field: Optional[str] = typer.Option(None, "--a-text-field", help="Text field of A only (e.g. 'original' "
                                               "when A and B are two fields of one paired file)."),
    b_text_field: Optional[str] = typer.Option(None, "--b-text-field", help="Text field of B only."),
    a_id_field: Optional[str] = typer.Option(None, "--a-id-field", help="Id field of A only."),
    b_id_field: Optional[str] = typer.Option(None, "--b-id-field", help="Id field of B only."),
    pair_by: str = typer.Option("auto", "--pair-by", help="How B documents name their A document: parent (B's "
                                "parent_id), id (same id: two fields of one file), none, or auto (parent when B "
                                "has parent_id, else id when most B ids are A ids)."),
    max_docs: Optional[int] = typer.Option(None, "--max-docs", help="Read at most this many documents of each "
                                           "corpus (the parents of B's documents are still found)."),
    diversity_tokens: int = typer.Option(100_000, "--diversity-tokens", help="Tokens of each corpus that "
                                         "type-token ratio and distinct-n are measured on (the same for both)."),
    save_tokenizer: Optional[Path] = typer.Option(None, "--save-tokenizer", help="Keep the trained tokenizer here."),
    as_json: bool = typer.Option(False, "--json", help="Print every figure as one JSON object."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress output."),
) -> None:
    """Compare corpus B with corpus A through one shared tokenizer (corpus diagnostics, collapse signals).

    Prints unigram KL both ways (nats per token, B add-one smoothed), the share of A's
    token mass whose types never occur in B (and the reverse), type-token ratio and
    distinct-2/3 (diversity), gzip ratio (redundancy) and the document length ratio; when
    B's documents name A documents (parent_id, or the same id), the mean per-pair token
    overlap and the share of near-copies. Definitions: docs/diagnostics.md.

    Examples:

    \b
      synthscale corpus compare natural.jsonl.gz hq.jsonl.gz
      synthscale corpus compare natural.jsonl.gz hq.jsonl.gz --vocab-size 4096 --json
      synthscale corpus compare pairs.jsonl.gz pairs.jsonl.gz
        --a-text-field original --b-text-field rephrase --id-field source_path
    """
    from .diagnostics import CorpusRef, compare_corpora, format_comparison

    result = compare_corpora(
        CorpusRef(a, a_text_field or text_field, a_id_field or id_field),
        CorpusRef(b, b_text_field or text_field, b_id_field or id_field),
        tokenizer=tokenizer, vocab_size=vocab_size, pair_by=pair_by, max_docs=max_docs,
        diversity_tokens=diversity_tokens, save_tokenizer=save_tokenizer, progress=not quiet)
    typer.echo(json.dumps(result, indent=2, sort_keys=True, default=str) if as_json else format_comparison(result))


@toyworld_app.command("build")
def toyworld_build(
    out: Path = typer.Argument(..., help="Folder for the world and its corpora."),
    size: str = typer.Option("default", "--size", help="tiny, small or default."),
    seed: Optional[int] = typer.Option(None, "--seed", help="World seed (default 0)."),
    config: Optional[Path] = typer.Option(None, "--config", help="A toyworld_config.json to build from."),
    textbook_error_rate: Optional[float] = typer.Option(None, "--textbook-error-rate",
                                                        help="Fraction of textbook facts stated wrongly."),
) -> None:
    """Build toyworld: natural, hq, qa, textbook and held-out eval corpora (see docs/toyworld.md)."""
    from .toyworld import build_toyworld_command

    _echo_json(build_toyworld_command(out, size=size, seed=seed, config_path=config,
                                      textbook_error_rate=textbook_error_rate))


@tokens_app.command("train-tokenizer")
def tokens_train(
    corpora: List[str] = typer.Argument(..., help="Corpus files, folders or hf:// addresses to train on."),
    out: Path = typer.Option(..., "--out", help="Where to write tokenizer.json."),
    vocab_size: int = typer.Option(4096, "--vocab-size", help="Vocabulary size, special tokens included."),
    max_bytes: Optional[int] = typer.Option(None, "--max-bytes", help="Train on at most this many text bytes."),
) -> None:
    """Train a byte-level BPE tokenizer (deterministic) and print its size and hash."""
    from .tokens.commands import train_tokenizer_command

    _echo_json(train_tokenizer_command(corpora, vocab_size, str(out), max_bytes=max_bytes))


@tokens_app.command("encode")
def tokens_encode(
    corpora: List[str] = typer.Argument(..., help="Corpus files, folders or hf:// addresses."),
    tokenizer: Path = typer.Option(..., "--tokenizer", help="tokenizer.json or HF tokenizer folder."),
    out: Path = typer.Option(..., "--out", help="Shard prefix: writes PREFIX.bin and PREFIX.json."),
) -> None:
    """Encode corpora into one token shard (documents concatenated, each followed by EOS)."""
    from .tokens.commands import encode_command

    _echo_json(encode_command(corpora, str(tokenizer), str(out)))


@tokens_app.command("info")
def tokens_info(
    prefix: Path = typer.Argument(..., help="Shard prefix (or its .bin/.json)."),
    verify: bool = typer.Option(False, "--verify", help="Recompute the sha256 of the .bin."),
) -> None:
    """Print a token shard's metadata."""
    from .tokens.commands import shard_info_command

    _echo_json(shard_info_command(str(prefix), verify=verify))


@tokens_app.command("mixture")
def tokens_mixture(
    sources: List[str] = typer.Option(..., "--source", help="NAME=PREFIX[,PREFIX] (repeatable)."),
    weights: List[str] = typer.Option(..., "--weight", help="NAME=FRACTION of training tokens (repeatable)."),
    tokens: int = typer.Option(..., "--tokens", help="Training tokens."),
    seq_len: int = typer.Option(128, "--seq-len", help="Sequence length."),
    seed: int = typer.Option(0, "--seed", help="Mixture seed."),
) -> None:
    """Show sequences, windows and epochs per source of a mixture, without reading tokens."""
    from .tokens.commands import mixture_plan_command

    _echo_json(mixture_plan_command(sources, weights, tokens, seq_len, seed))


@app.command()
def evaluate(
    checkpoint: Path = typer.Argument(..., help="A run folder or checkpoint (.safetensors)."),
    eval_sets: List[str] = typer.Option(..., "--eval-set", help="DOMAIN=PATH of a saved eval set (repeatable)."),
    batch_size: int = typer.Option(8, "--batch-size", help="Windows per forward pass."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:1, ..."),
) -> None:
    """Per-domain validation loss and bits-per-byte of a checkpoint on fixed eval sets."""
    from .evaluate.commands import evaluate_checkpoint_command

    _echo_json(evaluate_checkpoint_command(str(checkpoint), eval_sets, batch_size=batch_size, device=device))


@app.command()
def ladder(
    vocab_size: int = typer.Option(32000, "--vocab-size", help="Vocabulary size used for the counts."),
    seq_len: int = typer.Option(2048, "--seq-len", help="Context length used for FLOPs and batch rules."),
) -> None:
    """Print the model size ladder: params (total, non-embedding), FLOPs/token, default LR and batch."""
    from .model import ladder as lad

    typer.echo(f"{'rung':<12}{'dim':>6}{'layers':>7}{'heads':>6}{'kv':>4}{'ffn':>7}"
               f"{'params':>14}{'non-emb':>14}{'FLOPs/tok':>12}{'lr':>10}{'batch':>7}")
    for name in lad.LADDER:
        cfg = lad.model_config(name, vocab_size, seq_len)
        total, nonembed = lad.param_counts(cfg)
        typer.echo(f"{name:<12}{cfg.dim:>6}{cfg.n_layers:>7}{cfg.n_heads:>6}{cfg.n_kv_heads:>4}{cfg.ffn_dim:>7}"
                   f"{total:>14,}{nonembed:>14,}{lad.train_flops_per_token(cfg, seq_len):>12.3g}"
                   f"{lad.default_lr(nonembed):>10.2e}{lad.default_batch_size(nonembed, seq_len):>7}")


@app.command()
def generate(
    input: Optional[str] = typer.Option(None, "--input", help="Corpus to rewrite: .jsonl[.gz|.zst], .parquet, .txt, a folder of them, or hf://NAME."),
    topics: Optional[Path] = typer.Option(None, "--topics", help="Instead of --input: a text file with one topic per line (textbook styles)."),
    style: str = typer.Option(..., "--style", help="hq, qa, easy, hard, textbook, textbook-AUDIENCE-FORMAT, a style from --style-file, or a .yaml style file."),
    backend: str = typer.Option(..., "--backend", help="transformers (local HF model), vllm (GPU engine), openai (any OpenAI-compatible server) or toyworld."),
    model: Optional[str] = typer.Option(None, "--model", help="HF model folder or hub id (transformers, vllm); the server's model name (openai); world.json (toyworld)."),
    out: Path = typer.Option(..., "--out", help="Output folder. Rerunning the same command into it resumes and redoes nothing."),
    max_docs: Optional[int] = typer.Option(None, "--max-docs", help="Use only the first N input documents (or topics)."),
    target_tokens: Optional[int] = typer.Option(None, "--target-tokens", help="Stop once the written corpus holds this many tokens of the training tokenizer (needs --tokenizer)."),
    tokenizer: Optional[str] = typer.Option(None, "--tokenizer", help="The training tokenizer (tokenizer.json or HF folder): counts written tokens."),
    style_file: List[Path] = typer.Option([], "--style-file", help="YAML file of your own styles (repeatable)."),
    audience: Optional[str] = typer.Option(None, "--audience", help="With --style textbook: children, highschool, college or professional."),
    format: Optional[str] = typer.Option(None, "--format", help="With --style textbook: unit, tutorial, story or faq."),
    seed: int = typer.Option(0, "--seed", help="Run seed; each request's seed is a hash of it and the request id."),
    chunk_tokens: int = typer.Option(300, "--chunk-tokens", help="Split documents on sentence ends into chunks of at most this many tokens (0: whole documents)."),
    chunk_tokenizer: Optional[str] = typer.Option(None, "--chunk-tokenizer", help="Count chunk tokens with this tokenizer (default: the generator's, else approximate)."),
    reassemble: bool = typer.Option(False, "--reassemble", help="Also write reassembled.jsonl.gz: one document per source document, chunks joined."),
    samples: int = typer.Option(1, "--samples", help="Outputs per input document or topic."),
    temperature: Optional[float] = typer.Option(None, "--temperature", help="Override the style's sampling temperature (0: greedy)."),
    top_p: Optional[float] = typer.Option(None, "--top-p", help="Override the style's nucleus sampling threshold."),
    top_k: Optional[int] = typer.Option(None, "--top-k", help="Sample from the k most likely tokens only (0: off)."),
    max_tokens: Optional[int] = typer.Option(None, "--max-tokens", help="Override the style's maximum output tokens."),
    repetition_penalty: Optional[float] = typer.Option(None, "--repetition-penalty", help="Penalise tokens already seen (1: off)."),
    stop: List[str] = typer.Option([], "--stop", help="Stop generating at this string (repeatable)."),
    gates: str = typer.Option("drop", "--gates", help="Quality gates: drop failing outputs, flag them (keep, with reasons), or off."),
    truncated: Optional[str] = typer.Option(None, "--truncated", help="Outputs cut at max tokens: drop, flag or keep (default: as --gates)."),
    language: str = typer.Option("en", "--language", help="Expected output language (en, de, fr, es, it, pt, nl), 'same' as the input, or 'none'."),
    near_copy: float = typer.Option(0.9, "--near-copy", help="Drop outputs sharing at least this share of word trigrams with the input (0: off)."),
    max_repetition: float = typer.Option(0.3, "--max-repetition", help="Drop outputs with more than this share of repeated 4-grams or lines (0: off)."),
    min_words: int = typer.Option(5, "--min-words", help="Drop outputs with fewer words."),
    batch_size: int = typer.Option(32, "--batch-size", help="Requests per batch; each batch is saved before the next starts."),
    shard_size: int = typer.Option(1000, "--shard-size", help="Requests per output shard."),
    retry_failures: bool = typer.Option(False, "--retry-failures", help="Ask again the requests that failed in earlier runs."),
    gpus: Optional[float] = typer.Option(None, "--gpus", help="GPUs the generator uses, for the GPU-hours estimate (default: what the backend reports)."),
    revision: Optional[str] = typer.Option(None, "--revision", help="Model revision to load and record (transformers, vllm, openai)."),
    device: Optional[str] = typer.Option(None, "--device", help="transformers: auto, cpu, cuda, cuda:1, ..."),
    dtype: Optional[str] = typer.Option(None, "--dtype", help="transformers, vllm: auto, float32, bfloat16 or float16."),
    chat: Optional[str] = typer.Option(None, "--chat", help="transformers, vllm: auto (chat template if the model has one), template, or none."),
    threads: Optional[int] = typer.Option(None, "--threads", help="transformers: torch CPU threads."),
    model_batch_size: Optional[int] = typer.Option(None, "--model-batch-size", help="transformers: prompts per forward batch (default 8)."),
    tensor_parallel_size: Optional[int] = typer.Option(None, "--tensor-parallel-size", help="vllm: GPUs per model."),
    gpu_memory_utilization: Optional[float] = typer.Option(None, "--gpu-memory-utilization", help="vllm: share of GPU memory to use (default 0.9)."),
    max_model_len: Optional[int] = typer.Option(None, "--max-model-len", help="vllm: context length to allocate."),
    base_url: Optional[str] = typer.Option(None, "--base-url", help="openai: server URL ending in /v1 (default $OPENAI_BASE_URL, else api.openai.com)."),
    endpoint: Optional[str] = typer.Option(None, "--endpoint", help="openai: chat (default) or completions."),
    api_key_env: Optional[str] = typer.Option(None, "--api-key-env", help="openai: environment variable holding the API key (default OPENAI_API_KEY); the key is never written."),
    concurrency: Optional[int] = typer.Option(None, "--concurrency", help="openai: requests in flight (default 8)."),
    max_retries: Optional[int] = typer.Option(None, "--max-retries", help="openai: retries on 429/5xx/timeouts (default 6)."),
    timeout: Optional[float] = typer.Option(None, "--timeout", help="openai: seconds per request (default 120)."),
    system_prompt: Optional[str] = typer.Option(None, "--system-prompt", help="openai chat: a system message before each prompt."),
    text_field: str = typer.Option("text", "--text-field", help="Input field holding the text."),
    id_field: str = typer.Option("id", "--id-field", help="Input field holding the document id."),
    max_failed_share: float = typer.Option(0.1, "--max-failed-share", help="Warn on stderr when more than this "
                                           "share of the requests failed. Whatever it is, the command exits 1 "
                                           "when every request failed."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress output."),
) -> None:
    """Generate a synthetic corpus (rephrasings or textbooks) with an LLM; resumable, with provenance and a dataset card.

    Example: synthscale generate --input corpus.jsonl.gz --max-docs 20 --style qa --backend transformers --model MODEL_DIR --out out/qa
    """
    from .generate.commands import generate_command, generation_verdict

    summary = generate_command(
        input, style, backend, model, str(out), max_docs, target_tokens, topics=str(topics) if topics else None,
        style_files=[str(p) for p in style_file], audience=audience, format=format, seed=seed, tokenizer=tokenizer,
        chunk_tokens=chunk_tokens, chunk_tokenizer=chunk_tokenizer, samples=samples, batch_size=batch_size,
        shard_size=shard_size, temperature=temperature, top_p=top_p, top_k=top_k, max_tokens=max_tokens,
        repetition_penalty=repetition_penalty, stop=stop, gates=gates, truncated=truncated, language=language,
        near_copy=near_copy, max_repetition=max_repetition, min_words=min_words, reassemble=reassemble,
        retry_failures=retry_failures, gpus=gpus, revision=revision, device=device, dtype=dtype, chat=chat,
        threads=threads, model_batch_size=model_batch_size, tensor_parallel_size=tensor_parallel_size,
        gpu_memory_utilization=gpu_memory_utilization, max_model_len=max_model_len, base_url=base_url,
        endpoint=endpoint, api_key_env=api_key_env, concurrency=concurrency, max_retries=max_retries,
        timeout=timeout, system_prompt=system_prompt, text_field=text_field, id_field=id_field, progress=not quiet)
    _echo_json(summary)
    code, messages = generation_verdict(summary, max_failed_share)
    for line in messages:
        typer.echo(line, err=True)
    if code:
        raise typer.Exit(code)


@app.command()
def serve(
    model_dir: Path = typer.Argument(..., help="Hugging Face model folder (e.g. from `synthscale export`)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8000, "--port", help="Port (0 picks a free one)."),
    model_name: Optional[str] = typer.Option(None, "--model-name", help="Model id clients send (default: the folder name)."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:1, ..."),
    dtype: str = typer.Option("auto", "--dtype", help="auto, float32, bfloat16 or float16."),
    max_batch: int = typer.Option(8, "--max-batch", help="Requests answered together."),
    threads: int = typer.Option(0, "--threads", help="torch CPU threads (0: torch's default)."),
    verbose: bool = typer.Option(False, "--verbose", help="Log every request."),
) -> None:
    """Serve a model folder as an OpenAI-compatible API (/v1/models, /v1/completions, /v1/chat/completions)."""
    from .generate.server import serve_command

    serve_command(str(model_dir), host, port, model_name, device, dtype, max_batch, threads, quiet=not verbose)


@app.command("train")
def train_cmd(
    out: Path = typer.Argument(..., help="Run folder (created; running the same command again resumes it)."),
    data: List[str] = typer.Option(..., "--data", help="NAME=SHARD_PREFIX[,PREFIX...] token shards of a source (repeatable)."),
    tokens: int = typer.Option(..., "--tokens", help="Token budget of the run."),
    weight: Optional[List[str]] = typer.Option(None, "--weight", help="NAME=FRACTION of training tokens (default: equal)."),
    model: str = typer.Option("cpu-micro", "--model", help="Ladder rung (see `synthscale ladder`)."),
    hf_config: Optional[Path] = typer.Option(None, "--hf-config", help="Take the model shape from this HF Llama folder (fresh weights)."),
    init_from_hf: Optional[Path] = typer.Option(None, "--init-from-hf", help="Continue from this HF Llama folder's weights (and shape)."),
    seq_len: int = typer.Option(128, "--seq-len", help="Tokens per training sequence (the context length)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Global sequences per step (default: ladder rule)."),
    grad_accum: int = typer.Option(1, "--grad-accum", help="Micro-batches per rank and step."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Peak learning rate (default: ladder rule)."),
    warmup_frac: Optional[float] = typer.Option(None, "--warmup-frac", help="Warmup steps as a fraction of the run "
                                                "(default: ladder rule)."),
    schedule: str = typer.Option("cosine", "--schedule", help="cosine | wsd"),
    budget: Optional[List[int]] = typer.Option(None, "--budget", help="wsd: extra budget read off by a decay branch (repeatable)."),
    decay_frac: float = typer.Option(0.2, "--decay-frac", help="wsd: decay length as a fraction of each budget."),
    checkpoint_every: int = typer.Option(0, "--checkpoint-every", help="Save a resumable state every N steps (0 = never)."),
    eval_set: Optional[List[str]] = typer.Option(None, "--eval-set", help="NAME=PATH of a saved eval set (repeatable)."),
    eval_batch_size: int = typer.Option(16, "--eval-batch-size", help="Eval windows per forward pass."),
    seed: int = typer.Option(0, "--seed", help="Seed of the weights and of the data order."),
    threads: int = typer.Option(0, "--threads", help="torch threads per process (0 = torch default)."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu | cuda (default: cuda when available)."),
    dtype: str = typer.Option("float32", "--dtype", help="float32 | bfloat16 (autocast)."),
    compile: str = typer.Option("auto", "--compile", help="torch.compile: auto (on for CUDA; on CPU only for runs of 2+ minutes, where it pays) | true | false."),
    nproc: int = typer.Option(1, "--nproc", help="Processes (torchrun underneath when > 1; gloo on CPU, nccl on GPU)."),
    parallel: str = typer.Option("ddp", "--parallel", help="ddp | fsdp (FSDP2 fully_shard, for large rungs)."),
    no_progress: bool = typer.Option(False, "--no-progress", help="No progress bar."),
) -> None:
    """Train one model on a mixture of token shards (resumable; several processes with --nproc)."""
    from .train.commands import train_command

    _echo_json(train_command(
        str(out), data=list(data), tokens=tokens, weights=list(weight or []), model=model,
        hf_config=str(hf_config) if hf_config else None, init_from_hf=str(init_from_hf) if init_from_hf else None,
        seq_len=seq_len, batch_size=batch_size, grad_accum=grad_accum, lr=lr, warmup_frac=warmup_frac,
        schedule=schedule, budgets=list(budget or []), decay_frac=decay_frac, checkpoint_every=checkpoint_every,
        eval_sets=list(eval_set or []), eval_batch_size=eval_batch_size, seed=seed, threads=threads, device=device,
        dtype=dtype, compile=compile, nproc=nproc, parallel=parallel, progress=not no_progress))


@app.command("export")
def export_cmd(
    run: Path = typer.Argument(..., help="A run folder (checkpoints/final.safetensors) or a .safetensors checkpoint."),
    hf: Path = typer.Option(..., "--hf", help="Folder for the Hugging Face LlamaForCausalLM export."),
    tokenizer: Optional[Path] = typer.Option(None, "--tokenizer", help="Tokenizer the model was trained with (default: the run's config.json data.tokenizer)."),
) -> None:
    """Export a run as a Hugging Face LlamaForCausalLM folder (transformers, vLLM, lm-eval can load it).

    Example: synthscale export demo_out/study/runs/RUN_ID --hf exported/
    """
    from .model.hf import export_hf_command

    _echo_json(export_hf_command(str(run), str(hf), str(tokenizer) if tokenizer else None))


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


def main() -> None:
    """Console entry point: run the app, turning SynthscaleError into one line and exit code 2.

    Any other exception (a full disk, a permission denied, a bug) is one line too, with exit
    code 1; `synthscale --debug ...` shows the traceback instead.
    """
    try:
        app()
    except SynthscaleError as e:
        if _state["debug"]:
            raise
        typer.echo(f"error: {e}", err=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        typer.echo("interrupted; rerun the same command to continue", err=True)
        sys.exit(130)
    except Exception as e:  # noqa: BLE001 (the last line of defence: no traceback without --debug)
        if _state["debug"]:
            raise
        text = str(e).strip().splitlines()[0] if str(e).strip() else ""
        typer.echo(f"error: {type(e).__name__}{': ' + text if text else ''} "
                   "(unexpected; rerun with `synthscale --debug ...` for the traceback)", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
