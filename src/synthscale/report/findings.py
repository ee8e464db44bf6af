"""Decide, from the numbers, which of the paper's seven findings this study reproduces.

Each finding has an explicit criterion (``CRITERIA``, also printed in the report and in
docs/report.md) and a function that applies it to the results table and analysis.json.
The status is one of ``reproduced``, ``not reproduced`` or ``not tested by this study``.
Rules shared by all criteria:

- A finding is reproduced only when every condition it covers passes; one failing
  condition makes it not reproduced. Ties count against the finding.
- A finding whose recipes, ratios, generators or rounds are absent from the study, or
  whose numbers are missing (no fit, no speedup at a trained budget), is not tested.
- Losses are seed-averaged, mean-domain (unless a criterion says per domain).

The claims, criteria and thresholds are in report.criteria; the evidence helpers in
report.evidence.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

import numpy as np
import pandas as pd

from ..laws.results import NATURAL
from . import fmt
from .criteria import (BEST_RATIO_BAND, CLAIMS, CRITERIA, DEFAULT_KIND_STYLES, MIN_FIT_POINTS, MIN_RATIOS,
                       NOT_REPRODUCED, NOT_TESTED, NOTABLE_REL, REPRODUCED, Finding)
from .evidence import (REGIME_FINDINGS, Context, join_notes, loss_at, near, regime_text, shared_budgets, verdict,
                       verdict_with_untested)
from .inputs import MEAN_DOMAIN, Analysis, Fit, Speedup, condition_losses, eval_domains, ordered_models


def decide_findings(results: pd.DataFrame, analysis: Analysis, spec_summary: dict | None = None) -> list[Finding]:
    """Apply the seven criteria to a normalized results table and a parsed analysis."""
    spec_summary = spec_summary or {}
    styles = {**DEFAULT_KIND_STYLES, **spec_summary.get("kind_styles", {})}
    ctx = Context(results, analysis, styles, spec_summary.get("generator_params", {}))
    deciders: dict[int, Callable[[Context], tuple[str, str]]] = {
        1: _finding_rephrased_alone, 2: _finding_third_rephrased, 3: _finding_textbook_alone,
        4: _finding_best_ratio, 5: _finding_lowest_e, 6: _finding_generator_size, 7: _finding_collapse,
    }
    findings = []
    regime = regime_text(results)
    for number, decide in deciders.items():
        status, evidence = decide(ctx)
        if regime and number in REGIME_FINDINGS:
            evidence += f" Regime: {regime}."
        findings.append(Finding(number, CLAIMS[number], status, evidence, CRITERIA[number]))
    return findings


# ---------------------------------------------------------------- findings 1 and 2: speedups


def _finding_rephrased_alone(ctx: Context) -> tuple[str, str]:
    def passes(s: Speedup) -> bool:
        value, op = s.shown
        return (op != ">" and value <= 1) or (s.ci is not None and s.ci[0] is not None and s.ci[0] <= 1)

    return _speedup_finding(ctx, target_ratio=1.0, passes=passes, what="rephrased r=1")


def _finding_third_rephrased(ctx: Context) -> tuple[str, str]:
    def passes(s: Speedup) -> bool:  # a "<" bound above 1 does not show a speedup above 1
        value, op = s.shown
        return op != "<" and value > 1 and s.ci is not None and s.ci[0] is not None and s.ci[0] > 1

    status, evidence = _speedup_finding(ctx, target_ratio=1 / 3, passes=passes, what="rephrased r=1/3")
    if status != NOT_TESTED:
        evidence += " Paper: 5-10x at billions of tokens."
    return status, evidence


def _speedup_finding(ctx: Context, target_ratio: float, passes: Callable[[Speedup], bool],
                     what: str) -> tuple[str, str]:
    groups: dict[tuple[str, str, str], list[Speedup]] = {}
    for s in ctx.analysis.speedups:
        if ctx.style_of(s.kind) == "rephrase" and near(s.ratio, target_ratio):
            groups.setdefault((s.model, s.recipe, s.generator or ""), []).append(s)
    verdicts, notes, untested = [], [], []
    for (model, recipe, generator), rows in sorted(groups.items(),
                                                   key=lambda item: (ctx.model_rank(item[0][0]), item[0])):
        name = f"{recipe} [{generator}]" if generator else recipe
        final = _largest_trained(rows)
        if final is None or final.shown[0] is None:
            why = final.note if final is not None and final.note else "no speedup at a trained budget"
            untested.append(f"{name} ({model}): {why}")
            continue
        ok = passes(final)
        verdicts.append(ok)
        coarse = " (coarse: the spread between seeds)" if final.coarse_ci else ""
        notes.append(f"{name} ({model}) at {ctx.at(model, final.tokens)}: {fmt.speedup(final)} "
                     f"CI {fmt.bounded_interval(final.ci, final.ci_bounds)}{coarse} -> {'pass' if ok else 'fail'}")
    return verdict_with_untested(verdicts, notes, untested, f"No {what} recipe with a speedup in analysis.json.")


def _largest_trained(rows: list[Speedup]) -> Speedup | None:
    """The speedup row at the largest budget a run trained (``trained`` flag, else not extrapolated)."""
    trained = [s for s in rows if s.at_trained_budget]
    return max(trained, key=lambda s: s.tokens) if trained else None


# ---------------------------------------------------------------- finding 3: textbook alone


def _finding_textbook_alone(ctx: Context) -> tuple[str, str]:
    base = ctx.base_round()
    domains = eval_domains(base)
    per_domain = {d: condition_losses(base, d) for d in [*domains, MEAN_DOMAIN]}
    mean = per_domain[MEAN_DOMAIN]
    textbook = mean[(mean["kind"].map(ctx.style_of) == "generate") & mean["ratio"].map(lambda r: near(r, 1.0))]
    verdicts, notes = [], []
    pairs = sorted(set(zip(textbook["model"], textbook["label"])), key=lambda p: (ctx.model_rank(p[0]), p))
    for model, label in pairs:
        shared = shared_budgets(mean, model, [label, NATURAL])
        if len(shared) < 2:
            notes.append(f"{label} ({model}): {len(shared)} budget(s) shared with natural, need 2")
            continue
        small, large = shared[0], shared[-1]
        threshold = {d: loss_at(per_domain[d], model, NATURAL, small) * (1 + NOTABLE_REL) for d in domains}
        worse = [d for d in domains if loss_at(per_domain[d], model, label, small) > threshold[d]]
        gap_small = _relative_gap(mean, model, label, small)
        gap_large = _relative_gap(mean, model, label, large)
        ok = len(worse) > len(domains) / 2 and gap_small > gap_large
        verdicts.append(ok)
        notes.append(f"{label} ({model}): notably worse on {len(worse)}/{len(domains)} domains at "
                     f"{ctx.at(model, small)}; mean-loss gap {gap_small:+.1%} at {fmt.tokens(small)} vs "
                     f"{gap_large:+.1%} at {ctx.at(model, large)} -> {'pass' if ok else 'fail'}")
    return verdict(verdicts, notes, "No textbook recipe at r=1 and natural baseline in the results.")


def _relative_gap(losses: pd.DataFrame, model: str, label: str, tokens: float) -> float:
    natural = loss_at(losses, model, NATURAL, tokens)
    return (loss_at(losses, model, label, tokens) - natural) / natural


# ---------------------------------------------------------------- finding 4: best ratio


def _finding_best_ratio(ctx: Context) -> tuple[str, str]:
    base = ctx.base_round()
    mean = condition_losses(base, MEAN_DOMAIN)
    models = ordered_models(base)
    verdicts, notes = [], []
    kinds = sorted(k for k in mean["kind"].unique() if ctx.style_of(k) == "rephrase")
    for kind in kinds:
        candidates = [m for m in models if len(_ratios(mean, model=m, kind=kind)) >= MIN_RATIOS]
        if not candidates:
            notes.append(f"{kind}: {max(len(_ratios(mean, m, kind)) for m in models)} ratio(s), need {MIN_RATIOS}")
            continue
        model = candidates[-1]
        best, source, tokens = _best_ratio(ctx.analysis, mean, model, kind)
        if best is None:
            notes.append(f"{kind} ({model}): no best ratio available")
            continue
        low, high = BEST_RATIO_BAND
        ok = low <= best <= high
        verdicts.append(ok)
        notes.append(f"{kind} ({model}) at {ctx.at(model, tokens)}: r* = {fmt.ratio(best)} ({source}) "
                     f"-> {'pass' if ok else 'fail'}")
        if len(candidates) > 1 or len({b.tokens for b in ctx.analysis.best_ratio if b.kind == kind}) > 1:
            notes.append(_ratio_movement(ctx, kind, candidates))
    return verdict(verdicts, notes, "No rephrased kind in the results.")


def _ratio_movement(ctx: Context, kind: str, models: list[str]) -> str:
    """Where the grid's best ratio of ``kind`` sits at each size's smallest and largest
    budget (how it moves with N and D): 'hq grid best: cpu-nano 0.333 at 98.3k (D/N 1.0)
    -> 0.2 at 2.05M (D/N 21); ...'."""
    parts = []
    for model in models:
        entries = sorted((b for b in ctx.analysis.best_ratio if b.kind == kind and b.model == model
                          and b.ratio_grid is not None and math.isfinite(b.ratio_grid)), key=lambda b: b.tokens)
        if entries:
            first, last = entries[0], entries[-1]
            parts.append(f"{model} {fmt.ratio(first.ratio_grid)} at {ctx.at(model, first.tokens)} -> "
                         f"{fmt.ratio(last.ratio_grid)} at {ctx.at(model, last.tokens)}")
    return f"{kind} grid best by size, smallest -> largest budget: " + (", ".join(parts) or "none")


