"""analysis.json from a results table: fits, speedups, best ratios, robustness."""

import json

import numpy as np
import pytest

from synthscale.laws import analyze_results, write_analysis
from synthscale.laws.simulate import simulate_results

BUDGETS = [1e6, 2e6, 4e6, 8e6, 1.6e7]
NATURAL = {"E": 2.0, "B": 40.0, "beta": 0.3}
MULTIPLIER = 2.5  # hq@0.333 sees 2.5x effective data: B * 2.5^-beta, same E


def _recipes():
    return {
        "natural": NATURAL,
        "hq@0.333": {**NATURAL, "B": NATURAL["B"] * MULTIPLIER**-0.3},
        "hq@0.667": {**NATURAL, "B": NATURAL["B"] * 1.5**-0.3},
        "hq@1": {**NATURAL, "E": 2.1},
        "qa@0.333": {"E": 1.95, "B": 40.0, "beta": 0.3},
        "qa@1": {"E": 2.2, "B": 40.0, "beta": 0.3},
        "textbook@0.333": {"E": 2.05, "B": 45.0, "beta": 0.3},
    }


@pytest.fixture(scope="module")
def analysis():
    table = simulate_results(_recipes(), BUDGETS, seeds=1, noise=0.0)
    return analyze_results(table, bootstrap=50, seed=0, generator_flops={"hq": 2e7})


def test_structure_follows_the_contract(analysis):
    assert analysis["metric"] == "mean"
    assert {"fits", "speedups", "best_ratio", "ratio_fits", "conventions", "warnings"} <= set(analysis)
    fit = analysis["fits"][0]
    for key in (
        "recipe",
        "kind",
        "ratio",
        "model",
        "form",
        "params",
        "objective",
        "converged",
        "n_points",
        "tokens_min",
        "tokens_max",
    ):
        assert key in fit
    assert set(fit["params"]) == {"E", "B", "beta"} and set(fit["params"]["E"]) == {"value", "ci"}
    speed = analysis["speedups"][0]
    for key in ("recipe", "kind", "ratio", "model", "tokens", "speedup", "ci", "extrapolated"):
        assert key in speed
    best = analysis["best_ratio"][0]
    for key in ("kind", "model", "tokens", "ratio_grid", "ratio_fit", "ci"):
        assert key in best
    json.dumps(analysis, allow_nan=False)  # strictly valid JSON


def test_known_speedup_is_recovered_and_grid_extends_to_twice_the_largest(analysis):
    rows = [s for s in analysis["speedups"] if s["recipe"] == "hq@0.333"]
    trained = [s for s in rows if s["trained"]]
    assert len(trained) == len(BUDGETS)
    for s in trained:
        assert s["speedup"] == pytest.approx(MULTIPLIER, rel=0.02)
    assert max(s["tokens"] for s in rows) == pytest.approx(2 * BUDGETS[-1])
    assert all(s["extrapolated"] == (s["tokens"] > BUDGETS[-1] * (1 + 1e-9)) for s in rows)
    f = 6.0 * 1_000_000  # simulated params_total, exact FLOPs = 6 N per token
    assert trained[0]["speedup_compute"] == pytest.approx(trained[0]["speedup"] * f / (f + 0.333 * 2e7), rel=1e-6)
    assert all(s["speedup_compute"] is None for s in analysis["speedups"] if s["kind"] == "qa")


def test_lower_floor_gives_infinite_speedup_flag(analysis):
    # qa@0.333 has E = 1.95 < natural's 2.0: beyond some budget natural never catches up.
    far = [
        s for s in analysis["speedups"] if s["recipe"] == "qa@0.333" and s["tokens"] == pytest.approx(2 * BUDGETS[-1])
    ]
    assert far and far[0]["speedup"] is None and far[0]["bound"]["op"] == ">" and far[0]["bound"]["value"] > 1
    assert "natural" in far[0]["note"] and far[0]["status"] == "bound"


def test_best_ratio_from_grid_and_law(analysis):
    hq = [b for b in analysis["best_ratio"] if b["kind"] == "hq"]
    assert len(hq) == len(BUDGETS)
    assert all(b["ratio_grid"] == pytest.approx(0.333) for b in hq)
    assert all(b["ratio_fit"] is not None and 0.0 <= b["ratio_fit"] <= 1.0 for b in hq)
    textbook = [b for b in analysis["best_ratio"] if b["kind"] == "textbook"]
    assert all(b["ratio_fit"] is None for b in textbook)  # only 2 ratios: no law
    assert {r["kind"] for r in analysis["ratio_fits"]} == {"hq", "qa"}


def test_failing_recipe_and_bad_runs_are_recorded_not_fatal():
    table = simulate_results(_recipes(), BUDGETS, seeds=1, noise=0.005)
    table = table[~((table["recipe"] == "qa@1") & (table["tokens"] > 2e6))]  # 2 budgets left: no law
    bad = table.index[(table["recipe"] == "hq@1") & (table["domain"] == "mean")][0]
    table.loc[bad, "loss"] = np.nan
    out = analyze_results(table, bootstrap=20)
    failed = [f for f in out["fits"] if f["recipe"] == "qa@1"][0]
    assert failed["params"] is None and "too few distinct points" in failed["error"]
    assert any("hq@1" in w for w in out["warnings"])
    assert failed["verdict"] == "unusable" and "too few distinct points" in failed["reasons"][0]
    no_law = [s for s in out["speedups"] if s["recipe"] == "qa@1"]
    assert len(no_law) == 2 and all(s["status"] == "no law" and s["speedup"] is None for s in no_law)
    assert all(s["note"].startswith("no law: this recipe: too few distinct points") for s in no_law)


