"""The results table as laws/ reads it (docs/contracts.md): its columns and metric rows.

One row per (run, budget, eval domain); the recipe named ``NATURAL`` is the all-natural
baseline every synthetic recipe is measured against.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from synthscale.errors import InputError

REQUIRED_COLUMNS = ("recipe", "kind", "ratio", "model", "tokens", "domain", "loss", "run_id")
NATURAL = "natural"


def metric_rows(df: pd.DataFrame, metric_domain: str) -> tuple[pd.DataFrame, list[str]]:
    """The rows of one eval domain, loss/tokens/ratio numeric, and a warning per dropped row."""
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise InputError(f"results table lacks column(s) {', '.join(missing)}", path="results")
    rows = df[df["domain"].astype(str) == metric_domain].copy()
    if rows.empty:
        domains = ", ".join(sorted(df["domain"].astype(str).unique())[:10])
        raise InputError(f"no rows with domain '{metric_domain}' (domains: {domains})", path="results")
    rows["loss"] = pd.to_numeric(rows["loss"], errors="coerce")
    rows["tokens"] = pd.to_numeric(rows["tokens"], errors="coerce")
    rows["ratio"] = pd.to_numeric(rows["ratio"], errors="coerce").fillna(0.0)
    bad = ~(np.isfinite(rows["loss"]) & (rows["loss"] > 0) & np.isfinite(rows["tokens"]) & (rows["tokens"] > 0))
    warnings = [
        f"dropped run {r.run_id} ({r.recipe}, tokens={r.tokens}): loss {r.loss!r} is not a positive finite number"
        for r in rows[bad].itertuples()
    ]
    rows = rows[~bad]
    if "generator" not in rows.columns:
        rows["generator"] = None
    rows["generator"] = rows["generator"].map(lambda g: None if g is None or pd.isna(g) or str(g) == "" else str(g))
    return rows, warnings
