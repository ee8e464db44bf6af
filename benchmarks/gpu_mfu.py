"""Model FLOPs utilisation of our trainer on one GPU: bf16 autocast, torch.compile, fused AdamW.

Trains each rung through ``synthscale.train.train`` on random token windows and reports
steady-state tokens/s (log windows after the first ``--warmup-steps`` steps, which pay
the compile) and MFU = tokens/s * FLOPs per token / the device's dense bf16 peak. FLOPs
per token are ``train_flops_per_token`` (every matmul, head and causal attention
included); ``mfu_6n`` uses the C = 6ND convention (non-embedding parameters only).

The peak comes from the device name (H100/H200 SXM 989 TFLOP/s, H100 PCIe 756, A100 312,
L40S 362) or ``--peak-tflops``. One JSON line per rung.

    PYTHONPATH=src python benchmarks/gpu_mfu.py                       # 100M and 300M rungs on cuda
    PYTHONPATH=src python benchmarks/gpu_mfu.py --rungs 100M --batch-size 32 --seq-len 2048
    PYTHONPATH=src python benchmarks/gpu_mfu.py --device cpu --dtype float32 --rungs cpu-nano \\
        --seq-len 128 --batch-size 8 --steps 12 --warmup-steps 4 --peak-tflops 0.08   # a smoke run on CPU
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile

import numpy as np
import torch

from synthscale.model.ladder import model_config, param_counts, train_flops_per_token
from synthscale.train import TrainConfig, train

# Dense (no sparsity) bf16 tensor-core peaks, FLOP/s, by a substring of the device name.
BF16_PEAK_FLOPS = {"H200": 989e12, "H100 PCIe": 756e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12}


def device_peak(device: str, override_tflops: float | None) -> tuple[str, float]:
    """(device name, dense bf16 peak FLOP/s) from ``--peak-tflops`` or the CUDA device name."""
    name = torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda") else "cpu"
    if override_tflops:
        return name, override_tflops * 1e12
    for key, peak in BF16_PEAK_FLOPS.items():
        if key in name:
            return name, peak
    raise SystemExit(f"unknown peak for device {name!r}: pass --peak-tflops")


def random_batches(batch_size: int, seq_len: int, vocab: int, seed: int = 0):
    """Uniform random token windows (throughput does not depend on the data)."""
    rng = np.random.default_rng(seed)
    while True:
        yield rng.integers(0, vocab, size=(batch_size, seq_len + 1), dtype=np.int64)


def measure(rung: str, args: argparse.Namespace, peak: float) -> dict:
    """Train ``rung`` for ``args.steps`` steps; steady tokens/s and MFU."""
    cfg = model_config(rung, vocab_size=args.vocab, seq_len=args.seq_len)
    tcfg = TrainConfig(tokens=args.steps * args.batch_size * args.seq_len, seq_len=args.seq_len,
                       batch_size=args.batch_size, grad_accum=args.grad_accum, lr=3e-4, warmup_steps=1,
                       log_every=args.log_every, device=args.device, dtype=args.dtype,
                       compile={"on": True, "off": False}.get(args.compile, "auto"))
    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    with tempfile.TemporaryDirectory() as run_dir:
        summary = train(cfg, tcfg, random_batches(args.batch_size, args.seq_len, cfg.vocab_size), run_dir,
                        progress=False)
        with open(os.path.join(run_dir, "metrics.jsonl")) as f:
            records = [json.loads(line) for line in f]
    steady = [r["tokens_per_s"] for r in records if r["step"] - args.log_every >= args.warmup_steps]
    if not steady:
        raise SystemExit("no log window after the warm-up: raise --steps or lower --warmup-steps")
    tokens_per_s = statistics.median(steady)
    flops_per_token = train_flops_per_token(cfg, args.seq_len)
    total, nonembedding = param_counts(cfg)
    return {
        "figure": "gpu_mfu", "rung": rung, "device": args.device, "dtype": args.dtype,
        "compiled": summary.compiled, "params_total": total, "params_nonembedding": nonembedding,
        "vocab": args.vocab, "seq_len": args.seq_len, "batch_size": args.batch_size,
        "grad_accum": args.grad_accum, "windows_measured": len(steady),
        "tokens_per_s": round(tokens_per_s), "flops_per_token": flops_per_token,
        "achieved_flops_per_s": round(tokens_per_s * flops_per_token), "peak_flops_per_s": peak,
        "mfu": round(tokens_per_s * flops_per_token / peak, 4),
        "mfu_6n": round(tokens_per_s * 6 * nonembedding / peak, 4),
        "max_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2)
        if args.device.startswith("cuda") else None,
        "final_loss": summary.final_loss,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rungs", default="100M,300M", help="comma-separated ladder rungs")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    parser.add_argument("--compile", default="on", choices=["on", "off", "auto"])
    parser.add_argument("--vocab", type=int, default=32768)
    parser.add_argument("--seq-len", type=int, default=2048)
    parser.add_argument("--batch-size", type=int, default=16, help="sequences per optimizer step")
    parser.add_argument("--grad-accum", type=int, default=1)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--warmup-steps", type=int, default=20, help="steps left out (compile, warm-up)")
    parser.add_argument("--log-every", type=int, default=5, help="steps per timed window (one host sync each)")
    parser.add_argument("--peak-tflops", type=float, default=None, help="dense bf16 peak, when not known by name")
    args = parser.parse_args()
    name, peak = device_peak(args.device, args.peak_tflops)
    for rung in args.rungs.split(","):
        row = measure(rung, args, peak)
        row["device_name"] = name
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
