"""Speedups read off fitted laws: token, at a loss, compute-inclusive, infinite."""

import numpy as np
import pytest

from synthscale.errors import ConfigError
from synthscale.laws import (
    LawData,
    compute_inclusive,
    data_law_tokens,
    fit_law,
    generator_flops_per_token,
    speedup_at_loss,
    speedup_at_tokens,
)
from synthscale.laws.simulate import simulate_points

TOKENS = np.repeat(np.geomspace(1e6, 1.6e7, 5), 2)
NATURAL = {"E": 2.0, "B": 40.0, "beta": 0.3}


def _fit(law, noise=0.0, seed=0, bootstrap=0):
    loss = simulate_points("data", law, {"tokens": TOKENS}, noise=noise, seed=seed)
    return fit_law(LawData(loss=loss, tokens=TOKENS), "data", bootstrap=bootstrap, seed=seed)


def test_effective_data_multiplier_is_the_speedup():
    # B_x = B * m^-beta with the same E: X at D equals natural at m * D.
    m = 3.0
    natural, mixed = _fit(NATURAL), _fit({**NATURAL, "B": NATURAL["B"] * m**-0.3})
    for tokens in (1e6, 4e6, 3.2e7):
        est = speedup_at_tokens(mixed, natural, tokens)
        assert est.value == pytest.approx(m, rel=1e-3)
        assert est.tokens_natural == pytest.approx(m * tokens, rel=1e-3)
    assert not speedup_at_tokens(mixed, natural, 4e6).extrapolated
    far = speedup_at_tokens(mixed, natural, 3.2e7)
    assert far.extrapolated and far.natural_extrapolated
    assert speedup_at_loss(mixed, natural, 2.6).value == pytest.approx(m, rel=1e-3)


def test_speedup_is_infinite_below_natural_floor():
    natural, better = _fit(NATURAL), _fit({"E": 1.5, "B": 40.0, "beta": 0.3})
    est = speedup_at_tokens(better, natural, 1e9)  # L_x(1e9) < E_nat = 2.0
    assert est.infinite and est.to_dict()["value"] is None and est.to_dict()["infinite"]
    assert np.isinf(data_law_tokens(2.0, 40.0, 0.3, 1.99))


def test_speedup_interval_brackets_point_estimate():
    natural = _fit(NATURAL, noise=0.005, seed=1, bootstrap=100)
    mixed = _fit({**NATURAL, "B": 30.0}, noise=0.005, seed=2, bootstrap=100)
    est = speedup_at_tokens(mixed, natural, 4e6)
    lo, hi = est.ci
    assert lo <= est.value <= hi and lo > 1.0


def test_compute_inclusive_speedup_counts_generator_flops():
    natural, mixed = _fit(NATURAL), _fit({**NATURAL, "B": NATURAL["B"] * 2.0**-0.3})
    token = speedup_at_tokens(mixed, natural, 4e6)
    f, g = 6e6, 2e7  # training and generator FLOPs per token
    compute = compute_inclusive(token, ratio=0.5, train_flops_per_token=f, generator_flops_per_token=g)
    assert compute.value == pytest.approx(token.value * f / (f + 0.5 * g))
    half = compute_inclusive(
        token, ratio=0.5, train_flops_per_token=f, generator_flops_per_token=g, generated_fraction=0.5
    )
    assert half.value == pytest.approx(token.value * f / (f + 0.25 * g))
    with pytest.raises(ConfigError):
        compute_inclusive(token, ratio=0.5, train_flops_per_token=0.0, generator_flops_per_token=g)


def test_generator_flops_per_token_amortises_prompt():
    assert generator_flops_per_token(8e9) == pytest.approx(1.6e10)
    assert generator_flops_per_token(8e9, prompt_tokens=300, completion_tokens=300) == pytest.approx(3.2e10)
