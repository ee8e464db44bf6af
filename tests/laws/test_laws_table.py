"""fit_table: the `synthscale fit` logic on any table on disk."""

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from synthscale.errors import ConfigError, InputError, SynthscaleError
from synthscale.laws import LawData, fit_table, parse_col_options, summarize_fit
from synthscale.laws import ratio as ratio_mod
from synthscale.laws.simulate import simulate_points, simulate_results
from synthscale.laws.speedup import Estimate
from synthscale.laws.table_columns import MixedGroupsError, is_non_embedding_params

from tests.conftest import run_cli


def _chinchilla_table(n=40):
    rng = np.random.default_rng(0)
    params = np.exp(rng.uniform(np.log(7e7), np.log(1.6e10), n))
    tokens = np.exp(rng.uniform(np.log(5e9), np.log(5e11), n))
    truth = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}
    loss = simulate_points("chinchilla", truth, {"params": params, "tokens": tokens}, noise=0.0)
    return pd.DataFrame({"N": params, "D": tokens, "val": loss})


def test_csv_with_named_columns_gives_the_documented_json(tmp_path):
    path = tmp_path / "runs.csv"
    _chinchilla_table().to_csv(path, index=False)
    out = fit_table(
        path, "chinchilla", {"params": "N", "tokens": "D", "loss": "val"}, bootstrap=20, holdout="largest", seed=0
    )
    assert out["form"] == "chinchilla" and out["n_points"] == 40 and out["objective"] >= 0
    assert set(out["params"]) == {"E", "A", "B", "alpha", "beta"}
    assert out["params"]["alpha"]["value"] == pytest.approx(0.34, rel=1e-3)
    assert len(out["params"]["E"]["ci"]) == 2
    assert out["holdout"]["axis"] == "params" and out["columns"] == {"loss": "val", "params": "N", "tokens": "D"}


def test_parquet_default_columns_and_no_bootstrap(tmp_path):
    path = tmp_path / "runs.parquet"
    # no tokens column: with one per point, the model form would refuse 40 token budgets
    _chinchilla_table().drop(columns="D").rename(columns={"N": "params", "val": "loss"}).to_parquet(path)
    out = fit_table(path, "model", {}, bootstrap=0, holdout=None, seed=0)
    assert out["params"]["E"]["ci"] is None and out["bootstrap"] is None
    assert set(out["params"]) == {"E", "A", "alpha"}


def test_results_table_uses_mean_rows_and_ratio_law(tmp_path):
    table = simulate_results(
        {
            "natural": {"E": 2.0, "B": 40.0, "beta": 0.3},
            "hq@0.333": {"E": 1.95, "B": 38.0, "beta": 0.3},
            "hq@1": {"E": 2.1, "B": 40.0, "beta": 0.3},
        },
        [1e6, 2e6, 4e6, 8e6],
    )
    path = tmp_path / "results.csv"
    table.to_csv(path, index=False)
    out = fit_table(path, "ratio", {}, bootstrap=0, holdout=None, seed=0)
    assert out["law"] == "ratio_data" and out["n_points"] == 12  # params constant: L(D, r)
    assert out["rows"]["filter"] == "rows with domain == 'mean'"


def test_bad_input_names_file_line_and_column(tmp_path):
    path = tmp_path / "runs.csv"
    df = _chinchilla_table()
    df.loc[3, "D"] = -5
    df.to_csv(path, index=False)
    with pytest.raises(InputError, match=r"runs.csv:5: column 'D'"):
        fit_table(path, "chinchilla", {"params": "N", "tokens": "D", "loss": "val"}, 0, None, 0)
    with pytest.raises(InputError, match="no such column"):
        fit_table(path, "data", {"tokens": "nope", "loss": "val"}, 0, None, 0)
    with pytest.raises(InputError, match="unsupported table type"):
        (tmp_path / "runs.txt").write_text("x")
        fit_table(tmp_path / "runs.txt", "data", {}, 0, None, 0)
    with pytest.raises(ConfigError, match="--form"):
        fit_table(path, "kaplan", {}, 0, None, 0)


