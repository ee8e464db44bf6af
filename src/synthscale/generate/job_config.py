"""GenerateJob: everything a generation run needs besides the backend, validated on construction."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError
from .chunking import DEFAULT_CHUNK_TOKENS
from .gates import GateConfig
from .styles import check_sampling

JOB_FORMAT = "synthscale.generate_job/1"
PART_FILE = "part.json"  # in a part's output folder: {"part": k, "parts": K, "key": PARTITION_KEY}
PARTITION_KEY = "sha256(document id, or topic index) mod parts"


@dataclass(frozen=True)
class GenerateJob:
    """Everything a generation run needs besides the backend. See docs/generate.md for each field.

    ``input`` is a corpus (anything ``read_documents`` reads); ``topics`` a text file with
    one topic per line (generate styles). Exactly one of them is given. ``max_docs``
    limits the input items; ``chunk_tokens`` (0 = off) splits documents for rephrasing
    and sizes the extract that seeds generate styles, counted with ``chunk_tokenizer``
    when given, else the generator's tokenizer, else approximately.
    """

    out: str
    style: str
    input: str | None = None
    topics: str | None = None
    style_files: tuple[str, ...] = ()
    seed: int = 0
    sampling: dict[str, Any] = field(default_factory=dict)
    max_docs: int | None = None
    target_tokens: int | None = None
    tokenizer: str | None = None
    chunk_tokens: int = DEFAULT_CHUNK_TOKENS
    chunk_tokenizer: str | None = None
    samples: int = 1
    batch_size: int = 32
    shard_size: int = 1000
    gates: GateConfig = field(default_factory=GateConfig)
    reassemble: bool = False
    retry_failures: bool = False
    gpus: float | None = None
    text_field: str = "text"
    id_field: str = "id"
    part: int = 0
    parts: int = 1

    def __post_init__(self) -> None:
        if (self.input is None) == (self.topics is None):
            raise ConfigError("give exactly one of --input (a corpus) and --topics (a file of topics)")
        for name, low in (("max_docs", 1), ("target_tokens", 1), ("samples", 1), ("batch_size", 1),
                          ("shard_size", 1), ("chunk_tokens", 0)):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < low):
                raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")
        if self.target_tokens is not None and not self.tokenizer:
            raise ConfigError("--target-tokens counts tokens with the training tokenizer: give --tokenizer too")
        if self.gpus is not None and self.gpus < 0:
            raise ConfigError(f"gpus must be >= 0, got {self.gpus}")
        check_sampling(self.sampling, "sampling")
        if not isinstance(self.parts, int) or self.parts < 1 or not isinstance(self.part, int) \
                or not 0 <= self.part < self.parts:
            raise ConfigError(f"part must be in [0, parts) and parts >= 1, got part {self.part!r} of {self.parts!r}")
