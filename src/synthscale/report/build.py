"""Assemble the study report: read inputs, decide findings, draw plots, write MD + HTML."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict

from .._io import atomic_write_bytes, atomic_write_text, read_json, to_json
from ..errors import InputError
from ..laws.results import NATURAL
from . import baselines as report_baselines
from . import diagnostics as report_diagnostics
from . import fmt, plots, tables
from .criteria import CRITERIA, DEFAULT_KIND_STYLES, NOTABLE_REL, RATIO_TOL, Finding
from .document import Block, BulletList, Heading, Image, Paragraph, render_html, render_markdown
from .evidence import regime_text
from .findings import decide_findings
from .inputs import (Analysis, eval_domains, load_analysis, load_results, normalize_results, ordered_models,
                     ordered_recipes, parse_analysis, read_study_json, validated)

REPORT_DIR = "report"
STUDY_FILES = ("results.parquet", "results.csv", "analysis.json", "failures.json")  # listed when present
PLOT_FILES = {
    "plot_loss_vs_tokens": "loss_vs_tokens.png",
    "plot_domain_grid": "domain_losses.png",
    "plot_domain_heatmap": "domain_delta_heatmap.png",
    "plot_speedups": "speedups.png",
    "plot_loss_vs_ratio": "loss_vs_ratio.png",
}


class SpecSummary(BaseModel):
    """What the study tells the report beyond the results table (all optional)."""

    model_config = ConfigDict(extra="allow", protected_namespaces=())

    name: str | None = None
    models: list[str] | None = None
    budgets: list[float] | None = None
    recipes: list[str] | None = None
    seeds: list[int] | None = None
    eval_domains: list[str] | None = None
    tokenizer: str | dict[str, Any] | None = None
    runs: int | None = None
    failures: list[dict[str, Any]] = []
    generator_params: dict[str, float] = {}
    kind_styles: dict[str, Literal["rephrase", "generate"]] = {}


def write_report(study_dir: str | Path, results_df: pd.DataFrame | None = None,
                 analysis: dict | Analysis | None = None, spec_summary: dict | None = None,
                 baselines: dict | None = None) -> dict[str, Path]:
    """Write ``study_dir/report/`` (report.md, report.html, findings.json, PNG plots).

    ``results_df`` defaults to ``study_dir/results.parquet`` (or .csv); ``analysis`` to
    ``study_dir/analysis.json`` (without it, fits and speedups are reported missing and
    the findings that need them are not tested). ``spec_summary`` (see SpecSummary) may
    name the study and add models, budgets, recipes, seeds, eval domains, tokenizer, the
    planned run count, failures (list of dicts), generator_params and kind_styles; without
    it, failures are read from ``study_dir/failures.json`` and the declared kind styles
    from ``study_dir/spec.resolved.json`` when present. ``baselines`` (the content of
    baselines.json, docs/contracts.md) defaults to ``study_dir/baselines.json`` when present;
    without it the report has no baselines.
    Returns the written files by role: markdown, html, findings and plot_* names.
    """
    study_dir = Path(study_dir)
    notes: list[str] = []
    if results_df is None:
        results_df, results_path = load_results(study_dir, notes)
        results = normalize_results(results_df, source=str(results_path))
    else:
        results = normalize_results(results_df, source="results_df")
    if analysis is None:
        parsed = load_analysis(study_dir)
        if parsed is None:
            notes.append("No analysis.json was found: fits, speedups and best ratios are missing, and the "
                         "findings that need them are not tested. Run the laws stage first.")
            parsed = Analysis()
        analysis = parsed
    else:
        analysis = parse_analysis(analysis, source="analysis")
    if spec_summary is None:
        spec_summary = _failures_on_disk(study_dir)
        declared = _kind_styles_on_disk(study_dir)
        if declared:
            spec_summary = {**(spec_summary or {}), "kind_styles": declared}
    summary = _parse_summary(spec_summary)
    base = (report_baselines.load_baselines(study_dir) if baselines is None
            else report_baselines.parse_baselines(baselines, source="baselines"))

    findings = decide_findings(results, analysis, summary.model_dump())
    images = _draw_plots(results, analysis)
    blocks = _report_blocks(study_dir, results, analysis, summary, findings, images, notes, base)
    title = f"synthscale study report: {_study_name(study_dir, results, summary)}"

    out_dir = study_dir / REPORT_DIR
    written: dict[str, Path] = {}
    for role, filename in PLOT_FILES.items():
        path = out_dir / filename
        if role in images:
            atomic_write_bytes(path, images[role].png)
            written[role] = path
        elif path.exists():
            path.unlink()  # a plot from an earlier report that this data no longer supports
    written["findings"] = out_dir / "findings.json"
    atomic_write_text(written["findings"], to_json([f.to_dict() for f in findings]))
    written["markdown"] = out_dir / "report.md"
    atomic_write_text(written["markdown"], render_markdown([Heading(title, 1), *blocks]))
    written["html"] = out_dir / "report.html"
    atomic_write_text(written["html"], render_html([Heading(title, 1), *blocks], title))
    return written


def _failures_on_disk(study_dir: Path) -> dict | None:
    """``{"failures": [...]}`` from the study's failures.json, when the study wrote one."""
    path = study_dir / "failures.json"
    failures = read_study_json(path, "failures list")
    if failures is None:
        return None
    if not isinstance(failures, list) or not all(isinstance(f, dict) for f in failures):
        raise InputError("expected a list of objects (one per failed run)", path=str(path))
    return {"failures": failures}


