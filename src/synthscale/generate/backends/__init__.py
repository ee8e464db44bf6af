"""Generation backends behind one interface (``base.Backend``), and ``make_backend`` to build one by name.

- ``transformers``: a local Hugging Face model folder, hub id or GGUF file (CPU or GPU, batched).
- ``llamacpp``: llama.cpp in this process (llama-cpp-python), a GGUF file on CPU.
- ``vllm``: vLLM's offline engine on GPUs (vllm imported only when used).
- ``openai``: any OpenAI-compatible server, chat or completions endpoint.
- kinds defined elsewhere register themselves with ``register_backend`` (``toyworld``, the
  offline generator of the demo, does when ``synthscale.toyworld`` is imported): generate never
  imports them.
"""

from __future__ import annotations

from typing import Any, Callable

from ...errors import ConfigError
from .base import Backend, BackendError, GenerationRequest, GenerationResult

BACKENDS = ("transformers", "llamacpp", "vllm", "openai")
_REGISTERED: dict[str, Callable[..., Backend]] = {}  # kind -> factory(model, **options), see register_backend


def make_backend(kind: str, model: str | None, **options: Any) -> Backend:
    """The backend ``kind`` for ``model`` with ``options`` (the keyword arguments of its class).

    ``model`` is a model folder or hub id (transformers, vllm), a .gguf file or the alias of
    a packaged one such as ``smollm2-135m-instruct`` (transformers, llamacpp; backends/gguf.py),
    the server's model name (openai), or a world.json (toyworld; optional, needed for
    textbook styles). The CLI builds backends from typed configs instead (backends/config.py).
    """
    if kind == "transformers":
        from .transformers_backend import TransformersBackend

        return TransformersBackend(_required(model, kind), **options)
    if kind == "llamacpp":
        from .llamacpp_backend import LlamaCppBackend

        return LlamaCppBackend(_required(model, kind), **options)
    if kind == "vllm":
        from .vllm_backend import VLLMBackend

        return VLLMBackend(_required(model, kind), **options)
    if kind == "openai":
        from .openai_backend import OpenAIBackend

        return OpenAIBackend(_required(model, kind), **options)
    if kind in _REGISTERED:
        return _REGISTERED[kind](model, **options)
    raise ConfigError(f"unknown backend '{kind}' (known: {', '.join(backend_kinds())}; a backend defined outside "
                      "generate is known once its module is imported)")


def register_backend(kind: str, factory: Callable[..., Backend]) -> None:
    """Make ``make_backend(kind, model, **options)`` return ``factory(model, **options)``.

    For backends defined outside generate (toyworld's registers on import). Registering a
    kind again replaces it; a built-in kind cannot be taken.
    """
    if kind in BACKENDS:
        raise ConfigError(f"backend '{kind}' is built in and cannot be registered again")
    _REGISTERED[kind] = factory


def backend_kinds() -> tuple[str, ...]:
    """Every kind ``make_backend`` knows now: the built-in ones, then the registered ones."""
    return (*BACKENDS, *_REGISTERED)


def backend_plugins() -> dict[str, str]:
    """kind -> the module that defines each registered backend's factory (worker processes import these)."""
    return {kind: factory.__module__ for kind, factory in _REGISTERED.items()}


def _required(model: str | None, kind: str) -> str:
    if not model:
        raise ConfigError(f"the {kind} backend needs --model")
    return model


__all__ = ["BACKENDS", "Backend", "BackendError", "GenerationRequest", "GenerationResult", "backend_kinds",
           "backend_plugins", "make_backend", "register_backend"]
