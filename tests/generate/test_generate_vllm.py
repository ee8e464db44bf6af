"""The vllm backend's wiring, against a stand-in ``vllm`` module (vLLM needs a GPU; the real engine is not tested here).

The stand-in records how the backend calls ``vllm.LLM`` and ``SamplingParams`` and answers
with vLLM's output shape, so what is checked is our side: engine arguments, one seeded
SamplingParams per request, context capping, output mapping and failure isolation.
"""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass, field

import pytest

from synthscale.generate import GenerationRequest


class WordTokenizer:
    """Whitespace 'tokenizer' with HF's call shape."""

    chat_template = None

    def __call__(self, text, add_special_tokens=True):
        return {"input_ids": [len(w) for w in text.split()]}


@dataclass
class SamplingParams:
    n: int = 1
    max_tokens: int = 16
    seed: int | None = None
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    stop: list = field(default_factory=list)


class LLM:
    instances: list["LLM"] = []

    def __init__(self, **kwargs):
        self.kwargs, self.calls = kwargs, []
        LLM.instances.append(self)

    def get_tokenizer(self):
        return WordTokenizer()

    def generate(self, prompts, params, use_tqdm=True):
        self.calls.append((prompts, params))
        if any(p["prompt_token_ids"][0] == 99 for p in prompts):  # a prompt starting with a 99-letter word
            raise ValueError("engine rejected a prompt")
        outputs = []
        for prompt, sp in zip(prompts, params):
            n = min(sp.max_tokens, 4)
            completion = types.SimpleNamespace(text=f"seed {sp.seed}", token_ids=list(range(n)),
                                               finish_reason="length" if n == sp.max_tokens else "stop")
            outputs.append(types.SimpleNamespace(prompt_token_ids=prompt["prompt_token_ids"], outputs=[completion]))
        return outputs


@pytest.fixture
def vllm_module(monkeypatch):
    module = types.ModuleType("vllm")
    module.LLM, module.SamplingParams = LLM, SamplingParams
    monkeypatch.setitem(sys.modules, "vllm", module)
    LLM.instances.clear()
    return module


def req(i, prompt, **sampling):
    return GenerationRequest(f"r{i}", prompt, "hq", 1000 + i, {"temperature": 0.7, "max_tokens": 8, **sampling})


def test_engine_arguments_seeds_and_context_capping(vllm_module):
    from synthscale.generate.backends.vllm_backend import VLLMBackend

    backend = VLLMBackend("org/model", revision="abc", tensor_parallel_size=2, max_model_len=12, seed=5)
    llm = LLM.instances[0]
    assert llm.kwargs["model"] == "org/model" and llm.kwargs["tensor_parallel_size"] == 2
    assert llm.kwargs["max_model_len"] == 12 and llm.kwargs["seed"] == 5 and llm.kwargs["revision"] == "abc"
    assert backend.generator == "org/model@abc" and backend.accelerators == 2
    results = backend.generate([req(0, "one two three"), req(1, "w " * 12), req(2, "a b c d e f g h i j", top_k=0)])
    assert [r.finish_reason for r in results] == ["stop", "error", "length"]
    assert "leaves no room in the context of 12" in results[1].error
    (prompts, params), = llm.calls  # the too-long prompt never reached the engine
    assert [p.seed for p in params] == [1000, 1002] and [p.max_tokens for p in params] == [8, 2]
    assert params[1].top_k == 0 and results[0].text == "seed 1000"  # top_k=0 ("off") is not passed on
    assert (results[2].prompt_tokens, results[2].completion_tokens) == (10, 2)


def test_a_batch_the_engine_rejects_is_retried_request_by_request(vllm_module):
    from synthscale.generate.backends.vllm_backend import VLLMBackend

    backend = VLLMBackend("m")
    results = backend.generate([req(0, "fine"), req(1, "x" * 99 + " bad"), req(2, "also fine")])
    assert [r.finish_reason for r in results] == ["stop", "error", "stop"]
    assert "engine rejected a prompt" in results[1].error


def test_without_vllm_installed_the_error_names_the_extra(monkeypatch):
    from synthscale.errors import MissingDependencyError
    from synthscale.generate.backends.vllm_backend import VLLMBackend

    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm raises ImportError
    with pytest.raises(MissingDependencyError, match=r"synthscale\[vllm\]"):
        VLLMBackend("m")