def test_col_options_parse_and_summary_reads(tmp_path):
    assert parse_col_options(["params=N", "tokens=D"]) == {"params": "N", "tokens": "D"}
    with pytest.raises(ConfigError, match="ROLE=COLUMN"):
        parse_col_options(["params"])
    with pytest.raises(ConfigError, match="unknown role"):
        parse_col_options(["size=N"])
    path = tmp_path / "runs.csv"
    _chinchilla_table().to_csv(path, index=False)
    out = fit_table(path, "chinchilla", parse_col_options(["params=N", "tokens=D", "loss=val"]), 20, "largest", 0)
    text = summarize_fit(out)
    assert text.startswith("chinchilla law on 40 points") and "alpha" in text and "95% CI" in text
    assert "held out params" in text


# --- issue 10 item 5: `synthscale fit` on any table -------------------------------------

SCALING = Path(__file__).resolve().parents[2].parent / "shared" / "scaling"
needs_scaling = pytest.mark.skipif(
    not (SCALING / "datablations_c4_runs_all.csv").exists(), reason="shared/scaling tables not available"
)
HQ = {
    "natural": {"E": 2.0, "B": 40.0, "beta": 0.3},
    "hq@0.333": {"E": 1.95, "B": 36.0, "beta": 0.3},
    "hq@0.667": {"E": 1.97, "B": 37.0, "beta": 0.3},
    "hq@1": {"E": 2.1, "B": 40.0, "beta": 0.3},
}
BUDGETS = [1e6, 2e6, 4e6, 8e6]


def _write(df, path):
    df.to_csv(path, index=False)
    return path


def _size_table(sizes=(1e6, 3e6, 1e7, 3e7, 1e8), tokens=1e9):
    """Model-law points whose loss follows the non-embedding count (total = 1.5x + 2e6)."""
    n = np.asarray(sizes, dtype=float)
    loss = simulate_points("model", {"E": 2.0, "A": 300.0, "alpha": 0.4}, {"params": n}, noise=0.0)
    return pd.DataFrame({"N": 1.5 * n + 2e6, "N_no_emb": n, "tokens": tokens, "loss": loss})


@pytest.mark.parametrize(
    "name",
    ["N_no_emb", "params_no_embed", "params_no_embedding", "non_embedding_params", "params_nonembedding",
     "n_params_no_embed", "NonEmbeddingParams", "num_params_excl_embeddings", "N (w/o emb)", "nparams-noemb"],
)
def test_non_embedding_parameter_columns_are_recognised_by_their_normalised_name(name):
    assert is_non_embedding_params(name)


@pytest.mark.parametrize(
    "name", ["N", "params", "params_total", "embedding_params", "params_with_embedding", "tokens_no_emb", "no_emb"]
)
def test_other_columns_are_not_non_embedding_parameter_counts(name):
    assert not is_non_embedding_params(name)


def test_non_embedding_params_are_preferred_and_the_text_names_the_columns(tmp_path):
    path = _write(_size_table(), tmp_path / "sizes.csv")
    out = fit_table(path, "model", {}, 0, None, 0)
    assert out["columns"]["params"] == "N_no_emb"
    assert out["params"]["alpha"]["value"] == pytest.approx(0.4, rel=1e-3)  # the law lives in N_no_emb
    assert "non-embedding" in out["column_notes"]["params"]
    text = summarize_fit(out)
    assert "params = column 'N_no_emb' (non-embedding; preferred over 'N')" in text
    assert "loss = column 'loss'" in text
    # --col still wins, and the text says a non-embedding column was left aside
    total = fit_table(path, "model", {"params": "N"}, 0, None, 0)
    assert total["columns"]["params"] == "N" and "not the non-embedding column 'N_no_emb'" in summarize_fit(total)


