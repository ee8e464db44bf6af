"""The data commands: `corpus stats|compare`, `toyworld build`, `tokens train-tokenizer|encode|info|mixture`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from .app import _echo_json, corpus_app, tokens_app, toyworld_app


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
    from ..corpus import corpus_stats

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
    from ..diagnostics import CorpusRef, compare_corpora, format_comparison

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
    from ..toyworld import build_toyworld_command

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
    from ..tokens.commands import train_tokenizer_command

    _echo_json(train_tokenizer_command(corpora, vocab_size, str(out), max_bytes=max_bytes))


@tokens_app.command("encode")
def tokens_encode(
    corpora: List[str] = typer.Argument(..., help="Corpus files, folders or hf:// addresses."),
    tokenizer: Path = typer.Option(..., "--tokenizer", help="tokenizer.json or HF tokenizer folder."),
    out: Path = typer.Option(..., "--out", help="Shard prefix: writes PREFIX.bin and PREFIX.json."),
) -> None:
    """Encode corpora into one token shard (documents concatenated, each followed by EOS)."""
    from ..tokens.commands import encode_command

    _echo_json(encode_command(corpora, str(tokenizer), str(out)))


@tokens_app.command("info")
def tokens_info(
    prefix: Path = typer.Argument(..., help="Shard prefix (or its .bin/.json)."),
    verify: bool = typer.Option(False, "--verify", help="Recompute the sha256 of the .bin."),
) -> None:
    """Print a token shard's metadata."""
    from ..tokens.commands import shard_info_command

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
    from ..tokens.commands import mixture_plan_command

    _echo_json(mixture_plan_command(sources, weights, tokens, seq_len, seed))
