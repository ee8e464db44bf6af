"""A Llama-style decoder on one page: RMSNorm, RoPE, SwiGLU, grouped-query attention.

Parameter names follow Hugging Face ``LlamaForCausalLM`` with the ``model.`` prefix
dropped (``embed_tokens``, ``layers.i.self_attn.{q,k,v,o}_proj``, ``layers.i.mlp.
{gate,up,down}_proj``, ``layers.i.{input,post_attention}_layernorm``, ``norm``,
``lm_head``), and RoPE uses the same rotate-half layout as HF Llama, so an HF export
only renames tensors.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from synthscale._io import dataclass_from_dict
from synthscale.errors import ConfigError


@dataclass(frozen=True)
class ModelConfig:
    """Shape of a Llama model. Validated on construction (ConfigError names the field)."""

    vocab_size: int
    dim: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    ffn_dim: int
    max_seq_len: int
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5
    tie_embeddings: bool = False
    init_std: float = 0.02

    def __post_init__(self) -> None:
        for name in ("vocab_size", "dim", "n_layers", "n_heads", "n_kv_heads", "ffn_dim", "max_seq_len"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"ModelConfig.{name}: expected a positive integer, got {value!r}")
        for name in ("rope_theta", "norm_eps", "init_std"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 < value < math.inf:
                raise ConfigError(f"ModelConfig.{name}: expected a positive finite number, got {value!r}")
        if self.dim % self.n_heads:
            raise ConfigError(f"ModelConfig.dim: {self.dim} is not divisible by n_heads={self.n_heads}")
        if self.n_heads % self.n_kv_heads:
            raise ConfigError(
                f"ModelConfig.n_kv_heads: n_heads={self.n_heads} is not divisible by n_kv_heads={self.n_kv_heads}"
            )
        if self.head_dim % 2:
            raise ConfigError(f"ModelConfig.dim: head_dim={self.head_dim} must be even for RoPE")

    @property
    def head_dim(self) -> int:
        """Width of one attention head (dim // n_heads)."""
        return self.dim // self.n_heads

    def to_dict(self) -> dict[str, Any]:
        """All fields as a plain dict (JSON-ready)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelConfig":
        """Build from a dict; unknown or missing fields raise ConfigError."""
        return dataclass_from_dict(cls, d)


class RMSNorm(nn.Module):
    """Root-mean-square layer norm with a learned scale (no bias), computed in float32."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [..., dim] normalised by its root mean square, times the learned scale."""
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x32.to(x.dtype)


def rope_tables(head_dim: int, max_seq_len: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin tables [max_seq_len, head_dim] in HF Llama's rotate-half layout."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))
    angles = torch.outer(torch.arange(max_seq_len, dtype=torch.float32), inv_freq)
    angles = torch.cat((angles, angles), dim=-1)
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate x [B, H, T, D] by position: x * cos + rotate_half(x) * sin."""
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin


class Attention(nn.Module):
    """Causal grouped-query self-attention with RoPE."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_heads, self.n_kv_heads, self.head_dim = cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
        self.q_proj = nn.Linear(cfg.dim, cfg.n_heads * cfg.head_dim, bias=False)
        self.k_proj = nn.Linear(cfg.dim, cfg.n_kv_heads * cfg.head_dim, bias=False)
        self.v_proj = nn.Linear(cfg.dim, cfg.n_kv_heads * cfg.head_dim, bias=False)
        self.o_proj = nn.Linear(cfg.n_heads * cfg.head_dim, cfg.dim, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        """x [B, T, dim] -> attention output [B, T, dim], with RoPE tables cos/sin [T, head_dim]."""
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.n_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        # enable_gqa repeats each kv head for n_heads // n_kv_heads consecutive query heads,
        # the same grouping as HF's repeat_kv.
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=self.n_kv_heads != self.n_heads)
        return self.o_proj(y.transpose(1, 2).reshape(B, T, self.n_heads * self.head_dim))


class MLP(nn.Module):
    """SwiGLU feed-forward: down(silu(gate(x)) * up(x))."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.gate_proj = nn.Linear(cfg.dim, cfg.ffn_dim, bias=False)
        self.up_proj = nn.Linear(cfg.dim, cfg.ffn_dim, bias=False)
        self.down_proj = nn.Linear(cfg.ffn_dim, cfg.dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [..., dim] -> [..., dim]."""
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.self_attn = Attention(cfg)
        self.post_attention_layernorm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.mlp = MLP(cfg)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        """x [B, T, dim] -> [B, T, dim] through attention and MLP, each with its residual."""
        x = x + self.self_attn(self.input_layernorm(x), cos, sin)
        return x + self.mlp(self.post_attention_layernorm(x))


ChunkFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, bool], tuple[torch.Tensor, "torch.Tensor | None"]]


