"""The stored reference run: a 20-step cpu-nano loss curve and final-weights hash that pin synthscale's numbers.

``python tests/assets/reference/reference.py --write`` trains it and rewrites ``curve.json``; do that only in a
commit of its own that says why the numbers moved. ``tests/train/test_train_reference.py`` asserts that a run
of today's code matches the stored file bit for bit on the kind of CPU it was recorded on (the same vector ISA
and the same CPU model: MKL picks its kernels by both, so two AVX512 machines of different makes sum in different
orders); elsewhere the curve is held to float32 rounding.

The run calls the training loop the way every entry point does (a ladder rung's ModelConfig, a TrainConfig with
every setting explicit, the shard through MixtureStream), logging every step, so the reference pins the numerics
(data order, model, init, optimizer, schedule, loss), not the defaults.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SHARD = HERE / "shard"  # shard.bin + shard.json: 12,000 uint16 tokens, vocab 512
CURVE = HERE / "curve.json"
VOCAB, N_TOKENS, SHARD_SEED = 512, 12_000, 20261202
RUNG = "cpu-nano"
SETTINGS = dict(tokens=20 * 4 * 64, seq_len=64, batch_size=4, lr=3e-3, warmup_frac=0.1, schedule="cosine", seed=0,
                threads=1, device="cpu", dtype="float32", compile=False, log_every=1)


def write_shard() -> None:
    """Write the fixed token shard: a noisy mixture of short repeating patterns (learnable, not trivial)."""
    rng = np.random.default_rng(SHARD_SEED)
    patterns = [rng.integers(0, VOCAB - 1, size=int(n)) for n in rng.integers(5, 17, size=24)]
    tokens = np.concatenate([patterns[int(i)] for i in rng.integers(0, len(patterns), size=N_TOKENS)])[:N_TOKENS]
    noise = rng.random(N_TOKENS) < 0.15
    tokens[noise] = rng.integers(0, VOCAB - 1, size=int(noise.sum()))
    bin_path = SHARD.with_name("shard.bin")
    tokens.astype(np.uint16).tofile(bin_path)
    meta = {"format": "synthscale.token_shard/1", "dtype": "uint16", "vocab_size": VOCAB, "eos_id": VOCAB - 1,
            "tokenizer_hash": "reference", "n_tokens": N_TOKENS, "n_docs": 1,
            "sha256": hashlib.sha256(bin_path.read_bytes()).hexdigest(), "source_bytes": N_TOKENS,
            "provenance": {"sources": [], "n_docs": 1}}
    SHARD.with_name("shard.json").write_text(json.dumps(meta, indent=1) + "\n")


def weights_hash(path: Path) -> str:
    """sha256 over every tensor of a safetensors file (name, dtype, shape, bytes) in name order."""
    from safetensors.numpy import load_file

    digest = hashlib.sha256()
    for name, array in sorted(load_file(str(path)).items()):
        digest.update(f"{name}|{array.dtype}|{array.shape}|".encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def cpu_model() -> str:
    """This machine's CPU vendor and model name (/proc/cpuinfo on Linux, else platform.processor())."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor() or "unknown"
    fields = {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in lines) if k.strip()}
    return f"{fields.get('vendor_id', '?')} {fields.get('model name', '?')}"


def run_reference(out: Path) -> dict:
    """Train the reference run into ``out``; return {cpu_capability, cpu_model, settings, curve, weights_sha256}."""
    import torch

    from synthscale.model.ladder import model_config
    from synthscale.tokens import MixtureStream
    from synthscale.train.config import TrainConfig
    from synthscale.train.loop import train

    cfg = TrainConfig(**SETTINGS)
    stream = MixtureStream({"ref": [str(SHARD)]}, {"ref": 1.0}, total_tokens=cfg.tokens, seq_len=cfg.seq_len,
                           seed=cfg.seed)
    train(model_config(RUNG, vocab_size=VOCAB, seq_len=cfg.seq_len), cfg, stream, out, progress=False)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    curve = [{k: r[k] for k in ("step", "tokens", "loss", "lr", "grad_norm")} for r in records]
    return {"cpu_capability": torch.backends.cpu.get_cpu_capability(), "cpu_model": cpu_model(),
            "torch": torch.__version__, "rung": RUNG, "settings": SETTINGS, "curve": curve,
            "weights_sha256": weights_hash(out / "checkpoints" / "final.safetensors")}


def main() -> int:
    """Print the reference run's record; with --write, store it (and the shard, with --shard)."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--write", action="store_true", help="rewrite curve.json")
    parser.add_argument("--shard", action="store_true", help="rewrite the token shard first")
    args = parser.parse_args()
    if args.shard:
        write_shard()
    with tempfile.TemporaryDirectory() as tmp:
        record = run_reference(Path(tmp) / "run")
    text = json.dumps(record, indent=1) + "\n"
    if args.write:
        CURVE.write_text(text)
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
