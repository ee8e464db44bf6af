"""The model commands: `train`, `export`, `evaluate`, `ladder`."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from .app import _echo_json, app


@app.command()
def evaluate(
    checkpoint: Path = typer.Argument(..., help="A run folder or checkpoint (.safetensors)."),
    eval_sets: List[str] = typer.Option(..., "--eval-set", help="DOMAIN=PATH of a saved eval set (repeatable)."),
    batch_size: int = typer.Option(8, "--batch-size", help="Windows per forward pass."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:1, ..."),
) -> None:
    """Per-domain validation loss and bits-per-byte of a checkpoint on fixed eval sets."""
    from ..evaluate.commands import evaluate_checkpoint_command

    _echo_json(evaluate_checkpoint_command(str(checkpoint), eval_sets, batch_size=batch_size, device=device))


@app.command()
def ladder(
    vocab_size: int = typer.Option(32000, "--vocab-size", help="Vocabulary size used for the counts."),
    seq_len: int = typer.Option(2048, "--seq-len", help="Context length used for FLOPs and batch rules."),
) -> None:
    """Print the model size ladder: params (total, non-embedding), FLOPs/token, default LR and batch."""
    from ..model import ladder as lad

    typer.echo(f"{'rung':<12}{'dim':>6}{'layers':>7}{'heads':>6}{'kv':>4}{'ffn':>7}"
               f"{'params':>14}{'non-emb':>14}{'FLOPs/tok':>12}{'lr':>10}{'batch':>7}")
    for name in lad.LADDER:
        cfg = lad.model_config(name, vocab_size, seq_len)
        total, nonembed = lad.param_counts(cfg)
        typer.echo(f"{name:<12}{cfg.dim:>6}{cfg.n_layers:>7}{cfg.n_heads:>6}{cfg.n_kv_heads:>4}{cfg.ffn_dim:>7}"
                   f"{total:>14,}{nonembed:>14,}{lad.train_flops_per_token(cfg, seq_len):>12.3g}"
                   f"{lad.default_lr(nonembed):>10.2e}{lad.default_batch_size(nonembed, seq_len):>7}")


@app.command("train")
def train_cmd(
    out: Path = typer.Argument(..., help="Run folder (created; running the same command again resumes it)."),
    data: List[str] = typer.Option(..., "--data", help="NAME=SHARD_PREFIX[,PREFIX...] token shards of a source "
                                                       "(repeatable)."),
    tokens: int = typer.Option(..., "--tokens", help="Token budget of the run."),
    weight: Optional[List[str]] = typer.Option(None, "--weight", help="NAME=FRACTION of training tokens (default: "
                                                                      "equal)."),
    model: str = typer.Option("cpu-micro", "--model", help="Ladder rung (see `synthscale ladder`)."),
    hf_config: Optional[Path] = typer.Option(None, "--hf-config", help="Take the model shape from this HF Llama "
                                                                       "folder (fresh weights)."),
    init_from_hf: Optional[Path] = typer.Option(None, "--init-from-hf", help="Continue from this HF Llama folder's "
                                                                             "weights (and shape)."),
    seq_len: int = typer.Option(128, "--seq-len", help="Tokens per training sequence (the context length)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Global sequences per step (default: ladder "
                                                                        "rule)."),
    grad_accum: int = typer.Option(1, "--grad-accum", help="Micro-batches per rank and step."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Peak learning rate (default: ladder rule)."),
    warmup_frac: Optional[float] = typer.Option(None, "--warmup-frac", help="Warmup steps as a fraction of the run "
                                                "(default: 0.05, as in a study)."),
    schedule: str = typer.Option("cosine", "--schedule", help="cosine | wsd"),
    budget: Optional[List[int]] = typer.Option(None, "--budget", help="wsd: extra budget read off by a decay branch "
                                                                      "(repeatable)."),
    decay_frac: float = typer.Option(0.2, "--decay-frac", help="wsd: decay length as a fraction of each budget."),
    checkpoint_every: int = typer.Option(0, "--checkpoint-every", help="Save a resumable state every N steps (0 = "
                                                                       "never)."),
    eval_set: Optional[List[str]] = typer.Option(None, "--eval-set", help="NAME=PATH of a saved eval set "
                                                                          "(repeatable)."),
    eval_batch_size: int = typer.Option(16, "--eval-batch-size", help="Eval windows per forward pass."),
    seed: int = typer.Option(0, "--seed", help="Seed of the weights and of the data order."),
    threads: int = typer.Option(0, "--threads", help="torch threads per process (0 = torch default)."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu | cuda (default: cuda when available)."),
    dtype: str = typer.Option("float32", "--dtype", help="float32 | bfloat16 (autocast)."),
    compile: str = typer.Option("auto", "--compile", help="torch.compile: auto (on for CUDA; on CPU only for runs of "
                                                          "2+ minutes, where it pays) | true | false."),
    nproc: int = typer.Option(1, "--nproc", help="Processes (torchrun underneath when > 1; gloo on CPU, nccl on GPU)."),
    parallel: str = typer.Option("ddp", "--parallel", help="ddp | fsdp (FSDP2 fully_shard, for large rungs)."),
    no_progress: bool = typer.Option(False, "--no-progress", help="No progress bar."),
) -> None:
    """Train one model on a mixture of token shards (resumable; several processes with --nproc).

    The run folder gets the same config.json, status.json, run.log and eval.json as a study's
    runs (docs/study.md); batch size and learning rate default to the ladder rules for the
    model's size, warmup to 5% of the run.
    """
    from ..study.train_run import train_command

    _echo_json(train_command(
        str(out), data=list(data), weights=list(weight or []), model=model,
        hf_config=str(hf_config) if hf_config else None, init_from_hf=str(init_from_hf) if init_from_hf else None,
        eval_sets=list(eval_set or []), eval_batch_size=eval_batch_size, nproc=nproc, progress=not no_progress,
        tokens=tokens, seq_len=seq_len, batch_size=batch_size, grad_accum=grad_accum, lr=lr,
        **({"warmup_frac": warmup_frac} if warmup_frac is not None else {}),
        schedule=schedule, budgets=tuple(budget or ()), decay_frac=decay_frac, checkpoint_every=checkpoint_every,
        seed=seed, threads=threads, **({"device": device} if device else {}), dtype=dtype,
        compile=compile if compile == "auto" else compile in ("true", "on", "1"), parallel=parallel))


@app.command("export")
def export_cmd(
    run: Path = typer.Argument(..., help="A run folder (checkpoints/final.safetensors) or a .safetensors checkpoint."),
    hf: Path = typer.Option(..., "--hf", help="Folder for the Hugging Face LlamaForCausalLM export."),
    tokenizer: Optional[Path] = typer.Option(None, "--tokenizer", help="Tokenizer the model was trained with "
                                                                       "(default: the run's config.json "
                                                                       "data.tokenizer)."),
) -> None:
    """Export a run as a Hugging Face LlamaForCausalLM folder (transformers, vLLM, lm-eval can load it).

    Example: synthscale export demo_out/study/runs/RUN_ID --hf exported/
    """
    from ..model.hf import export_hf_command

    _echo_json(export_hf_command(str(run), str(hf), str(tokenizer) if tokenizer else None))
