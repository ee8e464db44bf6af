"""A study with training.schedule: wsd reads every budget off one run per recipe."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import yaml

from synthscale.study.runner import run_study
from synthscale.study.spec import load_spec

from tests.study.tiny import statuses, tiny_world, write_tiny_spec  # noqa: F401 (fixture)


def test_wsd_study_one_run_per_recipe_all_budgets(tiny_world, tmp_path: Path) -> None:  # noqa: F811
    path = write_tiny_spec(tmp_path / "spec.yaml", tiny_world, [2048, 4096, 8192], executor={"workers": 1})
    raw = yaml.safe_load(path.read_text())
    raw["training"].update({"schedule": "wsd", "decay_frac": 0.25, "threads": 1})
    path.write_text(yaml.safe_dump(raw))
    spec, _ = load_spec(path)
    outcome = run_study(spec, tmp_path / "study", progress=False, report=False)
    runs = statuses(tmp_path / "study")
    assert len(runs) == 2 and outcome.trained == 2  # natural and hq@0.333, one run each
    assert all(s["state"] == "done" for s in runs.values())
    df = pd.read_csv(tmp_path / "study" / "results.csv")
    mean = df[df["domain"] == "mean"]
    assert sorted(mean["tokens"].unique()) == [2048, 4096, 8192]
    assert mean.groupby("recipe")["tokens"].nunique().to_dict() == {"hq@0.333": 3, "natural": 3}
    # each budget's epochs grow with the tokens it saw
    nat = mean[mean["recipe"] == "natural"].sort_values("tokens")
    assert nat["epochs_natural"].is_monotonic_increasing and nat["epochs_natural"].iloc[0] > 0
