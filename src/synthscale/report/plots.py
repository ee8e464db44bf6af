"""The report's figures, drawn with matplotlib's Agg canvas and returned as PNG bytes.

Figures are built on ``matplotlib.figure.Figure`` directly (no pyplot global state),
under matplotlib's default style and without PNG metadata that varies, so the same
inputs give byte-identical images. A plot that the study's data cannot support returns
None and is left out of the report.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib import style as mpl_style
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

from ..laws.results import NATURAL
from . import fmt
from .inputs import MEAN_DOMAIN, Analysis, condition_losses, eval_domains, ordered_labels, ordered_models

DPI = 100
MAX_BUDGET_TICKS = 8
TICK_SPACING = 1.75  # budgets closer than this factor share one tick label
X_MARGIN = 1.25  # the token axis spans the measured budgets / and x this factor
Y_MARGIN = 0.08  # the loss axis spans the measured losses (+- std) and this share of their range
SPEEDUP_AXIS = (0.01, 100.0)  # speedups are drawn within this range; beyond it they are bounds
SPEEDUP_TICKS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0)
Drawing = tuple[Callable[[Figure], None], tuple[float, float]]  # (draw, size in inches)
_RC = {"font.size": 9, "axes.titlesize": 10, "legend.fontsize": 8, "axes.grid": True, "grid.alpha": 0.3}


def color_map(names: list[str]) -> dict[str, tuple]:
    """A stable color per recipe/condition: natural black, the others from tab10/tab20."""
    others = [n for n in names if n != NATURAL]
    cmap = mpl.colormaps["tab10" if len(others) <= 10 else "tab20"]
    colors = {n: cmap(i % cmap.N) for i, n in enumerate(others)}
    colors[NATURAL] = (0.0, 0.0, 0.0, 1.0)
    return colors


def loss_vs_tokens(results: pd.DataFrame, analysis: Analysis) -> bytes:
    """Loss of the fitted metric (the mean domain by default) vs tokens per recipe, with fitted laws."""
    return _png(*loss_vs_tokens_drawing(results, analysis))


def loss_vs_tokens_drawing(results: pd.DataFrame, analysis: Analysis) -> Drawing:
    """The loss-vs-tokens figure as (draw, size): usable laws only (weak dashed), axes fitted
    to the measured points. Each law's curve has the gid ``law:<label>``."""
    metric = analysis.metric if analysis.metric in set(results["domain"]) else MEAN_DOMAIN
    mean = condition_losses(results, metric)
    models = ordered_models(results)
    labels = ordered_labels(results)
    colors = color_map(labels)
    fits = {(f.model, f.recipe, f.generator or ""): f for f in analysis.fits if f.form == "data"}

    def draw(fig: Figure) -> None:
        axes = _grid(fig, len(models), max_cols=3)
        for ax, model in zip(axes, models):
            rows = mean[mean["model"] == model]
            # Axes fitted to the measured points (with a margin); curves are clipped to them.
            x_lo, x_hi = rows["tokens"].min() / X_MARGIN, rows["tokens"].max() * X_MARGIN
            y_lo, y_hi = _padded((rows["loss"] - rows["loss_std"]).min(), (rows["loss"] + rows["loss_std"]).max())
            grid = np.geomspace(x_lo, x_hi, 100)
            for label in labels:
                pts = rows[rows["label"] == label].sort_values("tokens")
                if pts.empty:
                    continue
                fit = _unambiguous_fit(fits, rows, model, pts["recipe"].iloc[0], pts["generator"].iloc[0])
                drawn = fit is not None and fit.usable
                suffix = "" if fit is None or drawn else " (no law)"
                ax.errorbar(pts["tokens"], pts["loss"], yerr=pts["loss_std"], fmt="o", ms=4, capsize=2,
                            color=colors[label], label=label + suffix)
                if drawn:  # weak laws dashed; unusable ones not drawn
                    style = "--" if fit.verdict == "weak" else "-"
                    ax.plot(grid, fit.loss_at(grid), style, lw=1.2, color=colors[label], alpha=0.8,
                            gid=f"law:{label}")
            ax.set_xlim(x_lo, x_hi)
            ax.set_ylim(y_lo, y_hi)
            _token_axis(ax, rows["tokens"])
            ax.set_title(f"{model}: validation loss ({metric}); fitted laws: solid ok, dashed weak")
            ax.set_xlabel("training tokens D")
            ax.set_ylabel("loss (nats/token)")
        _figure_legend(fig, axes)

    return draw, _size(len(models), 3, 5.0, 3.6, legend=True)


