"""model/: the Llama decoder (llama.py) and the size ladder (ladder.py)."""

from __future__ import annotations

import math

import pytest
import torch

from synthscale.errors import ConfigError
from synthscale.model import (
    LADDER,
    Llama,
    ModelConfig,
    default_batch_size,
    default_batch_tokens,
    default_lr,
    flops_6n_per_token,
    get_rung,
    model_config,
    param_counts,
    train_flops_per_token,
)
from synthscale.model.ladder import MAX_DEFAULT_LR, MIN_BATCH_TOKENS, MIN_STEPS
from synthscale.model.llama import LOSS_CHUNK_ELEMENTS
from synthscale.train.config import have_cpp_compiler


def tiny_config(**overrides) -> ModelConfig:
    fields = dict(vocab_size=97, dim=48, n_layers=2, n_heads=6, n_kv_heads=2, ffn_dim=80, max_seq_len=32)
    fields.update(overrides)
    return ModelConfig(**fields)


def numel(model: torch.nn.Module, exclude: tuple[str, ...] = ()) -> int:
    return sum(p.numel() for name, p in model.named_parameters() if name not in exclude)


# --- parameter and FLOP counts -------------------------------------------------------


@pytest.mark.parametrize("name", list(LADDER))
def test_param_counts_match_a_built_model_for_every_rung(name):
    cfg = model_config(name, vocab_size=4096, seq_len=128)
    with torch.device("meta"):  # shapes only: no memory, no init
        model = Llama(cfg)
    total, nonembedding = param_counts(cfg)
    assert total == numel(model)
    assert nonembedding == numel(model, exclude=("embed_tokens.weight", "lm_head.weight"))


def test_param_counts_count_a_tied_embedding_once():
    untied, tied = tiny_config(), tiny_config(tie_embeddings=True)
    assert param_counts(tied)[0] == numel(Llama(tied))
    assert param_counts(untied)[0] - param_counts(tied)[0] == 97 * 48
    assert param_counts(untied)[1] == param_counts(tied)[1]


def test_paper_rungs_are_near_their_names_in_nonembedding_params():
    for name, target in {"100M": 1e8, "300M": 3e8, "500M": 5e8, "1B": 1e9, "2B": 2e9, "3B": 3e9}.items():
        n = param_counts(model_config(name, vocab_size=128256, seq_len=2048))[1]
        assert abs(n / target - 1) < 0.1, (name, n)


def test_cpu_rungs_grow_by_about_4x():
    sizes = [param_counts(model_config(n, 4096, 128))[1] for n in ("cpu-nano", "cpu-micro", "cpu-mini", "cpu-small")]
    assert sizes == sorted(sizes)
    assert all(3 < b / a < 7 for a, b in zip(sizes, sizes[1:]))


def test_train_flops_per_token_follows_the_documented_formula():
    cfg = tiny_config()  # head_dim 8, kv width 16
    per_layer = 48 * 48 + 2 * 48 * 16 + 48 * 48 + 3 * 48 * 80
    n_matmul = 2 * per_layer + 97 * 48
    assert train_flops_per_token(cfg, seq_len=32) == 6 * n_matmul + 6 * 2 * 32 * 48
    assert flops_6n_per_token(cfg) == 6 * param_counts(cfg)[1]


def test_unknown_rung_names_the_known_ones():
    with pytest.raises(ConfigError, match="cpu-micro"):
        get_rung("cpu-giant")


# --- default hyper-parameter rules -----------------------------------------------------


