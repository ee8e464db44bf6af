"""The report's tables, built from the results table, analysis.json and the findings."""

from __future__ import annotations

import math

import pandas as pd

from . import fmt
from .document import Table
from ..laws.results import NATURAL
from .criteria import Finding
from .inputs import MEAN_DOMAIN, Analysis, Speedup, condition_losses, eval_domains, ordered_labels, ordered_models

FAILURE_COLUMNS = ("run_id", "recipe", "model", "tokens", "seed", "status", "error")


def findings_table(findings: list[Finding]) -> Table:
    """The headline table: finding, status and the numbers behind it."""
    rows = tuple((str(f.number), f.claim, f"**{f.status}**", f.evidence) for f in findings)
    return Table(("#", "Finding (paper)", "Status", "Evidence"), rows, status_column=2)


def fits_table(analysis: Analysis, model_order: list[str], recipe_order: list[str]) -> Table:
    """Fitted E, B, beta per recipe (and generator) and model, with 95% intervals."""
    fits = sorted((f for f in analysis.fits if f.is_data_law), key=lambda f: _fit_order(f, model_order, recipe_order))
    several = _several_generators(analysis)
    rows = []
    for f in fits:
        params = [_estimate(f.params.get(name)) for name in ("E", "B", "beta")]
        span = f"{fmt.tokens(f.tokens_min)}-{fmt.tokens(f.tokens_max)}" if f.tokens_min is not None else "n/a"
        if not f.usable:  # parameters of a law the data do not support are not printed
            params = ["not shown"] * 3
        rows.append((f.model, _recipe_name(f.recipe, f.generator, several), *params,
                     str(f.n_points) if f.n_points is not None else "n/a", span, _verdict_cell(f.verdict, f.reasons)))
    ci = "CI, coarse" if any(f.ci_caveat for f in fits if f.usable) else "95% CI"
    return Table(("Model", "Recipe", f"E [{ci}]", f"B [{ci}]", f"beta [{ci}]", "Points", "Tokens fitted",
                  "Verdict"), tuple(rows),
                 caption=f"L(D) = E + B * D^-beta, fitted to the {analysis.metric} loss. Verdict: ok, weak (usable, "
                         f"marked) or unusable (not used for speedups, findings or plots), with the reasons; "
                         f"the rules are in docs/laws.md.{_ci_caption(f.ci_note for f in fits)}"
                         f"{_coarse_ci_caption(f.ci_caveat for f in fits if f.usable)}")


def failed_fits(analysis: Analysis, model_order: list[str], recipe_order: list[str]) -> list[str]:
    """One line per data-scaling fit that laws/ could not make (no parameters), with its error."""
    several = _several_generators(analysis)
    failed = sorted((f for f in analysis.fits if f.form == "data" and not f.is_data_law),
                    key=lambda f: _fit_order(f, model_order, recipe_order))
    return [f"{_recipe_name(f.recipe, f.generator, several)} ({f.model}): unusable: {f.error or 'no parameters'}"
            for f in failed]


def other_fits_table(analysis: Analysis, model_order: list[str], recipe_order: list[str]) -> Table | None:
    """Fits of other functional forms (ratio laws, model scaling), parameters listed by name."""
    several = _several_generators(analysis)
    rows = [(_fit_models(f), _recipe_name(f.recipe, f.generator, several) + _fit_budget(f), f.form,
             _params_text(f.params) if f.verdict != "unusable" else "not shown",
             _count(f.n_points), _verdict_cell(f.verdict, f.reasons, f.error))
            for f in sorted((f for f in analysis.fits if f.form != "data"),
                            key=lambda f: (f.form, *_fit_order(f, model_order, recipe_order),
                                           getattr(f, "tokens", None) or 0.0))]
    rows += [(f.model, f"{f.kind} (all ratios)", f.form,
              _params_text(f.params) if f.verdict != "unusable" else "not shown", _count(f.n_points),
              _verdict_cell(f.verdict, f.reasons, f.error))
             for f in sorted(analysis.ratio_fits, key=lambda f: (f.kind, _rank(f.model, model_order)))]
    if not rows:
        return None
    return Table(("Model", "Recipe", "Form", "Parameters [95% CI]", "Points", "Verdict"), tuple(rows),
                 caption="Other fitted laws: model laws L(N) = E + A * N^-alpha (N: non-embedding parameters) "
                         "per recipe at each budget the model sizes share, and the ratio laws (they give the "
                         "fitted best ratios; an unusable one gives none).")


