"""Which columns of a table ``synthscale fit`` reads, and whether its rows suit the form.

Each role (params, tokens, loss, ratio, run) is a column named by ``--col`` or the first
default that exists (params: a non-embedding count first). The chosen columns must hold
usable numbers, and the rows must not mix groups the form does not model (eval domains,
model sizes for the data law, mixtures, ...): MixedGroupsError says how to pick one.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from synthscale.errors import InputError
from synthscale.laws._text import list_values

# Column used for each role when --col does not name one: the first that exists. For
# params a non-embedding column (is_non_embedding_params) comes before all of these.
DEFAULT_COLUMNS: dict[str, tuple[str, ...]] = {
    "params": ("params_nonembedding", "params", "params_N", "N", "n_params", "params_total"),
    "tokens": ("tokens", "tokens_D", "D", "n_tokens"),
    "loss": ("loss", "final_val_loss", "val_loss", "L"),
    "ratio": ("ratio", "r"),
    "run": ("run_id",),
}

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


def choose_column(df: pd.DataFrame, role: str, cols: dict[str, str], *, required: bool, path: Path) -> str | None:
    """The column for ``role``: the one --col names, else the first default present (else None or InputError)."""
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


def check_column(df: pd.DataFrame, col: str, *, ratio: bool, path: Path) -> None:
    """Raise InputError at the first value of ``col`` that is not a positive number (ratio: not in [0, 1])."""
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


_FITS = {
    "data": "L(D) for one model size, eval domain and mixture",
    "model": "L(N) for one token budget, eval domain and mixture",
    "chinchilla": "L(N, D) for one eval domain and mixture",
    "ratio": "L(N, D, r) for one eval domain and one synthetic kind (natural rows are shared)",
}
_MIXTURE_LABELS = {"kind": "kinds", "generator": "generators", "round": "rounds", "ratio": "ratios", "r": "ratios"}


def check_groups(df: pd.DataFrame, form: str, chosen: dict[str, str], cols: dict[str, str], path: Path) -> None:
    """Raise MixedGroupsError when the rows hold groups the form does not model: several eval
    domains; several model sizes (data form) or token budgets (model form); several
    mixtures (recipe, kind, ratio, generator, ... columns) for a form without a ratio
    variable, or several synthetic kinds/generators for the ratio form."""
    everywhere = np.ones(len(df), dtype=bool)
    candidates: list[tuple[str, str, np.ndarray]] = []
    if "domain" in df.columns:
        candidates.append(("domain", "eval domains", everywhere))
    if form == "data":
        size = choose_column(df, "params", cols, required=False, path=path)
        candidates += [(c, "model sizes", everywhere) for c in (size, "model") if c is not None and c in df.columns]
    if form == "model":
        budget = choose_column(df, "tokens", cols, required=False, path=path)
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
        f"{col} ({df.loc[rows, col].astype(str).nunique()} {label}: {list_values(df.loc[rows, col])})"
        for col, label, rows in found
    )
    first_col, _, first_rows = found[0]
    example = list_values(df.loc[first_rows, first_col], limit=1).split(",")[0]
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


def column_notes(df: pd.DataFrame, chosen: dict[str, str], cols: dict[str, str]) -> dict[str, str]:
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
