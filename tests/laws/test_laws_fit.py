"""Fitting: recovery of known laws, the published objective and its options, determinism."""

import itertools

import numpy as np
import pytest
from scipy.optimize import minimize

from synthscale.errors import InputError
from synthscale.laws import FitError, FitOptions, LawData, fit_law
from synthscale.laws.data import distinct_resamples
from synthscale.laws.fit import _objective
from synthscale.laws.forms import get_form
from synthscale.laws.simulate import simulate_points

CHINCHILLA = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}


def _chinchilla_points(n=60, noise=0.0, seed=0):
    rng = np.random.default_rng(seed)
    params = np.exp(rng.uniform(np.log(7e7), np.log(1.6e10), n))
    tokens = np.exp(rng.uniform(np.log(5e9), np.log(5e11), n))
    loss = simulate_points("chinchilla", CHINCHILLA, {"params": params, "tokens": tokens}, noise=noise, seed=seed)
    return LawData(loss=loss, params=params, tokens=tokens)


def test_recovers_noise_free_chinchilla_law():
    fit = fit_law(_chinchilla_points(), "chinchilla")
    for name, value in CHINCHILLA.items():
        assert fit.params[name] == pytest.approx(value, rel=1e-3), name
    assert fit.converged and fit.objective < 1e-12


def test_recovers_data_law_from_noisy_points():
    tokens = np.repeat(np.geomspace(1e6, 1e9, 8), 3)
    truth = {"E": 2.0, "B": 400.0, "beta": 0.35}
    loss = simulate_points("data", truth, {"tokens": tokens}, noise=0.002, seed=1)
    fit = fit_law(LawData(loss=loss, tokens=tokens), "data")
    assert fit.params["E"] == pytest.approx(2.0, rel=0.03)
    assert fit.params["beta"] == pytest.approx(0.35, rel=0.05)


def test_grid_fit_is_at_least_as_good_as_scipy_from_every_start():
    # The published procedure: scipy L-BFGS-B from each grid start, keep the best.
    tokens = np.geomspace(1e6, 1e9, 7)
    data = LawData(
        loss=simulate_points("data", {"E": 2.0, "B": 60.0, "beta": 0.3}, {"tokens": tokens}, noise=0.01), tokens=tokens
    )
    form = get_form("data")
    objective = _objective(data, form, FitOptions())
    fun = lambda t: tuple(v[0] for v in objective.value_and_grad(t))  # noqa: E731
    best = min(minimize(fun, s, jac=True, method="L-BFGS-B").fun for s in form.start_grid())
    assert fit_law(data, "data").objective <= best * (1 + 1e-9)


def test_summed_and_averaged_objectives_reach_the_same_optimum():
    data = _chinchilla_points(n=80, noise=0.01, seed=3)
    summed = fit_law(data, "chinchilla", options=FitOptions(reduction="sum"))
    averaged = fit_law(data, "chinchilla", options=FitOptions(reduction="mean"))
    np.testing.assert_allclose(summed.theta, averaged.theta, rtol=1e-5, atol=1e-6)
    assert averaged.objective == pytest.approx(summed.objective / data.n_points, rel=1e-8)


def test_pruned_grid_finds_the_full_grid_optimum():
    data = _chinchilla_points(n=40, noise=0.01, seed=5)
    pruned = fit_law(data, "chinchilla")
    full = fit_law(data, "chinchilla", options=FitOptions(prune=False))
    assert pruned.objective == pytest.approx(full.objective, rel=1e-9)
    np.testing.assert_allclose(pruned.theta, full.theta, rtol=1e-4, atol=1e-5)


def test_least_squares_option_fits_and_is_reported():
    tokens = np.geomspace(1e6, 1e9, 6)
    data = LawData(
        loss=simulate_points("data", {"E": 2.0, "B": 60.0, "beta": 0.3}, {"tokens": tokens}, noise=0.0), tokens=tokens
    )
    fit = fit_law(data, "data", options=FitOptions(loss="lsq"))
    assert fit.params["beta"] == pytest.approx(0.3, rel=1e-4)
    assert fit.to_dict()["method"]["loss"] == "lsq" and fit.to_dict()["method"]["delta"] is None


def test_bootstrap_is_deterministic_by_seed():
    data = _chinchilla_points(n=40, noise=0.01, seed=7)
    a = fit_law(data, "chinchilla", bootstrap=30, seed=11)
    b = fit_law(data, "chinchilla", bootstrap=30, seed=11)
    c = fit_law(data, "chinchilla", bootstrap=30, seed=12)
    np.testing.assert_array_equal(a.boot_thetas, b.boot_thetas)
    assert not np.array_equal(a.boot_thetas, c.boot_thetas)
    assert a.to_dict()["params"]["E"]["ci"] is not None


def test_bootstrap_resamples_whole_runs():
    # Two points per run: a resample holds both points of a run or neither.
    tokens = np.repeat(np.geomspace(1e6, 1e9, 6), 2)
    loss = simulate_points("data", {"E": 2.0, "B": 60.0, "beta": 0.3}, {"tokens": tokens}, noise=0.01)
    groups = np.repeat([f"run{i}" for i in range(6)], 2)
    from synthscale.laws.data import resample_weights

    w = resample_weights(LawData(loss=loss, tokens=tokens, groups=groups), 50, np.random.default_rng(0))
    np.testing.assert_array_equal(w[:, 0::2], w[:, 1::2])
    np.testing.assert_array_equal(w.sum(axis=1), 12)


