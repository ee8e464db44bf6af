"""End to end: `synthscale demo --profile quick` and a real-corpora study through the same path.

These are the slowest tests of the suite (a few minutes): they train every run of the
quick grid for real, twice from scratch (determinism) and once more as a rerun (skips).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import ROOT, run_cli

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def quick_demo(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "out"
    res = run_cli("demo", "--out", str(out), "--profile", "quick", "--quiet", timeout=900)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "report:" in res.stdout
    return out


def test_quick_demo_writes_results_laws_and_report(quick_demo: Path) -> None:
    study = quick_demo / "study"
    df = pd.read_csv(study / "results.csv")
    recipes = set(df["recipe"])
    assert {"natural", "hq@0.333", "hq@1", "textbook@0.333", "textbook@1"} <= recipes
    assert set(df["domain"]) == {"web", "encyclopedia", "probes", "mean"}
    # the default profile's shape, smaller: 2 seeds, 5 budgets read off one WSD run per (recipe, seed),
    # from about 1 token per non-embedding parameter up
    assert df.groupby("recipe")["tokens"].nunique().min() >= 5
    assert df.groupby("recipe")["seed"].nunique().min() >= 2
    assert df.groupby(["recipe", "seed"])["run_id"].nunique().max() == 1
    per_param = df["tokens"] / df["params_nonembedding"]
    assert per_param.min() <= 1.0 and per_param.max() >= 9.0
    analysis = json.loads((study / "analysis.json").read_text())
    fitted = {f["recipe"] for f in analysis["fits"] if f.get("form") == "data" and not f.get("error")}
    assert fitted == recipes, "every recipe has a fitted data law"
    sped = {s["recipe"] for s in analysis["speedups"]}
    assert sped == recipes - {"natural"}, "every recipe has speedups over natural"
    report = (study / "report" / "report.md").read_text()
    assert "## Findings" in report and report.count("| **") >= 7
    assert "**Regime:** tokens per non-embedding parameter D/N = 0.99-9.9 (cpu-pico)" in report
    baselines = json.loads((study / "baselines.json").read_text())
    assert set(baselines["domains"]) == {"web", "encyclopedia", "probes"}
    assert "### Baselines" in report and "| unigram baseline |" in report and "### Bits per byte per domain" in report
    assert "- `hq`: rephrase (declared in the spec)" in report
    html = (study / "report" / "report.html").read_text()
    assert "data:image/png;base64," in html and "http://" not in html and "https://" not in html
    assert (study / "study.yaml").exists() is False and (quick_demo / "study.yaml").exists()


def test_rerun_trains_nothing(quick_demo: Path) -> None:
    status_files = sorted((quick_demo / "study" / "runs").glob("*/status.json"))
    before = {p: p.stat().st_mtime_ns for p in status_files}
    csv_before = (quick_demo / "study" / "results.csv").read_bytes()
    start = time.monotonic()
    res = run_cli("demo", "--out", str(quick_demo), "--profile", "quick", "--quiet", timeout=600)
    elapsed = time.monotonic() - start
    assert res.returncode == 0, res.stderr
    assert "trained 0 runs" in res.stdout, res.stdout
    assert {p: p.stat().st_mtime_ns for p in status_files} == before
    assert (quick_demo / "study" / "results.csv").read_bytes() == csv_before
    print(f"rerun took {elapsed:.1f} s")


def test_fresh_quick_demo_is_byte_identical(quick_demo: Path, tmp_path: Path) -> None:
    out = tmp_path / "again"
    res = run_cli("demo", "--out", str(out), "--profile", "quick", "--quiet", timeout=900)
    assert res.returncode == 0, res.stderr
    assert (out / "study" / "results.csv").read_bytes() == (quick_demo / "study" / "results.csv").read_bytes()


def test_real_corpora_study_quick(shared_dir: Path, tmp_path: Path) -> None:
    # the example's paths (../../shared/corpora/...) resolve against examples/, i.e. ../shared
    spec = ROOT / "examples" / "real_corpora.yaml"
    out = tmp_path / "real"
    res = run_cli("study", "run", str(spec), "--out", str(out), "--quiet",
                  "--set", "models=[cpu-nano]", "--set", "budgets=[8192,16384,32768]",
                  "--set", "tokenizer.vocab_size=1024", "--set", "tokenizer.train_bytes=1000000",
                  "--set", "evaluation.max_tokens_per_domain=2048", "--set", "training.seq_len=64",
                  "--set", "training.batch_size=8", "--set", "analysis.bootstrap=0", timeout=900)
    assert res.returncode == 0, res.stdout + res.stderr
    df = pd.read_csv(out / "results.csv")
    assert set(df["recipe"]) == {"natural", "rephrase@0.333", "rephrase@1", "textbook@0.333", "textbook@1"}
    assert set(df["domain"]) == {"wikitext2", "pubmed", "arxiv", "shakespeare", "lambada", "mean"}
    gens = set(df.loc[df["kind"] == "rephrase", "generator"])
    assert gens == {"chatgpt-rephrase-base"}
    assert (out / "report" / "report.html").exists()
    report = (out / "report" / "report.md").read_text()
    assert "- `rephrase`: rephrase (declared in the spec)" in report  # the findings count it as rephrased
    assert "### Baselines" in report and (out / "baselines.json").exists()