def test_default_lr_follows_the_olmo_rule_scaled_by_batch_and_capped():
    assert default_lr(8 * 108_000_000) == pytest.approx(0.0047 / 2)
    assert default_lr(64 * 108_000_000) == pytest.approx(0.0047 / 4)
    assert default_lr(64 * 108_000_000, batch_tokens=16 * 160 * 2048 // 4) == pytest.approx(0.0047 / 8)
    assert default_lr(108_000_000) == default_lr(1000) == MAX_DEFAULT_LR
    with pytest.raises(ConfigError, match="n_nonembedding"):
        default_lr(0)


def test_default_batch_follows_the_olmo_rule_with_a_step_minimum_and_a_floor():
    assert default_batch_tokens(108_000_000) == 160 * 2048
    assert default_batch_tokens(8 * 108_000_000) == 4 * 160 * 2048
    assert default_batch_tokens(108_000_000, tokens=MIN_STEPS * 4096) == 4096  # keeps MIN_STEPS steps
    assert default_batch_tokens(108_000_000, tokens=10**12) == 160 * 2048
    assert default_batch_tokens(1000) == MIN_BATCH_TOKENS
    assert default_batch_size(108_000_000, seq_len=2048) == 160
    assert default_batch_size(600_000, seq_len=128, tokens=400_000) == 16  # 2000 tokens -> 15.6 sequences


# --- the model -------------------------------------------------------------------------


def test_config_validation_names_the_field():
    with pytest.raises(ConfigError, match="n_kv_heads"):
        tiny_config(n_kv_heads=4)  # 6 heads do not split into 4 groups
    with pytest.raises(ConfigError, match="dim"):
        tiny_config(dim=50)
    with pytest.raises(ConfigError, match="unknown field"):
        ModelConfig.from_dict({**tiny_config().to_dict(), "n_experts": 8})
    assert ModelConfig.from_dict(tiny_config().to_dict()) == tiny_config()


def test_changing_a_future_token_leaves_past_logits_unchanged():
    model = Llama(tiny_config(), seed=0).eval()
    tokens = torch.randint(0, 97, (2, 32), generator=torch.Generator().manual_seed(0))
    changed = tokens.clone()
    changed[:, 20] = (changed[:, 20] + 1) % 97
    with torch.no_grad():
        before, after = model(tokens)[0], model(changed)[0]
    torch.testing.assert_close(before[:, :20], after[:, :20], rtol=0, atol=1e-6)
    assert not torch.allclose(before[:, 20:], after[:, 20:])


def test_grouped_query_attention_shapes():
    model = Llama(tiny_config())
    attn = model.layers[0].self_attn
    assert attn.q_proj.weight.shape == (6 * 8, 48)
    assert attn.k_proj.weight.shape == (2 * 8, 48)
    assert attn.v_proj.weight.shape == (2 * 8, 48)
    assert attn.o_proj.weight.shape == (48, 6 * 8)
    logits, loss = model(torch.zeros(3, 5, dtype=torch.long))
    assert logits.shape == (3, 5, 97) and loss is None


def test_tied_embeddings_share_storage():
    model = Llama(tiny_config(tie_embeddings=True))
    assert model.lm_head.weight is model.embed_tokens.weight
    assert model.lm_head.weight.data_ptr() == model.embed_tokens.weight.data_ptr()
    assert model.lm_head.weight.data_ptr() != Llama(tiny_config()).embed_tokens.weight.data_ptr()


def test_untrained_loss_is_about_ln_vocab():
    cfg = tiny_config(vocab_size=512)
    tokens = torch.randint(0, 512, (4, 33), generator=torch.Generator().manual_seed(0))
    _, loss = Llama(cfg, seed=3)(tokens[:, :-1], tokens[:, 1:])
    assert abs(loss.item() - math.log(512)) < 0.05


def test_init_is_deterministic_by_seed_and_scales_residual_projections():
    a, b, c = Llama(tiny_config(), seed=7), Llama(tiny_config(), seed=7), Llama(tiny_config(), seed=8)
    for (name, pa), pb, pc in zip(a.state_dict().items(), b.state_dict().values(), c.state_dict().values()):
        assert torch.equal(pa, pb), name
        if pa.ndim == 2:
            assert not torch.equal(pa, pc), name
    big = Llama(tiny_config(dim=240, n_heads=6, ffn_dim=960, n_layers=8), seed=0)
    assert big.layers[0].mlp.up_proj.weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert big.layers[0].mlp.down_proj.weight.std().item() == pytest.approx(0.02 / 4, rel=0.05)
    assert torch.equal(big.norm.weight, torch.ones(240))


def test_sequence_longer_than_the_context_is_refused():
    with pytest.raises(ValueError, match="max_seq_len"):
        Llama(tiny_config())(torch.zeros(1, 33, dtype=torch.long))


@pytest.mark.parametrize("tie", [False, True])
def test_logits_match_hugging_face_llama_after_renaming_only(tie):
    transformers = pytest.importorskip("transformers")
    cfg = tiny_config(rope_theta=500000.0, tie_embeddings=tie)
    ours = Llama(cfg, seed=1).eval()
    hf = transformers.LlamaForCausalLM(
        transformers.LlamaConfig(
            vocab_size=cfg.vocab_size,
            hidden_size=cfg.dim,
            intermediate_size=cfg.ffn_dim,
            num_hidden_layers=cfg.n_layers,
            num_attention_heads=cfg.n_heads,
            num_key_value_heads=cfg.n_kv_heads,
            max_position_embeddings=cfg.max_seq_len,
            rms_norm_eps=cfg.norm_eps,
            rope_theta=cfg.rope_theta,
            tie_word_embeddings=cfg.tie_embeddings,
        )
    ).eval()
    renamed = {(k if k == "lm_head.weight" else f"model.{k}"): v for k, v in ours.state_dict().items()}
    missing, unexpected = hf.load_state_dict(renamed, strict=False)
    assert not missing and not unexpected
    tokens = torch.randint(0, cfg.vocab_size, (2, 32), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(ours(tokens)[0], hf(tokens).logits, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("tie", [False, True])
def test_fused_chunked_loss_matches_full_logits_loss_and_gradients(tie, monkeypatch):
    monkeypatch.setitem(LOSS_CHUNK_ELEMENTS, "cpu", 97 * 13)  # 13-row chunks, the last one short
    cfg = tiny_config(tie_embeddings=tie)
    tokens = torch.randint(0, 97, (3, 33), generator=torch.Generator().manual_seed(0))
    grads = []
    for return_logits in (True, False):
        model = Llama(cfg, seed=0)
        logits, loss = model(tokens[:, :-1], tokens[:, 1:], return_logits=return_logits)
        assert (logits is None) == (not return_logits)
        loss.backward()
        grads.append((loss.detach(), {n: p.grad for n, p in model.named_parameters()}))
    (full_loss, full), (fused_loss, fused) = grads
    torch.testing.assert_close(fused_loss, full_loss, rtol=1e-6, atol=1e-6)
    for name in full:
        torch.testing.assert_close(fused[name], full[name], rtol=1e-5, atol=1e-7, msg=name)


def test_fused_loss_without_grad_mode_matches_the_plain_loss():
    model = Llama(tiny_config(), seed=0).eval()
    tokens = torch.randint(0, 97, (2, 33), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        plain = model(tokens[:, :-1], tokens[:, 1:])[1]
        fused = model(tokens[:, :-1], tokens[:, 1:], return_logits=False)[1]
    torch.testing.assert_close(fused, plain, rtol=1e-6, atol=1e-6)


@pytest.mark.skipif(not have_cpp_compiler(), reason="inductor needs a C++ compiler for CPU kernels")
def test_compiled_training_parts_give_the_eager_loss_and_gradients(monkeypatch):
    """compile_for_training (blocks, final norm, per-chunk fused loss under inductor) changes speed, not math."""
    monkeypatch.setitem(LOSS_CHUNK_ELEMENTS, "cpu", 97 * 32)  # two 32-row chunks per batch
    cfg = tiny_config()
    tokens = torch.randint(0, 97, (2, 33), generator=torch.Generator().manual_seed(2))
    results = []
    for compiled in (False, True):
        model = Llama(cfg, seed=0).train()
        if compiled:
            model.compile_for_training()
        _, loss = model(tokens[:, :-1], tokens[:, 1:], return_logits=False)
        loss.backward()
        with torch.no_grad():
            eval_loss = model(tokens[:, :-1], tokens[:, 1:], return_logits=False)[1]
        results.append((loss.detach(), eval_loss, {n: p.grad for n, p in model.named_parameters()}))
    (loss, eval_loss, grads), (c_loss, c_eval_loss, c_grads) = results
    assert c_grads.keys() == grads.keys()
    torch.testing.assert_close(c_loss, loss, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(c_eval_loss, eval_loss, rtol=1e-5, atol=1e-6)
    for name in grads:
        torch.testing.assert_close(c_grads[name], grads[name], rtol=1e-4, atol=1e-6, msg=name)
