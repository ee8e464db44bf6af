"""The study spec: a typed YAML description of a whole study, validated on load.

A spec names the corpora (natural, synthetic kinds, held-out eval domains), the
tokenizer, the recipes (synthetic kind x ratio), model sizes, token budgets, seeds and
training rules. Paths are relative to the spec file. Unknown or misspelled fields and
out-of-range values raise a ConfigError whose one line names the file and the field.
"""

from __future__ import annotations

import difflib
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..errors import ConfigError

NATURAL = "natural"
SYNTHETIC_STYLES = ("rephrase", "generate")  # corpora.synthetic.KIND.style


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class Source(_Strict):
    """A corpus: a file, folder or hf:// address, and which record fields hold id and text."""

    path: str
    text_field: str = "text"
    id_field: str = "id"


def _as_source(value: Any) -> Any:
    return {"path": value} if isinstance(value, str) else value


class SyntheticSource(Source):
    """One synthetic corpus kind: its documents and the generator that wrote them."""

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


class Corpora(_Strict):
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


class TokenizerSpec(_Strict):
    """Train a byte-level BPE on the training corpora, or load an existing tokenizer."""

    path: str | None = Field(None, description="tokenizer.json or HF tokenizer folder; trained when omitted")
    vocab_size: int = Field(4096, ge=260, le=1_000_000)
    train_bytes: int = Field(8_000_000, ge=10_000, description="at most this many text bytes to train on")


class Recipe(_Strict):
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


class Training(_Strict):
    """Training rules shared by every run (LR and batch default to the ladder rules)."""

    seq_len: int = Field(128, ge=8, le=131072)
    batch_size: int | None = Field(None, ge=1, description="sequences per optimizer step; ladder rule when omitted")
    grad_accum: int = Field(1, ge=1)
    lr: float | None = Field(None, gt=0, description="peak learning rate; ladder rule when omitted")
    min_lr_ratio: float = Field(0.1, ge=0, le=1)
    warmup_frac: float = Field(0.05, ge=0, lt=1)
    weight_decay: float = Field(0.1, ge=0)
    beta1: float = Field(0.9, ge=0, lt=1)
    beta2: float = Field(0.95, ge=0, lt=1)
    grad_clip: float = Field(1.0, ge=0)
    threads: int | None = Field(None, ge=1, description="torch CPU threads; all cores when omitted")
    compile: bool | Literal["auto"] = Field("auto", description="torch.compile: auto = on for CUDA, and on CPU for "
                                            "runs long enough to earn the compile back")
    dtype: Literal["float32", "bfloat16"] = "float32"
    schedule: Literal["cosine", "wsd"] = Field("cosine", description="cosine: one run per budget, each with its "
                                              "own schedule; wsd: one warmup-stable-decay run per recipe to the "
                                              "largest budget, the others read off short decay branches")
    decay_frac: float = Field(0.2, gt=0, lt=1, description="wsd: decay branch length as a fraction of its budget")
    checkpoint_every: int = Field(0, ge=0, description="save a resumable checkpoint every N steps (0: only the "
                                  "final weights); a killed or requeued run then continues where it stopped")


class EvalSettings(_Strict):
    """Fixed held-out token sets: the same windows for every run of the study."""

    max_tokens_per_domain: int = Field(32768, ge=64)
    batch_size: int = Field(32, ge=1)


class AnalysisSettings(_Strict):
    """Scaling-law analysis of the results table."""

    metric_domain: str = "mean"
    bootstrap: int = Field(200, ge=0)
    max_extrapolation: float = Field(
        4.0, ge=1, description="read natural's law at most this factor beyond its trained budgets; "
        "speedups beyond it are reported as bounds"
    )


class ResourceRule(_Strict):
    """Resources of one run whose model has at most ``max_params`` non-embedding parameters."""

    max_params: float | None = Field(None, gt=0, description="largest model (non-embedding params) of this rule")
    gpus: int = Field(0, ge=0, description="GPUs per run (more than 1: launched with torchrun)")
    cpus: int = Field(4, ge=1, description="CPU cores per run (also its torch threads)")
    mem_gb: float = Field(16, gt=0, description="host memory per run")


def _default_resources() -> list[ResourceRule]:
    return [
        ResourceRule(max_params=20e6, gpus=0, cpus=4, mem_gb=8),  # the cpu-* rungs: a CPU job is enough
        ResourceRule(max_params=1.2e9, gpus=1, cpus=8, mem_gb=64),
        ResourceRule(gpus=1, cpus=16, mem_gb=128),
    ]


class TimeRule(_Strict):
    """Wall time asked per run: overhead + safety * train FLOPs / throughput, clamped."""

    gpu_tflops: float = Field(100.0, gt=0, description="sustained TFLOP/s of one GPU (utilisation included)")
    cpu_gflops: float = Field(10.0, gt=0, description="sustained GFLOP/s of one CPU core")
    safety: float = Field(2.0, ge=1)
    overhead_min: float = Field(10.0, ge=0, description="start-up, data loading and evaluation")
    min_min: int = Field(10, ge=1)
    max_min: int = Field(2880, ge=1)