def test_total_params_only_is_said_in_the_text(tmp_path):
    path = _write(_size_table().drop(columns="N_no_emb"), tmp_path / "sizes.csv")
    text = summarize_fit(fit_table(path, "model", {}, 0, None, 0))
    assert "params = column 'N' (no non-embedding column in the table)" in text


def _ratio_results(tmp_path, recipes=HQ, name="results.csv", **kw):
    return _write(simulate_results(recipes, BUDGETS, **{"seeds": 2, "noise": 0.003, **kw}), tmp_path / name)


def test_ratio_form_gives_r_star_with_interval_next_to_the_grid_best(tmp_path):
    out = fit_table(_ratio_results(tmp_path), "ratio", {}, bootstrap=40, holdout=None, seed=0)
    json.dumps(out)  # JSON-ready
    entries = out["best_ratio"]
    assert [e["tokens"] for e in entries] == BUDGETS and all(e["params"] is None for e in entries)
    for e in entries:
        assert 0.333 < e["value"] < 0.667 and e["bound"] is None and not e["extrapolated"]
        assert e["ci"][0] <= e["value"] <= e["ci"][1]
        assert e["grid_best"] == pytest.approx(0.333) and e["agrees"] is True
    text = summarize_fit(out)
    assert "best synthetic ratio r*" in text and "D = 1e+06: r* = 0.4" in text
    assert "95% CI [" in text.split("best synthetic ratio")[1] and "grid best 0.333 (agrees)" in text


def test_ratio_form_with_model_sizes_gives_r_star_per_size_and_budget(tmp_path):
    parts = [
        simulate_results({k: {**v, "E": v["E"] - 0.1 * i} for k, v in HQ.items()}, BUDGETS[:3], model=m,
                         params_total=p, params_nonembedding=int(p * 0.8), seed=i, noise=0.002)
        for i, (m, p) in enumerate([("s", 1_000_000), ("m", 3_000_000), ("l", 9_000_000)])
    ]
    path = _write(pd.concat(parts), tmp_path / "sizes.csv")
    out = fit_table(path, "ratio", {}, 0, None, 0)
    assert out["law"] == "ratio" and out["columns"]["params"] == "params_nonembedding"
    keys = {(e["params"], e["tokens"]) for e in out["best_ratio"]}
    assert keys == {(p * 0.8, d) for p in (1e6, 3e6, 9e6) for d in BUDGETS[:3]}
    assert "N = 800000, D = 1e+06: r* " in summarize_fit(out)


def test_r_star_at_the_edge_of_the_trained_ratios_is_a_marked_bound(tmp_path):
    recipes = {
        "natural": {"E": 2.0, "B": 40.0, "beta": 0.3},
        "hq@0.25": {"E": 1.95, "B": 40.0, "beta": 0.3},
        "hq@0.5": {"E": 1.9, "B": 40.0, "beta": 0.3},
    }
    out = fit_table(_ratio_results(tmp_path, recipes, noise=0.001), "ratio", {}, 0, None, 0)
    for e in out["best_ratio"]:
        assert e["value"] is None and e["bound"] == {"op": ">=", "value": 0.5} and e["ci"] is None  # 1 never trained
        assert e["grid_best"] == 0.5 and e["agrees"] is True
    assert "r* >= 0.5 (bound" in summarize_fit(out)


def test_r_star_that_disagrees_with_the_grid_is_flagged(tmp_path, monkeypatch):
    # The rule itself (ratio.judged_best_ratio) with r* placed where the grid does not agree.
    monkeypatch.setattr(ratio_mod, "best_ratio_from_law", lambda fit, d, n=None: Estimate(0.9, (0.8, 0.97)))
    out = fit_table(_ratio_results(tmp_path), "ratio", {}, 0, None, 0)
    assert all(e["value"] == 0.9 and e["agrees"] is False and e["grid_best"] == pytest.approx(0.333)
               for e in out["best_ratio"])
    assert "DISAGREES" in summarize_fit(out)
    monkeypatch.setattr(ratio_mod, "best_ratio_from_law", lambda fit, d, n=None: Estimate(0.0, (0.0, 0.1)))
    out = fit_table(_ratio_results(tmp_path), "ratio", {}, 0, None, 0)
    assert all(e["bound"] == {"op": "<=", "value": 0.0} and e["value"] is None and e["agrees"] is False
               for e in out["best_ratio"])


