"""One typed config per backend, declared once: the CLI options, their validation and the backend's build.

Each ``BackendConfig`` subclass is a frozen dataclass whose fields are the settings of one
backend, declared with ``option(default, help, ...)``. From these declarations come:

- the ``synthscale generate`` options (``cli_options()``: one ``--flag`` per field name,
  shared by every backend that declares a field of that name, with a help text naming
  the backends that take it and their defaults);
- the check of what a user gave (``backend_config(kind, given)``: an option the chosen
  backend does not take, a wrong type or a value out of range is a one-line ConfigError
  naming the option);
- the backend itself (``config.build(model)``), whose ``describe()`` records the resolved
  config next to the outputs (generate_config.json, the dataset card). A kind registered
  from outside generate (toyworld's) takes no options and is built by ``make_backend``.

Python users can build a backend from a config directly:
``TransformersConfig(model_batch_size=16).build("smollm2-135m-instruct")``.
"""

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar, Optional, Union

from ...errors import ConfigError

CHAT_HELP = "auto (the model's chat template if it has one), template (always a chat), or none (plain text)"


def option(default: Any, help: str, *, choices: tuple[str, ...] | None = None, ge: float | None = None,
           gt: float | None = None, le: float | None = None) -> Any:
    """A config field with its CLI help text and its checks (allowed ``choices``, bounds ``ge``/``gt``/``le``)."""
    return field(default=default, metadata={"help": help, "choices": choices, "ge": ge, "gt": gt, "le": le})


@dataclass(frozen=True)
class BackendConfig:
    """Base of the per-backend configs: validation on construction, ``to_dict`` and ``build``."""

    kind: ClassVar[str] = ""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            _check_field(self.kind, f, getattr(self, f.name))

    def to_dict(self) -> dict[str, Any]:
        """The resolved settings, as written next to the outputs."""
        return dataclasses.asdict(self)

    def build(self, model: str | None) -> Any:
        """The backend for ``model`` with these settings."""
        raise NotImplementedError

    @classmethod
    def from_options(cls, given: dict[str, Any]) -> "BackendConfig":
        """The config of the options given (CLI names with '_', e.g. model_batch_size); ConfigError for one it lacks."""
        names = {f.name for f in dataclasses.fields(cls)}
        for name in given:
            if name not in names:
                users = [k for k, c in BACKEND_CONFIGS.items() if name in {f.name for f in dataclasses.fields(c)}]
                takes = f"applies to the {' and '.join(users)} backend(s)" if users else "is not a backend option"
                raise ConfigError(f"--{name.replace('_', '-')} {takes}, not {cls.kind}")
        return cls(**given)


def _required(model: str | None, kind: str) -> str:
    if not model:
        raise ConfigError(f"the {kind} backend needs --model")
    return model


@dataclass(frozen=True)
class TransformersConfig(BackendConfig):
    """Hugging Face transformers on this machine: a model folder, a hub id, a .gguf file or a packaged GGUF alias."""

    kind: ClassVar[str] = "transformers"
    revision: Optional[str] = option(None, "Model revision to load and record (a hub revision; not for .gguf "
                                           "files, whose revision is their sha256).")
    device: str = option("auto", "auto (cuda if available), cpu, cuda, cuda:1, ...")
    dtype: str = option("auto", "auto (bfloat16 on GPU, float32 on CPU), float32, bfloat16 or float16.",
                        choices=("auto", "float32", "bfloat16", "float16"))
    chat: str = option("auto", CHAT_HELP + ".", choices=("auto", "template", "none"))
    threads: int = option(0, "CPU threads (0: the library's default).", ge=0)
    model_batch_size: int = option(16, "Sequences decoded together in one forward pass.", ge=1)

    def build(self, model: str | None) -> Any:
        """A TransformersBackend for ``model``."""
        from .transformers_backend import TransformersBackend

        backend = TransformersBackend(_required(model, self.kind), revision=self.revision, device=self.device,
                                      dtype=self.dtype, batch_size=self.model_batch_size, chat=self.chat,
                                      threads=self.threads)
        backend.config = self
        return backend


