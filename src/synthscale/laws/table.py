"""Fit a law to any table on disk: the logic behind ``synthscale fit``."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from synthscale import _io
from synthscale.errors import ConfigError, InputError
from synthscale.laws._json import json_ready
from synthscale.laws.data import FitError
from synthscale.laws.fit import LawData, LawFit, fit_law
from synthscale.laws.ratio import judged_best_ratio

TABLE_FORMS = ("data", "model", "chinchilla", "ratio")

# Column used for each role when --col does not name one: the first that exists. For
# params a non-embedding column (is_non_embedding_params) comes before all of these.
DEFAULT_COLUMNS: dict[str, tuple[str, ...]] = {
    "params": ("params_nonembedding", "params", "params_N", "N", "n_params", "params_total"),
    "tokens": ("tokens", "tokens_D", "D", "n_tokens"),
    "loss": ("loss", "final_val_loss", "val_loss", "L"),
    "ratio": ("ratio", "r"),
    "run": ("run_id",),
}
_NEEDS = {"data": ("tokens",), "model": ("params",), "chinchilla": ("params", "tokens"), "ratio": ("tokens", "ratio")}

# Columns that tell mixtures apart; a form without a ratio variable fits one mixture.
MIXTURE_COLUMNS = ("recipe", "mixture", "kind", "ratio", "r", "generator", "round")

# "no emb", "non-embedding", "excl. embeddings", "w/o emb", ... once lower-cased and with
# everything but letters and digits removed; what is left must name a parameter count.
_NON_EMB = re.compile(r"(?:non|no|excl|excluding|exclude|without|wo|minus)emb(?:eddings?|eds?|s)?")
_PARAMS_NAME = re.compile(r"(?:n|num|number|nb|model|total)?(?:params?|parameters?)?(?:n|count)?")


class MixedGroupsError(InputError):
    """The table holds groups (model sizes, eval domains, mixtures, ...) the form does not model."""


def is_non_embedding_params(name: str) -> bool:
    """Whether a column name reads as a parameter count without embeddings.

    The rule, on the name lower-cased with everything but letters and digits removed: it
    holds a negated embedding word (``noemb``, ``nonembedding``, ``exclemb``, ``woemb``,
    ...) and what is left names a count (``n``, ``params``, ``nparams``, ``num_parameters``,
    ...). So ``N_no_emb``, ``params_no_embed``, ``non_embedding_params``,
    ``params_nonembedding`` and ``n_params_no_embed`` match; ``embedding_params`` does not.
    """
    flat = re.sub(r"[^a-z0-9]", "", str(name).lower())
    match = _NON_EMB.search(flat)
    if not match:
        return False
    rest = flat[: match.start()] + flat[match.end() :]
    return bool(rest) and ("param" in rest or rest == "n") and _PARAMS_NAME.fullmatch(rest) is not None


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
    ratio_col = _column(df, "ratio", cols, required=False, path=path) if form == "ratio" else None
    for col, value in filters:
        mask = _matches(df[col], value)
        if not mask.any():
            raise InputError(
                f"--where {col}={value}: no rows match (values of '{col}': {_list_values(df[col])})", path=str(path)
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
        raise FitError(f"no group could be fitted; first: {_group_label(results[0]['group'])}: {results[0]['error']}")
    return json_ready({"input": str(path), "form": form, "group_by": group_by, "groups": results})


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
        role: _column(df, role, cols, required=not (form == "ratio" and role == "params"), path=path) for role in roles
    }
    chosen = {k: v for k, v in chosen.items() if v is not None}
    run_col = _column(df, "run", cols, required=False, path=path)
    for role, col in chosen.items():
        _check_column(df, col, ratio=(role == "ratio"), path=path)
    law = form
    if form == "ratio":
        varies = "params" in chosen and df[chosen["params"]].nunique() > 1
        law = "ratio" if varies else "ratio_data"
        if not varies:
            chosen.pop("params", None)
    _check_groups(df, form, chosen, cols, path)
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
        column_notes=_column_notes(df, chosen, cols),
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


def summarize_fit(result: dict) -> str:
    """A few human-readable lines for a ``fit_table`` result (the CLI without --json):
    the fit, its verdict, the column used for each variable, the parameters, the holdout
    check and, for the ratio form, r* next to the grid's best ratio. One block per group."""
    if "groups" in result:
        blocks = []
        for entry in result["groups"]:
            head = f"== {_group_label(entry['group'])}"
            body = f"  error: {entry['error']}" if "error" in entry else summarize_fit(entry)
            blocks.append(f"{head}\n{body}")
        return "\n\n".join(blocks)
    status = "converged" if result["converged"] else f"NOT converged ({result['message']})"
    lines = [f"{result['law']} law on {result['n_points']} points: objective {_num(result['objective'])}, {status}"]
    if result.get("verdict"):
        reasons = result.get("reasons") or []
        lines.append(f"verdict: {result['verdict']}" + (f" ({'; '.join(reasons)})" if reasons else ""))
    notes = result.get("column_notes") or {}
    for role, col in (result.get("columns") or {}).items():
        note = f" ({notes[role]})" if notes.get(role) else ""
        lines.append(f"  {role:>6} = column '{col}'{note}")
    rows = result.get("rows") or {}
    if rows.get("filter") or rows.get("where"):
        used = [f for f in [rows.get("filter"), *[f"where {w}" for w in rows.get("where") or []]] if f]
        lines.append(f"  rows: {rows.get('used')} ({', '.join(used)})")
    if result.get("verdict") == "unusable":  # the optimiser's values stay in the JSON, for inspection
        lines.append("  parameters not shown: the data do not support this law (see the verdict)")
    else:
        for name, p in result["params"].items():
            ci = "" if p["ci"] is None else f"  95% CI [{_num(p['ci'][0])}, {_num(p['ci'][1])}]"
            lines.append(f"  {name:>6} = {_num(p['value'])}{ci}")
    held = result.get("holdout")
    if held and "rel_error_mean" in held:
        lines.append(
            f"  held out {held['axis']} = {held['value']:.6g}: mean relative error {held['rel_error_mean']:.3%}"
        )
    elif held and "error" in held:
        lines.append(f"  holdout: {held['error']}")
    if "best_ratio" in result:
        lines += _summarize_best_ratio(result)
    return "\n".join(lines)


