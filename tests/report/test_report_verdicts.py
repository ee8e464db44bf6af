"""The report uses only laws the data support: no unusable law drawn, no speedup beyond the data printed."""

import re

import numpy as np
import pytest

from synthscale.laws import analyze_results
from synthscale.laws.simulate import simulate_results
from synthscale.report import plots, write_report
from synthscale.report.inputs import normalize_results, parse_analysis

BUDGETS = [1e6, 2e6, 4e6, 8e6, 1.6e7]
NATURAL = {"E": 2.0, "B": 40.0, "beta": 0.3}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """natural, hq@0.333 (2.5x effective data), qa@1 (flat: no law), textbook@0.333 (far better floor)."""
    recipes = {
        "natural": NATURAL,
        "hq@0.333": {**NATURAL, "B": NATURAL["B"] * 2.5**-0.3},
        "qa@1": {"E": 3.0, "B": 1e-4, "beta": 0.3},  # flat in D: the data support no law
        "textbook@0.333": {"E": 1.2, "B": 40.0, "beta": 0.3},  # below natural's E: natural never gets there
    }
    table = simulate_results(recipes, BUDGETS, seeds=2, noise=0.004, seed=1)
    analysis = analyze_results(table, bootstrap=60, seed=0)
    folder = tmp_path_factory.mktemp("study")
    paths = write_report(folder, table, analysis)
    return table, analysis, paths


def test_the_unusable_law_gets_no_numbers_downstream(study):
    _, analysis, paths = study
    qa = next(f for f in analysis["fits"] if f["recipe"] == "qa@1")
    assert qa["verdict"] == "unusable"
    rows = [s for s in analysis["speedups"] if s["recipe"] == "qa@1"]
    assert rows and all(s["status"] == "no law" and s["speedup"] is None for s in rows)
    markdown = paths["markdown"].read_text()
    qa_fit_row = next(line for line in markdown.splitlines()
                      if line.startswith("| toy | qa@1 |") and "Verdict" not in line
                      and "not shown" in line)
    assert "**unusable**" in qa_fit_row
    assert re.search(r"\| toy \| qa@1 \| 1M-16M \| no law \|", markdown)


def test_no_unusable_law_is_drawn_and_weak_ones_are_dashed(study):
    table, analysis, _ = study
    parsed = parse_analysis(analysis)
    fig = plots.figure(*plots.loss_vs_tokens_drawing(normalize_results(table), parsed))
    curves = {line.get_gid(): line for ax in fig.axes for line in ax.get_lines() if line.get_gid()}
    usable = {f.recipe: f.verdict for f in parsed.fits if f.verdict != "unusable"}
    assert set(curves) == {f"law:{r}" for r in usable}
    for recipe, verdict in usable.items():
        assert curves[f"law:{recipe}"].get_linestyle() == ("--" if verdict == "weak" else "-")
    ax = fig.axes[0]
    measured = table[table["domain"] == "mean"]["loss"]
    low, high = ax.get_ylim()
    assert low < measured.min() and high > measured.max()
    assert high - low < 2 * (measured.max() - measured.min())  # fitted to the points, not to a curve


def test_no_speedup_outside_the_supported_range_is_printed_as_a_number(study):
    _, analysis, paths = study
    far = [s for s in analysis["speedups"] if s["recipe"] == "textbook@0.333" and s["status"] == "bound"]
    assert far and all(s["speedup"] is None and s["bound"]["op"] == ">" for s in far)
    markdown = paths["markdown"].read_text()
    section = markdown.split("## Speedups over natural")[1].split("## Per-domain loss")[0]
    assert "inf" not in section.replace("information", "")
    for line in section.splitlines():
        if not line.startswith("| toy |"):
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        speedup = cells[3]
        if speedup.startswith(("no law", ">", "<")):
            continue
        value = float(speedup.split("x")[0])
        assert 0.01 <= value <= 100, line
    assert re.search(r"\| toy \| textbook@0\.333 \| [0-9.]+[kM] \| > [0-9.]+x", section)


def test_speedup_plot_stays_within_its_range_and_marks_bounds(study):
    _, analysis, _ = study
    parsed = parse_analysis(analysis)
    fig = plots.figure(*plots.speedups_drawing(parsed, ["toy"], ["natural", "hq@0.333", "textbook@0.333"]))
    ax = fig.axes[0]
    low, high = ax.get_ylim()
    assert 0.01 <= low < high <= 100 and ax.get_yscale() == "log"
    triangles = [line for line in ax.get_lines() if line.get_marker() == "^"]
    assert triangles and all(np.all(np.asarray(line.get_ydata()) <= high) for line in triangles)