def _ratios(mean: pd.DataFrame, model: str, kind: str) -> list[float]:
    rows = mean[(mean["model"] == model) & ((mean["kind"] == kind) | (mean["kind"] == NATURAL))]
    return sorted(set(0.0 if k == NATURAL else float(r) for k, r in zip(rows["kind"], rows["ratio"])))


def _best_ratio(analysis: Analysis, mean: pd.DataFrame, model: str, kind: str) -> tuple[float | None, str, float]:
    """Best ratio on the trained grid at the largest budget (analysis ratio_grid, else table argmin).

    The paper located best ratios by grid search, so the grid decides; the ratio law's
    r* (ratio_fit) is reported beside it.
    """
    entries = [b for b in analysis.best_ratio if b.kind == kind and b.model == model]
    if entries:
        top = max(entries, key=lambda b: b.tokens)
        if top.ratio_grid is not None and math.isfinite(top.ratio_grid):
            fitted = ("" if top.ratio_fit is None
                      else f"; fitted r* {fmt.ratio(top.ratio_fit)} CI {fmt.interval(top.ci, 3)}")
            return top.ratio_grid, f"grid{fitted}", top.tokens
    rows = mean[(mean["model"] == model) & ((mean["kind"] == kind) | (mean["kind"] == NATURAL))]
    rows = rows.assign(r=np.where(rows["kind"] == NATURAL, 0.0, rows["ratio"]))
    per_ratio = rows.groupby(["r", "tokens"])["loss"].mean().unstack("tokens")
    complete = per_ratio.dropna(axis=1)
    if complete.empty:
        return None, "", math.nan
    tokens = float(complete.columns.max())
    return float(complete[tokens].idxmin()), "grid argmin of results", tokens


