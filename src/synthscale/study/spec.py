"""The study spec: a typed YAML description of a whole study, validated on load.

A spec names the corpora (natural, synthetic kinds, held-out eval domains), the
tokenizer, the recipes (synthetic kind x ratio), model sizes, token budgets, seeds and
training rules. Paths are relative to the spec file. Unknown or misspelled fields and
out-of-range values raise a ConfigError whose one line names the file and the field.
"""

from __future__ import annotations

import dataclasses
import difflib
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from ..errors import ConfigError, SynthscaleError
from ..generate.style_files import resolve_style
from ..laws.results import NATURAL
from ..model.ladder import LADDER
from ..train.config import PER_RUN_FIELDS, TrainConfig
from .spec_base import Strict
from .spec_executor import ExecutorSettings
from .spec_generate import GenerateSpec

SYNTHETIC_STYLES = ("rephrase", "generate")  # corpora.synthetic.KIND.style


class Source(Strict):
    """A corpus: a file, folder or hf:// address, and which record fields hold id and text."""

    path: str
    text_field: str = "text"
    id_field: str = "id"


def _as_source(value: Any) -> Any:
    return {"path": value} if isinstance(value, str) else value


class SyntheticSource(Source):
    """One synthetic corpus kind: its documents (``path``), or how the study generates them (``generate``)."""

    path: str | None = None  # type: ignore[assignment]
    generate: GenerateSpec | None = Field(None, description="generate the corpus in the study instead of reading "
                                          "`path` (docs/study.md, 'Generating inside a study')")
    generator: str | None = Field(None, description="generator name@revision; read from the corpus when omitted")
    generator_flops_per_token: float | None = Field(None, ge=0, description="for compute-inclusive speedups")
    style: Literal["rephrase", "generate"] | None = Field(
        None, description="rephrase: rewrites of natural documents (the paper's HQ, QA); generate: written from "
        "topics or seeds (textbook). Decides which findings test the kind; when omitted the report falls back "
        "to the kind's name (hq, qa: rephrase; textbook, txbk: generate) and says so")

    @field_validator("style", mode="before")
    @classmethod
    def _known_style(cls, value: Any) -> Any:
        if value is not None and value not in SYNTHETIC_STYLES:
            raise ValueError(f"style {value!r} must be 'rephrase' (rewrites of natural documents, like the "
                             f"paper's HQ and QA) or 'generate' (written from topics or seeds, like textbooks)")
        return value

    @model_validator(mode="after")
    def _path_or_generate(self) -> "SyntheticSource":
        if (self.path is None) == (self.generate is None):
            raise ValueError("give exactly one of `path` (a corpus) and `generate` (generate it in the study)")
        return self

    def paper_style(self) -> str | None:
        """'rephrase' or 'generate' (which findings test the kind): ``style``, else the generation style's kind."""
        if self.style or self.generate is None:
            return self.style

        try:
            return resolve_style(self.generate.style, tuple(self.generate.style_files)).kind
        except SynthscaleError:
            return None


class Corpora(Strict):
    """Training corpora: the natural pool and each synthetic kind."""

    natural: Source
    synthetic: dict[str, SyntheticSource] = Field(default_factory=dict)

    @field_validator("natural", mode="before")
    @classmethod
    def _natural_path(cls, value: Any) -> Any:
        return _as_source(value)

    @field_validator("synthetic", mode="before")
    @classmethod
    def _paths_as_sources(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: _as_source(v) for k, v in value.items()}
        return value

    @field_validator("synthetic")
    @classmethod
    def _kind_names(cls, value: dict[str, SyntheticSource]) -> dict[str, SyntheticSource]:
        for kind in value:
            if kind == NATURAL or not kind.replace("_", "").replace("-", "").isalnum():
                raise ValueError(f"synthetic kind name '{kind}' must be alphanumeric and not '{NATURAL}'")
        return value


class TokenizerSpec(Strict):
    """Train a byte-level BPE on the training corpora, or load an existing tokenizer."""

    path: str | None = Field(None, description="tokenizer.json or HF tokenizer folder; trained when omitted")
    vocab_size: int = Field(4096, ge=260, le=1_000_000)
    train_bytes: int = Field(8_000_000, ge=10_000, description="at most this many text bytes to train on")


