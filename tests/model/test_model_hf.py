"""model/hf.py: export to a transformers LlamaForCausalLM folder and import back, with equal logits."""

from __future__ import annotations

import json

import pytest
import torch

from synthscale.errors import ConfigError, InputError
from synthscale.model import Llama, ModelConfig
from synthscale.model.hf import export_hf, import_hf_config, load_hf_weights
from synthscale.tokens import load_tokenizer, train_tokenizer
from synthscale.train import save_model

transformers = pytest.importorskip("transformers")

TEXTS = [f"The river {name} flows past {town} in the year {1800 + i}. It is {i} miles long."
         for i, (name, town) in enumerate([("Olm", "Brumholt"), ("Vess", "Tarn"), ("Ilse", "Quell"), ("Dray", "Mosk")]
                                          * 20)]


@pytest.fixture(scope="module")
def tokenizer_path(tmp_path_factory):
    return train_tokenizer(TEXTS, 300, tmp_path_factory.mktemp("tok") / "tokenizer.json")


def run_folder(tmp_path, tokenizer_path, **overrides):
    """A run folder as the study writes it: checkpoints/final.safetensors and config.json naming the tokenizer."""
    fields = dict(vocab_size=load_tokenizer(tokenizer_path).vocab_size, dim=32, n_layers=2, n_heads=4, n_kv_heads=2,
                  ffn_dim=80, max_seq_len=64, rope_theta=500.0)
    fields.update(overrides)
    model = Llama(ModelConfig(**fields), seed=3)
    with torch.no_grad():  # non-trivial norm scales, so a wrongly mapped norm would show
        for name, p in model.named_parameters():
            if p.ndim == 1:
                p.uniform_(0.5, 1.5)
    run = tmp_path / "run"
    save_model(model, run / "checkpoints" / "final.safetensors", extra={"step": 7, "tokens": 1234})
    (run / "config.json").write_text(json.dumps({"data": {"tokenizer": str(tokenizer_path)}}))
    return run, model.eval()


@pytest.mark.parametrize("tie", [False, True])
def test_transformers_loads_the_export_and_gives_our_logits(tmp_path, tokenizer_path, tie):
    run, ours = run_folder(tmp_path, tokenizer_path, tie_embeddings=tie)
    out = export_hf(run, tmp_path / "hf")  # the tokenizer comes from the run's config.json
    hf = transformers.AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    tokens = torch.tensor([load_tokenizer(tokenizer_path).encode(TEXTS[0] + " " + TEXTS[1])[:60]])
    with torch.no_grad():
        theirs = hf(tokens).logits
        mine, _ = ours(tokens)
    assert type(hf).__name__ == "LlamaForCausalLM"
    assert torch.allclose(mine, theirs, atol=1e-4, rtol=0), (mine - theirs).abs().max()
    assert ("lm_head.weight" in dict(hf.named_parameters())) or tie


def test_autotokenizer_loads_the_export_and_matches_our_tokenizer(tmp_path, tokenizer_path):
    run, _ = run_folder(tmp_path, tokenizer_path)
    out = export_hf(run, tmp_path / "hf")
    hf_tok = transformers.AutoTokenizer.from_pretrained(out)
    ours = load_tokenizer(tokenizer_path)
    assert hf_tok(TEXTS[2])["input_ids"] == ours.encode(TEXTS[2])  # no BOS added, same ids
    assert hf_tok.eos_token == "<|endoftext|>" and hf_tok.eos_token_id == ours.eos_id
    marker = json.loads((out / "synthscale.json").read_text())
    assert marker["step"] == "7" and marker["tokenizer_hash"] == ours.hash and len(marker["checkpoint_sha256"]) == 64


def test_import_gives_back_the_config_and_weights(tmp_path, tokenizer_path):
    run, ours = run_folder(tmp_path, tokenizer_path, n_kv_heads=4)
    out = export_hf(run / "checkpoints" / "final.safetensors", tmp_path / "hf", tokenizer=tokenizer_path)
    cfg, state = load_hf_weights(out)
    assert cfg == ours.cfg == import_hf_config(out)
    again = Llama(cfg)
    again.load_state_dict(state)
    tokens = torch.tensor([[5, 9, 40, 7, 7, 100]])
    assert torch.equal(again.eval()(tokens)[0], ours(tokens)[0])


def test_export_and_import_errors_name_what_is_wrong(tmp_path, tokenizer_path):
    run, _ = run_folder(tmp_path, tokenizer_path)
    (run / "config.json").unlink()
    with pytest.raises(ConfigError, match="pass tokenizer="):
        export_hf(run, tmp_path / "hf")
    with pytest.raises(InputError, match="nowhere: no such run folder or checkpoint file"):
        export_hf(tmp_path / "nowhere", tmp_path / "hf", tokenizer=tokenizer_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no checkpoint: expected a run folder"):
        export_hf(tmp_path / "empty", tmp_path / "hf", tokenizer=tokenizer_path)
    out = export_hf(run, tmp_path / "hf", tokenizer=tokenizer_path)
    config = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps({**config, "hidden_act": "gelu"}))
    with pytest.raises(ConfigError, match="hidden_act='gelu' is not supported"):
        import_hf_config(out)
    (out / "config.json").write_text(json.dumps({**config, "model_type": "gpt2"}))
    with pytest.raises(ConfigError, match="model_type must be 'llama'"):
        import_hf_config(out)