@dataclass(frozen=True)
class LlamaCppConfig(BackendConfig):
    """llama.cpp in this process (llama-cpp-python): a .gguf file or a packaged GGUF alias, on CPU."""

    kind: ClassVar[str] = "llamacpp"
    chat: str = option("auto", CHAT_HELP + ".", choices=("auto", "template", "none"))
    threads: int = option(0, "CPU threads (0: the library's default).", ge=0)
    max_model_len: Optional[int] = option(None, "Context length to allocate (default: 8192, used up to the "
                                                "model's own).", ge=16)

    def build(self, model: str | None) -> Any:
        """A LlamaCppBackend for ``model``."""
        from .llamacpp_backend import LlamaCppBackend

        backend = LlamaCppBackend(_required(model, self.kind), chat=self.chat, threads=self.threads,
                                  context=self.max_model_len)
        backend.config = self
        return backend


@dataclass(frozen=True)
class VLLMConfig(BackendConfig):
    """vLLM's offline engine on local GPUs."""

    kind: ClassVar[str] = "vllm"
    revision: Optional[str] = option(None, "Model revision to load and record.")
    dtype: str = option("auto", "auto, float32, bfloat16 or float16.",
                        choices=("auto", "float32", "bfloat16", "float16"))
    chat: str = option("auto", CHAT_HELP + ".", choices=("auto", "template", "none"))
    tensor_parallel_size: int = option(1, "GPUs per model.", ge=1)
    gpu_memory_utilization: float = option(0.9, "Share of GPU memory to use.", gt=0, le=1)
    max_model_len: Optional[int] = option(None, "Context length to allocate (default: the model's).", ge=16)

    def build(self, model: str | None) -> Any:
        """A VLLMBackend for ``model``."""
        from .vllm_backend import VLLMBackend

        backend = VLLMBackend(_required(model, self.kind), revision=self.revision, dtype=self.dtype, chat=self.chat,
                              tensor_parallel_size=self.tensor_parallel_size,
                              gpu_memory_utilization=self.gpu_memory_utilization, max_model_len=self.max_model_len)
        backend.config = self
        return backend


@dataclass(frozen=True)
class OpenAIConfig(BackendConfig):
    """Any OpenAI-compatible HTTP server."""

    kind: ClassVar[str] = "openai"
    revision: Optional[str] = option(None, "Revision to record (default: the one the server lists under /models).")
    base_url: Optional[str] = option(None, "Server URL ending in /v1 (default $OPENAI_BASE_URL, else "
                                           "api.openai.com).")
    endpoint: str = option("chat", "chat or completions.", choices=("chat", "completions"))
    api_key_env: str = option("OPENAI_API_KEY", "Environment variable holding the API key; the key is never "
                                                "written.")
    concurrency: int = option(8, "Requests in flight.", ge=1)
    max_retries: int = option(6, "Retries on 408/409/429/5xx, timeouts and connection errors.", ge=0)
    timeout: float = option(120.0, "Seconds per request.", gt=0)
    system_prompt: Optional[str] = option(None, "chat endpoint: a system message before each prompt.")

    def build(self, model: str | None) -> Any:
        """An OpenAIBackend for the server's model ``model``."""
        from .openai_backend import OpenAIBackend

        backend = OpenAIBackend(_required(model, self.kind), base_url=self.base_url, endpoint=self.endpoint,
                                api_key_env=self.api_key_env, concurrency=self.concurrency,
                                max_retries=self.max_retries, timeout=self.timeout, revision=self.revision,
                                system_prompt=self.system_prompt)
        backend.config = self
        return backend


@dataclass(frozen=True)
class RegisteredConfig(BackendConfig):
    """A backend registered from outside generate (``register_backend``, e.g. toyworld's): it takes no options."""

    kind: ClassVar[str] = "registered"
    backend: str = "registered"

    def build(self, model: str | None) -> Any:
        """The registered backend ``self.backend`` for ``model`` (``make_backend``)."""
        from . import make_backend

        built = make_backend(self.backend, model)
        built.config = self
        return built

    def to_dict(self) -> dict[str, Any]:
        """No settings (the kind is recorded by the backend itself)."""
        return {}


BACKEND_CONFIGS: dict[str, type[BackendConfig]] = {
    c.kind: c for c in (TransformersConfig, LlamaCppConfig, VLLMConfig, OpenAIConfig)}


