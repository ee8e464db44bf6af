"""Functional forms: log-sum-exp designs, the Hoffmann start grid, natural parameters."""

import numpy as np
import pytest

from synthscale.errors import ConfigError
from synthscale.laws.forms import FORM_NAMES, get_form


def test_chinchilla_prediction_matches_closed_form():
    form = get_form("chinchilla")
    theta = np.array([np.log(406.4), np.log(410.7), np.log(1.69), 0.34, 0.28])
    n, d = np.array([1e8, 1e9, 7e10]), np.array([2e9, 2e10, 1.4e12])
    expected = 1.69 + 406.4 * n**-0.34 + 410.7 * d**-0.28
    np.testing.assert_allclose(form.predict(theta, {"params": n, "tokens": d}), expected, rtol=1e-12)


def test_start_grid_is_hoffmann_grid():
    grid = get_form("chinchilla").start_grid()
    assert grid.shape == (4500, 5)  # a, b in {0..25 step 5}, e in {-1..1 step .5}, alpha, beta in {0..2 step .5}
    for col, values in zip(grid.T, [np.arange(0, 30, 5), np.arange(0, 30, 5), np.arange(-1, 1.5, 0.5)]):
        np.testing.assert_array_equal(np.unique(col), values)
    np.testing.assert_array_equal(np.unique(grid[:, 3]), np.arange(0, 2.5, 0.5))
    assert get_form("data").start_grid().shape == (150, 3)


def test_ratio_form_reduces_to_data_law_at_fixed_ratio():
    form = get_form("ratio_data")  # b, b_r1, b_r2, e, e_r1, e_r2, beta
    theta = np.array([5.0, -0.4, 0.3, 0.6, 0.2, -0.1, 0.3])
    r, tokens = 0.4, np.geomspace(1e6, 1e9, 5)
    E, B, beta = form.data_law(theta, ratio=r)
    expected = E + B * tokens**-beta
    got = form.predict(theta, {"tokens": tokens, "ratio": np.full(5, r)})
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    assert np.isclose(E, np.exp(0.6 + 0.2 * r - 0.1 * r * r))


def test_chinchilla_data_law_folds_model_term_into_E():
    form = get_form("chinchilla")
    theta = np.array([6.0, 6.0, 0.5, 0.34, 0.28])
    E, B, beta = form.data_law(theta, params=1e9)
    assert np.isclose(E, np.exp(0.5) + np.exp(6.0) * 1e9**-0.34)
    assert np.isclose(B, np.exp(6.0)) and beta == 0.28


def test_tied_exponents_report_beta_equal_alpha():
    form = get_form("chinchilla", tie_exponents=True)
    assert form.theta_names == ("a", "b", "e", "alpha")
    names = form.natural_names()
    values = form.natural(np.array([6.0, 7.0, 0.6, 0.35]))
    nat = dict(zip(names, values))
    assert nat["beta"] == nat["alpha"] == 0.35 and np.isclose(nat["E"], np.exp(0.6))


def test_unknown_form_and_bad_tie_raise():
    assert set(FORM_NAMES) == {"data", "model", "chinchilla", "ratio_data", "ratio"}
    with pytest.raises(ConfigError, match="unknown law form"):
        get_form("kaplan")
    with pytest.raises(ConfigError, match="tie_exponents"):
        get_form("data", tie_exponents=True)
