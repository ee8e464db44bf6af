"""toyworld: determinism, fact preservation, provenance, textbook errors, held-out evals, reruns, build time."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from synthscale.corpus import read_documents
from synthscale.errors import ConfigError
from synthscale.generate import GenerationRequest, get_style
from synthscale.toyworld.backend import ToyworldBackend
from synthscale.toyworld import TOYWORLD_VERSION, ToyworldConfig, World, build_toyworld, load_toyworld_config
from synthscale.corpus import Document
from synthscale.generate.store import run_documents
from synthscale.toyworld.natural import FILLER, FOOTER_LINES, NAV_LINES
from synthscale.toyworld.schema import CATEGORIES, RELATION_BY_NAME
from synthscale.toyworld.textbook import DIET_EXPLANATIONS

SRC = Path(__file__).resolve().parents[2] / "src"
TINY = ToyworldConfig.preset("tiny", seed=3, n_textbook_chapters=60, textbook_error_rate=0.25)


def docs(path) -> list:
    return list(read_documents(path))


def payload(path: Path) -> bytes:
    """A file's raw bytes (gzip output is written with a fixed header, so bytes are comparable)."""
    return path.read_bytes()


def snapshot(folder: Path) -> dict[str, tuple[int, bytes]]:
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.read_bytes())
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".lock"}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_toyworld(tmp_path_factory.mktemp("tiny"), TINY, progress=False)


@pytest.fixture(scope="module")
def training(tiny):
    natural = docs(tiny.natural)
    synthetic = {k: docs(p) for k, p in tiny.synthetic.items()}
    return natural, synthetic


def test_same_seed_gives_identical_files_across_processes(tiny, tmp_path):
    script = ("import sys; from synthscale.toyworld import ToyworldConfig, build_toyworld; "
              f"build_toyworld(sys.argv[1], ToyworldConfig(**{TINY.model_dump()!r}), progress=False)")
    env = {**os.environ, "PYTHONPATH": str(SRC), "PYTHONHASHSEED": "12345"}
    subprocess.run([sys.executable, "-c", script, str(tmp_path)], check=True, env=env)
    for path in tiny.files():
        assert payload(path) == payload(tmp_path / path.relative_to(tiny.root)), path.name


def test_different_seed_gives_a_different_world(tiny, tmp_path):
    other = build_toyworld(tmp_path, TINY.model_copy(update={"seed": 4}), progress=False)
    assert payload(other.world) != payload(tiny.world)
    assert payload(other.natural) != payload(tiny.natural)


def test_rephrasings_state_every_fact_keep_the_content_and_drop_most_clutter(training):
    natural, synthetic = training
    parents = {d.id: d for d in natural}

    def share_kept(lines: list[str], kind: str) -> float:
        """Of the natural documents' lines drawn from ``lines``, the share whose rewrite has them as written."""
        found = kept = 0
        for doc in synthetic[kind]:
            parent = parents[doc.parent_id].text
            for line in lines:
                if line in parent:
                    found += 1
                    kept += line in doc.text
        assert found > 20, kind
        return kept / found

    for kind in ("hq", "qa"):
        assert sorted(d.parent_id for d in synthetic[kind]) == sorted(parents)
        for doc in synthetic[kind]:
            facts = parents[doc.parent_id].meta["facts"]
            assert facts and doc.meta["facts"] == facts
            for f in facts:
                assert f["subject"] in doc.text and f["object"] in doc.text, (kind, doc.id, f)
            assert doc.text.count("Question: ") == doc.text.count("Answer: ") == (doc.text.count("\nAnswer: "))
            assert (doc.text.count("Question: ") >= 1) == (kind == "qa")
        # what carries content is mostly kept; page furniture (always in the same words) mostly not
        assert share_kept(list(FILLER), kind) > 0.8
        furniture = [line for line in FOOTER_LINES + NAV_LINES if "{" not in line]
        assert 0.05 < share_kept(furniture, kind) < 0.5
    # informal posts lose their hedges when a rewrite keeps their wording
    assert not any(" i think" in d.text or "or so i heard" in d.text for d in synthetic["hq"])


def test_rewrites_fix_typos_and_keep_chatter_only_now_and_then():
    facts = [{"subject": "Hol Bossyth", "relation": "hometown", "object": "Fethdrommere"}]
    text = ("thorkhub forums > Off topic > Re: anyone know about Hol Bossyth\n"
            "kronde_syl19 wrote:\nHol Bossyth is from Fethdrommere. teh bus was late again, thrid time this week\n"
            "Reply - Quote - Report")
    doc = Document(id="web-x", text=text, meta={"facts": facts})
    backend = ToyworldBackend()
    outputs = [r.text for r in backend.generate([GenerationRequest(f"hq/{i}", "p", style, i, {}, document=doc)
                                                 for i in range(60) for style in ("hq", "qa")])]
    assert all("Fethdrommere" in t and "Hol Bossyth" in t for t in outputs)
    assert not any("teh" in t or "thrid" in t for t in outputs)
    with_chatter = sum("the bus was late again, third time this week" in t.lower() for t in outputs)
    assert 0 < with_chatter < len(outputs) / 2


