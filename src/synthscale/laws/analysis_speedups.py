"""The speedup rows of analysis.json: each synthetic recipe over natural of the same model.

Rows at every trained budget and on a log grid up to EXTRAPOLATE x the largest, token
speedups and, given the generator's FLOPs, compute-inclusive ones; bounds past what the
laws support (speedup.bounded_speedup).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from synthscale.laws.analysis_fits import RecipeKey, ci_caveat, ci_note
from synthscale.laws.fit import LawFit
from synthscale.laws.results import NATURAL
from synthscale.laws.speedup import bounded_speedup, compute_factor, speedup_at_tokens
from synthscale.laws.verdict import OK, UNUSABLE, WEAK

GRID_POINTS = 12  # log-spaced budgets from the smallest trained to EXTRAPOLATE x the largest
EXTRAPOLATE = 2.0


def speedup_rows(
    fits: dict[RecipeKey, LawFit], verdicts: dict, rows: pd.DataFrame, generator_flops, max_extrapolation: float
) -> list[dict]:
    """Speedup rows of every synthetic recipe over natural of the same model.

    Only ok and weak laws give numbers; a recipe whose own or natural's law is unusable
    gets one row per trained budget with ``status: "no law"`` and the reason."""
    naturals = {k.model: k for k in verdicts if k.recipe == NATURAL}
    out = []
    for key in sorted(verdicts, key=lambda k: (k.model, k.recipe, k.generator or "")):
        if key.recipe == NATURAL or key.model not in naturals:
            continue
        frame = rows[(rows["recipe"] == key.recipe) & (rows["model"] == key.model)]
        if key.generator is not None:
            frame = frame[frame["generator"] == key.generator]
        trained = np.unique(frame["tokens"].to_numpy(dtype=float))
        nat_key = naturals[key.model]
        problems = [f"{who}: {'; '.join(verdicts[k].blocking)}"
                    for who, k in (("this recipe", key), ("natural", nat_key)) if not verdicts[k].usable]
        if problems:
            for tokens in trained:
                out.append({**key.fields(), "tokens": float(tokens), "trained": True, "loss": None,
                            "status": "no law", "note": "no law: " + " | ".join(problems), "speedup": None,
                            "bound": None, "ci": None, "ci_bounds": None, "speedup_compute": None,
                            "ci_compute": None, "law_verdict": UNUSABLE})
            continue
        fit, natural = fits[key], fits[nat_key]
        law_verdict = WEAK if WEAK in (verdicts[key].verdict, verdicts[nat_key].verdict) else OK
        flops = train_flops_per_token(rows[rows["model"] == key.model])
        gen = _lookup_generator_flops(generator_flops, key)
        corpus = _synthetic_corpus_tokens(frame, key.ratio)
        for tokens in _budget_grid(trained):
            est = speedup_at_tokens(fit, natural, tokens)
            fields = bounded_speedup(est, tokens, natural.ranges["tokens"], max_extrapolation)
            row = {
                **key.fields(),
                "tokens": tokens,
                "trained": bool(np.isclose(trained, tokens, rtol=1e-9).any()),
                "loss": float(fit.predict(tokens=tokens)[0]),
                "status": "bound" if fields["bound"] is not None else ("ok" if fields["speedup"] is not None
                                                                       else "no value"),
                **fields,
                "law_verdict": law_verdict,
                "ci_note": ci_note(fit) or ci_note(natural),
                "ci_caveat": ci_caveat(fit) or ci_caveat(natural),
            }
            factor = None
            if flops is not None and gen is not None:
                generated = 1.0 if corpus is None or key.ratio == 0 else min(1.0, corpus / (key.ratio * tokens))
                factor = compute_factor(ratio=key.ratio, train_flops_per_token=flops[0],
                                        generator_flops_per_token=gen, generated_fraction=generated)
            row["speedup_compute"] = None if factor is None or row["speedup"] is None else row["speedup"] * factor
            row["bound_compute"] = (None if factor is None or row["bound"] is None
                                    else {"op": row["bound"]["op"], "value": row["bound"]["value"] * factor})
            row["ci_compute"] = (None if factor is None or row["ci"] is None
                                 else [None if v is None else v * factor for v in row["ci"]])
            row["flops"] = None if flops is None else flops[1]
            out.append(row)
    return out


def _budget_grid(trained: np.ndarray) -> list[float]:
    grid = np.geomspace(trained.min(), EXTRAPOLATE * trained.max(), GRID_POINTS)
    budgets = np.unique(np.concatenate([trained, grid]))
    keep = [budgets[0]]
    for b in budgets[1:]:
        if not np.isclose(b, keep[-1], rtol=1e-6):
            keep.append(b)
    return [float(b) for b in keep]


def train_flops_per_token(rows: pd.DataFrame) -> tuple[float, str] | None:
    """Training FLOPs per token of a model: exact from train_flops, else 6 * params_total."""
    if "train_flops" in rows.columns:
        per_token = pd.to_numeric(rows["train_flops"], errors="coerce") / rows["tokens"]
        per_token = per_token[np.isfinite(per_token) & (per_token > 0)]
        if len(per_token):
            return float(per_token.median()), "exact"
    if "params_total" in rows.columns:
        n = pd.to_numeric(rows["params_total"], errors="coerce")
        n = n[np.isfinite(n) & (n > 0)]
        if len(n):
            return 6.0 * float(n.median()), "6ND"
    return None


def _lookup_generator_flops(generator_flops, key: RecipeKey) -> float | None:
    if generator_flops is None:
        return None
    if not isinstance(generator_flops, Mapping):
        return float(generator_flops)
    for name in (key.recipe, key.generator, key.kind):
        if name is not None and name in generator_flops:
            return float(generator_flops[name])
    return None


def _synthetic_corpus_tokens(frame: pd.DataFrame, ratio: float) -> float | None:
    """Size of the synthetic corpus in tokens, from the epochs it was repeated for."""
    if ratio <= 0 or "epochs_synthetic" not in frame.columns:
        return None
    epochs = pd.to_numeric(frame["epochs_synthetic"], errors="coerce")
    sizes = ratio * frame["tokens"] / epochs
    sizes = sizes[np.isfinite(sizes) & (sizes > 0) & (epochs >= 1)]
    return float(sizes.median()) if len(sizes) else None
