"""Every fitted law carries a verdict (ok, weak, unusable) with reasons: each rule on a table built to trip it."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from synthscale.laws import LawData, fit_law
from synthscale.laws.simulate import simulate_points
from synthscale.laws.verdict import EXPONENT_CEILING, EXPONENT_FLOOR, HOLDOUT_MAX

TOKENS = np.repeat(np.geomspace(1e6, 1e9, 8), 2)  # 8 budgets x 2 seeds
GOOD = {"E": 2.0, "B": 400.0, "beta": 0.35}
SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "scaling"


def _fit(loss, tokens=TOKENS, **kwargs):
    return fit_law(LawData(loss=np.asarray(loss), tokens=tokens), "data", holdout="largest", **kwargs)


def test_a_well_posed_law_is_ok_with_no_reasons():
    fit = _fit(simulate_points("data", GOOD, {"tokens": TOKENS}, noise=0.003, seed=1), bootstrap=50)
    assert fit.verdict.verdict == "ok" and fit.verdict.reasons == ()
    out = fit.to_dict()
    assert out["verdict"] == "ok" and out["reasons"] == []


def test_loss_rising_with_tokens_is_unusable_and_the_exponent_stays_positive():
    loss = 3.0 + 0.05 * np.log(TOKENS / 1e6) + np.random.default_rng(0).normal(0, 0.003, TOKENS.size)
    fit = _fit(loss)
    assert fit.verdict.verdict == "unusable"
    assert any(r.startswith("loss rises with tokens D") for r in fit.verdict.reasons)
    assert fit.params["beta"] >= EXPONENT_FLOOR  # a constraint of the fit, not only a check


def test_flat_loss_is_unusable_with_the_exponent_pinned_near_zero():
    loss = 3.0 * np.exp(np.random.default_rng(1).normal(0, 0.004, TOKENS.size))
    fit = _fit(loss)
    assert fit.verdict.verdict == "unusable"
    assert any("does not fall beyond noise" in r for r in fit.verdict.reasons)
    assert any(r.startswith("beta = ") and "pinned near 0" in r for r in fit.verdict.reasons)


def test_an_exponent_above_the_ceiling_is_unusable():
    tokens = np.repeat(np.geomspace(1e4, 1e6, 6), 2)
    loss = simulate_points("data", {"E": 2.0, "B": 1e12, "beta": 3.0}, {"tokens": tokens}, noise=0.0)
    fit = _fit(loss, tokens=tokens)
    assert fit.params["beta"] > EXPONENT_CEILING
    assert fit.verdict.verdict == "unusable"
    assert any("above the ceiling" in r for r in fit.verdict.reasons)


def test_loss_rising_at_the_top_of_the_budgets_is_unusable():
    tokens = np.repeat(np.geomspace(1e6, 1e8, 5), 2)
    loss = simulate_points("data", GOOD, {"tokens": tokens}, noise=0.0)
    loss[tokens == tokens.max()] *= 1.15  # the largest budget got worse than the one before: no power law
    fit = _fit(loss, tokens=tokens)
    assert fit.verdict.verdict == "unusable"
    assert any(r.startswith("loss rises at the top of tokens D") for r in fit.verdict.reasons)


def test_e_at_its_floor_is_weak_naming_the_bound():
    loss = simulate_points("data", {"E": 1e-9, "B": 40.0, "beta": 0.2}, {"tokens": TOKENS}, noise=0.001, seed=1)
    fit = _fit(loss)
    assert fit.verdict.verdict == "weak"
    assert any(r.startswith("E at its lower bound (") for r in fit.verdict.reasons)


def test_four_points_for_three_parameters_is_weak():
    tokens = np.geomspace(1e6, 1e8, 4)
    fit = _fit(simulate_points("data", GOOD, {"tokens": tokens}, noise=0.0), tokens=tokens)
    assert fit.verdict.verdict == "weak"
    assert "4 points for 3 parameters (fewer than 2 per parameter)" in fit.verdict.reasons


def test_a_large_leave_largest_out_error_is_weak():
    tokens = np.repeat(np.geomspace(1e6, 1e8, 6), 2)
    loss = simulate_points("data", GOOD, {"tokens": tokens}, noise=0.0)
    loss[tokens == tokens.max()] *= 0.93  # the largest budget drops below the trend
    fit = _fit(loss, tokens=tokens)
    assert fit.holdout["rel_error_mean"] > HOLDOUT_MAX
    assert fit.verdict.verdict == "weak"
    assert any(r.startswith("leave-largest-out error") for r in fit.verdict.reasons)


def test_a_direction_the_data_cannot_determine_is_weak():
    # Losses far above E's effect: the budgets are so close that B and beta trade off.
    tokens = np.repeat(np.array([1.00e8, 1.01e8, 1.02e8, 1.03e8]), 2)
    loss = simulate_points("data", GOOD, {"tokens": tokens}, noise=0.0)
    fit = _fit(loss, tokens=tokens)
    assert fit.verdict.verdict in ("weak", "unusable")
    assert any("do not determine" in r for r in fit.verdict.reasons)


def test_loss_not_falling_with_model_size_makes_a_model_law_unusable():
    params = np.repeat(np.geomspace(1e6, 1e9, 6), 2)
    loss = 3.0 * np.exp(np.random.default_rng(2).normal(0, 0.004, params.size))
    fit = fit_law(LawData(loss=loss, params=params), "model")
    assert fit.verdict.verdict == "unusable"
    assert any("parameters N" in r for r in fit.verdict.reasons)
    assert fit.params["alpha"] >= EXPONENT_FLOOR


def _published(name: str) -> LawData:
    df = pd.read_csv(SHARED / name)
    df = df[df["tokens_D"] == df["unique_tokens_U"]]  # single-epoch runs
    return LawData.from_frame(df, loss="final_val_loss", params="params_N", tokens="tokens_D")


@pytest.mark.skipif(not (SHARED / "datablations_c4_runs_fitset.csv").exists(), reason="shared/scaling not available")
def test_published_fitset_runs_are_ok():
    fit = fit_law(_published("datablations_c4_runs_fitset.csv"), "chinchilla", holdout="largest")
    assert fit.verdict.verdict == "ok", fit.verdict.reasons


@pytest.mark.skipif(not (SHARED / "datablations_c4_runs_all.csv").exists(), reason="shared/scaling not available")
def test_published_runs_whose_largest_model_is_off_the_trend_are_weak():
    # All single-epoch runs: the 8.7B model's runs sit 7% above what the smaller models predict.
    fit = fit_law(_published("datablations_c4_runs_all.csv"), "chinchilla", holdout="largest")
    assert fit.verdict.verdict == "weak"
    assert any(r.startswith("leave-largest-out error") for r in fit.verdict.reasons)