def _parse_summary(raw: dict | None) -> SpecSummary:
    if raw is None:
        return SpecSummary()
    return validated(SpecSummary, raw, "spec_summary")


def _draw_plots(results: pd.DataFrame, analysis: Analysis) -> dict[str, Image]:
    models = ordered_models(results)
    recipes = ordered_recipes(results)
    drawn = {
        "plot_loss_vs_tokens": (f"Validation loss ({analysis.metric}) vs training tokens, with fitted laws",
                                plots.loss_vs_tokens(results, analysis)),
        "plot_domain_grid": ("Validation loss per eval domain (largest model)", plots.domain_grid(results)),
        "plot_domain_heatmap": ("Loss minus natural's loss at the largest budget (largest model)",
                                plots.domain_heatmap(results)),
        "plot_speedups": (f"Speedup over natural vs budget ({_band_words(analysis)}; dashed = extrapolated)",
                          plots.speedups(analysis, models, recipes)),
        "plot_loss_vs_ratio": ("Mean loss vs synthetic fraction at each budget",
                               plots.loss_vs_ratio(results, analysis)),
    }
    return {role: Image(title, PLOT_FILES[role], png) for role, (title, png) in drawn.items() if png is not None}


def _report_blocks(study_dir: Path, results: pd.DataFrame, analysis: Analysis, summary: SpecSummary,
                   findings: list[Finding], images: dict[str, Image], notes: list[str],
                   baselines: report_baselines.Baselines | None = None) -> list[Block]:
    models = ordered_models(results)
    recipes = ordered_recipes(results)
    blocks: list[Block] = [
        BulletList(tuple(_header_items(study_dir, results, summary))),
        Heading("How to read this"),
        Paragraph(_HOW_TO_READ),
        *[Paragraph(f"**Note.** {n}") for n in notes],
        Heading("Findings"),
        *(report_baselines.baseline_notes(results, baselines) if baselines is not None else []),
        *_unknown_style_notes(results, summary),
        tables.findings_table(findings),
        Heading("How findings are decided"),
        Paragraph(f"Shared rules: a finding is **reproduced** only when every condition it covers passes its "
                  f"criterion; one failing condition makes it **not reproduced**; ties count against the "
                  f"finding. It is **not tested by this study** when the recipes, ratios, generators or rounds "
                  f"it needs are absent, or their numbers are (no fit, no speedup at a trained budget). "
                  f"Losses are seed means of the mean-domain loss unless stated; a ratio within {RATIO_TOL:g} "
                  f"of 1/3 counts as 1/3; a loss difference is notable above {NOTABLE_REL:.0%}."),
        BulletList(tuple(f"**{n}.** {text}" for n, text in CRITERIA.items())),
        *_kind_style_blocks(results, summary),
        Heading("Loss vs training tokens"),
    ]
    blocks += _image(images, "plot_loss_vs_tokens")
    data_fits = tables.fits_table(analysis, models, recipes)
    blocks += [data_fits] if data_fits.rows else [Paragraph("No data-scaling fits in analysis.json.")]
    failed = tables.failed_fits(analysis, models, recipes)
    blocks += [Paragraph("**Fits that could not be made:**"), BulletList(tuple(failed))] if failed else []
    other_fits = tables.other_fits_table(analysis, models, recipes)
    blocks += [other_fits] if other_fits is not None else []
    blocks += [Heading("Speedups over natural")]
    blocks += _image(images, "plot_speedups")
    blocks += ([tables.speedups_table(analysis, models, recipes)] if analysis.speedups
               else [Paragraph("No speedups in analysis.json.")])
    blocks += [Heading("Per-domain loss")]
    blocks += _image(images, "plot_domain_grid") + _image(images, "plot_domain_heatmap")
    blocks += _domain_tables_with_baselines(results, baselines)
    blocks += [Heading("Synthetic ratio")]
    blocks += _image(images, "plot_loss_vs_ratio")
    blocks += ([tables.best_ratio_table(analysis, models)] if analysis.best_ratio
               else [Paragraph("No best-ratio estimates in analysis.json.")])
    blocks += report_diagnostics.diagnostics_blocks(study_dir)
    blocks += [Heading("Run failures")]
    blocks += ([tables.failures_table(summary.failures)] if summary.failures
               else [Paragraph("No failed runs were reported.")])
    if analysis.warnings:
        blocks += [Heading("Analysis warnings"), BulletList(tuple(analysis.warnings))]
    if analysis.conventions:
        method = tuple(f"**{key}:** {_plain_text(value)}" for key, value in sorted(analysis.conventions.items()))
        blocks += [Heading("Analysis method"),
                   Paragraph("As recorded by the laws stage in analysis.json (`conventions`)."), BulletList(method)]
    return blocks


