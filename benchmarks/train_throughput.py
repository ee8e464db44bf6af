"""Training throughput: our trainer against Hugging Face LlamaForCausalLM, side by side, same shapes.

For each rung, three trainers train the same model shape (vocab, width, depth, heads,
context, batch) on random batches, in float32, with the same thread count:

- ours: ``synthscale.train.train`` as a long run trains (``compile="auto"`` compiles on
  CPU once a run is long enough, see TrainConfig.resolved_compile): compiled blocks,
  final norm and fused chunked head + loss, fused AdamW, no per-step host sync;
- ours_eager: the same without torch.compile, as a short run trains;
- hf: ``transformers.LlamaForCausalLM`` (SDPA attention) in a plain torch loop:
  logits, ``F.cross_entropy``, backward, clip, ``torch.optim.AdamW`` (its default
  implementation), zero_grad.

They alternate in rounds (ours, ours_eager, hf, ours, ...) so that other load on the
machine hits all alike; a rate is the median of per-step rates after each round's first
two steps (compile and warm-up). The script also measures the machine's fp32 matmul
FLOP/s with the same threads. Prints one JSON line per rung and per matmul measurement;
the last line is the summary for the largest rung: ``ours_tokens_per_s``,
``hf_tokens_per_s``, ``ratio``, ``fraction_of_matmul_peak`` (and the eager figures).

The default shapes are those of examples/real_corpora.yaml (BPE-4096, 128-token
context; 16 sequences a step is within the 8-40 its ladder rule picks) on the two rungs
the CPU studies train. docs/training.md has the other rungs.

    PYTHONPATH=src python benchmarks/train_throughput.py
    PYTHONPATH=src python benchmarks/train_throughput.py --rungs cpu-mini,cpu-small --rounds 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F

from synthscale.model.hf import hf_config
from synthscale.model.ladder import model_config, param_counts, train_flops_per_token
from synthscale.train import TrainConfig, train
from synthscale.train.config import have_cpp_compiler


def random_batches(batch_size: int, seq_len: int, vocab: int, seed: int = 0):
    """Uniform random token windows (throughput does not depend on the data)."""
    rng = np.random.default_rng(seed)
    while True:
        yield rng.integers(0, vocab, size=(batch_size, seq_len + 1), dtype=np.int64)


def ours_step_rates(cfg, args, steps: int, compile: bool) -> list[float]:
    """tokens/s of each step of a train() run of ``steps`` steps."""
    tcfg = TrainConfig(tokens=steps * args.batch_size * args.seq_len, seq_len=args.seq_len,
                       batch_size=args.batch_size, lr=1e-3, warmup_steps=1, log_every=1, threads=args.threads,
                       compile=compile)
    with tempfile.TemporaryDirectory() as run_dir:
        train(cfg, tcfg, random_batches(args.batch_size, args.seq_len, cfg.vocab_size), run_dir, progress=False)
        with open(os.path.join(run_dir, "metrics.jsonl")) as f:
            return [json.loads(line)["tokens_per_s"] for line in f]


class HFTrainer:
    """LlamaForCausalLM of the same shape, trained with a plain torch loop."""

    def __init__(self, cfg, args):
        import transformers

        config = transformers.LlamaConfig(**{k: v for k, v in hf_config(cfg).items() if k != "architectures"})
        config._attn_implementation = "sdpa"
        torch.manual_seed(0)
        self.model = transformers.LlamaForCausalLM(config).train()
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1)
        self.data = random_batches(args.batch_size, args.seq_len, cfg.vocab_size, seed=1)
        self.tokens_per_step = args.batch_size * args.seq_len

    def step_rates(self, steps: int) -> list[float]:
        rates = []
        for _ in range(steps):
            batch = torch.from_numpy(next(self.data))
            start = time.perf_counter()
            logits = self.model(input_ids=batch[:, :-1]).logits
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), batch[:, 1:].reshape(-1))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            rates.append(self.tokens_per_step / (time.perf_counter() - start))
        return rates


def measure_rung(rung: str, args: argparse.Namespace) -> dict:
    """Alternate rounds of ours, ours_eager and HF on ``rung``; median steady per-step rates."""
    cfg = model_config(rung, vocab_size=args.vocab, seq_len=args.seq_len)
    hf = HFTrainer(cfg, args)
    rates: dict[str, list[float]] = {"ours": [], "ours_eager": [], "hf": []}
    round_ratios = []  # median ours / median hf of each round: the spread the machine's noise gives
    first_compile_s = None
    for _ in range(args.rounds):
        start = time.perf_counter()
        # without a C++ compiler inductor cannot build CPU kernels and a long run trains eager too
        compiled = ours_step_rates(cfg, args, args.steps, compile=have_cpp_compiler())
        if first_compile_s is None:  # the first step of the first round pays the compile
            first_compile_s = round(time.perf_counter() - start - sum(args.batch_size * args.seq_len / r
                                                                     for r in compiled[1:]), 1)
        rates["ours"] += compiled[2:]
        rates["ours_eager"] += ours_step_rates(cfg, args, args.steps, compile=False)[2:]
        hf_rates = hf.step_rates(args.steps)[2:]
        rates["hf"] += hf_rates
        round_ratios.append(round(statistics.median(compiled[2:]) / statistics.median(hf_rates), 3))
    flops_per_token = train_flops_per_token(cfg, args.seq_len)
    total, nonembedding = param_counts(cfg)
    ours, eager, theirs = (statistics.median(rates[k]) for k in ("ours", "ours_eager", "hf"))
    return {
        "figure": "train_throughput_vs_hf",
        "rung": rung,
        "params_nonembedding": nonembedding,
        "params_total": total,
        "vocab": args.vocab,
        "seq_len": args.seq_len,
        "batch_size": args.batch_size,
        "threads": args.threads,
        "dtype": "float32",
        "steps_measured": len(rates["ours"]),
        "ours_tokens_per_s": round(ours),
        "ours_eager_tokens_per_s": round(eager),
        "hf_tokens_per_s": round(theirs),
        "ratio": round(ours / theirs, 3),
        "ratio_eager": round(eager / theirs, 3),
        "ratio_by_round": round_ratios,
        "compiled": have_cpp_compiler(),
        "first_compile_s": first_compile_s,
        "flops_per_token": flops_per_token,
        "ours_flops_per_s": round(ours * flops_per_token),
        "ours_eager_flops_per_s": round(eager * flops_per_token),
        "hf_flops_per_s": round(theirs * flops_per_token),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


def matmul_flops(threads: int, sizes: tuple[int, ...] = (256, 512, 1024, 2048), seconds: float = 1.0) -> dict:
    """Best fp32 matmul FLOP/s over square sizes, with ``threads`` torch threads."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    by_size = {}
    try:
        for n in sizes:
            a, b = torch.randn(n, n), torch.randn(n, n)
            a @ b  # warm up
            count, start = 0, time.perf_counter()
            while time.perf_counter() - start < seconds:
                a @ b
                count += 1
            by_size[str(n)] = round(2 * n**3 * count / (time.perf_counter() - start))
    finally:
        torch.set_num_threads(previous)
    return {"figure": "fp32_matmul", "threads": threads, "flops_per_s": max(by_size.values()), "by_size": by_size,
            "load_avg_1m": round(os.getloadavg()[0], 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rungs", default="cpu-nano,cpu-micro", help="comma-separated ladder rungs, smallest first")
    parser.add_argument("--vocab", type=int, default=4096)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16, help="sequences per optimizer step")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 = one process per core)")
    parser.add_argument("--steps", type=int, default=12, help="steps per round and trainer")
    parser.add_argument("--rounds", type=int, default=6, help="alternating rounds of the three trainers")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    peak_before = matmul_flops(args.threads)
    print(json.dumps(peak_before), flush=True)
    rows = []
    for rung in args.rungs.split(","):
        rows.append(measure_rung(rung, args))
        print(json.dumps(rows[-1]), flush=True)
    peak_after = matmul_flops(args.threads)
    print(json.dumps(peak_after), flush=True)
    peak = max(peak_before["flops_per_s"], peak_after["flops_per_s"])
    largest = rows[-1]
    print(json.dumps({
        "figure": "train_throughput_summary",
        "rung": largest["rung"],
        "threads": args.threads,
        "ours_tokens_per_s": largest["ours_tokens_per_s"],
        "hf_tokens_per_s": largest["hf_tokens_per_s"],
        "ratio": largest["ratio"],
        "ours_eager_tokens_per_s": largest["ours_eager_tokens_per_s"],
        "ratio_eager": largest["ratio_eager"],
        "ours_flops_per_s": largest["ours_flops_per_s"],
        "matmul_peak_flops_per_s": peak,
        "fraction_of_matmul_peak": round(largest["ours_flops_per_s"] / peak, 3),
        "eager_fraction_of_matmul_peak": round(largest["ours_eager_flops_per_s"] / peak, 3),
        "hf_fraction_of_matmul_peak": round(largest["hf_flops_per_s"] / peak, 3),
    }), flush=True)


if __name__ == "__main__":
    main()