def test_deterministic_by_seed_and_written_atomically(tmp_path):
    table = simulate_results(_recipes(), BUDGETS[:3], seeds=2, noise=0.01, seed=3)  # 3 budgets, noisy
    a = analyze_results(table, bootstrap=30, seed=5)
    b = analyze_results(table, bootstrap=30, seed=5)
    assert a == b
    write_analysis(tmp_path / "analysis.json", a)
    assert json.loads((tmp_path / "analysis.json").read_text()) == json.loads(json.dumps(a))


# ---------------------------------------------------------------- model laws L(N)

SIZES = {"s1": 25_000, "s2": 100_000, "s3": 600_000, "s4": 2_000_000}
MODEL_LAW = {"E": 1.8, "A": 30.0, "alpha": 0.35}


def _ladder_table(sizes: dict[str, int], budgets=BUDGETS, seeds: int = 2, noise: float = 0.002):
    """Results of several model sizes whose mean loss is E + A N^-alpha + B D^-beta."""
    import pandas as pd

    frames = []
    for i, (model, n) in enumerate(sizes.items()):
        e_n = MODEL_LAW["E"] + MODEL_LAW["A"] * n ** -MODEL_LAW["alpha"]
        recipes = {"natural": {"E": e_n, "B": 40.0, "beta": 0.3}, "hq@0.333": {"E": e_n, "B": 30.0, "beta": 0.3}}
        frames.append(simulate_results(recipes, budgets, seeds=seeds, noise=noise, seed=i, model=model,
                                       params_total=n + 50_000, params_nonembedding=n))
    return pd.concat(frames, ignore_index=True)


def test_model_laws_per_recipe_at_each_shared_budget():
    budgets = BUDGETS[:3]
    table = _ladder_table(SIZES, budgets=budgets)
    # a budget only the two smallest sizes trained: no model law there
    extra = _ladder_table({k: SIZES[k] for k in ("s1", "s2")}, budgets=[3.2e7])
    analysis = analyze_results(pd_concat(table, extra), bootstrap=50, seed=0)
    model_fits = [f for f in analysis["fits"] if f["form"] == "model"]
    assert {(f["recipe"], f["tokens"]) for f in model_fits} == {(r, b) for r in ("natural", "hq@0.333")
                                                                 for b in budgets}
    for f in model_fits:
        assert f["model"] == "all" and f["models"] == ["s1", "s2", "s3", "s4"]
        assert f["params_column"] == "params_nonembedding"
        assert (f["params_min"], f["params_max"]) == (25_000, 2_000_000)
        assert f["n_points"] == 8 and f["n_runs"] == 8
        assert set(f["params"]) == {"E", "A", "alpha"}
        assert f["params"]["alpha"]["value"] == pytest.approx(MODEL_LAW["alpha"], rel=0.2)
        assert f["params"]["alpha"]["ci"] is not None
        assert f["holdout"]["axis"] == "params" and f["holdout"]["value"] == 2_000_000
        assert f["holdout"]["rel_error_mean"] < 0.01
        assert f["verdict"] in ("ok", "weak") and "verdict" in f and "reasons" in f
    # the data laws are still there, one per recipe and model, and speedups use only them
    data_fits = [f for f in analysis["fits"] if f["form"] == "data"]
    assert len(data_fits) == 2 * 4
    assert {s["model"] for s in analysis["speedups"]} == set(SIZES)
    json.dumps(analysis, allow_nan=False)


def test_no_model_law_with_fewer_than_three_sizes():
    table = _ladder_table({k: SIZES[k] for k in ("s1", "s2")}, budgets=BUDGETS[:3])
    analysis = analyze_results(table, bootstrap=0, seed=0)
    assert all(f["form"] == "data" for f in analysis["fits"])


def test_model_law_that_does_not_fall_with_size_is_unusable():
    import pandas as pd

    table = _ladder_table(SIZES, budgets=BUDGETS[:3], noise=0.0)
    # every size gets the smallest one's losses (times tiny noise): no scaling with N
    rng = np.random.default_rng(1)
    base = table[table["model"] == "s1"].set_index(["recipe", "tokens", "seed", "domain"])["loss"]
    rows = []
    for model in SIZES:
        part = table[table["model"] == model].copy()
        part["loss"] = base.loc[list(zip(part["recipe"], part["tokens"], part["seed"], part["domain"]))].to_numpy()
        part["loss"] *= np.exp(rng.normal(0, 0.001, len(part)))
        rows.append(part)
    analysis = analyze_results(pd.concat(rows, ignore_index=True), bootstrap=0, seed=0)
    model_fits = [f for f in analysis["fits"] if f["form"] == "model"]
    assert model_fits and all(f["verdict"] == "unusable" for f in model_fits)


def pd_concat(*frames):
    import pandas as pd

    return pd.concat(frames, ignore_index=True)
