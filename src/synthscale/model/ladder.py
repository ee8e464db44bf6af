"""The model size ladder: named shape presets, exact parameter and FLOP counts, and
the default learning-rate and batch rules as functions of model size (warmup is TrainConfig's
warmup_frac, 5% of the run unless set).

Counting conventions (used everywhere in synthscale):

- ``param_counts(cfg) -> (total, nonembedding)``. ``total`` is every trainable
  parameter, a tied embedding counted once. ``nonembedding`` is ``total`` minus the
  input embedding ``embed_tokens`` and minus the output head ``lm_head`` when it is not
  tied; it includes the RMSNorm scales. Scaling laws use ``nonembedding`` as N.
- ``train_flops_per_token(cfg, seq_len) = 6 * N_matmul + 6 * n_layers * seq_len * d_attn``
  where ``N_matmul`` is the number of weights used in matrix multiplies (every
  attention and MLP projection plus ``lm_head``; not the embedding lookup, not the
  norms) and ``d_attn = n_heads * head_dim``. The first term is forward (2 flops a
  weight) plus backward (4). The second is attention: QK^T and AV each cost
  2 * d_attn flops per (query, key) pair, a causal query sees seq_len / 2 keys on
  average, so forward is 2 * seq_len * d_attn per token per layer and training 3x that.
- ``flops_6n_per_token(cfg) = 6 * nonembedding``: the Kaplan et al. ``C = 6 N D``
  convention, for comparison with published laws.
"""

from __future__ import annotations

from dataclasses import dataclass

from synthscale.errors import ConfigError
from synthscale.model.llama import ModelConfig


@dataclass(frozen=True)
class Rung:
    """One named model shape of the ladder (vocabulary and context come from the run)."""

    name: str
    dim: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    ffn_dim: int
    tie_embeddings: bool = False
    rope_theta: float = 10000.0


def _rungs(*rungs: Rung) -> dict[str, Rung]:
    return {r.name: r for r in rungs}


# Non-embedding sizes in comments. CPU rungs are shaped for throughput on a few cores
# (few, wide-enough layers); the paper rungs follow Llama-3 shapes (GQA, head_dim 64/128,
# ffn a multiple of 256), the 1B and 3B being Llama-3.2-1B/3B without tied embeddings.
LADDER: dict[str, Rung] = _rungs(
    Rung("cpu-pico", dim=32, n_layers=2, n_heads=2, n_kv_heads=1, ffn_dim=96),  # 0.025M
    Rung("cpu-nano", dim=64, n_layers=2, n_heads=4, n_kv_heads=2, ffn_dim=192),  # 0.099M
    Rung("cpu-micro", dim=128, n_layers=3, n_heads=4, n_kv_heads=2, ffn_dim=384),  # 0.591M
    Rung("cpu-mini", dim=256, n_layers=3, n_heads=4, n_kv_heads=2, ffn_dim=640),  # 2.07M
    Rung("cpu-small", dim=384, n_layers=5, n_heads=6, n_kv_heads=2, ffn_dim=1024),  # 7.87M
    Rung("100M", dim=768, n_layers=16, n_heads=12, n_kv_heads=4, ffn_dim=2048),  # 100.7M
    Rung("300M", dim=1024, n_layers=24, n_heads=16, n_kv_heads=8, ffn_dim=3072),  # 302.0M
    Rung("500M", dim=1280, n_layers=28, n_heads=20, n_kv_heads=4, ffn_dim=3584),  # 495.5M
    Rung("1B", dim=2048, n_layers=16, n_heads=32, n_kv_heads=8, ffn_dim=8192, rope_theta=500000.0),  # 973.1M
    Rung("2B", dim=2560, n_layers=26, n_heads=20, n_kv_heads=4, ffn_dim=8192, rope_theta=500000.0),  # 2044.8M
    Rung("3B", dim=3072, n_layers=28, n_heads=24, n_kv_heads=8, ffn_dim=8192, rope_theta=500000.0),  # 2818.7M
)


def get_rung(name: str) -> Rung:
    """The rung called ``name``; ConfigError listing the known names otherwise."""
    try:
        return LADDER[name]
    except KeyError:
        raise ConfigError(f"model: unknown ladder rung {name!r} (known: {', '.join(LADDER)})") from None


def model_config(rung: Rung | str, vocab_size: int, seq_len: int, init_std: float = 0.02) -> ModelConfig:
    """The ModelConfig of a rung (or rung name) for a tokenizer and context length."""
    if isinstance(rung, str):
        rung = get_rung(rung)
    return ModelConfig(
        vocab_size=vocab_size,
        dim=rung.dim,
        n_layers=rung.n_layers,
        n_heads=rung.n_heads,
        n_kv_heads=rung.n_kv_heads,
        ffn_dim=rung.ffn_dim,
        max_seq_len=seq_len,
        rope_theta=rung.rope_theta,
        tie_embeddings=rung.tie_embeddings,
        init_std=init_std,
    )