def _summarize_best_ratio(result: dict) -> list[str]:
    entries = result["best_ratio"]
    trained = result.get("ranges", {}).get("ratio")
    span = f"; trained r in [{_num(trained[0])}, {_num(trained[1])}]" if trained else ""
    weak = " from a weak law" if result.get("verdict") == "weak" else ""
    lines = [f"best synthetic ratio r*{weak} (the law's argmin over r{span}; grid best: lowest mean loss):"]
    for e in entries:
        where = f"N = {_num(e['params'])}, D = {_num(e['tokens'])}" if e.get("params") is not None else (
            f"D = {_num(e['tokens'])}"
        )
        if e.get("bound"):
            text = (f"r* {e['bound']['op']} {_num(e['bound']['value'])} "
                    f"(bound: the law's minimum is at the edge of the trained ratios or beyond)")
        elif e.get("value") is None:
            text = e.get("note") or "no r*"
        else:
            text = f"r* = {e['value']:.3g}"
            if e.get("ci"):
                text += f"  95% CI [{e['ci'][0]:.3g}, {e['ci'][1]:.3g}]"
                if e.get("ci_clipped"):
                    text += " (clipped to the trained ratios)"
        if e.get("extrapolated"):
            text += " (extrapolated)"
        if e.get("grid_best") is not None:
            text += f"; grid best {_num(e['grid_best'])}"
            if e.get("agrees") is False:
                text += "  DISAGREES with the law's r*"
            elif e.get("agrees"):
                text += " (agrees)"
        lines.append(f"  {where}: {text}")
    return lines


