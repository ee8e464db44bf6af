"""Read and validate the report's inputs: the results table and analysis.json.

The results table has one row per (run, budget, eval domain), as docs/contracts.md
fixes it. ``normalize_results`` checks the columns, fills the optional ones, adds the
``mean`` domain rows when they are missing and a ``label`` per trained condition
(recipe, plus generator and collapse round when the study varies them).
``parse_analysis`` validates analysis.json into typed records.
"""

from __future__ import annotations

import math
import sys
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, ValidationError

from .._io import read_json, read_table
from ..errors import DamagedFileError, InputError
from ..laws.results import NATURAL, REQUIRED_COLUMNS

M = TypeVar("M", bound=BaseModel)
MEAN_DOMAIN = "mean"
NUMERIC_COLUMNS = ("ratio", "tokens", "loss", "bpb", "params_total", "params_nonembedding", "train_flops",
                   "epochs_natural", "epochs_synthetic")


# ---------------------------------------------------------------- analysis.json


class _Record(BaseModel):
    # laws/ adds fields beyond the contract (bootstrap, holdout, compute speedups); kept, not rejected.
    model_config = ConfigDict(extra="allow", protected_namespaces=())


Interval = tuple[float | None, float | None]


class Estimate(_Record):
    """A fitted parameter: point value and 95% interval (None when not bootstrapped)."""

    value: float | None = None
    ci: Interval | None = None


class Fit(_Record):
    """One fitted law (form "data": L(D) = E + B * D^-beta) for a recipe, generator and model."""

    recipe: str
    kind: str
    ratio: float
    model: str
    generator: str | None = None
    form: str = "data"
    params: dict[str, Estimate] | None = None
    objective: float | None = None
    converged: bool = True
    n_points: int | None = None
    tokens_min: float | None = None
    tokens_max: float | None = None
    error: str | None = None
    verdict: str = "ok"  # ok | weak | unusable (laws/verdict.py); older analyses have none: ok
    reasons: list[str] = []
    ci_note: str | None = None
    ci_caveat: str | None = None  # the intervals exist but come from a few distinct resamples

    @property
    def usable(self) -> bool:
        """An ok or weak law with its parameters: the only kind plots and findings may use."""
        return self.verdict != "unusable" and self.is_data_law

    def loss_at(self, tokens: np.ndarray) -> np.ndarray:
        """The fitted loss at the given token counts."""
        e, b, beta = (self.params[k].value for k in ("E", "B", "beta"))
        return e + b * np.power(np.asarray(tokens, dtype=float), -beta)

    @property
    def is_data_law(self) -> bool:
        """True for an E + B * D^-beta fit with all three parameters known."""
        return (self.form == "data" and self.params is not None
                and all(k in self.params and self.params[k].value is not None for k in ("E", "B", "beta")))


class RatioFit(_Record):
    """A ratio law L(D, r) of one synthetic kind and model (behind best_ratio.ratio_fit)."""

    kind: str
    model: str
    form: str = "ratio_data"
    params: dict[str, Estimate] | None = None
    converged: bool = True
    n_points: int | None = None
    error: str | None = None
    verdict: str = "ok"
    reasons: list[str] = []
    ci_note: str | None = None
    ci_caveat: str | None = None  # the intervals exist but come from a few distinct resamples


class Bound(_Record):
    """A one-sided number: the true value is ``op`` (">" or "<") ``value``."""

    op: Literal[">", "<", ">=", "<="]
    value: float


