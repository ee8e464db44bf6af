"""The best synthetic ratio: from the ratio law, and from a grid of trained ratios."""

import itertools

import numpy as np
import pandas as pd
import pytest

from synthscale.laws import LawData, argmin_ratio, best_ratio_from_grid, best_ratio_from_law, fit_law
from synthscale.laws.forms import get_form
from synthscale.laws.simulate import simulate_points

# log B(r) = log 60 - 0.9 r + 1.2 r^2 (best data efficiency at r = 0.375), E flat in r.
TRUTH = {"E": 2.0, "B": 60.0, "beta": 0.3, "b_r1": -0.9, "b_r2": 1.2, "e_r1": 0.0, "e_r2": 0.0}


def test_argmin_ratio_finds_vertex_of_quadratic_coefficient():
    theta = np.array([np.log(60.0), -0.9, 1.2, np.log(2.0), 0.0, 0.0, 0.3])
    assert argmin_ratio(get_form("ratio_data"), theta, 1e7)[0] == pytest.approx(0.375, abs=1e-4)
    # and per bootstrap row
    rows = np.array([theta, theta * [1, 1, 0, 1, 1, 1, 1]])  # second: b_r2 = 0, so r* = 1
    np.testing.assert_allclose(argmin_ratio(get_form("ratio_data"), rows, 1e7), [0.375, 1.0], atol=1e-4)


def test_fitted_ratio_law_gives_r_star_with_interval():
    grid = list(itertools.product(np.geomspace(1e6, 1.6e7, 5), [0.0, 1 / 3, 2 / 3, 1.0], range(2)))
    tokens = np.array([g[0] for g in grid])
    ratio = np.array([g[1] for g in grid])
    loss = simulate_points("ratio_data", TRUTH, {"tokens": tokens, "ratio": ratio}, noise=0.003, seed=4)
    data = LawData(loss=loss, tokens=tokens, ratio=ratio, strata=ratio.astype(str))
    fit = fit_law(data, "ratio_data", bootstrap=100, seed=1)
    est = best_ratio_from_law(fit, 4e6)
    assert est.value == pytest.approx(0.375, abs=0.08)
    assert est.ci[0] <= est.value <= est.ci[1] and not est.extrapolated


def test_grid_best_ratio_and_interval_over_runs():
    cells = pd.DataFrame(
        {
            "ratio": [0.0, 0.0, 0.0, 1 / 3, 1 / 3, 1 / 3, 1.0, 1.0, 1.0],
            "run_id": [f"r{i}" for i in range(9)],
            "loss": [3.00, 3.02, 3.01, 2.90, 2.91, 2.92, 3.20, 3.21, 3.19],
        }
    )
    best, ci = best_ratio_from_grid(cells, bootstrap=200, seed=0)
    assert best == pytest.approx(1 / 3) and ci == (pytest.approx(1 / 3), pytest.approx(1 / 3))
    assert best_ratio_from_grid(cells.iloc[[0, 3, 6]], bootstrap=200)[1] is None  # one run per ratio