def linear_xent_chunk(
    rows: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, with_grad: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Cross-entropy of the logits ``rows @ weight.T`` [R, V] against ``targets`` [R, 1], all float32.

    Returns (sum of the R row losses, d(that sum)/d(logits) or None). One exp pass serves
    loss and gradient (in place on the fresh logits). ``Llama.compile_for_training``
    swaps in an inductor-compiled copy, which fuses the passes over the chunk.
    """
    logits = rows @ weight.T
    target_logits = logits.gather(1, targets)
    row_max = logits.amax(dim=-1, keepdim=True)
    exp = logits.sub_(row_max).exp_()
    exp_sum = exp.sum(dim=-1, keepdim=True)
    loss_sum = (row_max + exp_sum.log() - target_logits).sum()
    if not with_grad:
        return loss_sum, None
    # d(sum of row losses)/d(logits) = softmax - onehot(target)
    return loss_sum, exp.div_(exp_sum).scatter_add_(1, targets, exp.new_full(targets.shape, -1.0))


class ChunkedLinearCrossEntropy(torch.autograd.Function):
    """Mean cross-entropy of ``x @ weight.T`` against ``targets`` without all the logits.

    Goes through the rows in chunks and computes the loss and both gradients in the
    forward pass (backward only scales them; ``with_grads=False`` skips them, for
    evaluation), so memory holds one chunk of logits at a time. On a CPU this is ~20%
    faster per training step than materialising [B*T, vocab] logits (fresh large
    buffers page-fault on every step). Computed in float32.
    """

    @staticmethod
    def forward(
        ctx, x: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, chunk_rows: int, with_grads: bool,
        chunk_fn: "ChunkFn | None" = None,
    ) -> torch.Tensor:
        """Mean loss over the rows of x [N, dim]; both gradients are computed here and saved for backward."""
        n = x.shape[0]
        chunk_fn = chunk_fn or linear_xent_chunk
        with torch.autocast(x.device.type, enabled=False):
            x32, w32 = x.float(), weight.float()
            grad_x = torch.empty_like(x32) if with_grads and ctx.needs_input_grad[0] else None
            grad_w = torch.zeros_like(w32) if with_grads and ctx.needs_input_grad[1] else None
            total = x32.new_zeros(())
            for start in range(0, n, chunk_rows):
                rows, tgt = x32[start : start + chunk_rows], targets[start : start + chunk_rows, None]
                loss_sum, dlogits = chunk_fn(rows, w32, tgt, grad_x is not None or grad_w is not None)
                total += loss_sum
                if grad_x is not None:
                    torch.mm(dlogits, w32, out=grad_x[start : start + chunk_rows])
                if grad_w is not None:
                    grad_w.addmm_(dlogits.T, rows)
        ctx.save_for_backward(grad_x, grad_w)
        ctx.n, ctx.dtypes = n, (x.dtype, weight.dtype)
        return total / n

    @staticmethod
    def backward(ctx, grad_loss: torch.Tensor):
        """The saved gradients scaled by grad_loss / N, in the inputs' dtypes."""
        grad_x, grad_w = ctx.saved_tensors
        scale = grad_loss / ctx.n
        grad_x = None if grad_x is None else (grad_x * scale).to(ctx.dtypes[0])
        grad_w = None if grad_w is None else (grad_w * scale).to(ctx.dtypes[1])
        return grad_x, grad_w, None, None, None, None


# Logits elements per chunk of the fused loss, by device type: 4 MiB of float32 stays in
# a CPU's cache (measured best of 2^16..2^22); 512 MiB keeps GPU matmuls large.
LOSS_CHUNK_ELEMENTS = {"cpu": 1 << 20, "default": 1 << 27}

# Projections that write into the residual stream get std / sqrt(2 * n_layers) (GPT-2 style).
RESIDUAL_PROJECTIONS = ("self_attn.o_proj.weight", "mlp.down_proj.weight")


class Llama(nn.Module):
    """Decoder-only Llama. ``Llama(cfg, seed)`` is initialised deterministically from ``seed``.

    Built on the meta device it has shapes only (every initialising op is a no-op there);
    after ``to_empty``, ``init_weights(seed)`` gives it the weights of ``Llama(cfg, seed)``.
    """

    def __init__(self, cfg: ModelConfig, seed: int = 0):
        super().__init__()
        self.cfg = cfg
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.dim)
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.lm_head = nn.Linear(cfg.dim, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.embed_tokens.weight
        # filled by init_rope (part of init_weights)
        self.register_buffer("rope_cos", torch.empty(cfg.max_seq_len, cfg.head_dim), persistent=False)
        self.register_buffer("rope_sin", torch.empty(cfg.max_seq_len, cfg.head_dim), persistent=False)
        self.loss_chunk_fn: ChunkFn = linear_xent_chunk
        self.init_weights(seed)

    def compile_for_training(self) -> None:
        """torch.compile the parts of a training step that gain from it, in place.

        Each transformer block (all blocks share one compiled graph: their code and shapes
        are the same), the final norm, and the per-chunk loss of the fused head, whose
        passes over a logits chunk inductor fuses. The chunk loop, the embedding and the
        optimizer stay eager. Shapes are static (one compile per batch shape).
        """
        for block in self.layers:
            block.compile(dynamic=False)
        self.norm.compile(dynamic=False)
        self.loss_chunk_fn = torch.compile(linear_xent_chunk, dynamic=False)

    @torch.no_grad()
    def init_weights(self, seed: int) -> None:
        """Normal(0, init_std) weights, residual projections scaled, norms at 1 (``fresh_weights``); RoPE tables."""
        self.init_rope()
        params = dict(self.named_parameters())
        for name, weight in self.fresh_weights(seed):
            params[name].copy_(weight)

    @torch.no_grad()
    def init_rope(self) -> None:
        """Fill the RoPE cos/sin tables (buffers, not saved in checkpoints)."""
        cos, sin = rope_tables(self.cfg.head_dim, self.cfg.max_seq_len, self.cfg.rope_theta)
        self.rope_cos.copy_(cos)
        self.rope_sin.copy_(sin)

    def fresh_weights(self, seed: int) -> Iterator[tuple[str, torch.Tensor]]:
        """(name, full float32 CPU tensor) of every parameter's initial value, in parameter order.

        Drawn from a private generator seeded with ``seed``, so the weights depend only
        on (cfg, seed), not on the global RNG, the device or how parameters are stored.
        A tied head is listed once (as the embedding).
        """
        gen = torch.Generator(device="cpu").manual_seed(seed)
        residual_std = self.cfg.init_std / math.sqrt(2 * self.cfg.n_layers)
        for name, p in self.named_parameters():
            if p.ndim == 1:
                yield name, torch.ones(p.shape)
                continue
            std = residual_std if name.endswith(RESIDUAL_PROJECTIONS) else self.cfg.init_std
            yield name, torch.randn(p.shape, generator=gen, dtype=torch.float32).mul_(std)

    def forward(
        self, tokens: torch.Tensor, targets: torch.Tensor | None = None, return_logits: bool = True
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """tokens [B, T] -> (logits [B, T, vocab], mean cross-entropy vs targets [B, T] or None).

        With targets and ``return_logits=False`` the loss comes from the chunked fused
        head + cross-entropy (same value and gradients, less memory, faster) and logits is None.
        """
        T = tokens.shape[1]
        if T > self.cfg.max_seq_len:
            raise ValueError(f"sequence length {T} exceeds max_seq_len={self.cfg.max_seq_len}")
        cos, sin = self.rope_cos[:T], self.rope_sin[:T]
        x = self.embed_tokens(tokens)
        for layer in self.layers:
            x = layer(x, cos, sin)
        x = self.norm(x)
        if targets is not None and not return_logits:
            chunk = LOSS_CHUNK_ELEMENTS.get(x.device.type, LOSS_CHUNK_ELEMENTS["default"])
            chunk_rows = max(1, chunk // self.cfg.vocab_size)
            flat = x.reshape(-1, x.shape[-1])
            loss = ChunkedLinearCrossEntropy.apply(
                flat, self.lm_head.weight, targets.reshape(-1), chunk_rows, torch.is_grad_enabled(),
                self.loss_chunk_fn,
            )
            return None, loss
        logits = self.lm_head(x)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.float().view(-1, logits.shape[-1]), targets.reshape(-1))
        return logits, loss
