"""The ``transformers`` backend: a local Hugging Face model folder (or hub id), batched, on CPU or GPU.

Requests are sorted by prompt length, cut into batches of ``batch_size``, left-padded and
run through ``model.generate`` with a SeededSampler, so each request's text depends on
its own seed only (not on its batch). A request whose prompt leaves no room in the
model's context gets an error result; otherwise max_tokens is capped to the room left
(and the result is "length" when the cap is reached). Stop strings cut the decoded text
("stop"). Usage counts are exact: prompt tokens, and generated tokens including EOS.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

from ...errors import ConfigError, MissingDependencyError
from .base import (Backend, GenerationRequest, GenerationResult, check_model_source, hub_hint, local_revision,
                   model_name)
from .prompting import check_chat_mode, cut_at_stop, prompt_token_ids
from .sampler import RowSampling, SeededSampler

DEFAULT_MAX_TOKENS = 256


class TransformersBackend(Backend):
    """Generate with ``transformers.AutoModelForCausalLM`` (see the module docstring).

    ``device``: "auto" (cuda when available, else cpu), "cpu", "cuda", "cuda:1", ...;
    ``dtype``: "auto" (bfloat16 on GPU, float32 on CPU), "float32", "bfloat16", "float16";
    ``chat``: "auto", "template" or "none" (backends/prompting.py); ``threads``: torch CPU
    threads (0 = torch's default).
    """

    name = "transformers"

    def __init__(self, model: str | os.PathLike, *, revision: str | None = None, device: str = "auto",
                 dtype: str = "auto", batch_size: int = 8, chat: str = "auto", threads: int = 0,
                 trust_remote_code: bool = False):
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError:
            raise MissingDependencyError("transformers", "hf") from None
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        self.chat = check_chat_mode(chat)
        self.batch_size = batch_size
        if threads:
            torch.set_num_threads(threads)
        self.device = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                                   "cpu" if device == "auto" else device)
        torch_dtype = _torch_dtype(dtype, self.device)
        source = str(model)
        check_model_source(source)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(source, revision=revision,
                                                           trust_remote_code=trust_remote_code)
            self.hf_model = AutoModelForCausalLM.from_pretrained(source, revision=revision, dtype=torch_dtype,
                                                                 trust_remote_code=trust_remote_code)
        except (OSError, ValueError) as e:
            raise ConfigError(f"transformers cannot load model '{source}'{hub_hint(source)}: "
                              f"{str(e).splitlines()[0]}") from None
        self.hf_model.to(self.device).eval()
        self.model = model_name(source)
        self.revision = revision or getattr(self.hf_model.config, "_commit_hash", None) or local_revision(source)
        self.accelerators = 1 if self.device.type == "cuda" else 0
        self.context = int(getattr(self.hf_model.config, "max_position_embeddings", 0) or 0) or None
        self.eos_ids = _eos_ids(self.hf_model, self.tokenizer)
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.eos_ids[0]
        self.dtype = str(torch_dtype).replace("torch.", "")

    def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        """Answer the requests in batches; a request that cannot run gets an error result."""
        return self.generate_ids(requests, [prompt_token_ids(self.tokenizer, r.prompt, self.chat) for r in requests])

    def generate_ids(self, requests: list[GenerationRequest], prompt_ids: list[list[int]]) -> list[GenerationResult]:
        """Answer requests whose prompts are already token ids (the server formats chats itself)."""
        results: dict[str, GenerationResult] = {}
        runnable: list[tuple[GenerationRequest, list[int]]] = []
        for request, ids in zip(requests, prompt_ids):
            if not ids:
                results[request.request_id] = GenerationResult.failed(request, "the prompt encodes to no tokens")
            elif self.context and len(ids) >= self.context:
                results[request.request_id] = GenerationResult.failed(
                    request, f"prompt of {len(ids)} tokens leaves no room in the model's context of {self.context}",
                    prompt_tokens=len(ids))
            else:
                runnable.append((request, ids))
        for batch in self._batches(runnable):
            for result in self._run_batch(batch):
                results[result.request_id] = result
        return [results[r.request_id] for r in requests]

    def _batches(self, runnable: list[tuple[GenerationRequest, list[int]]]) -> list[list[tuple]]:
        """Batches of similar prompt length, at most batch_size each, whose padded prompt plus the longest
        generation still fits the context (a row's positions past its own budget would otherwise overflow it)."""
        batches: list[list[tuple]] = []
        current: list[tuple] = []
        longest = 0
        for item in sorted(runnable, key=lambda pair: len(pair[1])):
            budget = self._budget(item[0], len(item[1]))
            fits = not self.context or len(item[1]) + max(longest, budget) <= self.context
            if current and (len(current) == self.batch_size or not fits):
                batches.append(current)
                current, longest = [], 0
            current.append(item)
            longest = max(longest, budget)
        return batches + ([current] if current else [])

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Token counts with the model's tokenizer (no special tokens added)."""
        if not texts:
            return []
        return [len(ids) for ids in self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]]

    def describe(self) -> dict[str, Any]:
        """Backend settings for the run config and dataset card."""
        return {**super().describe(), "device": str(self.device), "dtype": self.dtype, "chat": self.chat,
                "batch_size": self.batch_size, "context": self.context}

    def close(self) -> None:
        """Drop the model (frees GPU memory)."""
        self.hf_model = None

    def _run_batch(self, batch: list[tuple[GenerationRequest, list[int]]]) -> list[GenerationResult]:
        import torch
        from transformers import GenerationConfig, LogitsProcessorList

        width = max(len(ids) for _, ids in batch)
        budgets = [self._budget(request, len(ids)) for request, ids in batch]
        input_ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, (_, ids) in enumerate(batch):
            input_ids[i, width - len(ids):] = torch.tensor(ids)
            mask[i, width - len(ids):] = 1
        sampler = SeededSampler([RowSampling.from_request(r.seed, r.sampling) for r, _ in batch], width,
                                [width - len(ids) for _, ids in batch])
        config = GenerationConfig(max_new_tokens=max(budgets), do_sample=False, eos_token_id=self.eos_ids,
                                  pad_token_id=self.pad_id)
        with torch.no_grad():
            out = self.hf_model.generate(input_ids=input_ids.to(self.device), attention_mask=mask.to(self.device),
                                         generation_config=config, logits_processor=LogitsProcessorList([sampler]))
        new_tokens = out[:, width:].tolist()
        return [self._result(request, len(ids), tokens[:budget])
                for (request, ids), tokens, budget in zip(batch, new_tokens, budgets)]

    def _budget(self, request: GenerationRequest, prompt_len: int) -> int:
        wanted = int(request.sampling.get("max_tokens", DEFAULT_MAX_TOKENS))
        return min(wanted, self.context - prompt_len) if self.context else wanted

    def _result(self, request: GenerationRequest, prompt_len: int, tokens: list[int]) -> GenerationResult:
        end = next((i for i, t in enumerate(tokens) if t in self.eos_ids), None)
        finish = "stop" if end is not None else "length"
        kept = tokens if end is None else tokens[:end]
        text = self.tokenizer.decode(kept, skip_special_tokens=True)
        text, stopped = cut_at_stop(text, request.sampling.get("stop"))
        completion = len(tokens) if end is None else end + 1
        return GenerationResult(request.request_id, text, "stop" if stopped else finish, prompt_len, completion)


def _torch_dtype(dtype: str, device: Any) -> Any:
    import torch

    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    choices = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if dtype not in choices:
        raise ConfigError(f"dtype must be auto, {', '.join(choices)}; got {dtype!r}")
    return choices[dtype]


def _eos_ids(model: Any, tokenizer: Any) -> list[int]:
    """Every id that ends a generation: the generation config's eos ids, else the tokenizer's."""
    eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if eos is None:
        eos = tokenizer.eos_token_id
    if eos is None:
        raise ConfigError("the model names no end-of-sequence token (generation_config or tokenizer eos_token)")
    return [int(e) for e in (eos if isinstance(eos, (list, tuple)) else [eos])]
