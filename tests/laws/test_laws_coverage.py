"""Bootstrap intervals cover the true parameters at about the nominal 95% rate."""

import numpy as np

from synthscale.laws import LawData
from synthscale.laws.fit import fit_laws
from synthscale.laws.simulate import simulate_points

TRUTH = {"E": 2.0, "B": 400.0, "beta": 0.35}
N_SIMULATIONS = 50


def test_data_law_intervals_cover_truth_near_nominal_rate():
    tokens = np.repeat(np.geomspace(1e6, 1e9, 8), 3)  # 8 budgets x 3 seeds, one run each
    datasets = [
        LawData(
            loss=simulate_points("data", TRUTH, {"tokens": tokens}, noise=0.01, seed=s), tokens=tokens, source=f"sim{s}"
        )
        for s in range(N_SIMULATIONS)
    ]
    fits = fit_laws(datasets, "data", bootstrap=200, seeds=range(N_SIMULATIONS))
    for name, value in TRUTH.items():
        intervals = [fit.intervals()[name] for fit in fits]
        coverage = np.mean([lo <= value <= hi for lo, hi in intervals])
        # 95% nominal; with 50 simulations the rate is known to about +-0.03.
        assert 0.85 <= coverage <= 1.0, (name, coverage)
        median = np.median([fit.params[name] for fit in fits])
        assert 0.9 * value <= median <= 1.1 * value, (name, median)
