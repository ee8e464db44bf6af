"""The demo profiles (study/demo.py) are a scale model of the paper's study (issue 11).

Fast checks of the specs the profiles write: the regime (tokens per non-embedding
parameter from about 1 up), seeds, budgets, recipes, and that the trainer accepts every
run of every profile (a WSD decay branch must start after warmup). What the profiles
measure (time, fits) is in README.md and docs/training.md; the quick profile is run end
to end by tests/study/test_demo_e2e.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from synthscale.model.ladder import model_config, param_counts
from synthscale.study.checks import budget_problems
from synthscale.study.demo import PROFILES, demo_spec
from synthscale.study.plan import recipe_points
from synthscale.study.spec import parse_spec
from synthscale.toyworld.build import ToyworldCorpora


def spec_of(profile: str, seed: int = 0):
    return parse_spec(demo_spec(PROFILES[profile], ToyworldCorpora.under(Path("/nowhere/toyworld")), seed=seed))


def per_param(spec, model: str) -> tuple[float, float]:
    n = param_counts(model_config(model, spec.tokenizer.vocab_size, spec.training.seq_len))[1]
    return min(spec.budgets) / n, max(spec.budgets) / n


@pytest.mark.parametrize("profile", list(PROFILES))
def test_every_run_of_every_profile_is_accepted_by_the_trainer(profile):
    assert budget_problems(spec_of(profile)) == []


SCALE_MODELS = ("quick", "default", "full")  # the scale models of the paper's data-scaling study


@pytest.mark.parametrize("profile", SCALE_MODELS)
def test_profiles_have_two_seeds_and_read_five_or_more_budgets_off_one_wsd_run(profile):
    spec = spec_of(profile, seed=3)
    assert spec.seeds == [3, 4]
    assert spec.training.schedule == "wsd" and len(spec.budgets) >= 5
    assert spec.budgets == sorted(spec.budgets)
    per_step = spec.training.batch_size * spec.training.seq_len
    assert all(b % per_step == 0 for b in spec.budgets)


def test_default_profile_spans_the_papers_regime():
    spec = spec_of("default")
    names = {p.name for p in recipe_points(spec)}
    assert names == {"natural", "hq@0.333", "hq@1", "qa@0.333", "qa@1", "textbook@0.333", "textbook@1"}
    (model,) = spec.models
    low, high = per_param(spec, model)
    assert low <= 1.0 and high >= 20.0, (low, high)


def test_quick_profile_is_the_default_shape_smaller():
    quick, default = spec_of("quick"), spec_of("default")
    assert quick.models == default.models and quick.training == default.training
    assert quick.tokenizer == default.tokenizer
    low, high = per_param(quick, quick.models[0])
    assert low <= 1.0 and 5.0 <= high < per_param(default, default.models[0])[1]
    assert {p.name for p in recipe_points(quick)} == {"natural", "hq@0.333", "hq@1", "textbook@0.333", "textbook@1"}


def test_full_profile_adds_sizes_the_ratio_grid_and_reaches_100_tokens_per_parameter():
    spec = spec_of("full")
    assert len(spec.models) >= 3
    ratios = sorted({round(p.ratio, 3) for p in recipe_points(spec)})
    assert ratios == [0.0, 0.1, 0.2, 0.333, 0.5, 0.667, 1.0]
    assert max(per_param(spec, m)[1] for m in spec.models) >= 100.0
    assert min(per_param(spec, m)[0] for m in spec.models) <= 1.0


def test_collapse_profile_generates_hq_and_textbook_inside_the_study_over_three_rounds():
    spec = spec_of("collapse")
    kinds = spec.corpora.synthetic
    assert set(kinds) == {"hq", "textbook"} and spec.seeds == [0, 1]
    assert {k: s.paper_style() for k, s in kinds.items()} == {"hq": "rephrase", "textbook": "generate"}
    for source in kinds.values():
        assert source.path is None and source.generate.backend == "toyworld"
        assert source.generate.rounds.n == 3 and source.generate.rounds.mode == "accumulate"
    assert kinds["textbook"].generate.topics.endswith("topics.txt") and kinds["hq"].generate.topics is None
    assert {p.name for p in recipe_points(spec)} == {"natural", "hq@0.333", "textbook@0.333"}

