"""The typed size and noise settings of a toyworld, with named size presets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .._io import read_json, stable_hash
from ..errors import ConfigError

# Bump when the generated text or world changes for the same config: it is part of the
# generator name ("toyworld@<version>") and of the completion marker, so a new version
# rebuilds old output folders.
TOYWORLD_VERSION = "2"


class ToyworldConfig(BaseModel):
    """Everything that decides a toyworld: seed, entity counts, corpus sizes, noise levels."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = Field(0, ge=0, description="seed of the world and of every corpus")
    # entities per type
    n_people: int = Field(1500, ge=2)
    n_settlements: int = Field(300, ge=2)
    n_regions: int = Field(14, ge=2)
    n_rivers: int = Field(36, ge=2)
    n_guilds: int = Field(45, ge=2)
    n_products: int = Field(120, ge=2)
    n_families: int = Field(10, ge=2)
    n_species: int = Field(160, ge=2)
    # corpora
    n_natural_docs: int = Field(8000, ge=1, description="training web documents")
    n_textbook_chapters: int = Field(1200, ge=1)
    n_eval_web_docs: int = Field(400, ge=1, description="held-out web documents")
    n_eval_encyclopedia_docs: int = Field(600, ge=1, description="held-out encyclopedia articles")
    n_eval_probe_docs: int = Field(4000, ge=1, description="held-out knowledge probes, one fact each")
    # the shape of the natural text
    zipf_exponent: float = Field(1.0, gt=0.0, le=3.0, description="entity popularity ~ rank^-exponent")
    facts_per_doc_min: int = Field(2, ge=1)
    facts_per_doc_max: int = Field(5, ge=1)
    typo_rate: float = Field(0.03, ge=0.0, le=0.5, description="chance a filler word of informal text is misspelled")
    # the generator
    textbook_error_rate: float = Field(0.1, ge=0.0, le=1.0, description="chance a textbook fact is stated wrongly")

    @model_validator(mode="after")
    def _check_ranges(self) -> "ToyworldConfig":
        if self.facts_per_doc_max < self.facts_per_doc_min:
            raise ValueError("facts_per_doc_max must be >= facts_per_doc_min")
        return self

    @classmethod
    def preset(cls, size: str = "default", **overrides: Any) -> "ToyworldConfig":
        """A named size (``default``, ``small`` or ``tiny``) with any field overridden."""
        if size not in SIZES:
            raise ConfigError(f"toyworld size: unknown size '{size}' (choose from {', '.join(SIZES)})")
        return _validated({**SIZES[size], **overrides}, where=f"toyworld size '{size}'")

    def hash(self) -> str:
        """A stable short hash of the resolved config and the toyworld version."""
        return stable_hash({"config": self.model_dump(), "version": TOYWORLD_VERSION}, 16)


# "default" is roughly 3M characters of natural text and builds in a few seconds;
# "small" is about a tenth of that for quick profiles; "tiny" is for unit tests.
SIZES: dict[str, dict[str, Any]] = {
    "default": {},
    "small": dict(n_people=400, n_settlements=80, n_regions=8, n_rivers=12, n_guilds=15, n_products=40,
                  n_families=6, n_species=50, n_natural_docs=1600, n_textbook_chapters=240,
                  n_eval_web_docs=200, n_eval_encyclopedia_docs=300, n_eval_probe_docs=1500),
    "tiny": dict(n_people=60, n_settlements=20, n_regions=4, n_rivers=5, n_guilds=6, n_products=12,
                 n_families=3, n_species=15, n_natural_docs=80, n_textbook_chapters=20,
                 n_eval_web_docs=20, n_eval_encyclopedia_docs=20, n_eval_probe_docs=60),
}


def load_toyworld_config(path: str | Path) -> ToyworldConfig:
    """Read a ToyworldConfig from a JSON file (a ``size`` key picks the preset to start from)."""
    data = read_json(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a JSON object of toyworld settings")
    size = data.pop("size", "default")
    if size not in SIZES:
        raise ConfigError(f"{path}: size: unknown size '{size}' (choose from {', '.join(SIZES)})")
    return _validated({**SIZES[size], **data}, where=str(path))


def _validated(values: dict[str, Any], where: str) -> ToyworldConfig:
    try:
        return ToyworldConfig(**values)
    except ValidationError as e:
        err = e.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "config"
        raise ConfigError(f"{where}: {field}: {err['msg']}") from None
