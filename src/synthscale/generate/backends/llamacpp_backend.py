"""The ``llamacpp`` backend: llama.cpp in this process (llama-cpp-python), a GGUF model on CPU.

``model`` is a ``.gguf`` file or the alias of a packaged one (``smollm2-135m-instruct``,
backends/gguf.py). llama-cpp-python is imported only when this backend is chosen (``pip
install synthscale[gguf]``). It loads in about a second and decodes one request at a time
(llama-cpp-python's high-level API has no batching), with ``threads`` CPU threads.

Prompts: with ``chat="auto"`` (default) or ``"template"`` the instruction is sent as one
user message through the chat template stored in the GGUF file (``template`` falls back
to the simple template of backends/prompting.py when the file has none); ``"none"`` sends
the plain text. Sampling follows the request: temperature (0 = greedy), top_p, top_k
(0 = off), repetition_penalty, presence and frequency penalties and stop strings;
llama.cpp's own extra filters (min_p, its default top_k of 40) are turned off, so the
settings mean what they mean for the other backends. Each request is seeded with its own
seed and evaluated from an empty KV cache (no prefix reuse between requests), so its text
depends on its seed only and reruns are identical. Usage is llama.cpp's count (the
end-of-sequence token is not counted). A prompt that leaves no room in the context gets an
error result; otherwise max_tokens is capped to the room left.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

from ...errors import ConfigError, MissingDependencyError
from .base import Backend, GenerationRequest, GenerationResult
from .gguf import file_sha256, gguf_revision, resolve_gguf
from .prompting import check_chat_mode, render_simple_chat

DEFAULT_MAX_TOKENS = 256
MAX_DEFAULT_CONTEXT = 8192  # the context allocated unless asked (the KV cache is allocated up front)


class LlamaCppBackend(Backend):
    """Generate with ``llama_cpp.Llama`` (see the module docstring). ``context``: tokens of context to allocate."""

    name = "llamacpp"

    def __init__(self, model: str | os.PathLike, *, chat: str = "auto", threads: int = 0,
                 context: int | None = None):
        try:
            from llama_cpp import Llama
        except ImportError:
            raise MissingDependencyError("llama_cpp", "gguf") from None
        self.chat = check_chat_mode(chat)
        if not isinstance(threads, int) or threads < 0:
            raise ConfigError(f"threads must be an integer >= 0, got {threads!r}")
        if context is not None and (not isinstance(context, int) or context < 16):
            raise ConfigError(f"context must be an integer >= 16, got {context!r}")
        path = resolve_gguf(model)
        self.gguf_file, self.gguf_sha256 = str(path), file_sha256(path)
        self.model, self.revision = path.name, gguf_revision(path)
        self.threads = threads or None
        try:
            self._llm = Llama(model_path=str(path), n_ctx=context or MAX_DEFAULT_CONTEXT, n_threads=self.threads,
                              n_threads_batch=self.threads, verbose=False)
        except (ValueError, RuntimeError) as e:
            raise ConfigError(f"llama.cpp cannot load {path}: {str(e).splitlines()[0]}") from None
        trained = _trained_context(self._llm.metadata)
        self.context = min(self._llm.n_ctx(), trained) if trained and not context else self._llm.n_ctx()
        self.template = self._llm.metadata.get("tokenizer.chat_template") or None
        self.accelerators = 0

    def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        """Answer the requests one after another; one that cannot run gets an error result."""
        return [self._answer(r) for r in requests]

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Token counts with the model's tokenizer (no special tokens added)."""
        return [len(self._llm.tokenize(t.encode("utf-8"), add_bos=False, special=False)) for t in texts]

    def describe(self) -> dict[str, Any]:
        """Backend settings for the run config and dataset card (with the GGUF file and its full sha256)."""
        return {**super().describe(), "chat": self.chat, "threads": self.threads, "context": self.context,
                "gguf_file": self.gguf_file, "gguf_sha256": self.gguf_sha256}

    def close(self) -> None:
        """Free the model and its context."""
        llm, self._llm = getattr(self, "_llm", None), None
        if llm is not None and hasattr(llm, "close"):
            llm.close()

    def prompt_ids(self, prompt: str) -> list[int]:
        """The token ids sent for an instruction under this backend's chat mode."""
        if self.chat == "none":
            return self._llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=False)
        messages = [{"role": "user", "content": prompt}]
        if self.template:
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            bos = self._token_text(self._llm.token_bos())
            eos = self._token_text(self._llm.token_eos())
            text = Jinja2ChatFormatter(self.template, eos_token=eos, bos_token=bos)(messages=messages).prompt
        elif self.chat == "template":
            text = render_simple_chat(messages)
        else:
            return self._llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=False)
        return self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)

    def _token_text(self, token: int) -> str:
        return self._llm.detokenize([token], special=True).decode("utf-8", "replace") if token >= 0 else ""

    def _answer(self, request: GenerationRequest) -> GenerationResult:
        ids = self.prompt_ids(request.prompt)
        if len(ids) >= self.context:
            return GenerationResult.failed(
                request, f"prompt of {len(ids)} tokens leaves no room in the model's context of {self.context}",
                prompt_tokens=len(ids))
        sampling = request.sampling
        max_tokens = min(int(sampling.get("max_tokens", DEFAULT_MAX_TOKENS)), self.context - len(ids))
        temperature = float(sampling.get("temperature", 1.0))
        self._llm.reset()  # no KV prefix reuse: a request's text must not depend on the one before
        try:
            reply = self._llm.create_completion(
                ids, max_tokens=max_tokens, temperature=temperature, top_p=float(sampling.get("top_p", 1.0)),
                top_k=int(sampling.get("top_k", 0)), min_p=0.0, typical_p=1.0,
                repeat_penalty=float(sampling.get("repetition_penalty", 1.0)),
                presence_penalty=float(sampling.get("presence_penalty", 0.0)),
                frequency_penalty=float(sampling.get("frequency_penalty", 0.0)),
                stop=list(sampling.get("stop") or []), seed=request.seed & 0xFFFFFFFF)
        except (ValueError, RuntimeError) as e:
            return GenerationResult.failed(request, f"llama.cpp: {str(e).splitlines()[0]}", prompt_tokens=len(ids))
        choice = reply["choices"][0]
        usage = reply.get("usage") or {}
        finish = "length" if choice.get("finish_reason") == "length" else "stop"
        return GenerationResult(request.request_id, choice.get("text") or "", finish,
                                int(usage.get("prompt_tokens", len(ids))), int(usage.get("completion_tokens", 0)))


def _trained_context(metadata: dict[str, Any]) -> int | None:
    """The context length the model was trained with, from the GGUF metadata (None when it is not there)."""
    value = metadata.get(f"{metadata.get('general.architecture', 'llama')}.context_length")
    try:
        return int(value) if value else None
    except (TypeError, ValueError):
        return None