def speedups_table(analysis: Analysis, model_order: list[str], recipe_order: list[str]) -> Table:
    """Speedup over natural at each trained budget and each extrapolated one, with CI and markers."""
    several = _several_generators(analysis)
    shown = [s for s in analysis.speedups if s.kind != NATURAL and (s.at_trained_budget or s.extrapolated)]
    shown.sort(key=lambda s: (_rank(s.model, model_order), _rank(s.recipe, recipe_order), s.recipe,
                              s.generator or "", s.tokens))
    with_compute = any(s.speedup_compute is not None for s in shown)
    ci = "CI, coarse" if any(s.coarse_ci for s in shown) else "95% CI"
    headers = ("Model", "Recipe", "Tokens", "Speedup", ci, *(("Compute-inclusive",) if with_compute else ()),
               "Budget")
    rows, said = [], set()
    for s in shown:
        if s.status == "no law":  # one row per recipe: the reason is the same at every budget
            key = (s.model, s.recipe, s.generator)
            if key in said:
                continue
            said.add(key)
            budgets = [t.tokens for t in shown if (t.model, t.recipe, t.generator) == key]
            rows.append((s.model, _recipe_name(s.recipe, s.generator, several),
                         f"{fmt.tokens(min(budgets))}-{fmt.tokens(max(budgets))}", "no law", "",
                         *(("",) if with_compute else ()), s.note or ""))
            continue
        rows.append((s.model, _recipe_name(s.recipe, s.generator, several), fmt.tokens(s.tokens),
                     fmt.speedup(s), _speedup_ci(s), *((_compute_text(s),) if with_compute else ()),
                     _budget_marker(s)))
    rows = tuple(rows)
    limit = analysis.conventions.get("max_extrapolation", 4.0)
    caption = ("Tokens natural needs to reach the recipe's loss, divided by the recipe's tokens (both read off "
               "the fitted laws). Above 1 means faster than natural. 'natural extrapolated': natural's law is "
               f"read beyond the budgets natural trained. A value marked '>' or '<' is a bound: natural's law is "
               f"read at most {fmt.num(limit)}x beyond its trained budgets (and no factor outside 0.01x-100x is "
               f"printed); 'no law': the recipe's or natural's law is unusable (see the fit table). "
               f"'(weak law)': computed from a law the verdict marks weak.")
    caption += _ci_caption(s.ci_note if s.ci is None and s.status != "no law" else None for s in shown)
    caption += _coarse_ci_caption(s.ci_caveat if s.coarse_ci else None for s in shown)
    if with_compute:
        caption += " Compute-inclusive: the same with the generator's FLOPs added to the recipe's cost."
    return Table(headers, rows, caption=caption)


def domain_loss_tables(results: pd.DataFrame) -> list[Table]:
    """Per-domain loss at each model's largest budget, with the mean's difference to natural."""
    domains = eval_domains(results)
    losses = {d: condition_losses(results, d) for d in [*domains, MEAN_DOMAIN]}
    tables = []
    for model in ordered_models(results):
        tokens = float(losses[MEAN_DOMAIN].loc[losses[MEAN_DOMAIN]["model"] == model, "tokens"].max())
        at = {d: _losses_at(frame, model, tokens) for d, frame in losses.items()}
        natural = at[MEAN_DOMAIN].get(NATURAL)
        rows = []
        for label in ordered_labels(results[results["model"] == model]):
            cells = [fmt.loss(at[d].get(label)) for d in [*domains, MEAN_DOMAIN]]
            mean = at[MEAN_DOMAIN].get(label)
            delta = fmt.signed(mean - natural) if natural is not None and mean is not None else "n/a"
            rows.append((label, *cells, delta))
        tables.append(Table(("Recipe", *domains, MEAN_DOMAIN, "mean - natural"), tuple(rows),
                            caption=f"Validation loss (nats/token, seed mean) of {model} "
                                    f"at {fmt.tokens(tokens)} tokens."))
    return tables


