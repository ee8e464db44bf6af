"""Generation as a stage of the study: `generate:` kinds in the spec, generated in the prepare step into a
shared, content-addressed, resumable folder, and the generator axis (finding 6) on the toyworld backend."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from synthscale.corpus import read_documents
from synthscale.errors import ConfigError
from synthscale.study.generation import GENERATED_DIR, count_params
from synthscale.study.runner import plan_study, run_study
from synthscale.study.spec import load_spec, parse_spec
from synthscale.toyworld import write_topics

from tests.study.tiny import tiny_world  # noqa: F401 (fixture)


def _spec(root: Path, world, generate: dict, *, ratios=("1/3",), budgets=(2048,), models=("cpu-nano",)) -> Path:
    spec = {
        "name": "gen",
        "corpora": {"natural": str(world.natural), "synthetic": {"hq": {"generate": generate}}},
        "eval": {"web": str(world.eval["web"])},
        "tokenizer": {"vocab_size": 384},
        "recipes": [{"kind": "natural"}, {"kind": "hq", "ratios": list(ratios)}],
        "models": list(models),
        "budgets": list(budgets),
        "training": {"seq_len": 32, "batch_size": 8},
        "evaluation": {"max_tokens_per_domain": 512},
        "analysis": {"bootstrap": 0},
    }
    path = root / "spec.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


GEN = {"style": "hq", "backend": "toyworld", "chunk_tokens": 0, "gates": "off", "max_docs": 40}


def _raw(generate: dict) -> dict:
    return {"name": "x", "corpora": {"natural": "n.jsonl", "synthetic": {"hq": {"generate": generate}}},
            "eval": {"web": "e.jsonl"}, "recipes": [{"kind": "hq", "ratios": [0.5]}], "models": ["cpu-nano"],
            "budgets": [1024]}


@pytest.mark.parametrize("generate, field", [
    ({"style": "nosuch"}, "corpora.synthetic.hq.generate: style: unknown generation style"),
    ({"style": "hq", "workers": 0}, "corpora.synthetic.hq.generate.workers"),
    ({"style": "hq", "sampling": {"temprature": 1}}, "unknown sampling key 'temprature'"),
    ({"style": "hq", "gates": {"action": "maybe"}}, "corpora.synthetic.hq.generate.gates.action"),
    ({"style": "hq", "backend": "toyworld", "generators": [{"name": "a"}]}, "either `generators`"),
    ({"style": "hq", "generators": [{"backend": "toyworld"}, {"backend": "toyworld"}]}, "distinct `name`s"),
    ({"style": "hq", "modle": "x"}, "corpora.synthetic.hq.generate.modle: unknown field (did you mean 'model'?)"),
])
def test_generate_block_errors_name_the_field(generate, field) -> None:
    with pytest.raises(ConfigError) as e:
        parse_spec(_raw(generate))
    assert field in str(e.value)


def test_path_or_generate_exactly_one() -> None:
    raw = _raw({"style": "hq"})
    raw["corpora"]["synthetic"]["hq"]["path"] = "s.jsonl"
    with pytest.raises(ConfigError, match="corpora.synthetic.hq: .*exactly one of `path`"):
        parse_spec(raw)
    spec = parse_spec(_raw({"from": "natural", "style": "hq"}))
    assert spec.corpora.synthetic["hq"].generate.from_ == "natural"
    assert spec.corpora.synthetic["hq"].paper_style() == "rephrase"


def test_generated_kind_is_shared_resumable_and_trained(tiny_world, tmp_path: Path) -> None:  # noqa: F811
    spec, _ = load_spec(_spec(tmp_path, tiny_world, GEN))
    runs, prepared = plan_study(spec, tmp_path / "study", progress=False)
    folders = list((tmp_path / "study" / "prepared" / GENERATED_DIR).iterdir())
    assert len(folders) == 1 and (folders[0] / "corpus.jsonl.gz").exists()
    summary = json.loads((folders[0] / "summary.json").read_text())
    assert summary["written"] == 40
    assert {r.recipe for r in runs} == {"natural", "hq@0.333"}
    hq = [r for r in runs if r.kind == "hq"][0]
    assert hq.generator.startswith("toyworld") and prepared.variants["hq"][0].flops_per_token == 0.0

    # another study with the same generation shares nothing but reuses the same folder name (content-addressed)
    again, _ = plan_study(spec, tmp_path / "study", progress=False)
    assert [r.run_id for r in again] == [r.run_id for r in runs]
    # a killed generation: drop the corpus and part of the journal's effect by removing the summary;
    # the rerun resumes from the journal and answers nothing twice
    (folders[0] / "corpus.jsonl.gz").unlink()
    (folders[0] / "summary.json").unlink()
    rerun, _ = plan_study(spec, tmp_path / "study", progress=False)
    assert [r.run_id for r in rerun] == [r.run_id for r in runs]
    assert json.loads((folders[0] / "summary.json").read_text())["written"] == 40

    outcome = run_study(spec, tmp_path / "study", progress=False, threads=1, workers=1)
    assert outcome.complete and outcome.trained == 2
    df = pd.read_csv(outcome.results_csv)
    assert "round" not in df.columns  # no collapse rounds in this study: no round column
    assert df.loc[df["kind"] == "hq", "generator"].str.startswith("toyworld").all()
    diagnostics = json.loads((tmp_path / "study" / "diagnostics.json").read_text())
    assert "hq" in diagnostics["kinds"]


def test_generator_axis_decides_finding_6(tiny_world, tmp_path: Path) -> None:  # noqa: F811
    gen = {**{k: v for k, v in GEN.items() if k != "backend"},
           "generators": [{"name": "small", "backend": "toyworld", "params": 1e9},
                          {"name": "big", "backend": "toyworld", "params": 7e10, "flops_per_token": 1.4e11}]}
    spec, _ = load_spec(_spec(tmp_path, tiny_world, gen, budgets=(2048, 4096)))
    outcome = run_study(spec, tmp_path / "study", progress=False, threads=1, workers=1)
    assert outcome.complete
    df = pd.read_csv(outcome.results_csv)
    assert set(df.loc[df["kind"] == "hq", "generator"]) == {"small", "big"}
    assert outcome.planned == 2 * 3  # natural, hq x small, hq x big at two budgets
    report = (tmp_path / "study" / "report" / "report.md").read_text()
    line = next(ln for ln in report.splitlines() if "Generators bigger" in ln or ln.startswith("| 6"))
    assert "not tested" not in line.lower() and ("reproduced" in line.lower())
    # generator FLOPs flow into the analysis: 2 x params, or the given flops_per_token (compute-inclusive speedup)
    from synthscale.study.runner import _generator_facts

    params, flops = _generator_facts(spec, tmp_path / "study")
    assert params == {"small": 1e9, "big": 7e10} and flops == {"small": 2e9, "big": 1.4e11}


def test_count_params_reads_safetensors_headers(tmp_path: Path) -> None:
    header = json.dumps({"a": {"dtype": "F32", "shape": [3, 4], "data_offsets": [0, 48]},
                         "__metadata__": {"format": "pt"}}).encode()
    (tmp_path / "model.safetensors").write_bytes(len(header).to_bytes(8, "little") + header + bytes(48))
    assert count_params(str(tmp_path)) == 12.0
    assert count_params(None) is None and count_params(str(tmp_path / "none")) is None


def test_collapse_round_with_a_trained_and_exported_model(tiny_world, tmp_path: Path) -> None:  # noqa: F811
    pytest.importorskip("transformers")
    rounds = {"n": 2, "mode": "replace", "prefix_tokens": 4, "max_tokens": 24}  # prompts within the 32-token context
    gen = {**GEN, "max_docs": 24, "rounds": rounds}
    path = _spec(tmp_path, tiny_world, gen)
    raw = yaml.safe_load(path.read_text())
    # hq replaces its rounds; a second kind declared as 'generate'-style (textbook-like) for finding 7
    # accumulates them
    raw["corpora"]["synthetic"]["tb"] = {"style": "generate",
                                         "generate": {**gen, "rounds": {**rounds, "mode": "accumulate"}}}
    raw["recipes"].append({"kind": "tb", "ratios": ["1/3"]})
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    spec, _ = load_spec(path)
    outcome = run_study(spec, tmp_path / "study", progress=False, threads=1, workers=1)
    assert outcome.complete, outcome.missing
    df = pd.read_csv(outcome.results_csv)
    assert sorted(df["round"].unique()) == [0, 1]
    r1 = df[df["round"] == 1]
    assert set(r1["kind"]) == {"hq", "tb"} and r1["generator"].str.startswith("toyworld").all()
    prep = tmp_path / "study" / "prepared" / GENERATED_DIR
    assert any((prep / "models").iterdir())  # the round-0 run, exported for the transformers backend
    corpus = [json.loads(ln) for ln in __import__("gzip").open(next(
        p for p in prep.glob("*/corpus.jsonl.gz") if json.loads((p.parent / "generation.json").read_text())
        ["backend"] == "transformers"), "rt")]
    assert corpus and corpus[0]["style"] == "continue"
    shards = tmp_path / "study" / "prepared" / "shards"

    def n_docs(source: str) -> int:  # documents in a prepared training source
        return json.loads(next(shards.glob(f"{source}-*.json")).read_text())["n_docs"]

    def continued(kind: str) -> int:  # documents the round-0 model of `kind` wrote for round 1
        folder = next(p.parent for p in prep.glob("*/generation.json")
                      if f"cpu-nano-{kind}-" in str(json.loads(p.read_text())["model"]))
        return sum(1 for _ in read_documents(folder / "corpus.jsonl.gz"))

    assert 0 < continued("hq") and n_docs("hq.r1") == continued("hq")  # replace: round 1's corpus alone
    assert 0 < continued("tb") and n_docs("tb.r1") == n_docs("tb") + continued("tb")  # accumulate: rounds 0-1
    diagnostics = json.loads((tmp_path / "study" / "diagnostics.json").read_text())
    assert {"hq", "hq.r1", "tb", "tb.r1"} <= set(diagnostics["kinds"])
    report = (tmp_path / "study" / "report" / "report.md").read_text()
    line = next(ln for ln in report.splitlines() if ln.startswith("| 7"))
    assert "not tested" not in line.lower() and "reproduced" in line.lower()
    # a rerun trains and generates nothing again
    again = run_study(spec, tmp_path / "study", progress=False, threads=1, workers=1)
    assert again.trained == 0 and again.complete


def test_a_textbook_kind_is_generated_from_a_topics_file(tiny_world, tmp_path: Path) -> None:  # noqa: F811
    """`generate: {topics: FILE, style: textbook}`: round 0 is written from the topics, not from documents."""
    topics = write_topics(tiny_world.world, tmp_path / "topics.txt")
    n_topics = len(topics.read_text().splitlines())
    gen = {"topics": str(topics), "style": "textbook", "backend": "toyworld", "model": str(tiny_world.world),
           "chunk_tokens": 0, "gates": "off"}
    spec, _ = load_spec(_spec(tmp_path, tiny_world, gen))
    plan_study(spec, tmp_path / "study", progress=False)
    (folder,) = list((tmp_path / "study" / "prepared" / GENERATED_DIR).iterdir())
    docs = list(read_documents(folder / "corpus.jsonl.gz"))
    assert len(docs) == n_topics and all(d.id.startswith("textbook/") and d.style == "textbook" for d in docs)
    assert json.loads((folder / "generation.json").read_text())["input_path"] == str(topics)


@pytest.mark.parametrize("executor", ["ray", "slurm"])
def test_a_generate_block_splits_over_workers_on_the_studys_executor(tiny_world, tmp_path: Path,  # noqa: F811
                                                                     executor) -> None:
    """`workers: 2` runs the parts on the generate block's executor (Ray: a local instance; Slurm: submitit's
    local executor), and the corpus holds the same documents as one worker's."""
    pytest.importorskip(executor if executor == "ray" else "submitit")
    one, _ = load_spec(_spec(tmp_path / "one", tiny_world, GEN))
    plan_study(one, tmp_path / "one" / "study", progress=False)
    raw = yaml.safe_load(_spec(tmp_path / "split", tiny_world, {**GEN, "workers": 2, "executor": executor}).read_text())
    raw["executor"] = {"slurm": {"cluster": "local"}}
    path = tmp_path / "split" / "spec.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    split, _ = load_spec(path)
    plan_study(split, tmp_path / "split" / "study", progress=False)
    (a,), (b,) = ([*(root / "study" / "prepared" / GENERATED_DIR).iterdir()] for root in (tmp_path / "one",
                                                                                         tmp_path / "split"))
    assert sorted((b / "parts").iterdir())  # it ran in parts
    assert json.loads((b / "summary.json").read_text())["workers"]["executor"] == executor
    docs = {d.id: d.text for d in read_documents(a / "corpus.jsonl.gz")}
    assert {d.id: d.text for d in read_documents(b / "corpus.jsonl.gz")} == docs and len(docs) == 40