# ---------------------------------------------------------------- finding 5: lowest E


def _finding_lowest_e(ctx: Context) -> tuple[str, str]:
    def e_known(f: Fit) -> bool:  # an ok or weak law whose E the data determine
        return (f.usable and (f.n_points is None or f.n_points >= MIN_FIT_POINTS)
                and not any(r.startswith(("E at its lower bound", "the 95% interval of E")) for r in f.reasons))

    data_fits = [f for f in ctx.analysis.fits if f.form == "data"]
    verdicts, notes, untested = [], [], []
    for model in sorted({f.model for f in data_fits}, key=lambda m: (ctx.model_rank(m), m)):
        candidates = [f for f in data_fits if f.model == model and ctx.style_of(f.kind) == "rephrase"
                      and near(f.ratio, 1 / 3)]
        untested += [f"{_fit_name(f)} ({model}): E not determined ({'; '.join(f.reasons) or f.error or 'no fit'})"
                     for f in candidates if not e_known(f)]
        targets = [f for f in candidates if e_known(f)]
        others = [f for f in data_fits if f.model == model and f not in candidates and e_known(f)]
        if not targets or not others:
            if targets or not candidates:
                notes.append(f"{model}: {len(targets)} usable rephrased@1/3 fit(s) and {len(others)} other(s) "
                             f"with a determined E")
            continue
        rival = min(others, key=lambda f: (f.params["E"].value, f.recipe, f.generator or ""))
        best_per_generator: dict[str, Fit] = {}
        for f in sorted(targets, key=lambda f: (f.params["E"].value, f.recipe)):
            best_per_generator.setdefault(f.generator or "", f)
        for target in sorted(best_per_generator.values(), key=lambda f: f.generator or ""):
            ok = target.params["E"].value < rival.params["E"].value
            overlap = " (CIs overlap)" if _cis_overlap(target, rival) else ""
            verdicts.append(ok)
            weak = " (weak laws)" if "weak" in (target.verdict, rival.verdict) else ""
            notes.append(f"{model}: {_fit_name(target)} E = {_e_text(target)}; lowest other {_fit_name(rival)} "
                         f"E = {_e_text(rival)}{overlap}{weak} -> {'pass' if ok else 'fail'}")
    return verdict_with_untested(verdicts, notes, untested, "No usable data-scaling fits in analysis.json.")


def _e_text(fit: Fit) -> str:
    e = fit.params["E"]
    coarse = " (coarse)" if e.ci is not None and fit.ci_caveat else ""
    return f"{fmt.num(e.value)} {fmt.interval(e.ci)}{coarse}"