class Recipe(Strict):
    """Synthetic kind(s) mixed into natural text at each synthetic token fraction r."""

    kind: str = Field(description="a synthetic kind, several joined by '+', or 'natural'")
    ratios: list[float] = Field(default_factory=lambda: [0.0])

    @field_validator("ratios", mode="before")
    @classmethod
    def _parse_fractions(cls, value: Any) -> Any:
        if not isinstance(value, list):
            value = [value]
        return [_parse_ratio(v) for v in value]

    @field_validator("ratios")
    @classmethod
    def _in_unit_interval(cls, value: list[float]) -> list[float]:
        for r in value:
            if not 0.0 <= r <= 1.0:
                raise ValueError(f"ratio {r:g} is outside [0, 1]")
        return value

    @property
    def kinds(self) -> list[str]:
        """The synthetic kinds of this recipe (empty for natural)."""
        return [] if self.kind == NATURAL else self.kind.split("+")


class EvalSettings(Strict):
    """Fixed held-out token sets: the same windows for every run of the study."""

    max_tokens_per_domain: int = Field(32768, ge=64)
    batch_size: int = Field(32, ge=1)


class AnalysisSettings(Strict):
    """Scaling-law analysis of the results table."""

    metric_domain: str = "mean"
    bootstrap: int = Field(200, ge=0)
    max_extrapolation: float = Field(
        4.0, ge=1, description="read natural's law at most this factor beyond its trained budgets; "
        "speedups beyond it are reported as bounds"
    )


class StudySpec(Strict):
    """A whole study: corpora x recipes x model sizes x budgets x seeds."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    seed: int = 0
    corpora: Corpora
    eval: dict[str, Source] = Field(min_length=1, description="eval domain name -> held-out corpus")
    tokenizer: TokenizerSpec = Field(default_factory=TokenizerSpec)
    recipes: list[Recipe] = Field(min_length=1)
    models: list[str] = Field(min_length=1)
    budgets: list[int] = Field(min_length=1, description="training tokens per run")
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    training: TrainConfig = Field(default_factory=TrainConfig, description="training settings shared by every "
                                  "run (train/config.py's TrainConfig without tokens, seed and budgets; batch "
                                  "size and learning rate default to the ladder rules)")
    evaluation: EvalSettings = Field(default_factory=EvalSettings)
    analysis: AnalysisSettings = Field(default_factory=AnalysisSettings)
    executor: ExecutorSettings = Field(default_factory=ExecutorSettings)

    @field_validator("training", mode="before")
    @classmethod
    def _no_per_run_fields(cls, value: Any) -> Any:
        if isinstance(value, dict):
            for name in PER_RUN_FIELDS:
                if value.get(name) not in (None, 0, [], ()):  # unset (a dumped spec holds them at their defaults)
                    where = "`seeds`" if name == "seed" else "`budgets`"
                    raise ValueError(f"training.{name} is set for each run from the spec's {where}; remove it")
        return value

    @field_validator("budgets")
    @classmethod
    def _positive_budgets(cls, value: list[int]) -> list[int]:
        for b in value:
            if b <= 0:
                raise ValueError(f"budget {b} must be a positive number of tokens")
        return sorted(set(value))

    @field_validator("eval", mode="before")
    @classmethod
    def _eval_paths(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: _as_source(v) for k, v in value.items()}
        return value

    @field_validator("eval")
    @classmethod
    def _domain_names(cls, value: dict[str, Source]) -> dict[str, Source]:
        if "mean" in value:
            raise ValueError("'mean' is reserved for the average over domains")
        return value

    @model_validator(mode="after")
    def _known_kinds(self) -> "StudySpec":
        for i, recipe in enumerate(self.recipes):
            for kind in recipe.kinds:
                if kind not in self.corpora.synthetic:
                    known = ", ".join(sorted(self.corpora.synthetic)) or "none"
                    raise ValueError(f"recipes.{i}.kind: unknown synthetic kind '{kind}' "
                                     f"(corpora.synthetic has: {known})")

        for name in self.models:
            if name not in LADDER:
                close = difflib.get_close_matches(name, list(LADDER), n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                raise ValueError(f"models: unknown model size '{name}'{hint}; see `synthscale ladder`")
        return self


def _parse_ratio(value: Any) -> Any:
    """Accept numbers and fraction strings such as '1/3'."""
    if isinstance(value, str):
        try:
            return float(Fraction(value.strip()))
        except (ValueError, ZeroDivisionError):
            raise ValueError(f"ratio '{value}' is not a number or fraction like 1/3") from None
    return value


def apply_overrides(raw: dict, overrides: list[str], option: str = "--set",
                    example: str = "budgets=[65536,131072]") -> dict:
    """Apply ``KEY.SUB=VALUE`` overrides (VALUE parsed as YAML) to a raw mapping.

    ``option`` and ``example`` name the command-line option in error messages.
    """
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{option} '{item}': expected KEY=VALUE, e.g. {example}")
        node = raw
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{option} '{item}': '{part}' is not a mapping")
        try:
            node[parts[-1]] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise ConfigError(f"{option} '{item}': value is not valid YAML") from None
    return raw


def load_spec(path: str | Path, overrides: list[str] | None = None) -> tuple[StudySpec, Path]:
    """Read and validate a study spec (with optional --set overrides); paths resolved against its folder."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such spec file") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"{where}: not valid YAML: {getattr(e, 'problem', e)}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a study spec must be a YAML mapping")
    spec = parse_spec(apply_overrides(raw, overrides or []), source=str(path))
    return resolve_paths(spec, path.parent), path.parent