def domain_bpb_tables(results: pd.DataFrame) -> list[Table]:
    """Per-domain bits per byte at each model's largest budget (the results' ``bpb`` column), like the loss tables."""
    if "bpb" not in results.columns:
        return []
    as_bpb = results.assign(loss=results["bpb"])  # condition_losses averages the ``loss`` column over seeds
    domains = eval_domains(results)
    values = {d: condition_losses(as_bpb, d) for d in [*domains, MEAN_DOMAIN]}
    tables = []
    for model in ordered_models(results):
        rows_of_model = values[MEAN_DOMAIN].loc[values[MEAN_DOMAIN]["model"] == model, "tokens"]
        if rows_of_model.empty:
            continue
        tokens = float(rows_of_model.max())
        at = {d: _losses_at(frame, model, tokens) for d, frame in values.items()}
        natural = at[MEAN_DOMAIN].get(NATURAL)
        rows = []
        for label in ordered_labels(results[results["model"] == model]):
            mean = at[MEAN_DOMAIN].get(label)
            delta = fmt.signed(mean - natural) if natural is not None and mean is not None else "n/a"
            rows.append((label, *[fmt.loss(at[d].get(label)) for d in [*domains, MEAN_DOMAIN]], delta))
        tables.append(Table(("Recipe", *domains, MEAN_DOMAIN, "mean - natural"), tuple(rows),
                            caption=f"Bits per byte (seed mean) of {model} at {fmt.tokens(tokens)} tokens: "
                                    f"nats / ln 2 / UTF-8 bytes of the eval tokens, comparable across tokenizers."))
    return tables


def best_ratio_table(analysis: Analysis, model_order: list[str]) -> Table:
    """Best synthetic ratio per kind, model and budget: on the trained grid and from the ratio law."""
    entries = sorted(analysis.best_ratio, key=lambda b: (b.kind, _rank(b.model, model_order), b.tokens))
    rows = tuple((b.kind, b.model, fmt.tokens(b.tokens), fmt.ratio(b.ratio_grid), fmt.interval(b.ci_grid, 3),
                  _fitted_ratio_text(b), "" if b.ratio_fit is None else fmt.interval(b.ci, 3)) for b in entries)
    notes = _ci_caption(b.ci_grid_note for b in entries if b.ci_grid is None)
    return Table(("Kind", "Model", "Tokens", "Best r (grid)", "95% CI (grid)", "Best r (fit)", "95% CI (fit)"), rows,
                 caption="r = 0 is natural text. The grid decides the best ratio; the fitted r* comes from the "
                         "ratio law L(D, r) (3+ ratios), only from an ok or weak law, as a bound when it lies "
                         "outside the trained ratios, and is flagged when the trained ratio nearest to it is not "
                         f"the grid's best.{notes}")


def _fitted_ratio_text(b) -> str:
    if b.ratio_fit_bound is not None:
        return fmt.bound(b.ratio_fit_bound.op, b.ratio_fit_bound.value, fmt.ratio)
    if b.ratio_fit is None:
        return b.ratio_fit_note or "n/a"
    text = fmt.ratio(b.ratio_fit) + (" (weak law)" if b.ratio_fit_verdict == "weak" else "")
    return text + (" (disagrees with the grid)" if b.agrees_with_grid is False else "")