def domain_grid(results: pd.DataFrame) -> bytes:
    """Per-domain loss vs tokens per recipe for the largest model, one panel per domain."""
    model = ordered_models(results)[-1]
    rows = results[results["model"] == model]
    domains = [*eval_domains(rows), MEAN_DOMAIN]
    labels = ordered_labels(results)
    colors = color_map(labels)

    def draw(fig: Figure) -> None:
        axes = _grid(fig, len(domains), max_cols=4)
        for ax, domain in zip(axes, domains):
            losses = condition_losses(rows, domain)
            for label in labels:
                pts = losses[losses["label"] == label].sort_values("tokens")
                if not pts.empty:
                    ax.plot(pts["tokens"], pts["loss"], "o-", ms=3, lw=1, color=colors[label], label=label)
            _token_axis(ax, losses["tokens"])
            ax.set_title(f"{domain} ({model})")
            ax.set_xlabel("training tokens D")
            ax.set_ylabel("loss")
        _figure_legend(fig, axes)

    return _png(draw, _size(len(domains), 4, 3.6, 2.9, legend=True))


def domain_heatmap(results: pd.DataFrame) -> bytes | None:
    """Loss minus natural's loss per recipe and domain, largest model at its largest budget."""
    model = ordered_models(results)[-1]
    rows = results[results["model"] == model]
    tokens = float(rows["tokens"].max())
    domains = [*eval_domains(rows), MEAN_DOMAIN]
    labels = [lab for lab in ordered_labels(rows) if lab != NATURAL]
    table = {d: condition_losses(rows, d) for d in domains}

    def at(domain: str, label: str) -> float:
        frame = table[domain]
        hit = frame[(frame["label"] == label) & (frame["tokens"] == tokens)]
        return float(hit["loss"].iloc[0]) if len(hit) else math.nan

    if not labels or all(math.isnan(at(d, NATURAL)) for d in domains):
        return None
    delta = np.array([[at(d, lab) - at(d, NATURAL) for d in domains] for lab in labels])
    if np.isnan(delta).all():
        return None
    limit = float(np.nanmax(np.abs(delta))) or 1.0

    def draw(fig: Figure) -> None:
        ax = fig.add_subplot(1, 1, 1)
        ax.grid(False)
        image = ax.imshow(np.ma.masked_invalid(delta), cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
        ax.set_xticks(range(len(domains)), domains, rotation=30, ha="right")
        ax.set_yticks(range(len(labels)), labels)
        for i in range(len(labels)):
            for j in range(len(domains)):
                if not math.isnan(delta[i, j]):
                    ax.text(j, i, f"{delta[i, j]:+.3f}", ha="center", va="center", fontsize=7,
                            color="white" if abs(delta[i, j]) > 0.6 * limit else "black")
        ax.set_title(f"loss minus natural's loss: {model} at {fmt.tokens(tokens)} tokens (red = worse)")
        fig.colorbar(image, ax=ax, label="delta loss (nats/token)")

    width = max(5.5, 1.0 + 0.9 * len(domains))
    return _png(draw, (width, max(2.5, 1.4 + 0.45 * len(labels))))


def speedups(analysis: Analysis, model_order: list[str], recipe_order: list[str]) -> bytes | None:
    """Speedup vs budget per recipe with 95% bands on a log axis within SPEEDUP_AXIS;
    extrapolated budgets dashed; bounds ("> x", "< x") as triangles; a line at 1."""
    drawing = speedups_drawing(analysis, model_order, recipe_order)
    return None if drawing is None else _png(*drawing)


def speedups_drawing(analysis: Analysis, model_order: list[str], recipe_order: list[str]) -> Drawing | None:
    """The speedup figure as (draw, size), or None when no speedup has a value."""
    rows = [s for s in analysis.speedups if s.kind != NATURAL and s.shown[0] is not None and s.shown[0] > 0]
    if not rows:
        return None
    models = sorted({s.model for s in rows}, key=lambda m: (_index(m, model_order), m))
    several_generators = len({s.generator for s in rows if s.generator}) > 1
    keys = sorted({(s.recipe, s.generator or "") for s in rows}, key=lambda k: (_index(k[0], recipe_order), k))
    names = {k: f"{k[0]} [{k[1]}]" if several_generators and k[1] else k[0] for k in keys}
    colors = color_map(list(names.values()))

    def draw(fig: Figure) -> None:
        axes = _grid(fig, len(models), max_cols=3)
        for ax, model in zip(axes, models):
            for key in keys:
                series = sorted((s for s in rows if s.model == model and (s.recipe, s.generator or "") == key),
                                key=lambda s: s.tokens)
                if series:
                    weak = any(s.law_verdict == "weak" for s in series)
                    _speedup_series(ax, series, colors[names[key]], names[key] + (" (weak law)" if weak else ""))
            ax.axhline(1.0, color="gray", lw=1, ls=":")
            ax.set_yscale("log")  # speedups are ratios: 2x and 0.5x sit symmetrically about 1
            shown = [v for s in rows if s.model == model for v in (s.shown[0], *(s.ci or ())) if v]
            lo = max(SPEEDUP_AXIS[0], min(shown + [1.0]) / 1.3)
            hi = min(SPEEDUP_AXIS[1], max(shown + [1.0]) * 1.3)
            ax.set_ylim(lo, hi)
            ticks = [t for t in SPEEDUP_TICKS if lo <= t <= hi]
            ax.yaxis.set_major_locator(FixedLocator(ticks))
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: fmt.factor(v)))
            ax.yaxis.set_minor_formatter(NullFormatter())
            _token_axis(ax, [s.tokens for s in rows if s.model == model and s.at_trained_budget])
            ax.set_title(f"{model}: speedup over natural (triangles: bounds)")
            ax.set_xlabel("training tokens D")
            ax.set_ylabel("speedup (x)")
        _figure_legend(fig, axes)

    return draw, _size(len(models), 3, 5.0, 3.6, legend=True)