def test_holdout_predicts_the_largest_budget():
    tokens = np.geomspace(1e6, 1e9, 7)
    loss = simulate_points("data", {"E": 2.0, "B": 60.0, "beta": 0.3}, {"tokens": tokens}, noise=0.0)
    report = fit_law(LawData(loss=loss, tokens=tokens), "data", holdout="largest").holdout
    assert report["axis"] == "tokens" and report["value"] == pytest.approx(1e9)
    assert report["n_test"] == 1 and report["rel_error_max"] < 1e-4


def test_too_few_budgets_is_a_fit_error():
    data = LawData(loss=np.array([3.0, 2.9, 3.01, 2.91]), tokens=np.array([1e6, 2e6, 1e6, 2e6]))
    with pytest.raises(FitError, match="too few distinct points"):
        fit_law(data, "data")


def test_bad_points_name_the_point_and_column():
    with pytest.raises(InputError, match="point 1: column 'tokens'"):
        LawData(loss=np.array([3.0, 2.9, 2.8]), tokens=np.array([1e6, -1.0, 4e6]))
    with pytest.raises(InputError, match="ratio in \\[0, 1\\]"):
        LawData(loss=np.array([3.0, 2.9]), tokens=np.array([1e6, 2e6]), ratio=np.array([0.5, 1.5]))


@pytest.mark.parametrize("form,variables", [("model", ["params"]), ("ratio_data", ["tokens", "ratio"])])
def test_other_forms_recover_noise_free_laws(form, variables):
    f = get_form(form)
    grid = {
        "params": np.geomspace(1e7, 1e10, 6),
        "tokens": np.geomspace(1e6, 1e9, 5),
        "ratio": np.array([0, 1 / 3, 2 / 3, 1]),
    }
    points = list(itertools.product(*(grid[v] for v in variables)))
    x = {v: np.array([p[i] for p in points]) for i, v in enumerate(variables)}
    truth = {
        "E": 2.0,
        "A": 300.0,
        "alpha": 0.3,
        "B": 60.0,
        "beta": 0.3,
        "b_r1": -0.6,
        "b_r2": 0.5,
        "e_r1": -0.1,
        "e_r2": 0.15,
    }
    loss = simulate_points(f, truth, x, noise=0.0)
    fit = fit_law(LawData(loss=loss, **x), form)
    for name in f.natural_names():
        assert fit.params[name] == pytest.approx(truth[name], rel=2e-3, abs=2e-3), name


def test_one_run_per_stratum_gives_no_interval_rather_than_a_zero_width_one():
    """With one run in each stratum (WSD, one seed: one run reads every budget) every resample is the data
    itself: no interval, and why; with two seeds the runs resample and give one."""
    from synthscale.laws import analyze_results
    from synthscale.laws.simulate import simulate_results

    laws = {"natural": {"E": 2.0, "B": 40.0, "beta": 0.3}, "hq@0.333": {"E": 1.9, "B": 40.0, "beta": 0.3}}
    table = simulate_results(laws, budgets=[2**k * 1000 for k in range(6)], seeds=2, noise=0.01, seed=3)
    table["run_id"] = table["recipe"] + "-s" + table["seed"].astype(str)  # one run per (recipe, seed), as WSD
    one_seed = analyze_results(table[table["seed"] == table["seed"].min()], bootstrap=40, seed=0)
    fit = next(f for f in one_seed["fits"] if f["recipe"] == "natural")
    assert fit["params"]["E"]["ci"] is None and "one seed" in fit["ci_note"]
    two_seeds = analyze_results(table, bootstrap=40, seed=0)
    fit = next(f for f in two_seeds["fits"] if f["recipe"] == "natural")
    lo, hi = fit["params"]["E"]["ci"]
    assert lo < hi and fit["ci_note"] is None


def test_an_interval_from_two_or_three_runs_is_marked_coarse_and_four_runs_give_a_real_one():
    """Two WSD runs (seeds) allow 3 distinct resamples (each alone, both): the interval is kept but marked
    as the spread between seeds (ci_caveat, in the fit and in its speedups); four runs allow 35."""
    from synthscale.laws import analyze_results
    from synthscale.laws.simulate import simulate_results

    laws = {"natural": {"E": 2.0, "B": 40.0, "beta": 0.3}, "hq@0.333": {"E": 1.9, "B": 40.0, "beta": 0.3}}
    table = simulate_results(laws, budgets=[2**k * 1000 for k in range(6)], seeds=4, noise=0.01, seed=3)
    table["run_id"] = table["recipe"] + "-s" + table["seed"].astype(str)
    two = analyze_results(table[table["seed"] < table["seed"].min() + 2], bootstrap=40, seed=0)
    fit = next(f for f in two["fits"] if f["recipe"] == "natural")
    assert fit["bootstrap"]["n_distinct"] == 3 and fit["params"]["E"]["ci"] is not None
    assert "3 distinct resamples" in fit["ci_caveat"] and "not a 95% interval" in fit["ci_caveat"]
    assert all(s["ci_caveat"] for s in two["speedups"] if s["ci"] is not None)
    four = analyze_results(table, bootstrap=40, seed=0)
    fit = next(f for f in four["fits"] if f["recipe"] == "natural")
    assert fit["bootstrap"]["n_distinct"] == 35 and fit["ci_caveat"] is None


@pytest.mark.parametrize("runs, expected", [([1], 1), ([2], 3), ([3], 10), ([4], 35), ([2, 2], 9), ([1, 3], 10)])
def test_distinct_resamples_counts_the_multisets_of_runs_in_each_stratum(runs, expected):
    groups = [f"s{i}-r{j}" for i, k in enumerate(runs) for j in range(k)]
    strata = [f"s{i}" for i, k in enumerate(runs) for _ in range(k)]
    data = LawData(loss=np.ones(len(groups)), tokens=np.arange(1.0, len(groups) + 1), groups=np.array(groups),
                   strata=np.array(strata))
    assert distinct_resamples(data) == expected