def parse_spec(raw: dict, source: str = "<spec>") -> StudySpec:
    """Validate a spec mapping; raise a one-line ConfigError naming the first bad field."""
    try:
        return StudySpec.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(f"{source}: {_describe(e.errors()[0], raw)}") from None
    except ConfigError as e:  # TrainConfig's checks raise it directly
        message = str(e)
        if message.startswith("TrainConfig."):
            message = "training." + message[len("TrainConfig."):]
        raise ConfigError(f"{source}: {message}") from None


def resolve_paths(spec: StudySpec, base: Path) -> StudySpec:
    """Return a copy of ``spec`` with every corpus/tokenizer path made absolute against ``base``."""

    def absolute(p: str) -> str:
        return p if p.startswith("hf://") or Path(p).is_absolute() else str((base / p).resolve())

    data = spec.model_dump(by_alias=True)
    sources = [data["corpora"]["natural"], *data["corpora"]["synthetic"].values(), *data["eval"].values()]
    for source in sources:
        if source["path"] is not None:
            source["path"] = absolute(source["path"])
        gen = source.get("generate")
        if gen:
            if gen["from"] != "natural":
                gen["from"] = absolute(gen["from"])
            gen["style_files"] = [absolute(f) for f in gen["style_files"]]
            if gen.get("topics"):
                gen["topics"] = absolute(gen["topics"])
            for g in gen["generators"] or [gen]:
                if g.get("model") and (base / g["model"]).exists():  # a local model folder or world.json
                    g["model"] = absolute(g["model"])
    if data["tokenizer"]["path"]:
        data["tokenizer"]["path"] = absolute(data["tokenizer"]["path"])
    if data["executor"]["slurm"]["folder"]:
        data["executor"]["slurm"]["folder"] = absolute(data["executor"]["slurm"]["folder"])
    return StudySpec.model_validate(data)


def _describe(err: dict, raw: dict) -> str:
    loc = ".".join(str(p) for p in err["loc"])
    if err["type"] in ("extra_forbidden", "unexpected_keyword_argument"):
        field = str(err["loc"][-1])
        parent = err["loc"][:-1]
        model = _model_at(StudySpec, parent, raw)
        known = list(model.model_fields) if model else []
        if parent == ("training",):
            known = [f.name for f in dataclasses.fields(TrainConfig) if f.name not in PER_RUN_FIELDS]
        close = difflib.get_close_matches(field, known, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else f" (known: {', '.join(known)})" if known else ""
        return f"{loc}: unknown field{hint}"
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    if msg.startswith("TrainConfig."):  # TrainConfig's own check, raised while the spec's training was built
        return "training." + msg[len("TrainConfig."):]
    return f"{loc}: {msg}" if loc else msg


def _model_at(model: type[BaseModel], loc: tuple, raw: Any) -> type[BaseModel] | None:
    """The pydantic model class that sits at ``loc`` inside StudySpec (for field hints)."""
    current: Any = model
    for part in loc:
        if isinstance(part, int) or current is None:
            continue
        field = current.model_fields.get(part) if isinstance(current, type) and issubclass(current, BaseModel) else None
        if field is None:
            # a dict value (e.g. corpora.synthetic.<kind>): keep the value model of the dict
            continue
        current = _inner_model(field.annotation)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _inner_model(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _inner_model(arg)
        if found is not None:
            return found
    return None