def _domain_tables_with_baselines(results: pd.DataFrame,
                                  baselines: report_baselines.Baselines | None) -> list[Block]:
    """The per-domain loss tables, the bits-per-byte tables, and the baselines under both."""
    loss_tables = tables.domain_loss_tables(results)
    bpb_tables = tables.domain_bpb_tables(results) if report_baselines.has_bpb(results) else []
    table = report_baselines.baselines_table(results, baselines) if baselines is not None else None
    if table is not None:
        loss_tables = [report_baselines.with_baseline_rows(t, baselines, "loss") for t in loss_tables]
        bpb_tables = [report_baselines.with_baseline_rows(t, baselines, "bpb") for t in bpb_tables]
    blocks: list[Block] = [Heading("Baselines", 3), table, Heading("Loss per domain", 3)] if table is not None else []
    blocks += loss_tables
    blocks += [Heading("Bits per byte per domain", 3), *bpb_tables] if bpb_tables else []
    return blocks


def _kind_styles(results: pd.DataFrame, summary: SpecSummary) -> dict[str, tuple[str | None, str]]:
    """Each synthetic kind of the results: (style or None, where the style came from)."""
    kinds = sorted({k for kind in results.loc[results["kind"] != NATURAL, "kind"].unique() for k in kind.split("+")})
    styles = {}
    for kind in kinds:
        if kind in summary.kind_styles:
            styles[kind] = (summary.kind_styles[kind], "declared in the spec")
        elif kind in DEFAULT_KIND_STYLES:
            styles[kind] = (DEFAULT_KIND_STYLES[kind], "default for this name: the spec does not declare "
                            f"`corpora.synthetic.{kind}.style`")
        else:
            styles[kind] = (None, "")
    return styles


def _kind_style_blocks(results: pd.DataFrame, summary: SpecSummary) -> list[Block]:
    """Which synthetic kinds the findings treat as rephrased or generated, and why."""
    styles = _kind_styles(results, summary)
    if not styles:
        return []
    items = tuple(f"`{kind}`: {style} ({why})" if style else f"`{kind}`: no style (not used by the findings)"
                  for kind, (style, why) in styles.items())
    return [Paragraph("Synthetic kinds as the findings read them (rephrase: rewrites of natural documents; "
                      "generate: written from topics or seeds):"), BulletList(items)]


def _unknown_style_notes(results: pd.DataFrame, summary: SpecSummary) -> list[Block]:
    unknown = [k for k, (style, _) in _kind_styles(results, summary).items() if style is None]
    if not unknown:
        return []
    names = ", ".join(f"`{k}`" for k in unknown)
    fields = ", ".join(f"`corpora.synthetic.{k}.style`" for k in unknown)
    return [Paragraph(f"**Note.** The synthetic kind(s) {names} have no style, so the findings about rephrased "
                      f"and generated data do not count them. Declare {fields} (rephrase or generate) in the "
                      f"study spec.")]


def _kind_styles_on_disk(study_dir: Path) -> dict[str, str]:
    """The styles declared in the study's ``spec.resolved.json`` ({} without one)."""
    path = study_dir / "spec.resolved.json"
    if not path.exists():
        return {}
    try:
        synthetic = read_json(path).get("corpora", {}).get("synthetic", {})
    except (ValueError, AttributeError):
        return {}
    if not isinstance(synthetic, dict):
        return {}
    return {kind: source["style"] for kind, source in sorted(synthetic.items())
            if isinstance(source, dict) and source.get("style") in ("rephrase", "generate")}


def _plain_text(value: Any) -> str:
    """A nested JSON value on one line: dicts as 'key=value, ...', lists comma-separated."""
    if isinstance(value, dict):
        return ", ".join(f"{k}=({_plain_text(v)})" if isinstance(v, dict) else f"{k}={_plain_text(v)}"
                         for k, v in sorted(value.items()))
    if isinstance(value, list):
        return "[" + ", ".join(_plain_text(v) for v in value) + "]"
    if isinstance(value, float):
        return fmt.num(value)
    return "n/a" if value is None else str(value)