def _fit_name(fit: Fit) -> str:
    return f"{fit.recipe} [{fit.generator}]" if fit.generator else fit.recipe


def _cis_overlap(a: Fit, b: Fit) -> bool:
    ca, cb = a.params["E"].ci, b.params["E"].ci
    if ca is None or cb is None or None in ca or None in cb:
        return False
    return ca[0] <= cb[1] and cb[0] <= ca[1]


# ---------------------------------------------------------------- finding 6: generator size


def _finding_generator_size(ctx: Context) -> tuple[str, str]:
    mean = condition_losses(ctx.base_round(), MEAN_DOMAIN)
    synthetic = mean[(mean["kind"] != NATURAL) & (mean["generator"] != "")]
    verdicts, notes = [], []
    groups = synthetic.groupby(["model", "kind", "ratio"], sort=True)
    for (model, kind, ratio), group in sorted(groups, key=lambda g: (ctx.model_rank(g[0][0]), g[0])):
        generators = sorted(group["generator"].unique())
        if len(generators) < 2:
            continue
        name = f"{kind}@{fmt.ratio(ratio)} ({model})"
        sizes = {g: _generator_size(g, ctx.generator_params) for g in generators}
        if any(s is None for s in sizes.values()):
            unknown = ", ".join(g for g, s in sizes.items() if s is None)
            notes.append(f"{name}: size unknown for {unknown}")
            continue
        per_gen = group.pivot_table(index="tokens", columns="generator", values="loss").dropna()
        if per_gen.empty:
            notes.append(f"{name}: no budget trained with every generator")
            continue
        tokens = per_gen.index.max()
        largest = max(generators, key=lambda g: (sizes[g], g))
        smaller = {g: per_gen.at[tokens, g] for g in generators if g != largest}
        best_small = min(smaller, key=lambda g: (smaller[g], g))
        ok = per_gen.at[tokens, largest] >= smaller[best_small] * (1 - NOTABLE_REL)
        verdicts.append(ok)
        notes.append(f"{name} at {fmt.tokens(tokens)}: largest {largest} loss {fmt.loss(per_gen.at[tokens, largest])} "
                     f"vs best smaller {best_small} {fmt.loss(smaller[best_small])} -> {'pass' if ok else 'fail'}")
    return verdict(verdicts, notes, "The study uses one generator per kind.")


_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmb])(?![a-z0-9])", re.IGNORECASE)
_SCALE = {"k": 1e3, "m": 1e6, "b": 1e9}


def _generator_size(name: str, known: dict[str, float]) -> float | None:
    """Parameter count of a generator: from ``known``, else a size like '8B' in its name."""
    if name in known:
        return float(known[name])
    matches = _SIZE.findall(name.split("@")[0])
    if not matches:
        return None
    value, unit = matches[-1]
    return float(value) * _SCALE[unit.lower()]


# ---------------------------------------------------------------- finding 7: collapse


def _finding_collapse(ctx: Context) -> tuple[str, str]:
    rounds = sorted(ctx.results["round"].unique())
    if len(rounds) < 2:
        return NOT_TESTED, "The study has no collapse rounds (no `round` column with 2+ values)."
    mean = condition_losses(ctx.results, MEAN_DOMAIN)
    synthetic = mean[mean["kind"] != NATURAL]
    outcomes: dict[str, list[bool]] = {"rephrase": [], "generate": []}
    notes = []
    groups = synthetic.groupby(["model", "recipe", "generator"], sort=True)
    for (model, recipe, generator), group in sorted(groups, key=lambda g: (ctx.model_rank(g[0][0]), g[0])):
        style = ctx.style_of(group["kind"].iloc[0])
        per_round = group.pivot_table(index="tokens", columns="round", values="loss").dropna()
        if style not in outcomes or per_round.shape[1] < 2 or per_round.empty:
            continue
        tokens = per_round.index.max()
        first, last = per_round.columns.min(), per_round.columns.max()
        change = per_round.at[tokens, last] / per_round.at[tokens, first] - 1
        degraded = change > NOTABLE_REL
        ok = degraded if style == "generate" else not degraded
        outcomes[style].append(ok)
        name = f"{recipe} [{generator}]" if generator else recipe
        notes.append(f"{name} ({model}) round {first}->{last} at {fmt.tokens(tokens)}: loss {change:+.1%} "
                     f"-> {'pass' if ok else 'fail'}")
    if not outcomes["rephrase"] or not outcomes["generate"]:
        return NOT_TESTED, join_notes(notes) or "No recipe was trained over several rounds."
    ok = all(outcomes["rephrase"]) and all(outcomes["generate"])
    return (REPRODUCED if ok else NOT_REPRODUCED), join_notes(notes)
