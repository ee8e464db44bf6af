"""Numbers and table values as plain text, for the messages and summaries of ``synthscale fit``."""

from __future__ import annotations

import numpy as np
import pandas as pd


def num(value) -> str:
    """A number as plain text: ``2.5``, ``1e+06``, ``nan``, ``inf`` (None: ``n/a``)."""
    return "n/a" if value is None else f"{float(value):.6g}"


def display(value) -> str:
    """A table value as text: floats as ``num`` does, anything else as str."""
    value = value.item() if isinstance(value, np.generic) else value
    return num(value) if isinstance(value, float) else str(value)


def list_values(series: pd.Series, limit: int = 8) -> str:
    """The distinct values of a column, sorted, as plain text (the first ``limit``)."""
    values = pd.unique(series)
    try:
        values = sorted(values)
    except TypeError:
        values = list(values)
    text = ", ".join(display(v) for v in values[:limit])
    return text + (f", ... ({len(values)} in all)" if len(values) > limit else "")


def group_label(group: dict) -> str:
    """A group of ``fit --group-by`` as text: 'model=cpu-nano, domain=web'."""
    return ", ".join(f"{col}={display(value)}" for col, value in group.items())