def _band_words(analysis) -> str:
    """How the speedup plot's bands should be read: 95% bands, or coarse ones (the spread between seeds)."""
    return "bands: the spread between seeds, coarse" if any(s.coarse_ci for s in analysis.speedups) else "95% bands"


_HOW_TO_READ = (
    "Each run trains one model size on one recipe (natural text, or a synthetic kind mixed in at a fraction r "
    "of the training tokens) for a token budget D, and is evaluated on held-out domains; `mean` is the "
    "unweighted mean over domains. Lower loss is better. For each recipe the fitted law L(D) = E + B * D^-beta "
    "gives E, the loss that more tokens cannot remove, and beta, how fast loss falls. Every law has a "
    "verdict: ok, weak (usable, but marked: few points, a poor leave-largest-out check, a parameter the "
    "data do not pin down) or unusable (the data do not support the form; its numbers are not used). "
    "A speedup of 3x at D "
    "means natural text would need 3 times as many tokens to reach the loss this recipe reaches with D; "
    "above 1 is better than natural. Intervals are 95% bootstrap intervals from the laws stage, except those "
    "marked coarse (the runs allow fewer than 20 distinct resamples, as with 2 or 3 seeds of a WSD study), "
    "which are only the spread between seeds. Speedups at "
    "budgets no run trained are extrapolated from the fitted laws and are marked so; a value marked '>' or "
    "'<' is only a bound, where reading the laws further would claim more than the data support. "
    "The findings table "
    "compares the study with the paper's headline claims, using the criteria listed below it; a miniature "
    "study on small budgets can legitimately disagree with results measured at billions of tokens."
)


def _header_items(study_dir: Path, results: pd.DataFrame, summary: SpecSummary) -> list[str]:
    models = summary.models or ordered_models(results)
    budgets = summary.budgets or sorted(results["tokens"].unique())
    trained = ordered_recipes(results)
    recipes = trained + [f"{r} (no results)" for r in summary.recipes or [] if r not in trained]
    seeds = summary.seeds or sorted(results["seed"].unique())
    domains = summary.eval_domains or eval_domains(results)
    generators = sorted(g for g in results.loc[results["kind"] != NATURAL, "generator"].unique() if g)
    items = [
        f"**Model sizes:** {', '.join(_model_text(results, m) for m in models)}",
        f"**Token budgets:** {', '.join(fmt.tokens(b) for b in budgets)}",
        *([f"**Regime:** {regime}"] if (regime := regime_text(results)) else []),
        f"**Recipes:** {', '.join(recipes)}",
        f"**Seeds:** {', '.join(str(s) for s in seeds)}",
        f"**Eval domains:** {', '.join(domains)}",
        f"**Tokenizer:** {_tokenizer_text(summary.tokenizer)}",
    ]
    if generators:
        items.append(f"**Generators:** {', '.join(generators)}")
    if results["round"].nunique() > 1:
        items.append(f"**Collapse rounds:** {', '.join(str(r) for r in sorted(results['round'].unique()))}")
    items += [
        f"**Runs:** {_runs_text(results, summary)}",
        f"**Files:** {_files_text(study_dir)}; report `{REPORT_DIR}/report.md`, `{REPORT_DIR}/report.html`, "
        f"`{REPORT_DIR}/findings.json` and the PNG plots beside them",
    ]
    return items


def _files_text(study_dir: Path) -> str:
    present = [f"`{name}`" for name in STUDY_FILES if (study_dir / name).exists()]
    listed = ", ".join(present) if present else "no input files there; tables were given in memory"
    # the folder name, not its path: the report reads the same wherever the study folder is
    return f"study folder `{study_dir.resolve().name}/` ({listed})"


def _runs_text(results: pd.DataFrame, summary: SpecSummary) -> str:
    with_results = results["run_id"].nunique()
    planned = f" of {summary.runs} planned" if summary.runs is not None else ""
    return f"{with_results}{planned} with results ({len(results)} result rows); {len(summary.failures)} failed"


def _model_text(results: pd.DataFrame, model: str) -> str:
    params = results.loc[results["model"] == model, "params_nonembedding"].dropna()
    return f"{model} ({fmt.tokens(float(params.iloc[0]))} non-embedding params)" if len(params) else model


def _tokenizer_text(tokenizer: str | dict | None) -> str:
    if tokenizer is None:
        return "not given"
    if isinstance(tokenizer, dict):
        return ", ".join(f"{k}={v}" for k, v in sorted(tokenizer.items()))
    return tokenizer


def _study_name(study_dir: Path, results: pd.DataFrame, summary: SpecSummary) -> str:
    if summary.name:
        return summary.name
    names = sorted(n for n in results["study"].unique() if n)
    return ", ".join(names) if names else (study_dir.resolve().name or "study")


def _image(images: dict[str, Image], role: str) -> list[Block]:
    return [images[role]] if role in images else []
