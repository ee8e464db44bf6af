"""The Backend interface every generator implements: requests in; text, finish reason and usage out.

A backend may be a local model, an inference server or the built-in toyworld; the
runner sees only this interface. ``generate`` answers a batch in the same order and
reports a failed request as a result with ``finish_reason="error"`` rather than raising,
so one bad request does not lose the batch.
"""

from __future__ import annotations

import abc
import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ..._io import read_json
from ...corpus import Document
from ...errors import InputError, SynthscaleError

FINISH_REASONS = ("stop", "length", "error")


class BackendError(SynthscaleError):
    """A backend broke its contract (wrong number or order of results) or could not start."""


@dataclass
class GenerationRequest:
    """One prompt to answer. ``document`` is the source of a rephrasing; ``topic`` seeds pure generation."""

    request_id: str
    prompt: str
    style: str
    seed: int
    sampling: dict[str, Any]
    document: Document | None = None
    topic: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class GenerationResult:
    """A backend's answer to one request.

    ``finish_reason`` is ``stop`` (complete), ``length`` (cut at max_tokens) or ``error``
    (no usable text; ``error`` says why). ``meta`` holds backend-specific details worth
    keeping with the document (for toyworld: the facts it stated).
    """

    request_id: str
    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    error: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.finish_reason not in FINISH_REASONS:
            raise BackendError(f"finish_reason must be one of {', '.join(FINISH_REASONS)}, got '{self.finish_reason}'")

    @classmethod
    def failed(cls, request: GenerationRequest, error: str, prompt_tokens: int = 0) -> "GenerationResult":
        """A result that reports ``error`` for ``request``."""
        return cls(request.request_id, "", "error", prompt_tokens, 0, error=error)


class Backend(abc.ABC):
    """A text generator. Subclasses set ``name`` (backend kind), ``model`` and ``revision``.

    ``accelerators`` is the number of GPUs the backend occupies (for the GPU-hours
    estimate; None when unknown, as for a remote server).
    """

    name: str = "backend"
    model: str = ""
    revision: str | None = None
    accelerators: float | None = 0
    config: Any = None  # the typed config it was built from (backends/config.py), if any

    @property
    def generator(self) -> str:
        """The provenance name of this generator: ``model@revision`` (or ``model``)."""
        return f"{self.model}@{self.revision}" if self.revision else self.model

    @abc.abstractmethod
    def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        """Answer every request, in order (one result per request, same request_id)."""

    def count_tokens(self, texts: Sequence[str]) -> list[int] | None:
        """Token counts of ``texts`` with the generator's tokenizer, or None when the backend has none."""
        return None

    def describe(self) -> dict[str, Any]:
        """Settings worth recording in a run's config and dataset card (never secrets): the resolved typed
        config's fields when the backend was built from one, then what the backend itself reports."""
        settings = self.config.to_dict() if self.config is not None else {}
        return {**settings, "backend": self.name, "model": self.model, "revision": self.revision}

    def close(self) -> None:
        """Release the model, server connection or processes (no-op by default)."""

    def __enter__(self) -> "Backend":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")


def check_model_source(model: str | os.PathLike) -> None:
    """Fail in plain words when ``model`` names a local folder that does not exist.

    Anything that exists must be a folder (a .gguf file is handled by backends/gguf.py
    before this check); a string that cannot be a Hugging Face hub id
    (an absolute or ./relative path, more than one '/', a trailing '/', a file name) must
    exist. A bare ``NAME`` or ``ORG/NAME`` that is not on disk is left to the hub.
    """
    text = str(model)
    path = Path(text).expanduser()
    if path.exists():
        if not path.is_dir():
            raise InputError("expected a model folder (config.json and weights), found a file", path=text)
        return
    if not _HUB_ID.fullmatch(text) or text.startswith((".", "~")) or text.endswith(("/", ".json")):
        raise InputError("no such model folder", path=text)


def hub_hint(model: str | os.PathLike) -> str:
    """' (no local folder of that name either)' for a hub id that is not on disk, else ''."""
    return "" if Path(str(model)).expanduser().exists() else " (and there is no local folder of that name)"


def local_revision(model: str | os.PathLike) -> str | None:
    """A revision for a local model folder: its synthscale export's checkpoint hash, else a hash of its files.

    The fallback hashes config.json and the names and sizes of the weight files (cheap
    for large models; it changes whenever the weights are rewritten with another size
    or name). None when ``model`` is not a local folder (a hub name).
    """
    folder = Path(model)
    if not folder.is_dir():
        return None
    marker = folder / "synthscale.json"
    if marker.is_file():
        try:
            sha = read_json(marker, what="export marker").get("checkpoint_sha256")
        except (OSError, ValueError, AttributeError):  # optional: a damaged marker means hashing the files
            sha = None
        if isinstance(sha, str) and sha:
            return sha[:12]
    h = hashlib.sha256()
    config = folder / "config.json"
    if config.is_file():
        h.update(config.read_bytes())
    for f in sorted(folder.iterdir()):
        if f.suffix in (".safetensors", ".bin", ".gguf", ".pt"):
            h.update(f"{f.name}:{f.stat().st_size}".encode())
    return "local-" + h.hexdigest()[:12]


def model_name(model: str | os.PathLike) -> str:
    """The generator name for provenance: a local folder's name, or the hub id as given."""
    path = Path(model)
    return path.resolve().name if path.is_dir() else str(model)