def _matmul_params_per_layer(cfg: ModelConfig) -> int:
    d_attn, d_kv = cfg.n_heads * cfg.head_dim, cfg.n_kv_heads * cfg.head_dim
    attention = cfg.dim * d_attn + 2 * cfg.dim * d_kv + d_attn * cfg.dim
    mlp = 3 * cfg.dim * cfg.ffn_dim
    return attention + mlp


def param_counts(cfg: ModelConfig) -> tuple[int, int]:
    """(total, nonembedding) trainable parameters of a model built from ``cfg``."""
    per_layer = _matmul_params_per_layer(cfg) + 2 * cfg.dim  # + two RMSNorm scales
    nonembedding = cfg.n_layers * per_layer + cfg.dim  # + final norm
    embedding = cfg.vocab_size * cfg.dim
    head = 0 if cfg.tie_embeddings else cfg.vocab_size * cfg.dim
    return nonembedding + embedding + head, nonembedding


def train_flops_per_token(cfg: ModelConfig, seq_len: int) -> int:
    """Training FLOPs per token: 6 * N_matmul + 6 * n_layers * seq_len * d_attn (see module doc)."""
    n_matmul = cfg.n_layers * _matmul_params_per_layer(cfg) + cfg.vocab_size * cfg.dim
    return 6 * n_matmul + 6 * cfg.n_layers * seq_len * cfg.n_heads * cfg.head_dim


def flops_6n_per_token(cfg: ModelConfig) -> int:
    """Training FLOPs per token in the 6N convention (N = nonembedding parameters)."""
    return 6 * param_counts(cfg)[1]


# Default hyper-parameter rules, all in one place. They start from the OLMo / DataDecide
# ladder (allenai/DataDecide: lr = 0.0047 (N / 108M)^(-1/3) at a batch of
# 160 * 2048 * (N / 108M)^(2/3) tokens), with N the nonembedding count, and adapt it to
# tiny budgets: a run gets at least MIN_STEPS steps (small batches are efficient early in
# training), the learning rate follows the batch by the square-root rule (Adam), and it
# is capped at MAX_DEFAULT_LR, which binds below ~400M parameters: on cpu-micro (C4
# sample, BPE-4096, 250k-token budget, 1-2k-token batches) lr 0.0015-0.003 beat 0.006-0.04
# (docs/training.md), where the uncapped rule says 0.006-0.012.
REFERENCE_PARAMS = 108_000_000
MAX_DEFAULT_LR = 0.003
MIN_BATCH_TOKENS = 1024
MIN_STEPS = 200


def reference_batch_tokens(n_nonembedding: int) -> float:
    """The OLMo-ladder batch in tokens: 160 * 2048 * (N / 108M)^(2/3)."""
    _check_positive("n_nonembedding", n_nonembedding)
    return 160 * 2048 * (n_nonembedding / REFERENCE_PARAMS) ** (2 / 3)


def default_batch_tokens(n_nonembedding: int, tokens: int | None = None) -> int:
    """Tokens per optimizer step: the OLMo-ladder batch, at most ``tokens / MIN_STEPS``
    when the budget is given, and at least MIN_BATCH_TOKENS."""
    batch = reference_batch_tokens(n_nonembedding)
    if tokens is not None:
        _check_positive("tokens", tokens)
        batch = min(batch, tokens / MIN_STEPS)
    return max(MIN_BATCH_TOKENS, round(batch))


def default_batch_size(n_nonembedding: int, seq_len: int, tokens: int | None = None) -> int:
    """Sequences per optimizer step: default_batch_tokens / seq_len, rounded, at least 1."""
    _check_positive("seq_len", seq_len)
    return max(1, round(default_batch_tokens(n_nonembedding, tokens) / seq_len))


def default_lr(n_nonembedding: int, batch_tokens: int | None = None) -> float:
    """Peak learning rate: 0.0047 * (N / 108M)^(-1/3), times sqrt(batch_tokens /
    reference_batch_tokens(N)) when the batch is given, at most MAX_DEFAULT_LR."""
    _check_positive("n_nonembedding", n_nonembedding)
    lr = 0.0047 * (n_nonembedding / REFERENCE_PARAMS) ** (-1 / 3)
    if batch_tokens is not None:
        _check_positive("batch_tokens", batch_tokens)
        lr *= (batch_tokens / reference_batch_tokens(n_nonembedding)) ** 0.5
    return min(MAX_DEFAULT_LR, lr)


def _check_positive(name: str, value: int) -> None:
    if not value > 0:
        raise ConfigError(f"{name}: expected a positive number, got {value!r}")