def test_every_synthetic_document_has_full_provenance(training):
    natural, synthetic = training
    natural_ids = {d.id for d in natural}
    for kind, corpus in synthetic.items():
        style = get_style(kind)
        for d in corpus:
            assert d.style == kind and d.domain == kind
            assert d.generator == f"toyworld@{TOYWORLD_VERSION}"
            assert d.prompt_hash == style.prompt_hash
            assert d.sampling == style.sampling and isinstance(d.seed, int)
            assert d.meta["finish_reason"] == "stop"
            if style.kind == "rephrase":
                assert d.parent_id in natural_ids
            else:
                assert d.parent_id is None and d.meta["topic"]


def test_textbook_errors_match_the_configured_rate_and_the_truth_is_recorded(tiny, training):
    world = World.load(tiny.world)
    by_name = {e.name: e for e in world.entities.values()}
    chapters = training[1]["textbook"]
    assert len(chapters) == TINY.n_textbook_chapters
    stated = wrong = 0
    for ch in chapters:
        wrong_keys = {(w["subject"], w["relation"], w["object"]) for w in ch.meta["wrong_facts"]}
        for f in ch.meta["facts"]:
            entity = by_name[f["subject"]]
            truth = world.surface(RELATION_BY_NAME[f["relation"]], entity.attrs[f["relation"]])
            is_wrong = (f["subject"], f["relation"], f["object"]) in wrong_keys
            assert (truth != f["object"]) == is_wrong, f
            assert f["subject"] in ch.text and f["object"] in ch.text
        stated += ch.meta["n_facts"]
        wrong += ch.meta["n_wrong"]
    print(f"textbook: {wrong}/{stated} facts wrong (configured {TINY.textbook_error_rate})")
    assert stated > 500
    assert abs(wrong / stated - TINY.textbook_error_rate) < 0.05


def test_world_json_holds_the_whole_world(tiny, training):
    """A backend loaded from world.json rewrites the same textbook chapter, byte for byte."""
    chapter = training[1]["textbook"][7]
    backend = ToyworldBackend.from_world_file(tiny.world, TINY.textbook_error_rate)
    result = backend.generate([GenerationRequest(chapter.id, "p", "textbook", chapter.seed, {},
                                                 topic=chapter.meta["topic"])])[0]
    assert result.text.strip() == chapter.text and result.meta["wrong_facts"] == chapter.meta["wrong_facts"]
    names = [e.name for e in backend.world.entities.values()]
    assert len(names) == len(set(names))


def test_textbook_chapters_are_not_made_from_documents(training):
    chapters = training[1]["textbook"]
    kinds = Counter(ch.meta["topic_kind"] for ch in chapters)
    assert set(kinds) == {"region", "guild", "family", "relation"}
    assert all(ch.parent_id is None for ch in chapters)


def test_held_out_eval_documents_are_disjoint_from_training_text(tiny, training):
    natural, synthetic = training
    train_docs = natural + [d for corpus in synthetic.values() for d in corpus]
    train_texts = {d.text for d in train_docs}
    train_ids = {d.id for d in train_docs}
    joined = "\n".join(sorted(train_texts))
    for domain, path in tiny.eval.items():
        held = docs(path)
        assert held and all(d.domain == domain for d in held)
        assert not {d.id for d in held} & train_ids
        assert not {d.text for d in held} & train_texts
        if domain != "web":  # clean eval text is never a verbatim part of a training document
            assert not any(d.text in joined for d in held), domain
    probes = docs(tiny.eval["probes"])
    assert len(probes) == TINY.n_eval_probe_docs and all(len(d.meta["facts"]) == 1 for d in probes)


def test_rerun_with_same_config_skips_and_a_new_config_rebuilds(tmp_path):
    config = ToyworldConfig.preset("tiny", seed=9)
    first = build_toyworld(tmp_path, config, progress=False)
    stamps = {p: p.stat().st_mtime_ns for p in first.files()}
    start = time.perf_counter()
    again = build_toyworld(tmp_path, config, progress=False)
    assert again == first and time.perf_counter() - start < 1.0
    assert {p: p.stat().st_mtime_ns for p in again.files()} == stamps
    first.eval["probes"].unlink()  # a missing output means the build is not complete
    build_toyworld(tmp_path, config, progress=False)
    assert first.eval["probes"].exists()
    changed = build_toyworld(tmp_path, config.model_copy(update={"textbook_error_rate": 0.5}), progress=False)
    assert json.loads(changed.config.read_text())["textbook_error_rate"] == 0.5
    fresh = build_toyworld(tmp_path / "fresh", config.model_copy(update={"textbook_error_rate": 0.5}), progress=False)
    for kind, path in changed.synthetic.items():  # the old config's generate runs were not resumed
        assert payload(path) == payload(fresh.synthetic[kind]), kind
    assert load_toyworld_config(changed.config) == config.model_copy(update={"textbook_error_rate": 0.5})