def backend_config(kind: str, given: dict[str, Any] | None = None) -> BackendConfig:
    """The validated config of backend ``kind`` from the options ``given`` (None values count as not given)."""
    given = {k: v for k, v in (given or {}).items() if v is not None}
    if kind in BACKEND_CONFIGS:
        return BACKEND_CONFIGS[kind].from_options(given)
    from . import backend_kinds

    if kind not in backend_kinds():
        raise ConfigError(f"unknown backend '{kind}' (known: {', '.join(backend_kinds())})")
    for name in given:
        users = [k for k, c in BACKEND_CONFIGS.items() if name in {f.name for f in dataclasses.fields(c)}]
        raise ConfigError(f"--{name.replace('_', '-')} applies to the {' and '.join(users)} backend(s), not {kind}")
    return RegisteredConfig(backend=kind)


# --- the CLI options ---------------------------------------------------------------------------

@dataclass(frozen=True)
class CliOption:
    """One ``synthscale generate`` option made from the config fields of that name: flag, value type, help."""

    name: str
    flag: str
    type: type
    help: str
    backends: tuple[str, ...]


def cli_options() -> list[CliOption]:
    """Every backend option of ``synthscale generate``, in declaration order (fields of one name share a flag).

    TypeError when two backends declare one name with different value types (a bug, caught by the tests).
    """
    found: dict[str, list[tuple[str, dataclasses.Field]]] = {}
    for kind, cls in BACKEND_CONFIGS.items():
        for f in dataclasses.fields(cls):
            found.setdefault(f.name, []).append((kind, f))
    options = []
    for name, uses in found.items():
        types_ = {_value_type(f) for _, f in uses}
        if len(types_) != 1:
            raise TypeError(f"backend option '{name}' has different types across backends: {types_}")
        helps = [(kind, f.metadata["help"], f.default) for kind, f in uses]
        if len({h for _, h, _ in helps}) == 1:
            defaults = {d for _, _, d in helps}
            text = f"{', '.join(k for k, _, _ in helps)}: {helps[0][1]}" + (
                f" Default {_shown(helps[0][2])}." if len(defaults) == 1 and helps[0][2] is not None else "")
            if len(defaults) > 1:
                text += " Default " + ", ".join(f"{_shown(d)} ({k})" for k, _, d in helps) + "."
        else:
            text = " ".join(f"{k}: {h}" + (f" Default {_shown(d)}." if d is not None else "") for k, h, d in helps)
        options.append(CliOption(name, "--" + name.replace("_", "-"), types_.pop(), text,
                                 tuple(k for k, _ in uses)))
    return options


def _shown(value: Any) -> str:
    return str(value) if not isinstance(value, str) else value


def _value_type(f: dataclasses.Field) -> type:
    """The plain value type of a field (Optional[int] -> int)."""
    hint = f.type  # real types: this module does not use postponed annotations
    if typing.get_origin(hint) in (Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        hint = args[0]
    return hint


def _check_field(kind: str, f: dataclasses.Field, value: Any) -> None:
    """ConfigError naming the option when ``value`` has the wrong type or is out of the field's range."""
    flag = "--" + f.name.replace("_", "-")
    wanted = _value_type(f)
    if value is None:
        if f.default is not None:
            raise ConfigError(f"{flag} ({kind} backend): a value is required")
        return
    ok = (isinstance(value, wanted) and not isinstance(value, bool)) if wanted in (int, str) else \
        (isinstance(value, (int, float)) and not isinstance(value, bool)) if wanted is float else isinstance(value,
                                                                                                             wanted)
    if not ok:
        raise ConfigError(f"{flag} ({kind} backend): expected {'a number' if wanted is float else wanted.__name__}, "
                          f"got {value!r}")
    meta = f.metadata
    if meta.get("choices") and value not in meta["choices"]:
        raise ConfigError(f"{flag} ({kind} backend): expected one of {', '.join(meta['choices'])}, got {value!r}")
    for key, test, words in (("ge", lambda v, b: v >= b, ">="), ("gt", lambda v, b: v > b, ">"),
                             ("le", lambda v, b: v <= b, "<=")):
        bound = meta.get(key)
        if bound is not None and not test(value, bound):
            raise ConfigError(f"{flag} ({kind} backend): must be {words} {bound}, got {value!r}")
