"""Baselines (uniform and unigram loss per eval domain) and synthetic-kind styles in the report.

- evaluate/baselines.py against a hand computation on a handmade shard and eval set;
- the study's prepare step writes STUDY/baselines.json once, from the shards it built;
- the report lists the baselines, shows bits per byte, and says plainly when final losses
  do not beat the unigram baseline or lie above the uniform one (and not when they do beat it);
- a kind's style (rephrase / generate) reaches the findings from the spec, not only from its name.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from synthscale._io import write_json
from synthscale.errors import InputError
from synthscale.evaluate import EvalSet, load_eval_set, save_eval_set
from synthscale.evaluate.baselines import (BASELINES_FORMAT, eval_baselines, shard_token_counts, study_baselines,
                                           token_counts)
from synthscale.report import NOT_TESTED, write_report
from synthscale.study.spec import parse_spec

from tests.study.tiny import tiny_world, write_tiny_spec  # noqa: F401
from tests.report.test_report import FEW, PAPER_LIKE, decide, make_analysis, make_results

# ---------------------------------------------------------------- the computation, by hand

# Vocabulary of 4 ids (0 is EOS). Natural shard: 7 tokens, counts [1, 1, 2, 3].
NATURAL_TOKENS = [1, 2, 2, 3, 3, 3, 0]
# One eval window [3, 1, 3, 0]: targets 1, 3, 0 with 2, 3 and 0 bytes.
EVAL_WINDOW = [3, 1, 3, 0]
TARGET_BYTES = [2, 3, 0]


def write_shard(prefix: Path, tokens: list[int], vocab_size: int) -> Path:
    """A token shard written by hand: NAME.bin (uint16) + NAME.json as docs/contracts.md fixes them."""
    prefix.parent.mkdir(parents=True, exist_ok=True)
    np.asarray(tokens, dtype=np.uint16).tofile(str(prefix) + ".bin")
    write_json(str(prefix) + ".json", {
        "format": "synthscale.token_shard/1", "dtype": "uint16", "vocab_size": vocab_size, "eos_id": 0,
        "tokenizer_hash": "hand", "n_tokens": len(tokens), "n_docs": 1, "sha256": "", "source_bytes": 0,
        "provenance": {}})
    return prefix


def hand_eval_set() -> EvalSet:
    return EvalSet(name="web", tokens=np.asarray([EVAL_WINDOW], dtype=np.int32),
                   target_bytes=np.asarray([TARGET_BYTES], dtype=np.int32), tokenizer_hash="hand")


def test_unigram_and_uniform_baselines_match_a_hand_computation(tmp_path: Path) -> None:
    shard = write_shard(tmp_path / "natural", NATURAL_TOKENS, vocab_size=4)
    counts = shard_token_counts(shard)
    assert counts.tolist() == [1, 1, 2, 3]
    got = eval_baselines(hand_eval_set(), counts)
    # add-one: p(t) = (count + 1) / (N + V) = [2, 2, 3, 4] / 11; targets 1, 3, 0
    unigram = -(math.log(2 / 11) + math.log(4 / 11) + math.log(2 / 11)) / 3
    assert got["unigram_loss"] == pytest.approx(unigram, rel=1e-12)
    assert got["unigram_bpb"] == pytest.approx(3 * unigram / math.log(2) / 5, rel=1e-12)
    assert got["uniform_loss"] == pytest.approx(math.log(4), rel=1e-12)
    assert got["uniform_bpb"] == pytest.approx(1.2, rel=1e-12)  # 3 tokens * 2 bits / 5 bytes
    assert (got["tokens"], got["bytes"], got["bytes_per_token"]) == (3, 5, pytest.approx(5 / 3))


def test_counts_are_taken_in_chunks_and_ids_outside_the_vocabulary_are_refused(tmp_path: Path) -> None:
    tokens = np.random.default_rng(0).integers(0, 50, size=10_001).astype(np.uint16)
    assert token_counts(tokens, 50, chunk=997).tolist() == np.bincount(tokens, minlength=50).tolist()
    with pytest.raises(InputError, match="token id 7 is outside the vocabulary of 4"):
        shard_token_counts(write_shard(tmp_path / "bad", [1, 7, 0], vocab_size=4))
    with pytest.raises(InputError, match="outside the vocabulary"):
        eval_baselines(hand_eval_set(), np.ones(3, dtype=np.int64))


def test_study_baselines_file_content(tmp_path: Path) -> None:
    shard = write_shard(tmp_path / "natural", NATURAL_TOKENS, vocab_size=4)
    path = save_eval_set(hand_eval_set(), tmp_path / "eval" / "web")
    out = study_baselines(shard, {"web": path.with_suffix("")}, vocab_size=4, tokenizer_hash="hand")
    assert out["format"] == BASELINES_FORMAT and out["vocab_size"] == 4 and out["unigram_tokens"] == 7
    assert out["unigram_source"] == "natural" and "add-one" in out["smoothing"]
    assert out["domains"]["web"] == eval_baselines(hand_eval_set(), np.asarray([1, 1, 2, 3]))


def test_prepare_writes_the_study_baselines_once(tiny_world, tmp_path: Path) -> None:  # noqa: F811
    from synthscale.study.prepare import prepare_study
    from synthscale.study.spec import load_spec
    from synthscale.tokens import open_shard

    spec, _ = load_spec(write_tiny_spec(tmp_path / "spec.yaml", tiny_world, [2048]))
    study = tmp_path / "study"
    data = prepare_study(spec, study, progress=False)
    path = study / "baselines.json"
    saved = json.loads(path.read_text())
    web = saved["domains"]["web"]
    assert saved["vocab_size"] == data.vocab_size and saved["tokenizer_hash"] == data.tokenizer_hash
    assert web["uniform_loss"] == pytest.approx(math.log(data.vocab_size))
    # the unigram loss again, straight from the files: natural shard counts, eval set targets
    natural, _ = open_shard(data.shards["natural"])
    counts = np.bincount(np.asarray(natural), minlength=data.vocab_size)
    es = load_eval_set(data.eval_sets["web"])
    p = (counts + 1) / (counts.sum() + data.vocab_size)
    assert web["unigram_loss"] == pytest.approx(-np.log(p[es.tokens[:, 1:]]).mean(), rel=1e-9)
    assert web["tokens"] == es.n_targets and web["bytes"] == es.n_bytes
    assert web["unigram_loss"] < web["uniform_loss"]
    before = path.stat().st_mtime_ns
    prepare_study(spec, study, progress=False)
    assert path.stat().st_mtime_ns == before  # current: not rewritten


# ---------------------------------------------------------------- the report

def baselines_for(unigram: float, uniform: float = 6.93) -> dict:
    """baselines.json for the three domains of test_report's made-up study."""
    return {"format": BASELINES_FORMAT, "vocab_size": 1024, "unigram_source": "natural-abc",
            "unigram_tokens": 100_000,
            "domains": {d: {"tokens": 4096, "bytes": 12288, "bytes_per_token": 3.0, "uniform_loss": uniform,
                            "uniform_bpb": uniform * 4096 / math.log(2) / 12288, "unigram_loss": unigram,
                            "unigram_bpb": unigram * 4096 / math.log(2) / 12288}
                        for d in ("web", "wiki", "code")}}


