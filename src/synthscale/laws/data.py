"""The points a law is fitted to, whether a law is identifiable on them, and resampling."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from synthscale.errors import InputError, SynthscaleError
from synthscale.laws.forms import VARIABLES, Form


class FitError(SynthscaleError):
    """A law cannot be fitted to the given points (too few distinct points, no finite optimum)."""


@dataclass(frozen=True)
class LawData:
    """The points a law is fitted to: observed loss and the variables it depends on.

    ``groups`` (run ids) makes the bootstrap resample whole runs; ``strata`` makes it
    resample runs within each stratum (e.g. recipe). ``columns`` records which table
    column each variable came from (stated in every fit's output).
    """

    loss: np.ndarray
    params: np.ndarray | None = None
    tokens: np.ndarray | None = None
    ratio: np.ndarray | None = None
    groups: np.ndarray | None = None
    strata: np.ndarray | None = None
    columns: dict[str, str] = field(default_factory=dict)
    source: str = "<data>"

    def __post_init__(self) -> None:
        n = len(self.loss)
        for name in ("loss", *VARIABLES):
            values = getattr(self, name)
            if values is None:
                continue
            values = np.asarray(values, dtype=float)
            object.__setattr__(self, name, values)
            if values.shape != (n,):
                raise InputError(f"'{name}' has {values.size} values, expected {n}", path=self.source)
            bad = ~np.isfinite(values) | ((values < 0) if name == "ratio" else (values <= 0))
            if name == "ratio":
                bad |= values > 1
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                col = self.columns.get(name, name)
                want = "a ratio in [0, 1]" if name == "ratio" else "a positive finite number"
                raise InputError(f"point {i}: column '{col}' = {float(values[i])!r}, expected {want}", path=self.source)
        for name in ("groups", "strata"):
            values = getattr(self, name)
            if values is not None and len(values) != n:
                raise InputError(f"'{name}' has {len(values)} values, expected {n}", path=self.source)

    @property
    def n_points(self) -> int:
        return len(self.loss)

    def variables(self) -> dict[str, np.ndarray]:
        """The variables present, by name (params, tokens, ratio)."""
        return {v: getattr(self, v) for v in VARIABLES if getattr(self, v) is not None}

    def select(self, mask: np.ndarray) -> LawData:
        """The points where ``mask`` is true."""
        pick = lambda a: None if a is None else np.asarray(a)[mask]  # noqa: E731
        return LawData(
            loss=self.loss[mask],
            params=pick(self.params),
            tokens=pick(self.tokens),
            ratio=pick(self.ratio),
            groups=pick(self.groups),
            strata=pick(self.strata),
            columns=self.columns,
            source=self.source,
        )

    @classmethod
    def from_frame(
        cls,
        df: pd.DataFrame,
        *,
        loss: str = "loss",
        params: str | None = None,
        tokens: str | None = None,
        ratio: str | None = None,
        groups: str | None = None,
        strata: str | None = None,
        source: str = "<table>",
    ) -> LawData:
        """Points from the named columns of a table (None leaves a variable out)."""
        wanted = {"loss": loss, "params": params, "tokens": tokens, "ratio": ratio, "groups": groups, "strata": strata}
        for role, col in wanted.items():
            if col is not None and col not in df.columns:
                raise InputError(
                    f"no column '{col}' (for {role}); columns are: {', '.join(map(str, df.columns))}", path=source
                )
        arrays = {}
        for role, col in wanted.items():
            if col is None:
                continue
            if role in ("groups", "strata"):
                arrays[role] = df[col].astype(str).to_numpy()
            else:
                arrays[role] = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=float)
        columns = {role: col for role, col in wanted.items() if col is not None and role not in ("groups", "strata")}
        return cls(**arrays, columns=columns, source=source)


def distinct_resamples(data: LawData, cap: int = 10**6) -> int:
    """How many different resamples ``resample_weights`` can draw (at most ``cap``).

    A resample draws, in each stratum of k groups (runs), a multiset of k of them: C(2k - 1, k)
    choices per stratum. One run per stratum (one seed of a WSD study, whose one run reads every
    budget) gives 1: every resample is the data itself. Two give 3 (each run alone, both)."""
    if data.groups is None:
        return min(cap, math.comb(2 * data.n_points - 1, data.n_points)) if data.n_points else 1
    strata = data.strata if data.strata is not None else np.zeros(data.n_points, dtype=int).astype(str)
    keys = pd.DataFrame({"stratum": np.asarray(strata).astype(str), "group": np.asarray(data.groups).astype(str)})
    total = 1
    for k in keys.groupby("stratum")["group"].nunique():
        total = min(cap, total * math.comb(2 * int(k) - 1, int(k)))
    return total


def resample_weights(data: LawData, n: int, rng: np.random.Generator) -> np.ndarray:
    """Point weights [n, points] of ``n`` run-level resamples (with replacement, per stratum)."""
    groups = data.groups if data.groups is not None else np.arange(data.n_points).astype(str)
    strata = data.strata if data.strata is not None else np.zeros(data.n_points, dtype=int).astype(str)
    keys = pd.MultiIndex.from_arrays([strata, groups])
    group_codes, group_keys = pd.factorize(keys, sort=True)
    group_strata = np.asarray([k[0] for k in group_keys])
    counts = np.zeros((n, len(group_keys)))
    for stratum in np.unique(group_strata):
        members = np.flatnonzero(group_strata == stratum)
        draws = rng.integers(0, len(members), size=(n, len(members)))
        np.add.at(counts, (np.arange(n)[:, None], members[draws]), 1.0)
    return counts[:, group_codes]


def check_identifiable(data: LawData, form: Form) -> None:
    """Raise FitError unless ``data`` has enough distinct points to fit ``form``."""
    missing = [v for v in form.variables if getattr(data, v) is None]
    if missing:
        raise FitError(f"{data.source}: the {form.name} law needs {', '.join(missing)}")
    if not identifiable_rows(data, form, np.ones((1, data.n_points)))[0]:
        need = ", ".join(f"{k} >= {v}" for k, v in form.min_distinct)
        raise FitError(
            f"{data.source}: too few distinct points for the {form.name} law "
            f"({data.n_points} points; needs distinct {need} and >= {form.n_params} distinct points)"
        )


def identifiable_rows(data: LawData, form: Form, weights: np.ndarray) -> np.ndarray:
    """Per weight row: enough distinct values of each variable, and of points, to fit."""
    present = weights > 0
    ok = np.ones(len(weights), dtype=bool)
    for name, minimum in form.min_distinct:
        ok &= _count_distinct(getattr(data, name), present) >= minimum
    tuples = pd.MultiIndex.from_arrays([getattr(data, v) for v in form.variables])
    ok &= _count_distinct(tuples, present) >= form.n_params
    return ok


def _count_distinct(values, present: np.ndarray) -> np.ndarray:
    codes, uniques = pd.factorize(values)
    hits = np.zeros((present.shape[0], len(uniques)), dtype=bool)
    rows, cols = np.nonzero(present)
    hits[rows, codes[cols]] = True
    return hits.sum(axis=1)