def loss_vs_ratio(results: pd.DataFrame, analysis: Analysis) -> bytes | None:
    """Mean loss vs synthetic ratio at each budget, per kind and model; best ratio starred."""
    base = results[results["round"] == results["round"].min()]
    mean = condition_losses(base, MEAN_DOMAIN)
    panels = []
    for model in ordered_models(base):
        rows = mean[mean["model"] == model]
        for kind in sorted(k for k in rows["kind"].unique() if k != NATURAL):
            if rows.loc[rows["kind"] == kind, "ratio"].nunique() >= 2:
                panels.append((model, kind))
    if not panels:
        return None
    fitted = {(b.kind, b.model, b.tokens): b.ratio_fit for b in analysis.best_ratio if b.ratio_fit is not None}
    all_budgets = sorted(mean["tokens"].unique())  # one colour per budget across panels: one legend for all

    def draw(fig: Figure) -> None:
        axes = _grid(fig, len(panels), max_cols=3)
        for ax, (model, kind) in zip(axes, panels):
            rows = mean[(mean["model"] == model) & ((mean["kind"] == kind) | (mean["kind"] == NATURAL))]
            rows = rows.assign(r=np.where(rows["kind"] == NATURAL, 0.0, rows["ratio"]))
            curve = rows.groupby(["tokens", "r"])["loss"].mean()
            budgets = sorted(rows["tokens"].unique())
            cmap = mpl.colormaps["viridis"]
            for tokens in budgets:
                color = cmap(all_budgets.index(tokens) / max(1, len(all_budgets) - 1))
                points = curve.loc[tokens]
                ax.plot(points.index, points.values, "o-", ms=3, lw=1, color=color, label=fmt.tokens(tokens))
                best = points.idxmin()
                ax.plot([best], [points[best]], "*", ms=12, color=color, markeredgecolor="black")
                if (kind, model, tokens) in fitted:
                    ax.axvline(fitted[(kind, model, tokens)], color=color, ls="--", lw=1, alpha=0.7)
            fitted_here = any((kind, model, t) in fitted for t in budgets)
            ax.set_title(f"{model}: {kind} (star = best on grid, "
                         + ("dashed = fitted r*)" if fitted_here else "no usable ratio law)"))
            ax.set_xlabel("synthetic fraction r")
            ax.set_ylabel("mean loss")
        _figure_legend(fig, axes, title="tokens")  # outside the panels: never over the r* lines

    return _png(draw, _size(len(panels), 3, 5.0, 3.6, legend=True))


# ---------------------------------------------------------------- helpers


def figure(draw: Callable[[Figure], None], size: tuple[float, float]) -> Figure:
    """A drawing rendered into a Figure (what the PNG shows; tests inspect its artists)."""
    with mpl_style.context("default"), mpl.rc_context(_RC):
        fig = Figure(figsize=size, layout="constrained")
        FigureCanvasAgg(fig)
        draw(fig)
    return fig