def test_an_unusable_ratio_law_prints_no_r_star(tmp_path):
    rising = {"natural": {"E": 2.0, "B": 1e-3, "beta": 0.3}, "hq@0.333": {"E": 2.1, "B": 1e-3, "beta": 0.3},
              "hq@1": {"E": 2.2, "B": 1e-3, "beta": 0.3}}  # flat in D: nothing to fit a power law to
    out = fit_table(_ratio_results(tmp_path, rising, noise=0.004), "ratio", {}, 0, None, 0)
    assert out["verdict"] == "unusable" and out["reasons"]
    for e in out["best_ratio"]:
        assert e["value"] is None and e["note"].startswith("no law: ") and e["ci"] is None
    text = summarize_fit(out)
    assert "verdict: unusable (" in text and "r* =" not in text and "no law: " in text
    assert "parameters not shown" in text and "\n    beta =" not in text


def test_verdict_and_reasons_are_at_the_top_of_json_and_text(tmp_path):
    out = fit_table(_write(_size_table(sizes=(1e6, 3e6, 1e7, 3e7)), tmp_path / "s.csv"), "model", {}, 0, None, 0)
    assert out["verdict"] == "weak" and "4 points for 3 parameters (fewer than 2 per parameter)" in out["reasons"]
    assert f"verdict: weak ({'; '.join(out['reasons'])})" in summarize_fit(out)


def _multi_size_data_table():
    rows = []
    for n in (1e7, 2e7, 4e7):
        for d in (1e8, 2e8, 4e8, 8e8):
            rows.append({"N": n, "D": d, "loss": 2 + 400 * n**-0.3 + 400 * d**-0.3})
    return pd.DataFrame(rows)


@pytest.mark.parametrize(
    "case, form, listed",
    [
        ("sizes", "data", ["N (3 model sizes: 1e+07, 2e+07, 4e+07)", "--where N=1e+07", "--group-by N",
                           "--form chinchilla"]),
        ("budgets", "model", ["D (4 token budgets: 1e+08, 2e+08, 4e+08, 8e+08)", "--group-by D"]),
        ("domains", "data", ["domain (2 eval domains: web, wiki)", "--where domain=web", "--group-by domain"]),
        ("recipes", "data", ["recipe (4 mixtures: hq@0.333, hq@0.667, hq@1, natural)", "--group-by recipe",
                             "--form ratio"]),
        ("recipes", "chinchilla", ["recipe (4 mixtures"]),
        ("kinds", "ratio", ["kind (2 kinds: hq, tb)", "--where kind=hq", "--group-by kind"]),
    ],
)
def test_a_table_with_groups_the_form_does_not_model_stops_with_the_groups_listed(tmp_path, case, form, listed):
    if case in ("sizes", "budgets"):
        path = _write(_multi_size_data_table(), tmp_path / "t.csv")
    elif case == "domains":
        table = simulate_results({"natural": HQ["natural"]}, BUDGETS)
        path = _write(table[table["domain"] != "mean"], tmp_path / "t.csv")
    elif case == "recipes":
        path = _ratio_results(tmp_path)
    else:
        path = _ratio_results(tmp_path, {**HQ, "tb@0.5": HQ["hq@0.333"], "tb@1": HQ["hq@1"]})
    with pytest.raises(MixedGroupsError) as err:
        fit_table(path, form, {}, 0, None, 0)
    message = str(err.value)
    assert isinstance(err.value, SynthscaleError) and "\n" not in message and message.startswith(str(path))
    assert "--where COL=VALUE" in message and "--group-by COL" in message
    for piece in listed:
        assert piece in message