def read_table(path: Path) -> pd.DataFrame:
    """A .csv or .parquet table as a DataFrame."""
    if not path.exists():
        raise InputError("no such file", path=str(path))
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise InputError(f"unsupported table type '{suffix}' (expected .csv or .parquet)", path=str(path))
    return _io.read_table(path, fix="check the file, or point --input at another table")


def _column(df: pd.DataFrame, role: str, cols: dict[str, str], *, required: bool, path: Path) -> str | None:
    if role in cols:
        if cols[role] not in df.columns:
            raise InputError(
                f"--col {role}={cols[role]}: no such column (columns: {', '.join(map(str, df.columns))})",
                path=str(path),
            )
        return cols[role]
    if role == "params":
        for name in df.columns:
            if is_non_embedding_params(name):
                return str(name)
    for name in DEFAULT_COLUMNS[role]:
        if name in df.columns:
            return name
    if required:
        tried = ", ".join(DEFAULT_COLUMNS[role])
        tried = f"a non-embedding count such as N_no_emb, {tried}" if role == "params" else tried
        raise InputError(
            f"no {role} column (tried {tried}); name one with --col {role}=COLUMN",
            path=str(path),
        )
    return None


def _check_column(df: pd.DataFrame, col: str, *, ratio: bool, path: Path) -> None:
    values = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(values) | ((values < 0) | (values > 1) if ratio else (values <= 0))
    if not bad.any():
        return
    i = int(np.flatnonzero(bad)[0])
    want = "a ratio in [0, 1]" if ratio else "a positive number"
    raw = df[col].iloc[i]
    raw = raw.item() if isinstance(raw, np.generic) else raw  # nan, not np.float64(nan)
    if path.suffix.lower() == ".csv":
        raise InputError(f"column '{col}' = {raw!r}, expected {want}", path=str(path), line=int(df.index[i]) + 2)
    raise InputError(f"row {i}: column '{col}' = {raw!r}, expected {want}", path=str(path))


def _num(value) -> str:
    """A number as plain text: ``2.5``, ``1e+06``, ``nan``, ``inf`` (None: ``n/a``)."""
    return "n/a" if value is None else f"{float(value):.6g}"


def _display(value) -> str:
    value = value.item() if isinstance(value, np.generic) else value
    return _num(value) if isinstance(value, float) else str(value)


def _list_values(series: pd.Series, limit: int = 8) -> str:
    """The distinct values of a column, sorted, as plain text (the first ``limit``)."""
    values = pd.unique(series)
    try:
        values = sorted(values)
    except TypeError:
        values = list(values)
    text = ", ".join(_display(v) for v in values[:limit])
    return text + (f", ... ({len(values)} in all)" if len(values) > limit else "")


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


def _group_label(group: dict) -> str:
    return ", ".join(f"{col}={_display(value)}" for col, value in group.items())


_FITS = {
    "data": "L(D) for one model size, eval domain and mixture",
    "model": "L(N) for one token budget, eval domain and mixture",
    "chinchilla": "L(N, D) for one eval domain and mixture",
    "ratio": "L(N, D, r) for one eval domain and one synthetic kind (natural rows are shared)",
}
_MIXTURE_LABELS = {"kind": "kinds", "generator": "generators", "round": "rounds", "ratio": "ratios", "r": "ratios"}