def _png(draw: Callable[[Figure], None], size: tuple[float, float]) -> bytes:
    with mpl_style.context("default"), mpl.rc_context(_RC):
        fig = figure(draw, size)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()


def _padded(low: float, high: float, margin: float = Y_MARGIN) -> tuple[float, float]:
    """A value range widened by ``margin`` of its span on each side (never empty)."""
    span = max(high - low, 1e-3 * max(abs(high), 1.0))
    return low - margin * span, high + margin * span


def _token_axis(ax, budgets) -> None:
    """Log-scaled token axis with SI labels: at the budgets when there are few, else on decades."""
    ax.set_xscale("log")
    budgets = sorted(set(float(b) for b in budgets))
    if 0 < len(budgets) <= MAX_BUDGET_TICKS:
        ticks = [budgets[-1]]  # labels closer than TICK_SPACING (a factor) overlap: keep the largest
        for b in reversed(budgets[:-1]):
            if ticks[-1] / b >= TICK_SPACING:
                ticks.append(b)
        ax.xaxis.set_major_locator(FixedLocator(sorted(ticks)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: fmt.tokens(v)))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _grid(fig: Figure, n: int, max_cols: int) -> list:
    cols = min(max_cols, n)
    rows = math.ceil(n / cols)
    axes = [fig.add_subplot(rows, cols, i + 1) for i in range(n)]
    return axes


def _size(n: int, max_cols: int, width: float, height: float, legend: bool) -> tuple[float, float]:
    cols = min(max_cols, n)
    rows = math.ceil(n / cols)
    return (width * cols + (2.2 if legend else 0.0), height * rows)


def _figure_legend(fig: Figure, axes: list, title: str | None = None) -> None:
    """One legend for the whole figure, with each label once, right of the panels."""
    seen: dict[str, object] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(label, handle)
    if seen:
        fig.legend(list(seen.values()), list(seen.keys()), loc="outside right upper", title=title)


def _unambiguous_fit(fits: dict, rows: pd.DataFrame, model: str, recipe: str, generator: str):
    """The fit of (recipe, generator) on ``model``; None when several conditions (rounds) share it.

    A fit without a generator (the contract's minimum) matches a recipe trained with one.
    """
    same = rows[(rows["recipe"] == recipe) & (rows["generator"] == generator)]
    if same["label"].nunique() != 1:
        return None
    fit = fits.get((model, recipe, generator))
    if fit is None and rows.loc[rows["recipe"] == recipe, "label"].nunique() == 1:
        fit = fits.get((model, recipe, ""))
    return fit


def _speedup_series(ax, series: list, color: tuple, label: str) -> None:
    """One recipe's speedups: solid inside its trained range, dashed beyond, dots at trained
    budgets, triangles where the value is only a bound (pointing the way the truth lies)."""
    tokens = np.array([s.tokens for s in series])
    values = np.array([s.shown[0] for s in series], dtype=float)
    ops = [s.shown[1] for s in series]
    point = np.array([op is None for op in ops])
    inside = np.array([not s.extrapolated for s in series]) & point
    trained = np.array([s.at_trained_budget for s in series]) & point
    lo, hi = (np.array([s.ci[i] if s.ci and s.ci[i] is not None else np.nan for s in series], dtype=float)
              for i in (0, 1))
    has_ci = np.isfinite(lo) & np.isfinite(hi) & (lo > 0) & point
    beyond = ~inside & point
    if inside.any():
        beyond[np.flatnonzero(inside)[-1]] = True  # the lighter band and the dashes join the solid part
    ax.fill_between(tokens, lo, hi, where=has_ci & inside, color=color, alpha=0.2, lw=0)
    ax.fill_between(tokens, lo, hi, where=has_ci & beyond, color=color, alpha=0.1, lw=0)
    ax.plot(tokens[inside], values[inside], "-", color=color, label=label)
    if (beyond & ~inside).any():
        ax.plot(tokens[beyond], values[beyond], "--", color=color, label=None if inside.any() else label)
    ax.plot(tokens[trained], values[trained], "o", ms=4, color=color)
    for marker, op in (("^", (">", ">=")), ("v", ("<", "<="))):
        at = np.array([o in op for o in ops])
        if at.any():
            ax.plot(tokens[at], values[at], marker, ms=6, color=color, fillstyle="none",
                    label=None if (inside.any() or beyond.any()) else label)


def _index(name: str, order: list[str]) -> int:
    return order.index(name) if name in order else len(order)