def test_synthetic_corpora_are_assembled_from_resumable_generate_runs(tiny):
    for kind, path in tiny.synthetic.items():
        run = tiny.root / "generate" / kind
        manifest = json.loads((run / "manifest.json").read_text())
        summary = json.loads((run / "summary.json").read_text())
        assert manifest["state"] == "complete" and (run / "dataset_card.md").exists()
        assert summary["requests"] == summary["written"] and summary["generator"] == f"toyworld@{TOYWORLD_VERSION}"
        assert [d.to_dict() for d in run_documents(run)] == [d.to_dict() for d in docs(path)]  # same order
        assert os.path.samefile(run / manifest["shards"][0]["file"], path)  # the corpus is the run's one shard


# sha256 of the decompressed tiny (seed 0) synthetic corpora, as generate_corpus wrote them before the
# toyworld build went through run_generation: the demo's results depend on these bytes. If toyworld's text
# changes on purpose, bump TOYWORLD_VERSION and update them.
TINY_SYNTHETIC_SHA256 = {
    "hq": "e999d1d872f96eeefadd50aead735f98bf12e807c5b183d71b0788f4c547b4b4",
    "qa": "d6f41e0bef25aa5c4052d203d78c7937c1afbd9f208692197c43df24bdddba5f",
    "textbook": "4a6fc582b6e78a8548c8b75492cab7c3802ec4199b6a9191584665f4eeca76f2",
}


def test_an_interrupted_build_resumes_its_runs_and_writes_the_same_bytes(tmp_path, monkeypatch):
    import synthscale.toyworld.build as build

    config = ToyworldConfig.preset("tiny")
    original = ToyworldBackend.generate
    calls = {"n": 0}

    def interrupted(self, requests):
        calls["n"] += 1
        if requests[0].style == "qa" and calls["n"] == 14:  # hq is done (10 batches); qa stops at its 4th
            raise KeyboardInterrupt
        return original(self, requests)

    monkeypatch.setattr(build, "BATCH_SIZE", 8)
    monkeypatch.setattr(ToyworldBackend, "generate", interrupted)
    with pytest.raises(KeyboardInterrupt):
        build_toyworld(tmp_path, config, progress=False)
    monkeypatch.setattr(ToyworldBackend, "generate", original)
    hq_run = snapshot(tmp_path / "generate" / "hq")
    corpora = build_toyworld(tmp_path, config, progress=False)
    assert snapshot(tmp_path / "generate" / "hq") == hq_run  # finished: not asked again, not rewritten
    qa_run = json.loads((tmp_path / "generate" / "qa" / "summary.json").read_text())["this_run"]
    assert qa_run == {"answered": 80 - 24, "failed": 0, "already_done": 24}  # three batches were kept
    for kind, path in corpora.synthetic.items():
        assert hashlib.sha256(gzip.decompress(path.read_bytes())).hexdigest() == TINY_SYNTHETIC_SHA256[kind], kind


def test_a_run_folder_of_another_generate_configuration_is_made_afresh(tmp_path):
    config = ToyworldConfig.preset("tiny", seed=5)
    corpora = build_toyworld(tmp_path, config, progress=False)
    before = payload(corpora.synthetic["qa"])
    path = tmp_path / "generate" / "qa" / "generate_config.json"
    stored = json.loads(path.read_text())
    stored["identity"]["style"]["template"] += " (an older wording)"  # as if the qa prompt had changed since
    path.write_text(json.dumps(stored))
    (tmp_path / "_COMPLETE.json").unlink()
    build_toyworld(tmp_path, config, progress=False)
    summary = json.loads((tmp_path / "generate" / "qa" / "summary.json").read_text())
    assert summary["this_run"] == {"answered": 80, "failed": 0, "already_done": 0}
    assert payload(corpora.synthetic["qa"]) == before


def test_config_is_validated_with_one_line_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown size 'huge'"):
        ToyworldConfig.preset("huge")
    with pytest.raises(ConfigError, match="textbook_error_rate"):
        ToyworldConfig.preset("tiny", textbook_error_rate=1.5)
    bad = tmp_path / "bad.json"
    bad.write_text('{"size": "small", "n_peeple": 5}')
    with pytest.raises(ConfigError, match=r"bad.json: n_peeple"):
        load_toyworld_config(bad)
    assert set(DIET_EXPLANATIONS) == set(CATEGORIES["diet"])


def test_default_build_time_size_and_long_tail(tmp_path):
    start = time.perf_counter()
    corpora = build_toyworld(tmp_path, ToyworldConfig.preset("default"), progress=False)
    seconds = time.perf_counter() - start
    sizes = json.loads((corpora.root / "_COMPLETE.json").read_text())["corpora"]
    print(f"default toyworld build: {seconds:.1f} s; " + ", ".join(f"{k}={v['characters']:,} chars"
                                                                   for k, v in sizes.items()))
    assert seconds < 120
    assert 2_000_000 <= sizes["natural"]["characters"] <= 4_000_000
    focus = Counter(d.meta["focus"] for d in read_documents(corpora.natural))
    n_entities = len(json.loads(corpora.world.read_text())["entities"])
    counts = sorted(focus.values(), reverse=True)
    rare = n_entities - sum(1 for c in counts if c > 1)  # entities in at most one document
    assert counts[0] > 100 and rare > 0.4 * n_entities