def report_text(tmp_path: Path, baselines: dict | None, **kwargs) -> str:
    paths = write_report(tmp_path, make_results(FEW), make_analysis(FEW), baselines=baselines, **kwargs)
    return paths["markdown"].read_text()


def findings_section(markdown: str) -> str:
    return markdown.split("## Findings", 1)[1].split("| # |", 1)[0]


def test_report_says_when_final_losses_do_not_beat_the_unigram_baseline(tmp_path: Path) -> None:
    # final losses (8M tokens): natural 2.21/2.51/2.71 on code/web/wiki, hq@1/3 0.2 lower, textbook@1 0.81 higher
    md = report_text(tmp_path, baselines_for(unigram=2.6, uniform=3.2))
    note = findings_section(md)
    assert "**Note (baselines).**" in note
    assert ("On web, 1 of 3 recipes ends above the unigram baseline (2.6000 nats/token): textbook@1. "
            "This model learned little beyond token frequencies on web.") in note
    assert "On wiki, 2 of 3 recipes end above the unigram baseline (2.6000 nats/token): natural, textbook@1." in note
    assert ("On wiki, 1 of 3 recipes ends above the uniform baseline ln V = 3.2000 nats/token: worse than a "
            "uniform guess (textbook@1).") in note
    assert "On code, 1 of 3 recipes ends above the unigram baseline" in note
    assert "On code, 1 of 3 recipes ends above the uniform" not in note  # textbook@1: 3.02 < 3.2 on code
    assert "On web, 1 of 3 recipes ends above the uniform" in note  # 3.32 > 3.2
    # the baselines table and the baseline rows under the per-domain loss and bpb tables
    assert "### Baselines" in md and "| Domain | Eval tokens | Bytes/token | Uniform (nats/token) |" in md
    assert "| web | 4096 | 3 | 3.2000 |" in md
    assert "| unigram baseline | 2.6000 | 2.6000 | 2.6000 | 2.6000 |  |" in md
    assert "### Bits per byte per domain" in md and "*Bits per byte (seed mean) of tiny at 8M tokens" in md