class Speedup(_Record):
    """Tokens natural needs / tokens the recipe needs to reach the recipe's loss at ``tokens``.

    laws/ writes a speedup beyond what the data support as ``bound`` ({op, value}) with
    ``speedup`` null, and a recipe with an unusable law as ``status: "no law"`` with a note.
    """

    recipe: str
    kind: str
    ratio: float
    model: str
    generator: str | None = None
    tokens: float
    speedup: float | None = None
    ci: Interval | None = None
    extrapolated: bool = False
    trained: bool | None = None
    natural_extrapolated: bool = False
    infinite: bool = False
    speedup_compute: float | None = None  # counts generator FLOPs too (null when unknown)
    ci_compute: Interval | None = None
    status: str = "ok"  # ok | bound (beyond what the data support) | no law (an unusable law) | no value
    bound: Bound | None = None
    bound_compute: Bound | None = None
    ci_bounds: list[str | None] | None = None  # per interval end: ">" / "<" when clipped to a limit
    note: str | None = None
    law_verdict: str = "ok"  # the worse verdict of the recipe's and natural's laws
    ci_note: str | None = None  # why there is no interval
    ci_caveat: str | None = None  # the interval exists but comes from a few distinct resamples

    @property
    def coarse_ci(self) -> bool:
        """An interval from a few distinct resamples (2-3 seeds): the spread between seeds, not a 95% interval."""
        return self.ci is not None and bool(self.ci_caveat)

    @property
    def shown(self) -> tuple[float | None, str | None]:
        """(value, op): the number a reader may use, op ">"/"<" when it is only a bound,
        (None, None) when there is none (no law, no value)."""
        if self.bound is not None:
            return self.bound.value, self.bound.op
        if self.speedup is None or math.isnan(self.speedup) or math.isinf(self.speedup):
            return None, None
        return self.speedup, None

    @property
    def at_trained_budget(self) -> bool:
        """Whether a run trained this budget (laws' ``trained`` flag, else inside the trained range)."""
        return self.trained if self.trained is not None else not self.extrapolated
        if self.infinite and self.speedup is None:
            self.speedup = math.inf
        if self.ci is not None:
            self.ci = tuple(math.inf if v is None else v for v in self.ci)
        return self


class BestRatio(_Record):
    """Best synthetic ratio for a kind and model at a budget (grid argmin and fitted optimum)."""

    kind: str
    model: str
    tokens: float
    ratio_grid: float | None = None
    ci_grid: Interval | None = None
    ratio_fit: float | None = None
    ci: Interval | None = None
    ci_grid_note: str | None = None
    ratio_fit_bound: Bound | None = None
    ratio_fit_verdict: str | None = None
    ratio_fit_note: str | None = None
    agrees_with_grid: bool | None = None


class Analysis(_Record):
    """analysis.json as written by ``synthscale.laws.analyze_results``."""

    metric: str = MEAN_DOMAIN
    fits: list[Fit] = []
    speedups: list[Speedup] = []
    best_ratio: list[BestRatio] = []
    ratio_fits: list[RatioFit] = []
    warnings: list[str] = []
    conventions: dict[str, Any] = {}


def parse_analysis(raw: Any, source: str = "analysis.json") -> Analysis:
    """Validate an analysis dict; a bad field raises InputError naming it."""
    if isinstance(raw, Analysis):
        return raw
    raw = _as_plain_dict(raw)
    if not isinstance(raw, dict):
        raise InputError("analysis must be a JSON object", path=source)
    return validated(Analysis, raw, source)


def validated(model: type[M], raw: Any, source: str) -> M:
    """``model`` (a pydantic class) validated from ``raw``; a bad field raises InputError naming it."""
    try:
        return model.model_validate(raw)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise InputError(f"field {loc}: {err['msg']}", path=source) from None


def read_study_json(path: Path, what: str | None = None, fix: str | None = None) -> Any | None:
    """The JSON file at ``path`` (None when absent); damaged JSON raises a DamagedFileError naming it
    and ``fix`` (default: rerun the study, which rewrites it)."""
    return read_json(path, what=what or path.name, missing_ok=True,
                     fix=fix or "rerun `synthscale study run SPEC`, which rewrites it")


def _as_plain_dict(raw: Any) -> Any:
    """A dict from an analysis object that offers to_dict(), model_dump() or is a dataclass."""
    if isinstance(raw, dict):
        return raw
    for method in ("to_dict", "model_dump"):
        if callable(getattr(raw, method, None)):
            return getattr(raw, method)()
    if is_dataclass(raw) and not isinstance(raw, type):
        return asdict(raw)
    return raw


