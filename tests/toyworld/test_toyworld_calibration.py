"""toyworld's synthetic corpora relate to its natural text the way real LLM output relates to real text.

Measured with the diagnostics stage exactly as benchmarks/toyworld_calibration.py does (a
2048-token BPE trained on both sides of each pair) on the quick-size ("small") world:
natural->hq and natural->qa inside the range of real rewrites (at most 1.5x its top),
natural->textbook within a factor 3 of C4 against real LLM textbooks. The real figures are
the constants recorded in synthscale.diagnostics.reference; when ../shared is present they
are measured again here and must still match.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from synthscale.diagnostics import compare_corpora
from synthscale.diagnostics.reference import (REAL_FIGURES, REAL_REWRITES, REAL_TEXTBOOK, REFERENCE_VOCAB_SIZE,
                                              calibration_bounds, measure_real_pairs)
from synthscale.toyworld import ToyworldConfig, build_toyworld

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "corpora"


@pytest.fixture(scope="module")
def small_world(tmp_path_factory):
    return build_toyworld(tmp_path_factory.mktemp("calibration"), ToyworldConfig.preset("small"), progress=False)


@pytest.mark.parametrize("kind", ["hq", "qa", "textbook"])
def test_toyworld_synthetic_corpora_sit_where_real_llm_output_does(small_world, kind: str) -> None:
    result = compare_corpora(small_world.natural, small_world.synthetic[kind], vocab_size=REFERENCE_VOCAB_SIZE)
    bounds = calibration_bounds()[kind]
    got = {figure: result[figure] for figure in bounds}
    print(f"natural -> {kind}: {got}; bounds {bounds}")
    for figure, (lo, hi) in bounds.items():
        assert lo <= result[figure] <= hi, (kind, figure, result[figure], (lo, hi))
    if kind != "textbook":  # rewrites: every one paired with its parent, none a near-copy, most tokens shared
        pairs = result["pairs"]
        assert pairs["by"] == "parent" and pairs["missing"] == 0
        assert pairs["near_copy_share"] < 0.01 and 0.4 < pairs["overlap"] < 0.95


def test_the_bounds_follow_the_recorded_real_figures() -> None:
    bounds = calibration_bounds()
    assert bounds["hq"]["kl_a_b"] == (REAL_FIGURES["wiki_news_chatgpt:rephrase_base"]["kl_a_b"],
                                      1.5 * REAL_FIGURES["common_pile_wrap_fewshot:rephrase"]["kl_a_b"])
    assert bounds["textbook"]["unseen_a_in_b"] == pytest.approx((0.00113 / 3, 0.00113 * 3))
    assert bounds["qa"] == bounds["hq"]


@pytest.mark.slow
@pytest.mark.skipif(not SHARED.exists(), reason="../shared/corpora not available")
def test_the_recorded_real_figures_are_what_the_real_pairs_give() -> None:
    names = (REAL_REWRITES[0], REAL_REWRITES[2], REAL_TEXTBOOK)  # the pairs that set the bounds
    measured = measure_real_pairs(SHARED, names=names)
    for name in names:
        for figure, recorded in REAL_FIGURES[name].items():
            assert measured[name][figure] == pytest.approx(recorded, rel=0.02, abs=2e-5), (name, figure)