def test_report_has_no_unigram_warning_when_every_loss_beats_it(tmp_path: Path) -> None:
    md = report_text(tmp_path, baselines_for(unigram=4.0))
    note = findings_section(md)
    assert "Note (baselines)" not in md and "learned little beyond token frequencies on" not in md
    assert "end above the unigram" not in md and "ends above the unigram" not in md
    assert "worse than a uniform guess (" not in md
    assert "**Baselines.** Every final loss is below the unigram baseline on every eval domain; the closest is " \
           "3.5192 nats/token on wiki, 0.4808 below it." in note
    assert "### Baselines" in md


def test_report_reads_baselines_json_from_the_study_folder_and_works_without_it(tmp_path: Path) -> None:
    plain = report_text(tmp_path / "none", None)
    assert "Baselines" not in plain and "unigram" not in plain
    assert "### Bits per byte per domain" in plain  # bpb comes from the results table alone
    study = tmp_path / "study"
    write_json(study / "baselines.json", baselines_for(unigram=2.6))
    assert "ends above the unigram baseline" in report_text(study, None)
    write_json(study / "baselines.json", {"domains": {"web": {"uniform_loss": "x"}}})
    with pytest.raises(InputError, match=r"baselines.json.*field domains.web.uniform_loss"):
        report_text(study, None)


# ---------------------------------------------------------------- kind styles reach the findings

RENAMED = {name.replace("hq", "rephrase"): (("rephrase",) + p[1:] if p[0] == "hq" else p)
           for name, p in PAPER_LIKE.items() if p[0] != "qa"}


def test_a_kind_named_rephrase_is_tested_when_its_style_is_declared() -> None:
    results, analysis = make_results(RENAMED), make_analysis(RENAMED)
    untested = decide(results, analysis)
    assert all(untested[n] == NOT_TESTED for n in (1, 2, 4, 5))
    declared = decide(results, analysis, {"kind_styles": {"rephrase": "rephrase"}})
    assert all(declared[n] != NOT_TESTED for n in (1, 2, 4, 5)), declared
    assert declared == decide(make_results(PAPER_LIKE), make_analysis(PAPER_LIKE))


def test_finding5_compares_the_best_rephrased_third_with_every_other_fit() -> None:
    laws = {**RENAMED, "rephrase@0.333": ("rephrase", 1 / 3, 1.86, 60.0, 0.3)}  # above rephrase@0.5 (1.83)
    styles = {"kind_styles": {"rephrase": "rephrase"}}
    assert decide(make_results(laws), make_analysis(laws), styles)[5] == "not reproduced"
    assert decide(make_results(RENAMED), make_analysis(RENAMED), styles)[5] == "reproduced"


def test_report_says_where_each_kind_style_came_from(tmp_path: Path) -> None:
    laws = {k: RENAMED[k] for k in ("natural", "rephrase@0.333", "textbook@1")}
    paths = write_report(tmp_path / "a", make_results(laws), make_analysis(laws),
                         spec_summary={"kind_styles": {"rephrase": "rephrase"}})
    md = paths["markdown"].read_text()
    assert "- `rephrase`: rephrase (declared in the spec)" in md
    assert ("- `textbook`: generate (default for this name: the spec does not declare "
            "`corpora.synthetic.textbook.style`)") in md
    md = write_report(tmp_path / "b", make_results(laws), make_analysis(laws))["markdown"].read_text()
    assert "- `rephrase`: no style (not used by the findings)" in md
    assert "**Note.** The synthetic kind(s) `rephrase` have no style" in findings_section(md)
    assert "Declare `corpora.synthetic.rephrase.style`" in md


def test_declared_styles_are_read_from_the_study_spec_on_disk(tmp_path: Path) -> None:
    """`synthscale report STUDY` (no spec summary) reads the styles from STUDY/spec.resolved.json."""
    spec = parse_spec({"name": "s", "corpora": {"natural": "n", "synthetic": {
        "rephrase": {"path": "r", "style": "rephrase"}, "textbook": {"path": "t", "style": "generate"}}},
        "eval": {"web": "w"}, "recipes": [{"kind": "rephrase", "ratios": [1]}], "models": ["cpu-nano"],
        "budgets": [8]})
    study = tmp_path / "study"
    write_json(study / "spec.resolved.json", spec.model_dump())
    write_json(study / "analysis.json", make_analysis(RENAMED))
    make_results(RENAMED).to_csv(study / "results.csv", index=False)
    paths = write_report(study)
    findings = {f["number"]: f["status"] for f in json.loads(paths["findings"].read_text())}
    assert findings[1] != NOT_TESTED and findings[2] != NOT_TESTED
    assert "- `textbook`: generate (declared in the spec)" in paths["markdown"].read_text()