def test_where_keeps_one_group_comparing_numbers_as_numbers(tmp_path):
    path = _write(_multi_size_data_table(), tmp_path / "t.csv")
    out = fit_table(path, "data", {}, 0, None, 0, where=["N=2e7"])
    assert out["n_points"] == 4 and out["rows"]["where"] == ["N=2e7"]
    assert out["ranges"]["tokens"] == [1e8, 8e8]
    assert "rows: 4 (where N=2e7)" in summarize_fit(out)
    same = fit_table(path, "data", {}, 0, None, 0, where=["N=20000000.0"])
    assert same["params"] == out["params"]
    with pytest.raises(InputError, match=r"--where N=3e7: no rows match \(values of 'N': 1e\+07, 2e\+07, 4e\+07\)"):
        fit_table(path, "data", {}, 0, None, 0, where=["N=3e7"])
    with pytest.raises(InputError, match="--where size: no such column"):
        fit_table(path, "data", {}, 0, None, 0, where=["size=1"])
    with pytest.raises(ConfigError, match="COLUMN=VALUE"):
        fit_table(path, "data", {}, 0, None, 0, where=["N"])


def test_where_on_a_results_table_picks_a_domain_instead_of_the_mean_rows(tmp_path):
    path = _ratio_results(tmp_path, {"natural": HQ["natural"]})
    web = fit_table(path, "data", {}, 0, None, 0, where=["domain=web"])
    mean = fit_table(path, "data", {}, 0, None, 0)
    assert web["n_points"] == mean["n_points"] == 8 and web["rows"]["filter"] is None
    assert web["params"]["E"]["value"] != mean["params"]["E"]["value"]


def test_group_by_fits_every_group(tmp_path):
    path = _write(_multi_size_data_table(), tmp_path / "t.csv")
    out = fit_table(path, "data", {}, 0, None, 0, group_by=["N"])
    json.dumps(out)
    assert [g["group"] for g in out["groups"]] == [{"N": 1e7}, {"N": 2e7}, {"N": 4e7}]
    assert all(g["n_points"] == 4 and g["law"] == "data" for g in out["groups"])
    assert out["groups"][1]["params"] == fit_table(path, "data", {}, 0, None, 0, where=["N=2e7"])["params"]
    text = summarize_fit(out)
    assert text.count("== N=") == 3 and "== N=2e+07\ndata law on 4 points" in text


def test_group_by_kind_keeps_natural_rows_in_every_ratio_group(tmp_path):
    path = _ratio_results(tmp_path, {**HQ, "tb@0.5": HQ["hq@0.333"], "tb@1": HQ["hq@1"]}, seeds=1)
    out = fit_table(path, "ratio", {}, 0, None, 0, group_by=["kind"])
    groups = {g["group"]["kind"]: g for g in out["groups"]}
    assert set(groups) == {"hq", "tb"}  # natural is r = 0 of both, not a group of its own
    assert groups["hq"]["n_points"] == 16 and groups["tb"]["n_points"] == 12
    assert fit_table(path, "ratio", {}, 0, None, 0, where=["kind=tb"])["n_points"] == 12


def test_group_by_reports_a_group_that_cannot_be_fitted(tmp_path):
    table = _multi_size_data_table()
    table = table[~((table["N"] == 4e7) & (table["D"] > 2e8))]  # 2 budgets: too few for L(D)
    out = fit_table(_write(table, tmp_path / "t.csv"), "data", {}, 0, None, 0, group_by=["N"])
    assert "too few distinct points" in out["groups"][2]["error"] and "error" not in out["groups"][0]
    assert "== N=4e+07\n  error: " in summarize_fit(out)


