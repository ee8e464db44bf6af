"""Fit a law to any table on disk: the logic behind ``synthscale fit``.

``fit_table`` reads the table, keeps the ``--where`` rows, splits ``--group-by`` groups
and fits each; table_columns chooses and checks the columns, table_summary prints a
result.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from synthscale import _io
from synthscale.errors import ConfigError, InputError
from synthscale.laws._json import json_ready
from synthscale.laws._text import group_label, list_values
from synthscale.laws.data import FitError
from synthscale.laws.fit import LawData, LawFit, fit_law
from synthscale.laws.ratio import judged_best_ratio
from synthscale.laws.table_columns import DEFAULT_COLUMNS, check_column, check_groups, choose_column, column_notes

TABLE_FORMS = ("data", "model", "chinchilla", "ratio")
_NEEDS = {"data": ("tokens",), "model": ("params",), "chinchilla": ("params", "tokens"), "ratio": ("tokens", "ratio")}


def fit_table(
    input: str | Path,
    form: str,
    cols: dict[str, str] | None = None,
    bootstrap: int = 0,
    holdout: str | None = None,
    seed: int = 0,
    *,
    where: list[str] | None = None,
    group_by: list[str] | None = None,
) -> dict:
    """Fit ``form`` (data|model|chinchilla|ratio) to the table at ``input`` (.csv|.parquet).

    ``cols`` maps a role (params, tokens, loss, ratio, run) to a column name; roles not
    given use the first existing default column (DEFAULT_COLUMNS; for params a
    non-embedding column first, see is_non_embedding_params). With ``run`` (default
    ``run_id`` when present) the bootstrap resamples runs, else rows. A table with a
    ``domain`` column (a synthscale results table) is fitted on its ``mean`` rows. The
    ``ratio`` form fits L(N, D, r) when params vary in the table, else L(D, r), and gives
    r* at every trained (N, D) next to the grid's best trained ratio (``best_ratio``).

    ``where`` (``["COL=VALUE", ...]``) keeps the matching rows (numbers compared as
    numbers); ``group_by`` (column names) fits every group on its own and returns
    ``{"groups": [{"group": {COL: value}, ...fit...}, ...]}``. A table holding groups the
    form does not model (several model sizes for ``data``, budgets for ``model``, eval
    domains, mixtures) raises MixedGroupsError naming them.
    Returns the JSON-ready fit: form, n_points, objective, params {name: {value, ci}}, ...
    """
    if form not in TABLE_FORMS:
        raise ConfigError(f"--form {form!r}: expected one of {', '.join(TABLE_FORMS)}")
    cols = dict(cols or {})
    unknown = sorted(set(cols) - set(DEFAULT_COLUMNS))
    if unknown:
        raise ConfigError(f"--col {unknown[0]}=...: unknown role (roles: {', '.join(DEFAULT_COLUMNS)})")
    path = Path(input)
    df = read_table(path)
    filters = parse_where_options([where] if isinstance(where, str) else where)
    group_by = list(dict.fromkeys([group_by] if isinstance(group_by, str) else group_by or []))
    for col in [c for c, _ in filters] + group_by:
        if col not in df.columns:
            flag = "--group-by" if col in group_by else "--where"
            raise InputError(
                f"{flag} {col}: no such column (columns: {', '.join(map(str, df.columns))})", path=str(path)
            )
    ratio_col = choose_column(df, "ratio", cols, required=False, path=path) if form == "ratio" else None
    for col, value in filters:
        mask = _matches(df[col], value)
        if not mask.any():
            raise InputError(
                f"--where {col}={value}: no rows match (values of '{col}': {list_values(df[col])})", path=str(path)
            )
        df = df[mask | _shared_natural(df, col, ratio_col)]
    # Rows naming no particular eval domain: the mean rows, unless --where/--group-by picks domains.
    chosen_domain = "domain" in group_by or any(c == "domain" for c, _ in filters)
    settings = dict(
        form=form, cols=cols, bootstrap=bootstrap, holdout=holdout, seed=seed, path=path,
        where=[f"{c}={v}" for c, v in filters],
        mean_rows=not chosen_domain,
    )
    if not group_by:
        return json_ready(_fit_frame(df, **settings))
    results = []
    for key, rows in _split_groups(df, group_by, ratio_col):
        try:
            fitted = _fit_frame(rows, **settings)
        except FitError as err:
            fitted = {"error": str(err)}
        results.append({"group": key, **fitted})
    if all("error" in r for r in results):
        raise FitError(f"no group could be fitted; first: {group_label(results[0]['group'])}: {results[0]['error']}")
    return json_ready({"input": str(path), "form": form, "group_by": group_by, "groups": results})


def read_table(path: Path) -> pd.DataFrame:
    """A .csv or .parquet table as a DataFrame."""
    if not path.exists():
        raise InputError("no such file", path=str(path))
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise InputError(f"unsupported table type '{suffix}' (expected .csv or .parquet)", path=str(path))
    return _io.read_table(path, fix="check the file, or point --input at another table")


def _fit_frame(
    df: pd.DataFrame,
    *,
    form: str,
    cols: dict[str, str],
    bootstrap: int,
    holdout: str | None,
    seed: int,
    path: Path,
    where: list[str],
    mean_rows: bool,
) -> dict:
    """fit_table on rows already filtered: choose columns, refuse mixed groups, fit."""
    rows_note = None
    if mean_rows and "domain" in df.columns and (df["domain"].astype(str) == "mean").any():
        df = df[df["domain"].astype(str) == "mean"]
        rows_note = "rows with domain == 'mean'"
    roles = ["loss", *_NEEDS[form]] + (["params"] if form == "ratio" else [])
    chosen = {
        role: choose_column(df, role, cols, required=not (form == "ratio" and role == "params"), path=path)
        for role in roles
    }
    chosen = {k: v for k, v in chosen.items() if v is not None}
    run_col = choose_column(df, "run", cols, required=False, path=path)
    for role, col in chosen.items():
        check_column(df, col, ratio=(role == "ratio"), path=path)
    law = form
    if form == "ratio":
        varies = "params" in chosen and df[chosen["params"]].nunique() > 1
        law = "ratio" if varies else "ratio_data"
        if not varies:
            chosen.pop("params", None)
    check_groups(df, form, chosen, cols, path)
    data = LawData.from_frame(
        df,
        loss=chosen["loss"],
        params=chosen.get("params"),
        tokens=chosen.get("tokens"),
        ratio=chosen.get("ratio"),
        groups=run_col,
        source=str(path),
    )
    fit = fit_law(data, law, bootstrap=bootstrap, seed=seed, holdout=holdout)
    out = fit.to_dict()
    out.update(
        form=form,
        law=law,
        input=str(path),
        rows={"used": int(len(df)), "filter": rows_note, "where": list(where), "bootstrap_unit": run_col or "row"},
        seed=seed,
        column_notes=column_notes(df, chosen, cols),
    )
    if form == "ratio":
        out["best_ratio"] = _best_ratios(fit, df, chosen, out.get("verdict"), out.get("reasons") or [])
    return out


def parse_col_options(values: list[str] | None) -> dict[str, str]:
    """``--col ROLE=COLUMN`` options as a dict (ConfigError on a malformed one)."""
    cols: dict[str, str] = {}
    for value in values or []:
        role, sep, column = value.partition("=")
        if not sep or not role or not column:
            raise ConfigError(f"--col {value!r}: expected ROLE=COLUMN, e.g. --col tokens=tokens_D")
        if role not in DEFAULT_COLUMNS:
            raise ConfigError(f"--col {value!r}: unknown role '{role}' (roles: {', '.join(DEFAULT_COLUMNS)})")
        cols[role] = column
    return cols


def parse_where_options(values: list[str] | None) -> list[tuple[str, str]]:
    """``--where COL=VALUE`` options as (column, value) pairs (ConfigError on a malformed one)."""
    pairs = []
    for value in values or []:
        col, sep, wanted = str(value).partition("=")
        if not sep or not col.strip() or not wanted.strip():
            raise ConfigError(f"--where {value!r}: expected COLUMN=VALUE, e.g. --where params_N=2.81e9")
        pairs.append((col.strip(), wanted.strip()))
    return pairs


def _matches(series: pd.Series, wanted: str) -> np.ndarray:
    """Rows whose value is ``wanted``: as numbers when both are numbers (relative tolerance
    1e-6, so a value printed with 6 digits selects it), else as text."""
    text = series.astype(str).to_numpy() == wanted
    try:
        number = float(wanted)
    except ValueError:
        return text
    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=float)
    with np.errstate(invalid="ignore"):
        close = np.isclose(values, number, rtol=1e-6, atol=0.0) if np.isfinite(number) else values == number
    return text | close


def _shared_natural(df: pd.DataFrame, col: str, ratio_col: str | None) -> np.ndarray:
    """For the ratio form: the natural rows (r = 0) when ``col`` only tells natural from
    synthetic rows (e.g. ``kind``: natural vs hq), so they belong to every mixture group."""
    none = np.zeros(len(df), dtype=bool)
    if ratio_col is None or col == ratio_col:
        return none
    natural = (pd.to_numeric(df[ratio_col], errors="coerce") == 0).to_numpy()
    if not natural.any() or natural.all():
        return none
    values = df[col].astype(str).to_numpy()
    nat, syn = set(values[natural]), set(values[~natural])
    return natural if len(nat) == 1 and not nat & syn else none


def _split_groups(df: pd.DataFrame, group_by: list[str], ratio_col: str | None):
    """(group {COL: value}, rows) for every combination of the ``group_by`` values."""
    shared = {col: _shared_natural(df, col, ratio_col) for col in group_by}
    own = ~np.logical_or.reduce([shared[c] for c in group_by])
    keys = df.loc[own, group_by].drop_duplicates()
    try:
        keys = keys.sort_values(group_by, na_position="last")
    except TypeError:
        pass
    text = {col: df[col].astype(str).to_numpy() for col in group_by}
    for _, key in keys.iterrows():
        mask = np.ones(len(df), dtype=bool)
        for col in group_by:
            mask &= (text[col] == str(key[col])) | shared[col]
        group = {col: (key[col].item() if isinstance(key[col], np.generic) else key[col]) for col in group_by}
        yield group, df[mask]


def _best_ratios(fit: LawFit, df: pd.DataFrame, chosen: dict[str, str], verdict, reasons) -> list[dict]:
    """r* of the ratio law at every trained (N, D), with the grid's best trained ratio there.

    The rules (usable law only, bounds at the edge, agreement with the grid) are those of
    ``ratio.judged_best_ratio``, shared with the study's analysis.
    """
    with_params = "params" in fit.form.variables
    frame = pd.DataFrame(
        {
            "r": pd.to_numeric(df[chosen["ratio"]], errors="coerce").to_numpy(dtype=float),
            "D": pd.to_numeric(df[chosen["tokens"]], errors="coerce").to_numpy(dtype=float),
            "N": pd.to_numeric(df[chosen["params"]], errors="coerce").to_numpy(dtype=float) if with_params else 0.0,
            "L": pd.to_numeric(df[chosen["loss"]], errors="coerce").to_numpy(dtype=float),
        }
    )
    entries = []
    for _, cell in frame.groupby(["N", "D"], sort=True):
        tokens = float(cell["D"].iloc[0])
        params = float(cell["N"].iloc[0]) if with_params else None
        means = cell.groupby("r")["L"].mean()
        grid_best = float(means.idxmin()) if len(means) >= 2 else None
        entry = {"tokens": tokens, "params": params, "grid_best": grid_best,
                 "grid_ratios": [float(r) for r in means.index]}
        entry.update(judged_best_ratio(fit, tokens, frame["r"], grid_best, params, reasons=reasons or None))
        entries.append(entry)
    return entries