def _check_groups(df: pd.DataFrame, form: str, chosen: dict[str, str], cols: dict[str, str], path: Path) -> None:
    """Raise MixedGroupsError when the rows hold groups the form does not model: several eval
    domains; several model sizes (data form) or token budgets (model form); several
    mixtures (recipe, kind, ratio, generator, ... columns) for a form without a ratio
    variable, or several synthetic kinds/generators for the ratio form."""
    everywhere = np.ones(len(df), dtype=bool)
    candidates: list[tuple[str, str, np.ndarray]] = []
    if "domain" in df.columns:
        candidates.append(("domain", "eval domains", everywhere))
    if form == "data":
        size = _column(df, "params", cols, required=False, path=path)
        candidates += [(c, "model sizes", everywhere) for c in (size, "model") if c is not None and c in df.columns]
    if form == "model":
        budget = _column(df, "tokens", cols, required=False, path=path)
        if budget is not None:
            candidates.append((budget, "token budgets", everywhere))
    if form == "ratio":
        synthetic = (pd.to_numeric(df[chosen["ratio"]], errors="coerce") > 0).to_numpy()
        encodes_ratio = {chosen["ratio"], "recipe", "mixture", "ratio", "r"}
        candidates += [
            (c, _MIXTURE_LABELS.get(c, "mixtures"), synthetic)
            for c in MIXTURE_COLUMNS
            if c in df.columns and c not in encodes_ratio
        ]
    else:
        named = [cols["ratio"]] if "ratio" in cols and cols["ratio"] in df.columns else []
        mixtures = dict.fromkeys([*MIXTURE_COLUMNS, *named])
        candidates += [(c, _MIXTURE_LABELS.get(c, "mixtures"), everywhere) for c in mixtures if c in df.columns]
    found = []
    for col, label, rows in candidates:
        if col in [f[0] for f in found] or col in chosen.values():
            continue
        if df.loc[rows, col].astype(str).nunique() > 1:
            found.append((col, label, rows))
    if not found:
        return
    text = df.astype({c: str for c, _, _ in found})

    def refines(a: str, b: str) -> bool:  # every value of a has one value of b
        return bool(text.groupby(a)[b].nunique().max() <= 1)

    found = [
        f
        for i, f in enumerate(found)
        if not any(refines(g[0], f[0]) and (not refines(f[0], g[0]) or j < i) for j, g in enumerate(found) if j != i)
    ]
    listed = "; ".join(
        f"{col} ({df.loc[rows, col].astype(str).nunique()} {label}: {_list_values(df.loc[rows, col])})"
        for col, label, rows in found
    )
    first_col, _, first_rows = found[0]
    example = _list_values(df.loc[first_rows, first_col], limit=1).split(",")[0]
    hints = []
    if any(label in ("model sizes", "token budgets") for _, label, _ in found):
        hints.append("--form chinchilla to model N and D together")
    if form != "ratio" and any(col in MIXTURE_COLUMNS for col, _, _ in found):
        hints.append("--form ratio to model the synthetic ratio")
    raise MixedGroupsError(
        f"--form {form} fits {_FITS[form]}, but the table holds several groups: {listed}; "
        f"keep one with --where COL=VALUE (e.g. --where {first_col}={example}) or fit each with --group-by COL "
        f"(e.g. {' '.join(f'--group-by {c}' for c, _, _ in found)})" + (f"; or {', or '.join(hints)}" if hints else ""),
        path=str(path),
    )


def _column_notes(df: pd.DataFrame, chosen: dict[str, str], cols: dict[str, str]) -> dict[str, str]:
    """Why each column was used, where it is worth saying: the non-embedding preference."""
    notes = {}
    for role, col in chosen.items():
        parts = ["named by --col"] if role in cols else []
        if role == "params":
            non_emb = [str(c) for c in df.columns if is_non_embedding_params(c)]
            if col in non_emb:
                others = [c for c in DEFAULT_COLUMNS["params"] if c in df.columns and c not in non_emb]
                over = f"; preferred over {', '.join(repr(c) for c in others)}" if others and role not in cols else ""
                parts.insert(0, "non-embedding" + over)
            elif non_emb:
                parts.append(f"not the non-embedding column {non_emb[0]!r}")
            else:
                parts.append("no non-embedding column in the table")
        if parts:
            notes[role] = "; ".join(parts)
    return notes


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
