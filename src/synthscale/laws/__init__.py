"""synthscale.laws: scaling-law forms, robust fits with bootstrap intervals, speedups, best ratios.

Reads only the results table (docs/contracts.md) or any table with size/tokens/loss
columns. See docs/laws.md for the forms, the fitting method and the definitions.
"""

from synthscale.laws.analysis import analyze_results, write_analysis
from synthscale.laws.data import FitError, LawData
from synthscale.laws.fit import FitOptions, LawFit, fit_law, fit_laws
from synthscale.laws.forms import FORM_NAMES, Form, get_form
from synthscale.laws.ratio import argmin_ratio, best_ratio_from_grid, best_ratio_from_law
from synthscale.laws.speedup import (
    Estimate,
    compute_inclusive,
    data_law_loss,
    data_law_tokens,
    generator_flops_per_token,
    speedup_at_loss,
    speedup_at_tokens,
)
from synthscale.laws.table import fit_table, parse_col_options
from synthscale.laws.table_summary import summarize_fit

__all__ = [
    "FORM_NAMES",
    "Estimate",
    "FitError",
    "FitOptions",
    "Form",
    "LawData",
    "LawFit",
    "analyze_results",
    "argmin_ratio",
    "best_ratio_from_grid",
    "best_ratio_from_law",
    "compute_inclusive",
    "data_law_loss",
    "data_law_tokens",
    "fit_law",
    "fit_laws",
    "fit_table",
    "parse_col_options",
    "summarize_fit",
    "generator_flops_per_token",
    "get_form",
    "speedup_at_loss",
    "speedup_at_tokens",
    "write_analysis",
]
