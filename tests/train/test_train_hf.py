"""Hugging Face interop of trained runs: transformers' validation loss of an export equals ours;
a run can start from an HF folder's config, or continue from its weights."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from synthscale.errors import ConfigError
from synthscale.evaluate import build_eval_set, evaluate_model
from synthscale.model import Llama
from synthscale.model.hf import export_hf, import_hf_config, load_hf_weights
from synthscale.tokens import MixtureStream, encode_corpus, load_tokenizer, train_tokenizer
from synthscale.train import TrainConfig, load_model, train
from synthscale.study.train_run import run_config

transformers = pytest.importorskip("transformers")

SEQ = 32
TEXTS = [f"The river {name} flows past {town} in the year {1800 + 3 * i}. It is {i % 17} miles long and "
         f"{name} has {i % 5} bridges." for i, (name, town) in
         enumerate([("Olm", "Brumholt"), ("Vess", "Tarn"), ("Ilse", "Quell"), ("Dray", "Mosk")] * 40)]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A run trained on a real tokenizer's shard, its eval set, and its HF export."""
    root = tmp_path_factory.mktemp("hfrun")
    tok_path = train_tokenizer(TEXTS, 320, root / "tokenizer.json")
    tok = load_tokenizer(tok_path)
    encode_corpus(TEXTS[:120], tok, root / "train", progress=False)
    encode_corpus(TEXTS[120:], tok, root / "valid", progress=False)
    from synthscale.model.ladder import model_config

    cfg = model_config("cpu-nano", vocab_size=tok.vocab_size, seq_len=SEQ)
    tcfg = TrainConfig(tokens=30 * 8 * SEQ, seq_len=SEQ, batch_size=8, lr=3e-3, warmup_steps=3, threads=1)
    stream = MixtureStream({"train": [root / "train"]}, {"train": 1.0}, tcfg.tokens, SEQ, seed=0)
    run = root / "run"
    train(cfg, tcfg, stream, run, progress=False)
    out = export_hf(run, root / "hf", tokenizer=tok_path)
    eval_set = build_eval_set(root / "valid", tok, SEQ, max_tokens=20 * SEQ)
    return {"run": run, "hf": out, "eval_set": eval_set, "cfg": cfg, "tcfg": tcfg, "stream": stream, "root": root}


def transformers_loss(folder, eval_set) -> float:
    """Mean next-token cross-entropy of the HF model over every target of the eval set, with transformers only."""
    model = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    tokens = torch.from_numpy(eval_set.tokens.astype(np.int64))
    nats = 0.0
    with torch.no_grad():
        for batch in tokens.split(7):
            logits = model(batch[:, :-1]).logits
            nats += torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).double(),
                                                      batch[:, 1:].reshape(-1), reduction="sum").item()
    return nats / eval_set.n_targets


def test_transformers_gives_the_validation_loss_synthscale_gives(trained):
    ours = evaluate_model(load_model(trained["run"] / "checkpoints" / "final.safetensors"),
                          {"valid": trained["eval_set"]}, batch_size=5)["valid"]["loss"]
    theirs = transformers_loss(trained["hf"], trained["eval_set"])
    assert ours < math.log(trained["cfg"].vocab_size) - 0.5  # a trained model, not an untrained one
    assert abs(ours - theirs) < 1e-4, (ours, theirs)


def test_a_run_continues_from_hf_weights(trained, tmp_path):
    cfg = import_hf_config(trained["hf"])
    assert cfg == trained["cfg"]
    tcfg = TrainConfig(**{**trained["tcfg"].to_dict(), "tokens": 4 * 8 * SEQ, "warmup_steps": 1, "log_every": 1,
                          "init_from_hf": str(trained["hf"])})
    first = next(iter(trained["stream"].batches(8)))
    start = Llama(cfg)
    start.load_state_dict(load_hf_weights(trained["hf"])[1])
    with torch.no_grad():
        _, expected = start(torch.from_numpy(first[:, :-1]), torch.from_numpy(first[:, 1:]), return_logits=False)
    train(cfg, tcfg, trained["stream"], tmp_path, progress=False)
    first_record = (tmp_path / "metrics.jsonl").read_text().splitlines()[0]
    assert f'"loss":{expected.item()}' in first_record  # step 1 trained the exported weights, not fresh ones
    fresh = train(cfg, TrainConfig(**{**tcfg.to_dict(), "init_from_hf": None}), trained["stream"], tmp_path / "fresh",
                  progress=False)
    assert fresh.final_loss > expected.item() + 0.5


def test_continuing_needs_the_folders_shape_and_a_run_can_take_just_its_config(trained, tmp_path):
    other = trained["cfg"].__class__(**{**trained["cfg"].to_dict(), "ffn_dim": 96})
    tcfg = TrainConfig(**{**trained["tcfg"].to_dict(), "init_from_hf": str(trained["hf"])})
    with pytest.raises(ConfigError, match="differs in ffn_dim"):
        train(other, tcfg, trained["stream"], tmp_path, progress=False)
    config = run_config(tmp_path / "r", ["train=" + str(trained["root"] / "train")],
                        TrainConfig(tokens=8 * 8 * SEQ, seq_len=SEQ, batch_size=8), weights=None, model="cpu-micro",
                        hf_config=str(trained["hf"]), init_from_hf=None, eval_sets=None, eval_batch_size=8)
    assert config["settings"]["model_config"] == trained["cfg"].to_dict()  # the HF shape, not cpu-micro's
    assert config["settings"]["train"]["init_from_hf"] is None
