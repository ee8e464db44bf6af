"""The ``vllm`` backend: vLLM's offline engine (``vllm.LLM``) on local GPUs. vllm is imported lazily.

Each request becomes a token prompt (``{"prompt_token_ids": [...]}``, chat-formatted as in
backends/prompting.py) with its own ``SamplingParams`` carrying the request seed, so
outputs do not depend on how vLLM schedules the batch. A prompt that does not fit the
engine's ``max_model_len`` gets an error result; if vLLM rejects a batch anyway, the
batch is retried request by request so one bad request fails alone.

Written against vLLM's documented offline API (``LLM(model=..., revision=...,
tensor_parallel_size=..., dtype=..., gpu_memory_utilization=..., max_model_len=...,
seed=...)``, ``LLM.generate(prompts, sampling_params, use_tqdm=False)``,
``LLM.get_tokenizer()``, ``RequestOutput.prompt_token_ids`` and ``.outputs[0].text /
.token_ids / .finish_reason``), stable from vLLM 0.5 on. Not exercised by the CPU tests.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

from ...errors import ConfigError, MissingDependencyError
from .base import Backend, GenerationRequest, GenerationResult, check_model_source, local_revision, model_name
from .prompting import check_chat_mode, prompt_token_ids

DEFAULT_MAX_TOKENS = 256
_SAMPLING_ARGS = ("temperature", "top_p", "top_k", "repetition_penalty", "presence_penalty", "frequency_penalty",
                  "stop")


class VLLMBackend(Backend):
    """Generate with ``vllm.LLM`` (see the module docstring). ``engine_options`` go to ``vllm.LLM`` as they are."""

    name = "vllm"

    def __init__(self, model: str | os.PathLike, *, revision: str | None = None, tokenizer: str | None = None,
                 tensor_parallel_size: int = 1, dtype: str = "auto", gpu_memory_utilization: float = 0.9,
                 max_model_len: int | None = None, chat: str = "auto", seed: int = 0,
                 trust_remote_code: bool = False, engine_options: dict[str, Any] | None = None):
        try:
            from vllm import LLM
        except ImportError:
            raise MissingDependencyError("vllm", "vllm") from None
        self.chat = check_chat_mode(chat)
        if tensor_parallel_size < 1:
            raise ConfigError(f"tensor_parallel_size must be >= 1, got {tensor_parallel_size}")
        source = str(model)
        check_model_source(source)
        self._engine_settings = {"tensor_parallel_size": tensor_parallel_size, "dtype": dtype,
                                 "gpu_memory_utilization": gpu_memory_utilization, "max_model_len": max_model_len,
                                 **(engine_options or {})}
        self._llm = LLM(model=source, revision=revision, tokenizer=tokenizer, seed=seed,
                        trust_remote_code=trust_remote_code, **self._engine_settings)
        self._tokenizer = self._llm.get_tokenizer()
        self.model = model_name(source)
        self.revision = revision or local_revision(source)
        self.accelerators = tensor_parallel_size
        self.context = max_model_len or _engine_max_len(self._llm)

    def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        """Answer every request in one engine call; prompts too long for the context fail alone."""
        results: dict[str, GenerationResult] = {}
        prompts, params, runnable = [], [], []
        for request in requests:
            ids = prompt_token_ids(self._tokenizer, request.prompt, self.chat)
            if self.context and len(ids) >= self.context:
                results[request.request_id] = GenerationResult.failed(
                    request, f"prompt of {len(ids)} tokens leaves no room in the context of {self.context}",
                    prompt_tokens=len(ids))
                continue
            prompts.append({"prompt_token_ids": ids})
            params.append(self._sampling_params(request, len(ids)))
            runnable.append(request)
        for request, result in zip(runnable, self._run(runnable, prompts, params)):
            results[request.request_id] = result
        return [results[r.request_id] for r in requests]

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Token counts with the engine's tokenizer (no special tokens added)."""
        return [len(self._tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts]

    def describe(self) -> dict[str, Any]:
        """Backend settings for the run config and dataset card."""
        return {**super().describe(), "chat": self.chat, "context": self.context,
                **{k: v for k, v in self._engine_settings.items() if v is not None}}

    def close(self) -> None:
        """Drop the engine (vLLM frees its GPU memory when the LLM object is collected)."""
        self._llm = None

    def _sampling_params(self, request: GenerationRequest, prompt_len: int) -> Any:
        from vllm import SamplingParams

        sampling = request.sampling
        max_tokens = int(sampling.get("max_tokens", DEFAULT_MAX_TOKENS))
        if self.context:
            max_tokens = min(max_tokens, self.context - prompt_len)
        kwargs = {k: sampling[k] for k in _SAMPLING_ARGS if k in sampling}
        if not kwargs.get("top_k"):
            kwargs.pop("top_k", None)  # vLLM's "off" value changed across versions (-1, then 0)
        return SamplingParams(n=1, max_tokens=max_tokens, seed=request.seed, **kwargs)

    def _run(self, requests: list[GenerationRequest], prompts: list[dict], params: list[Any]) -> list[GenerationResult]:
        if not requests:
            return []
        try:
            outputs = self._llm.generate(prompts, params, use_tqdm=False)
        except (ValueError, RuntimeError) as e:
            if len(requests) == 1:
                return [GenerationResult.failed(requests[0], f"vllm: {str(e).splitlines()[0][:300]}",
                                                prompt_tokens=len(prompts[0]["prompt_token_ids"]))]
            return [r for i in range(len(requests))
                    for r in self._run(requests[i:i + 1], prompts[i:i + 1], params[i:i + 1])]
        return [_result(request, output) for request, output in zip(requests, outputs)]


def _result(request: GenerationRequest, output: Any) -> GenerationResult:
    completion = output.outputs[0]
    reason = completion.finish_reason
    prompt_tokens = len(output.prompt_token_ids or [])
    if reason not in ("stop", "length"):
        return GenerationResult.failed(request, f"vllm finished with '{reason}'", prompt_tokens=prompt_tokens)
    return GenerationResult(request.request_id, completion.text, reason, prompt_tokens, len(completion.token_ids))


def _engine_max_len(llm: Any) -> int | None:
    """The engine's context length (``llm_engine.model_config`` or ``llm_engine.vllm_config.model_config``
    ``.max_model_len``), None if this vLLM keeps it elsewhere."""
    engine = getattr(llm, "llm_engine", None)
    vllm_config = getattr(engine, "vllm_config", None)
    config = getattr(engine, "model_config", None) or getattr(vllm_config, "model_config", None)
    value = getattr(config, "max_model_len", None)
    return int(value) if value else None