def failures_table(failures: list[dict]) -> Table:
    """Failed runs as reported by the study (known columns first, then any others)."""
    extra = sorted({k for f in failures for k in f} - set(FAILURE_COLUMNS))
    columns = [c for c in FAILURE_COLUMNS if any(c in f for f in failures)] + extra
    rows = tuple(tuple(_cell(f.get(c)) for c in columns) for f in failures)
    return Table(tuple(columns), rows)


def _losses_at(frame: pd.DataFrame, model: str, tokens: float) -> dict[str, float]:
    rows = frame[(frame["model"] == model) & (frame["tokens"] == tokens)]
    return dict(zip(rows["label"], rows["loss"].astype(float)))


def _fit_models(fit) -> str:
    """The model cell of a fit: its model, or the sizes a model law L(N) spans (``models``)."""
    models = getattr(fit, "models", None)
    return ", ".join(map(str, models)) if isinstance(models, list) and models else fit.model


def _fit_budget(fit) -> str:
    """' at D = 1.2M' for a fit made at one token budget (the model law L(N)), else ''."""
    tokens = getattr(fit, "tokens", None)
    return f" at D = {fmt.tokens(float(tokens))}" if isinstance(tokens, (int, float)) else ""


def _fit_order(fit, model_order: list[str], recipe_order: list[str]) -> tuple:
    return (_rank(fit.model, model_order), _rank(fit.recipe, recipe_order), fit.recipe, fit.generator or "")


def _several_generators(analysis: Analysis) -> bool:
    generators = {f.generator for f in analysis.fits if f.generator}
    generators |= {s.generator for s in analysis.speedups if s.generator}
    return len(generators) > 1


def _recipe_name(recipe: str, generator: str | None, several: bool) -> str:
    return f"{recipe} [{generator}]" if several and generator else recipe


def _budget_marker(s: Speedup) -> str:
    text = "extrapolated" if s.extrapolated else "trained"
    text += ", natural extrapolated" if s.natural_extrapolated else ""
    return text + (f"; {s.note}" if s.note else "")


def _speedup_ci(s: Speedup) -> str:
    if s.status == "no law":
        return ""
    return fmt.bounded_interval(s.ci, s.ci_bounds)


def _compute_text(s: Speedup) -> str:
    if s.bound_compute is not None:
        return fmt.bound(s.bound_compute.op, s.bound_compute.value)
    if s.speedup_compute is None:
        return "n/a"
    return f"{fmt.factor(s.speedup_compute)} {fmt.bounded_interval(s.ci_compute, s.ci_bounds)}"


def _verdict_cell(verdict: str, reasons: list[str], error: str | None = None) -> str:
    text = f"**{verdict}**" if verdict != "ok" else "ok"
    details = list(reasons) or ([error] if error else [])
    return text + (f": {'; '.join(details)}" if details else "")


def _ci_caption(notes) -> str:
    """Why intervals are missing, once per distinct reason."""
    unique = list(dict.fromkeys(n for n in notes if n))
    return (" No CI: " + " / ".join(unique) + ".") if unique else ""


def _coarse_ci_caption(caveats) -> str:
    """What coarse intervals are, once per distinct caveat."""
    unique = list(dict.fromkeys(c for c in caveats if c))
    return (" Coarse CI: " + " / ".join(unique) + ".") if unique else ""


def _params_text(params) -> str:
    if not params:
        return "n/a"
    return "; ".join(f"{name} = {_estimate(est)}" for name, est in sorted(params.items()))


def _count(n: int | None) -> str:
    return str(n) if n is not None else "n/a"


def _estimate(est) -> str:
    if est is None:
        return "n/a"
    return fmt.num(est.value) + (f" {fmt.interval(est.ci)}" if est.ci is not None else "")


def _rank(name: str, order: list[str]) -> int:
    return order.index(name) if name in order else len(order)


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and math.isnan(value):
        return ""
    return str(value).replace("\n", " ")
