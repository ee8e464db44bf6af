"""study/spec.py: validation errors name the field; paths, fractions and overrides resolve."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from synthscale.errors import ConfigError
from synthscale.study.plan import RecipePoint, recipe_points
from synthscale.study.spec import load_spec, parse_spec

from tests.conftest import run_cli

BASE = {
    "name": "t",
    "corpora": {"natural": "nat.jsonl",
                "synthetic": {"hq": "hq.jsonl", "qa": {"path": "qa.jsonl", "generator": "g@1"}}},
    "eval": {"web": "web.jsonl"},
    "recipes": [{"kind": "natural"}, {"kind": "hq", "ratios": ["1/3", 1]}, {"kind": "hq+qa", "ratios": [0.5]}],
    "models": ["cpu-nano"],
    "budgets": [2048, 1024],
}


def write(tmp_path: Path, spec: dict) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_valid_spec_resolves_paths_and_fractions(tmp_path: Path) -> None:
    spec, base = load_spec(write(tmp_path, BASE))
    assert spec.corpora.natural.path == str(tmp_path / "nat.jsonl")
    assert spec.corpora.synthetic["qa"].generator == "g@1"
    assert spec.recipes[1].ratios == [pytest.approx(1 / 3), 1.0]
    assert spec.budgets == [1024, 2048]  # sorted, unique


def test_misspelled_field_is_named_with_hint() -> None:
    raw = {**BASE, "training": {"warmup_fraction": 0.1}}
    with pytest.raises(ConfigError, match=r"training\.warmup_fraction: unknown field \(did you mean 'warmup_frac'\?\)"):
        parse_spec(raw, "s.yaml")
    with pytest.raises(ConfigError, match=r"s.yaml: budget: unknown field \(did you mean 'budgets'\?\)"):
        parse_spec({**BASE, "budget": [1]}, "s.yaml")


def test_ratio_out_of_range_is_named() -> None:
    raw = {**BASE, "recipes": [{"kind": "hq", "ratios": [0.5, 1.5]}]}
    with pytest.raises(ConfigError, match=r"recipes\.0\.ratios: ratio 1.5 is outside \[0, 1\]"):
        parse_spec(raw)
    with pytest.raises(ConfigError, match="not a number or fraction"):
        parse_spec({**BASE, "recipes": [{"kind": "hq", "ratios": ["a/b"]}]})


def test_unknown_kind_and_model_are_named() -> None:
    with pytest.raises(ConfigError, match="unknown synthetic kind 'txbk'"):
        parse_spec({**BASE, "recipes": [{"kind": "txbk", "ratios": [0.5]}]})
    with pytest.raises(ConfigError, match="unknown model size 'cpu-nan' \\(did you mean 'cpu-nano'"):
        parse_spec({**BASE, "models": ["cpu-nan"]})


def test_overrides(tmp_path: Path) -> None:
    spec, _ = load_spec(write(tmp_path, BASE), ["budgets=[64, 128]", "training.lr=0.01"])
    assert spec.budgets == [64, 128] and spec.training.lr == 0.01
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        load_spec(write(tmp_path, BASE), ["budgets"])


def test_recipe_points_dedupe_natural() -> None:
    spec = parse_spec({**BASE, "recipes": [{"kind": "natural"}, {"kind": "hq", "ratios": [0, 1 / 3, 1]}]})
    names = [p.name for p in recipe_points(spec)]
    assert names == ["natural", "hq@0.333", "hq@1"]
    assert RecipePoint(("hq", "qa"), 0.5).weights() == {"natural": 0.5, "hq": 0.25, "qa": 0.25}
    assert RecipePoint(("hq",), 1.0).weights() == {"hq": 1.0}


def test_cli_bad_spec_one_line_exit_2(tmp_path: Path) -> None:
    bad = write(tmp_path, {**BASE, "recipes": [{"kind": "hq", "ratios": [2]}]})
    res = run_cli("study", "validate", str(bad))
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1 and "ratio 2 is outside [0, 1]" in res.stderr
    typo = write(tmp_path, {**BASE, "seeds_": [1]})
    res = run_cli("study", "run", str(typo))
    assert res.returncode == 2 and "seeds_: unknown field" in res.stderr


def test_synthetic_style_is_validated_and_kept(tmp_path: Path) -> None:
    raw = {**BASE, "corpora": {"natural": "nat.jsonl", "synthetic": {
        "hq": {"path": "hq.jsonl", "style": "rephrase"}, "qa": "qa.jsonl",
        "books": {"path": "b.jsonl", "style": "generate"}}}}
    spec, _ = load_spec(write(tmp_path, raw))
    assert {k: s.style for k, s in spec.corpora.synthetic.items()} == {"hq": "rephrase", "qa": None,
                                                                        "books": "generate"}
    assert spec.model_dump()["corpora"]["synthetic"]["books"]["style"] == "generate"  # in spec.resolved.json
    bad = {**BASE, "corpora": {"natural": "nat.jsonl", "synthetic": {"hq": {"path": "hq.jsonl", "style": "hq"}}}}
    with pytest.raises(ConfigError, match=r"s\.yaml: corpora\.synthetic\.hq\.style: style 'hq' must be 'rephrase' "
                                          r"\(rewrites of natural documents.*\) or 'generate' \(written from topics"):
        parse_spec(bad, "s.yaml")


def test_declared_styles_flow_to_the_report_summary(tmp_path: Path, monkeypatch) -> None:
    """run_study's report gets the spec's declared styles as spec_summary['kind_styles'] (others: by name)."""
    import synthscale.study.runner as runner
    from synthscale.study.runner import write_study_report

    raw = {**BASE, "corpora": {"natural": "nat.jsonl", "synthetic": {
        "hq": "hq.jsonl", "qa": {"path": "qa.jsonl", "style": "rephrase"}}}}
    spec = parse_spec(raw)
    (tmp_path / "results.csv").write_text("made up\n")
    seen = {}
    monkeypatch.setattr(runner, "analyze_results", lambda df, **kw: {})
    monkeypatch.setattr(runner, "write_analysis", lambda path, analysis: None)
    monkeypatch.setattr(runner, "write_report",
                        lambda study_dir, **kw: seen.update(kw["spec_summary"]) or {})
    write_study_report(spec, tmp_path, None, [], [])
    assert seen["kind_styles"] == {"qa": "rephrase"}


def test_example_specs_declare_every_synthetic_style() -> None:
    root = Path(__file__).resolve().parents[2]
    for path in sorted((root / "examples").glob("*.yaml")):
        raw = yaml.safe_load(path.read_text())
        spec = parse_spec(raw, str(path))
        assert all(s.style for s in spec.corpora.synthetic.values()), f"{path}: a synthetic kind has no style"