def test_results_table_mean_rows_still_fit_with_the_data_form(tmp_path):
    out = fit_table(_ratio_results(tmp_path, {"natural": HQ["natural"]}), "data", {}, 0, None, 0)
    assert out["rows"]["filter"] == "rows with domain == 'mean'" and out["n_points"] == 8


def test_error_messages_show_plain_numbers(tmp_path):
    for bad, shown in [(np.nan, "nan"), (np.inf, "inf"), (-3.5, "-3.5")]:
        df = _multi_size_data_table()
        df["D"] = df["D"].astype(float)
        df.loc[2, "D"] = bad
        for suffix in ("csv", "parquet"):
            path = tmp_path / f"t.{suffix}"
            df.to_csv(path, index=False) if suffix == "csv" else df.to_parquet(path)
            with pytest.raises(InputError) as err:
                fit_table(path, "chinchilla", {}, 0, None, 0)
            assert f"column 'D' = {shown}, expected" in str(err.value) and "np." not in str(err.value)
    with pytest.raises(InputError) as err:
        LawData(loss=np.array([1.0, np.nan]), tokens=np.array([1.0, 2.0]))
    assert "column 'loss' = nan, expected" in str(err.value)


def _rising_flat_four(tmp_path):
    d = np.array([1e6, 2e6, 4e6, 8e6, 1.6e7, 3.2e7])
    noise = np.random.default_rng(0).normal(0, 0.001, d.size)
    return [
        _write(pd.DataFrame({"tokens": d, "loss": 3.0 + 0.05 * np.log(d / 1e6)}), tmp_path / "rising.csv"),
        _write(pd.DataFrame({"tokens": d, "loss": 3.0 + noise}), tmp_path / "flat.csv"),
        _write(pd.DataFrame({"tokens": d[:4], "loss": 2 + 40 * d[:4] ** -0.3}), tmp_path / "four.csv"),
        _write(pd.DataFrame({"tokens": d[:4], "loss": 3.0}), tmp_path / "constant.csv"),
    ]


def test_no_runtime_warnings_on_ill_posed_tables(tmp_path):
    for path in _rising_flat_four(tmp_path):
        for bootstrap, holdout in [(0, None), (30, "largest")]:
            with warnings.catch_warnings():
                warnings.simplefilter("error", RuntimeWarning)
                fit_table(path, "data", {}, bootstrap, holdout, 0)


@needs_scaling
@pytest.mark.parametrize("name", ["datablations_c4_runs_all.csv", "datablations_c4_runs_fitset.csv"])
def test_no_runtime_warnings_on_the_datablations_tables(name):
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        out = fit_table(SCALING / name, "chinchilla", {}, 30, "largest", 0)
    assert out["columns"] == {"loss": "final_val_loss", "params": "params_N", "tokens": "tokens_D"}


@needs_scaling
def test_no_runtime_warnings_fitting_each_datablations_size():
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        fit_table(SCALING / "datablations_c4_runs_all.csv", "data", {}, 30, "largest", 0, group_by=["params_N"])


@needs_scaling
def test_cli_fit_on_datablations_prints_one_line_errors_and_group_fits():
    table = str(SCALING / "datablations_c4_runs_all.csv")
    res = run_cli("fit", "--input", table, "--form", "data")
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr.count("\n") == 1 and "params_N (20 model sizes:" in res.stderr
    assert "--group-by params_N" in res.stderr and "Traceback" not in res.stderr
    res = run_cli("fit", "--input", table, "--form", "data", "--where", "params_N=2.81e9", "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["rows"]["where"] == ["params_N=2.81e9"] and out["ranges"]["tokens"][1] == 7.7e10
    assert "verdict" in out and "reasons" in out
    res = run_cli("fit", "--input", table, "--form", "model", "--where", "tokens_D=9.1e10", "--group-by",
                  "unique_tokens_U")
    assert res.returncode == 0, res.stderr
    assert "== unique_tokens_U=" in res.stdout and "params = column 'params_N'" in res.stdout