def load_analysis(study_dir: Path) -> Analysis | None:
    """Read ``study_dir/analysis.json``; None when the file does not exist."""
    path = study_dir / "analysis.json"
    raw = read_study_json(path, "analysis", fix=f"run `synthscale report {study_dir} --refit` to fit the laws again")
    return None if raw is None else parse_analysis(raw, source=str(path))


# ---------------------------------------------------------------- results table


RESULTS_FIX = "rerun `synthscale study run SPEC`: it rebuilds results.parquet and results.csv from the runs"


def load_results(study_dir: Path, notes: list[str] | None = None) -> tuple[pd.DataFrame, Path]:
    """Read ``results.parquet``, else ``results.csv``, from the study folder.

    A damaged results.parquet is not fatal while results.csv reads: the csv is used, a
    warning goes to stderr and a sentence to ``notes`` (the report shows them).
    """
    study_dir = Path(study_dir)
    parquet, csv = study_dir / "results.parquet", study_dir / "results.csv"
    damaged: DamagedFileError | None = None
    if parquet.exists():
        try:
            return read_table(parquet, what="results table", fix=RESULTS_FIX), parquet
        except DamagedFileError as e:
            damaged = e
    if not csv.exists():
        if damaged is not None:
            raise damaged
        raise InputError("no results.parquet or results.csv in the study folder", path=str(study_dir))
    try:
        df = read_table(csv, what="results table", fix=RESULTS_FIX)
    except DamagedFileError as e:
        if damaged is None:
            raise
        raise DamagedFileError(f"both results tables are damaged: results.parquet and results.csv; {RESULTS_FIX}",
                               path=str(study_dir)) from e
    if damaged is not None:
        note = f"results.parquet is damaged, so this report was built from results.csv ({damaged})"
        print(f"warning: {note}", file=sys.stderr)
        if notes is not None:
            notes.append(note)
    return df, csv


def normalize_results(df: pd.DataFrame, source: str = "results table") -> pd.DataFrame:
    """Validate the results table and return a clean copy with ``label`` and ``mean`` rows."""
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise InputError(f"missing column(s) {', '.join(missing)} (see docs/contracts.md)", path=source)
    if df.empty:
        raise InputError("the results table has no rows", path=source)
    out = df.copy().reset_index(drop=True)
    for col in NUMERIC_COLUMNS:
        if col in out.columns:
            out[col] = _numeric(out[col], col, source)
    for col in ("run_id", "recipe", "kind", "model", "domain"):
        if out[col].isna().any():
            row = int(out.index[out[col].isna()][0])
            raise InputError(f"row {row}: column {col} is empty", path=source)
        out[col] = out[col].astype(str)
    natural = out["kind"] == NATURAL
    out.loc[natural, "ratio"] = out.loc[natural, "ratio"].fillna(0.0)
    if out["ratio"].isna().any():
        raise InputError(f"row {int(out.index[out['ratio'].isna()][0])}: column ratio is empty", path=source)
    bad_tokens = ~(out["tokens"] > 0)
    if bad_tokens.any():
        raise InputError(f"row {int(out.index[bad_tokens][0])}: tokens must be > 0", path=source)
    out["generator"] = _text_column(out, "generator")
    out["study"] = _text_column(out, "study")
    out["seed"] = out["seed"].fillna(0).astype(int) if "seed" in out.columns else 0
    out["round"] = out["round"].fillna(0).astype(int) if "round" in out.columns else 0
    if "params_nonembedding" not in out.columns:
        out["params_nonembedding"] = np.nan
    duplicated = out.duplicated(["run_id", "tokens", "domain"])
    if duplicated.any():
        row = int(out.index[duplicated][0])
        raise InputError(f"row {row}: a second row for the same (run_id, tokens, domain)", path=source)
    out = _with_mean_rows(out)
    out["label"] = _condition_labels(out)
    # A canonical row order makes every sum (seed means) and so every output byte-stable.
    order = ["model", "recipe", "generator", "round", "seed", "run_id", "tokens", "domain"]
    return out.sort_values(order, kind="mergesort").reset_index(drop=True)