class SlurmSettings(_Strict):
    """Slurm through submitit: one job array per resource class, throttled."""

    cluster: Literal["slurm", "local"] = Field("slurm", description="'local' runs the jobs with submitit's "
                                               "LocalExecutor on this machine (same code path, for tests)")
    folder: str | None = Field(None, description="job scripts and logs; STUDY/slurm when omitted")
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    array_parallelism: int = Field(32, ge=1, description="at most this many runs of an array at once")
    max_requeues: int = Field(3, ge=0, description="requeues after preemption or time-out")
    signal_delay_s: int = Field(120, ge=10, description="warning signal this long before the time limit")
    setup: list[str] = Field(default_factory=list, description="shell lines run before each job (module load ...)")
    sbatch: dict[str, str | int | bool] = Field(default_factory=dict, description="any other sbatch option")
    python: str | None = Field(None, description="python command on the nodes; this interpreter when omitted")


class RaySettings(_Strict):
    """Ray: runs as tasks with resource requests."""

    address: str | None = Field(None, description="'auto', 'ray://HOST:10001' or an IP:port; a local "
                                "instance when omitted")
    namespace: str | None = None
    env: dict[str, str] = Field(default_factory=dict, description="environment variables of the tasks")


class ExecutorSettings(_Strict):
    """Where and how the runs execute (none of this enters run ids)."""

    kind: Literal["local", "slurm", "ray"] = "local"
    workers: int | None = Field(None, ge=1, description="local: runs at once; one per GPU, else one per "
                                "core (capped by the runs to do) when omitted")
    heartbeat_s: float = Field(30.0, gt=0, description="how often a worker refreshes its claim of a run")
    stale_after_s: float = Field(600.0, gt=0, description="a claim from another host with no heartbeat for "
                                 "this long is taken over")
    resources: list[ResourceRule] = Field(default_factory=_default_resources, min_length=1,
                                          description="slurm/ray: first rule whose max_params fits the model")
    time: TimeRule = Field(default_factory=TimeRule)
    slurm: SlurmSettings = Field(default_factory=SlurmSettings)
    ray: RaySettings = Field(default_factory=RaySettings)

    @model_validator(mode="after")
    def _heartbeat_below_timeout(self) -> "ExecutorSettings":
        if self.stale_after_s < 3 * self.heartbeat_s:
            raise ValueError(f"stale_after_s ({self.stale_after_s:g}) must be at least 3 x heartbeat_s "
                             f"({self.heartbeat_s:g})")
        return self


class StudySpec(_Strict):
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
    training: Training = Field(default_factory=Training)
    evaluation: EvalSettings = Field(default_factory=EvalSettings)
    analysis: AnalysisSettings = Field(default_factory=AnalysisSettings)
    executor: ExecutorSettings = Field(default_factory=ExecutorSettings)

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
                    raise ValueError(f"recipes.{i}.kind: unknown synthetic kind '{kind}' (corpora.synthetic has: {known})")
        from ..model.ladder import LADDER

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


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """Apply ``KEY.SUB=VALUE`` overrides (VALUE parsed as YAML) to a raw spec mapping."""
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set '{item}': expected KEY=VALUE, e.g. budgets=[65536,131072]")
        node = raw
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set '{item}': '{part}' is not a mapping")
        try:
            node[parts[-1]] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise ConfigError(f"--set '{item}': value is not valid YAML") from None
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


def resolve_paths(spec: StudySpec, base: Path) -> StudySpec:
    """Return a copy of ``spec`` with every corpus/tokenizer path made absolute against ``base``."""

    def absolute(p: str) -> str:
        return p if p.startswith("hf://") or Path(p).is_absolute() else str((base / p).resolve())

    data = spec.model_dump()
    sources = [data["corpora"]["natural"], *data["corpora"]["synthetic"].values(), *data["eval"].values()]
    for source in sources:
        source["path"] = absolute(source["path"])
    if data["tokenizer"]["path"]:
        data["tokenizer"]["path"] = absolute(data["tokenizer"]["path"])
    if data["executor"]["slurm"]["folder"]:
        data["executor"]["slurm"]["folder"] = absolute(data["executor"]["slurm"]["folder"])
    return StudySpec.model_validate(data)


def _describe(err: dict, raw: dict) -> str:
    loc = ".".join(str(p) for p in err["loc"])
    if err["type"] == "extra_forbidden":
        field = str(err["loc"][-1])
        parent = err["loc"][:-1]
        model = _model_at(StudySpec, parent, raw)
        known = list(model.model_fields) if model else []
        close = difflib.get_close_matches(field, known, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else f" (known: {', '.join(known)})" if known else ""
        return f"{loc}: unknown field{hint}"
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
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
