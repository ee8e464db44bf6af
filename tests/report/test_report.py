"""report/: files, self-contained HTML, the findings criteria and determinism.

The study here is made up: every recipe follows a chosen law L(D) = E + B * D^-beta, and
analysis.json is derived from the same laws (speedups read off them, as laws/ does), so
each test knows which findings the numbers support.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from synthscale._io import write_json
from synthscale.errors import InputError
from synthscale.report import (NOT_REPRODUCED, NOT_TESTED, REPRODUCED, decide_findings, normalize_results,
                               parse_analysis, write_report)

DOMAINS = {"web": 0.0, "wiki": 0.2, "code": -0.3}
BUDGETS = (1e6, 2e6, 4e6, 8e6)
EXTRAPOLATED = (1.6e7, 3.2e7)
# recipe -> (kind, ratio, E, B, beta): 1/3 mixtures beat natural, r=1 loses, textbook is far worse
# and worst at small budgets, hq@1/3 has the lowest E.
PAPER_LIKE = {
    "natural": ("natural", 0.0, 2.0, 60.0, 0.3),
    "hq@0.2": ("hq", 0.2, 1.85, 60.0, 0.3),
    "hq@0.333": ("hq", 1 / 3, 1.8, 60.0, 0.3),
    "hq@0.5": ("hq", 0.5, 1.83, 60.0, 0.3),
    "hq@0.667": ("hq", 2 / 3, 1.9, 60.0, 0.3),
    "hq@1": ("hq", 1.0, 2.1, 60.0, 0.3),
    "qa@0.333": ("qa", 1 / 3, 1.9, 60.0, 0.3),
    "qa@1": ("qa", 1.0, 2.15, 60.0, 0.3),
    "textbook@1": ("textbook", 1.0, 2.3, 120.0, 0.3),
}
MODELS = {"tiny": 1e6}
FEW = {k: PAPER_LIKE[k] for k in ("natural", "hq@0.333", "textbook@1")}  # fewer plots: faster tests


def law(params: tuple, tokens: float) -> float:
    return params[2] + params[3] * tokens ** -params[4]


def make_results(laws: dict = PAPER_LIKE, seeds=(0,), models=MODELS, generators=("gen-8B",),
                 rounds=(None,), drift=None) -> pd.DataFrame:
    """Rows per the contract; ``drift(kind, generator, round)`` adds a loss offset."""
    rows = []
    for model, size in models.items():
        shift = 0.1 * math.log10(1e6 / size)  # bigger models reach lower loss
        for recipe, p in laws.items():
            kind, ratio = p[0], p[1]
            for gen in ([""] if kind == "natural" else generators):
                for rnd in ([None] if kind == "natural" else rounds):
                    for seed in seeds:
                        for tokens in BUDGETS:
                            offset = shift + 0.001 * seed + (drift(kind, gen, rnd) if drift else 0.0)
                            run = f"{model}-{recipe}-{gen}-{rnd}-{seed}-{int(tokens)}"
                            base = dict(study="toy", run_id=run, recipe=recipe, kind=kind, ratio=ratio,
                                        generator=gen or None, model=model, params_total=2 * size,
                                        params_nonembedding=size, tokens=tokens, train_flops=6 * size * tokens,
                                        bpb=1.0, seed=seed, epochs_natural=1.0, epochs_synthetic=1.0)
                            if rnd is not None:
                                base["round"] = rnd
                            losses = [law(p, tokens) + off + offset for off in DOMAINS.values()]
                            rows += [{**base, "domain": d, "loss": v} for d, v in zip(DOMAINS, losses)]
                            rows.append({**base, "domain": "mean", "loss": float(np.mean(losses))})
    return pd.DataFrame(rows)


def make_analysis(laws: dict = PAPER_LIKE, models=MODELS, ci_rel: float | None = 0.1, best_grid=1 / 3) -> dict:
    """analysis.json per the contract, read off the same laws."""
    nat = laws["natural"]
    fits, speedups, best = [], [], []
    for model in models:
        for recipe, p in laws.items():
            fits.append(dict(recipe=recipe, kind=p[0], ratio=p[1], model=model, form="data",
                             params={"E": {"value": p[2], "ci": [p[2] - 0.05, p[2] + 0.05]},
                                     "B": {"value": p[3], "ci": None},
                                     "beta": {"value": p[4], "ci": [p[4] - 0.02, p[4] + 0.02]}},
                             objective=0.0, converged=True, n_points=len(BUDGETS),
                             tokens_min=BUDGETS[0], tokens_max=BUDGETS[-1]))
            for tokens in (*BUDGETS, *EXTRAPOLATED):
                loss = law(p, tokens)
                s = math.inf if loss <= nat[2] else (nat[3] / (loss - nat[2])) ** (1 / nat[4]) / tokens
                ci = [s * (1 - ci_rel), s * (1 + ci_rel)] if ci_rel is not None and math.isfinite(s) else None
                speedups.append(dict(recipe=recipe, kind=p[0], ratio=p[1], model=model, tokens=tokens,
                                     speedup=s, ci=ci, extrapolated=tokens > BUDGETS[-1]))
        for kind in sorted({p[0] for p in laws.values()} - {"natural", "textbook"}):
            best += [dict(kind=kind, model=model, tokens=t, ratio_grid=best_grid, ratio_fit=0.31,
                          ci=[0.26, 0.36]) for t in BUDGETS]
    return {"metric": "mean", "fits": fits, "speedups": speedups, "best_ratio": best}


def statuses(findings) -> dict[int, str]:
    return {f.number: f.status for f in findings}


def decide(results: pd.DataFrame, analysis: dict, spec_summary: dict | None = None) -> dict[int, str]:
    return statuses(decide_findings(normalize_results(results), parse_analysis(analysis), spec_summary))


@pytest.fixture(scope="module")
def paper_like_report(tmp_path_factory) -> dict[str, Path]:
    study = tmp_path_factory.mktemp("study")
    models = {"tiny": 1e6, "small": 4e6}
    analysis = make_analysis(models=models)
    analysis["fits"].append(dict(recipe="natural", kind="natural", ratio=0.0, model="all", form="model",
                                 params={"E": {"value": 1.9, "ci": None}, "A": {"value": 400.0, "ci": [300.0, 500.0]},
                                         "alpha": {"value": 0.34, "ci": None}}, converged=True, n_points=2))
    analysis["fits"].append(dict(recipe="hq@0.333", kind="hq", ratio=1 / 3, model="all", form="model", tokens=4e6,
                                 models=["tiny", "small"], params={"E": {"value": 1.7, "ci": None},
                                                                   "A": {"value": 300.0, "ci": None},
                                                                   "alpha": {"value": 0.3, "ci": None}},
                                 n_points=4, verdict="weak", reasons=["leave-largest-out error 3.0% > 2%"]))
    for s in analysis["speedups"]:
        s["speedup_compute"], s["ci_compute"] = s["speedup"] / 2, None
    analysis["warnings"] = ["dropped run r7 (qa@1, tokens=1e6): loss nan"]
    analysis["conventions"] = {"bootstrap": {"n": 200, "unit": "run_id"}}
    return write_report(study, make_results(seeds=(0, 1), models=models), analysis,
                        {"name": "toy-study", "tokenizer": "byte-level BPE 4096", "runs": 150,
                         "failures": [{"run_id": "abc123", "recipe": "qa@1", "error": "diverged at step 40"}]})


# ---------------------------------------------------------------- files and HTML


def test_report_writes_markdown_html_findings_and_every_plot(paper_like_report):
    expected = {"markdown", "html", "findings", "plot_loss_vs_tokens", "plot_domain_grid",
                "plot_domain_heatmap", "plot_speedups", "plot_loss_vs_ratio"}
    assert set(paper_like_report) == expected
    for role, path in paper_like_report.items():
        assert path.is_file() and path.parent.name == "report", role
        if role.startswith("plot_"):
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    markdown = paper_like_report["markdown"].read_text()
    for plot in (p for r, p in paper_like_report.items() if r.startswith("plot_")):
        assert f"]({plot.name})" in markdown


def test_html_is_self_contained_and_embeds_every_plot(paper_like_report):
    html = paper_like_report["html"].read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html, re.IGNORECASE)
    assert "<link" not in html and "<script" not in html and "url(" not in html
    n_plots = sum(1 for r in paper_like_report if r.startswith("plot_"))
    assert html.count('src="data:image/png;base64,') == n_plots
    assert "<style>" in html


def test_report_header_tables_and_failures(paper_like_report):
    markdown = paper_like_report["markdown"].read_text()
    assert markdown.startswith("# synthscale study report: toy-study\n")
    assert "**Model sizes:** tiny (1M non-embedding params), small (4M non-embedding params)" in markdown
    assert "**Token budgets:** 1M, 2M, 4M, 8M" in markdown
    assert "**Tokenizer:** byte-level BPE 4096" in markdown
    assert "**Runs:** 144 of 150 planned with results" in markdown  # 2 models x 9 recipes x 2 seeds x 4 budgets
    assert "| all | natural | model | A = 400 [300, 500]; E = 1.9; alpha = 0.34 | 2 | ok |" in markdown
    assert ("| tiny, small | hq@0.333 at D = 4M | model | A = 300; E = 1.7; alpha = 0.3 | 4 | **weak**: "
            "leave-largest-out error 3.0% > 2% |") in markdown
    assert ("**Regime:** tokens per non-embedding parameter D/N = 1.0-8.0 (tiny), 0.25-2.0 (small); the paper's "
            "runs span 1-200, compute-optimal is about 20") in markdown
    assert "| small | hq@0.333 | 8M | 5.27x | [4.74, 5.79] | 2.63x no CI | trained |" in markdown
    assert "- dropped run r7 (qa@1, tokens=1e6): loss nan" in markdown
    assert "- **bootstrap:** n=200, unit=run_id" in markdown
    for section in ("## How to read this", "## Findings", "## How findings are decided", "## Speedups over natural",
                    "## Per-domain loss", "## Synthetic ratio", "## Run failures"):
        assert section in markdown
    assert "| small | hq@0.333 | 32M |" in markdown and "| extrapolated |" in markdown
    assert "| abc123 | qa@1 | diverged at step 40 |" in markdown
    assert "*Validation loss (nats/token, seed mean) of small at 8M tokens.*" in markdown


def test_same_inputs_give_byte_identical_report(tmp_path):
    results, analysis = make_results(FEW, seeds=(0, 1, 2)), make_analysis(FEW)
    first = write_report(tmp_path, results, analysis)
    snapshot = {role: path.read_bytes() for role, path in first.items()}
    second = write_report(tmp_path, results.sample(frac=1.0, random_state=3), analysis)
    assert {role: path.read_bytes() for role, path in second.items()} == snapshot


def test_reads_results_and_analysis_from_the_study_folder(tmp_path):
    make_results().to_parquet(tmp_path / "results.parquet")
    write_json(tmp_path / "analysis.json", make_analysis())
    write_json(tmp_path / "failures.json", [{"run_id": "r9", "error": "out of memory"}])
    written = write_report(tmp_path)
    findings = json.loads(written["findings"].read_text())
    assert [f["status"] for f in findings][:5] == [REPRODUCED] * 5
    markdown = written["markdown"].read_text()
    assert f"study folder `{tmp_path.name}/` (`results.parquet`, `analysis.json`, `failures.json`)" in markdown
    assert str(tmp_path) not in markdown  # the same report wherever the folder is
    assert "| r9 | out of memory |" in markdown and "; 1 failed" in markdown


def test_missing_analysis_reports_fit_findings_as_not_tested(tmp_path):
    make_results(FEW).to_csv(tmp_path / "results.csv", index=False)
    written = write_report(tmp_path)
    findings = {f["number"]: f["status"] for f in json.loads(written["findings"].read_text())}
    assert findings[1] == findings[2] == findings[5] == NOT_TESTED
    assert findings[3] == REPRODUCED  # decided from the results table alone
    assert "No analysis.json was found" in written["markdown"].read_text()
    assert "plot_speedups" not in written


# ---------------------------------------------------------------- findings criteria


def test_paper_like_study_reproduces_findings_one_to_five():
    found = decide(make_results(), make_analysis())
    assert found == {1: REPRODUCED, 2: REPRODUCED, 3: REPRODUCED, 4: REPRODUCED, 5: REPRODUCED,
                     6: NOT_TESTED, 7: NOT_TESTED}


def test_findings_evidence_states_the_regime():
    results = normalize_results(make_results())
    found = {f.number: f for f in decide_findings(results, parse_analysis(make_analysis()))}
    regime = ("Regime: tokens per non-embedding parameter D/N = 1.0-8.0 (tiny); the paper's runs span 1-200, "
              "compute-optimal is about 20.")
    for number in (1, 2, 3, 4, 5):
        assert found[number].evidence.endswith(regime), found[number].evidence
    assert regime not in found[6].evidence and regime not in found[7].evidence
    assert "hq@0.333 (tiny) at 8M (D/N 8.0): " in found[2].evidence
    assert "at 1M (D/N 1.0)" in found[3].evidence and "at 8M (D/N 8.0)" in found[3].evidence
    assert "(tiny) at 8M (D/N 8.0): r* = " in found[4].evidence
    assert ("hq grid best by size, smallest -> largest budget: tiny 0.333 at 1M (D/N 1.0) -> 0.333 at 8M (D/N 8.0)"
            in found[4].evidence)


def test_finding2_not_reproduced_when_third_mixtures_are_slower_than_natural():
    laws = {**PAPER_LIKE, "hq@0.333": ("hq", 1 / 3, 2.05, 60.0, 0.3)}
    found = decide(make_results(laws), make_analysis(laws))
    assert found[2] == NOT_REPRODUCED
    assert found[5] == NOT_REPRODUCED  # hq@1/3 no longer has the lowest E


def test_finding2_needs_the_ci_lower_bound_above_one():
    laws = {**PAPER_LIKE, "qa@0.333": ("qa", 1 / 3, 1.99, 60.0, 0.3)}  # ~1.04x at 8M
    assert decide(make_results(laws), make_analysis(laws, ci_rel=0.1))[2] == NOT_REPRODUCED
    assert decide(make_results(laws), make_analysis(laws, ci_rel=0.01))[2] == REPRODUCED
    assert decide(make_results(laws), make_analysis(laws, ci_rel=None))[2] == NOT_REPRODUCED


def test_coarse_intervals_are_labelled_in_the_tables_and_the_findings(tmp_path):
    """An interval from a few distinct resamples (laws' ci_caveat: 2 seeds) is shown, and said to be the spread
    between seeds, under the fit and speedup tables and in findings 1 and 2; real intervals get no such words."""
    caveat = "the runs allow only 3 distinct resamples (2-3 runs per condition), so an interval is the spread"
    analysis = make_analysis()
    for entry in (*analysis["fits"], *analysis["speedups"]):
        entry["ci_caveat"] = caveat
    text = write_report(tmp_path / "coarse", make_results(seeds=(0, 1)), analysis)["markdown"].read_text()
    assert text.count("Coarse CI: " + caveat) == 2  # under the fit table and under the speedup table
    finding2 = next(line for line in text.splitlines() if line.startswith("| 2 |"))
    assert "(coarse: the spread between seeds)" in finding2
    finding5 = next(line for line in text.splitlines() if line.startswith("| 5 |"))
    assert "] (coarse)" in finding5
    assert "Speedup over natural vs budget (bands: the spread between seeds, coarse;" in text
    assert "| E [CI, coarse] |" in text and "| Speedup | CI, coarse |" in text
    plain = write_report(tmp_path / "real", make_results(seeds=(0, 1)), make_analysis())["markdown"].read_text()
    assert "Coarse CI" not in plain and "coarse:" not in plain and "(95% bands;" in plain
    assert "| E [95% CI] |" in plain and "CI, coarse" not in plain


def test_finding1_not_reproduced_when_rephrased_alone_is_faster():
    laws = {**PAPER_LIKE, "qa@1": ("qa", 1.0, 1.7, 60.0, 0.3)}
    assert decide(make_results(laws), make_analysis(laws))[1] == NOT_REPRODUCED


def test_finding1_passes_when_the_ci_includes_one():
    laws = {**PAPER_LIKE, "hq@1": ("hq", 1.0, 1.99, 60.0, 0.3)}  # slightly faster, CI covers 1
    assert decide(make_results(laws), make_analysis(laws, ci_rel=0.1))[1] == REPRODUCED


def test_finding3_not_reproduced_when_textbook_gap_grows_with_budget():
    laws = {**PAPER_LIKE, "textbook@1": ("textbook", 1.0, 2.6, 50.0, 0.3)}
    assert decide(make_results(laws), make_analysis(laws))[3] == NOT_REPRODUCED


def test_finding4_not_reproduced_when_best_ratio_is_far_from_thirty_percent():
    assert decide(make_results(), make_analysis(best_grid=2 / 3))[4] == NOT_REPRODUCED


def test_finding4_falls_back_to_the_grid_of_the_results_table():
    no_best = {**make_analysis(), "best_ratio": []}
    assert decide(make_results(), no_best)[4] == REPRODUCED  # 1/3 has the lowest loss
    laws = {**PAPER_LIKE, "hq@0.667": ("hq", 2 / 3, 1.7, 60.0, 0.3)}
    assert decide(make_results(laws), {**make_analysis(laws), "best_ratio": []})[4] == NOT_REPRODUCED


def test_findings_not_tested_when_the_study_lacks_their_recipes():
    laws = {k: PAPER_LIKE[k] for k in ("natural", "hq@0.333")}
    found = decide(make_results(laws), make_analysis(laws))
    assert found[1] == found[3] == found[4] == found[6] == found[7] == NOT_TESTED
    assert found[2] == REPRODUCED and found[5] == REPRODUCED


def test_finding6_generator_size():
    two = ("gen-8B", "gen-70B")
    same = make_results(generators=two)
    assert decide(same, make_analysis())[6] == REPRODUCED

    def bigger_is_better(kind, gen, rnd):
        return -0.2 if gen == "gen-70B" else 0.0

    better = make_results(generators=two, drift=bigger_is_better)
    assert decide(better, make_analysis())[6] == NOT_REPRODUCED
    unnamed = make_results(generators=("alpha", "beta"))
    assert decide(unnamed, make_analysis())[6] == NOT_TESTED
    assert decide(unnamed, make_analysis(), {"generator_params": {"alpha": 3e9, "beta": 7e10}})[6] == REPRODUCED


def test_finding7_collapse_over_rounds():
    def textbook_degrades(kind, gen, rnd):
        return 0.3 * rnd if kind == "textbook" else 0.0

    collapse = make_results(rounds=(0, 1), drift=textbook_degrades)
    assert decide(collapse, make_analysis())[7] == REPRODUCED
    assert decide(make_results(rounds=(0, 1)), make_analysis())[7] == NOT_REPRODUCED  # textbook did not degrade


# ---------------------------------------------------------------- inputs


def test_bounded_speedups_are_read_back_and_count_as_bounds():
    analysis = make_analysis()
    target = next(s for s in analysis["speedups"] if s["recipe"] == "hq@0.333" and s["tokens"] == BUDGETS[-1])
    # how laws/ writes a speedup beyond natural's extrapolation limit
    target.update(speedup=None, infinite=True, bound={"op": ">", "value": 4.0}, ci=[3.0, 4.0],
                  ci_bounds=[None, ">"], status="bound", trained=True, note="natural never reaches this loss")
    parsed = parse_analysis(analysis)
    back = next(s for s in parsed.speedups if s.recipe == "hq@0.333" and s.tokens == BUDGETS[-1])
    assert back.shown == (4.0, ">") and back.ci == (3.0, 4.0)
    assert decide(make_results(), analysis)[2] == REPRODUCED  # a "> 4x" bound still counts as > 1


def test_mean_rows_are_added_when_missing():
    results = make_results()
    without_mean = results[results["domain"] != "mean"]
    normalized = normalize_results(without_mean)
    mean = normalized[normalized["domain"] == "mean"].sort_values(["run_id"]).reset_index(drop=True)
    expected = results[results["domain"] == "mean"].sort_values(["run_id"]).reset_index(drop=True)
    assert np.allclose(mean["loss"], expected["loss"])


def test_bad_inputs_raise_input_errors_naming_the_field(tmp_path):
    with pytest.raises(InputError, match="missing column.*loss"):
        write_report(tmp_path, make_results().drop(columns=["loss"]))
    bad = make_results()
    bad["tokens"] = bad["tokens"].astype(object)
    bad.loc[3, "tokens"] = "lots"
    with pytest.raises(InputError, match="row 3: column tokens is not a number"):
        normalize_results(bad)
    with pytest.raises(InputError, match="a second row for the same"):
        normalize_results(pd.concat([make_results(), make_results().iloc[:1]]))
    analysis = make_analysis()
    analysis["speedups"][2]["tokens"] = "lots"
    with pytest.raises(InputError, match=r"analysis: field speedups\.2\.tokens"):
        parse_analysis(analysis, source="analysis")
    with pytest.raises(InputError, match="no results.parquet or results.csv"):
        write_report(tmp_path / "empty")