def condition_losses(results: pd.DataFrame, domain: str = MEAN_DOMAIN) -> pd.DataFrame:
    """Seed-averaged loss per (model, condition, budget) for one domain.

    Columns: model, label, recipe, kind, ratio, generator, round, tokens, loss,
    loss_std (across seeds, 0 for one seed), n_seeds.
    """
    keys = ["model", "label", "recipe", "kind", "ratio", "generator", "round", "tokens"]
    rows = results[(results["domain"] == domain) & np.isfinite(results["loss"])]
    grouped = rows.groupby(keys, sort=True, dropna=False)["loss"]
    out = grouped.agg(loss="mean", loss_std=lambda s: float(s.std(ddof=1)) if len(s) > 1 else 0.0,
                      n_seeds="count").reset_index()
    return out


def eval_domains(results: pd.DataFrame) -> list[str]:
    """The study's eval domains (sorted), without the ``mean`` row."""
    return sorted(d for d in results["domain"].unique() if d != MEAN_DOMAIN)


def ordered_models(results: pd.DataFrame) -> list[str]:
    """Model size names, smallest first (by non-embedding params, then name)."""
    sizes = results.groupby("model")["params_nonembedding"].median()
    return sorted(sizes.index, key=lambda m: (_nan_last(sizes[m]), m))


def ordered_labels(results: pd.DataFrame) -> list[str]:
    """Condition labels in reading order: natural first, then by kind, ratio, label."""
    first = results.drop_duplicates("label")
    key = {row.label: (row.kind != NATURAL, row.kind, row.ratio, row.label) for row in first.itertuples()}
    return sorted(key, key=lambda label: key[label])


def ordered_recipes(results: pd.DataFrame) -> list[str]:
    """Recipe names in the same reading order as ``ordered_labels``."""
    recipe_of = dict(zip(results["label"], results["recipe"]))
    return list(dict.fromkeys(recipe_of[label] for label in ordered_labels(results)))


def _numeric(column: pd.Series, name: str, source: str) -> pd.Series:
    values = pd.to_numeric(column, errors="coerce")
    bad = values.isna() & column.notna()
    if bad.any():
        row = int(column.index[bad][0])
        raise InputError(f"row {row}: column {name} is not a number: {column[row]!r}", path=source)
    return values.astype(float)


def _text_column(df: pd.DataFrame, name: str) -> pd.Series:
    if name not in df.columns:
        return pd.Series([""] * len(df), index=df.index)
    return df[name].map(lambda v: "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v))


def _with_mean_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Add the unweighted per-domain mean rows for (run, budget) pairs that lack one."""
    keys = ["run_id", "tokens"]
    has_mean = set(map(tuple, df.loc[df["domain"] == MEAN_DOMAIN, keys].itertuples(index=False)))
    domain_rows = df[df["domain"] != MEAN_DOMAIN]
    added = []
    for key, group in domain_rows.groupby(keys, sort=True):
        if tuple(key) in has_mean:
            continue
        row = group.iloc[0].copy()
        row["domain"] = MEAN_DOMAIN
        row["loss"] = float(group["loss"].mean())
        if "bpb" in group.columns:
            row["bpb"] = float(group["bpb"].mean())
        added.append(row)
    if not added:
        return df
    return pd.concat([df, pd.DataFrame(added)], ignore_index=True)


def _condition_labels(df: pd.DataFrame) -> pd.Series:
    """Recipe name, plus '[generator]' / '(round n)' only when the study varies them."""
    synthetic = df[df["kind"] != NATURAL]
    several_generators = synthetic["generator"].nunique() > 1
    several_rounds = df["round"].nunique() > 1

    def label(row: pd.Series) -> str:
        text = row["recipe"]
        if several_generators and row["kind"] != NATURAL and row["generator"]:
            text += f" [{row['generator']}]"
        if several_rounds and row["kind"] != NATURAL:
            text += f" (round {row['round']})"
        return text

    return df.apply(label, axis=1).astype(str)


def _nan_last(value: float) -> float:
    return math.inf if value is None or math.isnan(value) else float(value)
