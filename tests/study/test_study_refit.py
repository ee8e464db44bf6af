"""`synthscale report STUDY --refit` refits a study folder the way `study run` does: with the study's own
analysis settings (spec.resolved.json), not the defaults of a bare results table."""

from __future__ import annotations

import json

import yaml

from synthscale.study.runner import run_study
from synthscale.study.spec import load_spec
from tests.conftest import run_cli
from tests.study.tiny import tiny_world, write_tiny_spec  # noqa: F401 (fixture)


def test_report_refit_uses_the_study_analysis_settings(tiny_world, tmp_path):  # noqa: F811 (fixture)
    path = write_tiny_spec(tmp_path / "spec.yaml", tiny_world, [2048, 4096, 8192])
    spec_text = yaml.safe_load(path.read_text())
    spec_text["analysis"] = {"metric_domain": "web", "bootstrap": 30, "max_extrapolation": 2.0}
    path.write_text(yaml.safe_dump(spec_text, sort_keys=False))
    spec, _ = load_spec(path)
    study = tmp_path / "study"
    run_study(spec, study, progress=False)
    written = (study / "analysis.json").read_text()
    (study / "analysis.json").write_text("{}")  # refit must write it again, not keep it

    res = run_cli("report", str(study), "--refit")
    assert res.returncode == 0, res.stderr
    assert (study / "analysis.json").read_text() == written  # the same fit as `study run`
    analysis = json.loads(written)
    assert analysis["metric"] == "web" and analysis["conventions"]["max_extrapolation"] == 2.0

    res = run_cli("report", str(study), "--refit", "--bootstrap", "0")  # an explicit override still applies
    assert res.returncode == 0, res.stderr
    refit = json.loads((study / "analysis.json").read_text())
    assert refit["metric"] == "web" and all(f["bootstrap"] is None for f in refit["fits"] if "params" in f)
