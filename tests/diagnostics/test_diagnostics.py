"""Corpus diagnostics: every metric by hand, `synthscale corpus compare`, STUDY/diagnostics.json, the report.

The handmade corpora use a word-level tokenizer (one id per letter-word), so every figure
can be worked out on paper; the study and report tests use the tiny toyworld.
"""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import numpy as np
import pytest
from tokenizers import Tokenizer, models, pre_tokenizers
from typer.testing import CliRunner

from synthscale._io import write_json
from synthscale.cli import app
from synthscale.corpus import Document, write_documents
from synthscale.diagnostics import (CorpusRef, compare_corpora, distinct_n, format_comparison, gzip_ratio,
                                    pair_overlap, trigram_jaccard, type_token_ratio, unigram_kl,
                                    unseen_mass)
from synthscale.errors import ConfigError, InputError

from tests.study.tiny import tiny_world, write_tiny_spec  # noqa: F401

ln = math.log
VOCAB = {"<|endoftext|>": 0, "[UNK]": 1, "a": 2, "b": 3, "c": 4, "d": 5, "e": 6}


@pytest.fixture()
def letters(tmp_path: Path) -> Path:
    """A word-level tokenizer: ids 2..6 for the words a..e (V = 7)."""
    tok = Tokenizer(models.WordLevel(VOCAB, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    path = tmp_path / "letters.json"
    tok.save(str(path))
    return path


# ---------------------------------------------------------------- the metrics, by hand


def test_unigram_kl_is_empirical_p_against_add_one_q() -> None:
    p, q = np.array([0, 2, 1, 1]), np.array([1, 0, 3, 0])
    # p = [0, 1/2, 1/4, 1/4]; q = (count + 1) / (N + V) = [2, 1, 4, 1] / 8
    expected = 0.5 * ln(0.5 / (1 / 8)) + 0.25 * ln(0.25 / (4 / 8)) + 0.25 * ln(0.25 / (1 / 8))
    assert unigram_kl(p, q) == pytest.approx(expected, rel=1e-12)
    assert unigram_kl(p, q) == pytest.approx(ln(2), rel=1e-12)  # the same, simplified
    assert unigram_kl(p, p) > 0  # Q is smoothed: not exactly 0 even for identical counts
    assert math.isnan(unigram_kl(np.zeros(4), q))
    with pytest.raises(ValueError, match="differ in length"):
        unigram_kl(p, q[:3])


def test_unseen_mass_counts_tokens_not_types() -> None:
    # types 1 and 3 never occur in Q: 2 + 1 of P's 4 tokens
    assert unseen_mass(np.array([0, 2, 1, 1]), np.array([1, 0, 3, 0])) == pytest.approx(0.75)
    assert unseen_mass(np.array([1, 1, 0, 0]), np.array([5, 5, 0, 0])) == 0.0


def test_diversity_measures_never_cross_a_document_boundary() -> None:
    tokens, offsets = np.array([1, 2, 1, 2, 1, 2]), np.array([0, 4, 6])  # docs [1 2 1 2] and [1 2]
    assert type_token_ratio(tokens) == pytest.approx(2 / 6)
    # bigrams: (1,2) (2,1) (1,2) | (1,2) -> 2 distinct of 4; across the boundary (2,1) would be a fifth
    assert distinct_n(tokens, offsets, 2, vocab_size=3) == pytest.approx(2 / 4)
    # trigrams: (1,2,1) (2,1,2) -> 2 of 2
    assert distinct_n(tokens, offsets, 3, vocab_size=3) == pytest.approx(1.0)
    assert distinct_n(tokens, np.array([0, 6]), 2, vocab_size=3) == pytest.approx(2 / 5)
    assert math.isnan(distinct_n(np.array([1]), np.array([0, 1]), 2, vocab_size=3))


def test_gzip_ratio_and_pair_measures() -> None:
    texts = ["the same line"] * 50
    data = "\n".join(texts).encode()
    assert gzip_ratio(texts) == pytest.approx(len(data) / len(gzip.compress(data, compresslevel=9, mtime=0)))
    assert gzip_ratio(texts) > gzip_ratio([f"{i * 7919 % 10007:05d} {i * 104729 % 99991}" for i in range(50)])
    # parent [1 1 2 3 5], rewrite [1 2 2]: clipped overlap min(2,1) + min(1,2) = 2
    assert pair_overlap([1, 1, 2, 3, 5], [1, 2, 2]) == (pytest.approx(2 / 3), pytest.approx(2 / 5))
    assert pair_overlap([], [1]) == (0.0, 0.0)
    # word trigrams {a b c, b c d} vs {a b c, b c e}: 1 shared of 3
    assert trigram_jaccard("A b c d", "a b, c e") == pytest.approx(1 / 3)
    assert trigram_jaccard("a b", "a b") == 0.0


# ---------------------------------------------------------------- compare_corpora on handmade corpora


def write_pair(tmp_path: Path, rounds: bool = False) -> tuple[Path, Path]:
    a = [Document(id="a1", text="a b a b"), Document(id="a2", text="c c d")]
    b = [Document(id="b1", text="a b a b", parent_id="a1", meta={"round": 1} if rounds else {}),
         Document(id="b2", text="a c e", parent_id="a2", meta={"round": 2} if rounds else {})]
    write_documents(tmp_path / "a.jsonl", a)
    write_documents(tmp_path / "b.jsonl", b)
    return tmp_path / "a.jsonl", tmp_path / "b.jsonl"


def test_compare_corpora_matches_a_hand_computation(tmp_path: Path, letters: Path) -> None:
    a, b = write_pair(tmp_path)
    r = compare_corpora(a, b, tokenizer=letters)
    # A counts a2 b2 c2 d1 (N=7), B counts a3 b2 c1 e1 (N=7), V = 7: q = (count + 1) / 14
    kl_ab = 2 / 7 * ln((2 / 7) / (4 / 14)) + 2 / 7 * ln((2 / 7) / (3 / 14)) + 2 / 7 * ln((2 / 7) / (2 / 14)) \
        + 1 / 7 * ln((1 / 7) / (1 / 14))
    kl_ba = 3 / 7 * ln((3 / 7) / (3 / 14)) + 2 / 7 * ln((2 / 7) / (3 / 14)) + 1 / 7 * ln((1 / 7) / (3 / 14)) \
        + 1 / 7 * ln((1 / 7) / (1 / 14))
    assert r["kl_a_b"] == pytest.approx(kl_ab, rel=1e-9) and r["kl_b_a"] == pytest.approx(kl_ba, rel=1e-9)
    assert r["unseen_a_in_b"] == pytest.approx(1 / 7) and r["unseen_b_in_a"] == pytest.approx(1 / 7)
    assert r["length_ratio"] == pytest.approx(1.0)
    assert r["tokenizer"]["vocab_size"] == 7 and "letters.json" in r["tokenizer"]["source"]
    for side in ("a", "b"):  # 4 types in 7 tokens; bigrams ab ba ab | cc cd (ac ce): 4 distinct of 5
        assert r[side]["ttr"] == pytest.approx(4 / 7) and r[side]["distinct_2"] == pytest.approx(4 / 5)
        assert r[side]["distinct_3"] == pytest.approx(1.0) and r[side]["diversity_tokens"] == 7
        assert (r[side]["documents"], r[side]["tokens"], r[side]["mean_tokens_per_doc"]) == (2, 7, 3.5)
    data = "a b a b\nc c d".encode()
    assert r["a"]["gzip_ratio"] == pytest.approx(len(data) / len(gzip.compress(data, compresslevel=9, mtime=0)))
    p = r["pairs"]
    # b1 is a1 verbatim (overlap 1, recall 1, Jaccard 1: a near-copy); b2 "a c e" vs "c c d": one c in common
    assert (p["by"], p["pairs"], p["missing"]) == ("parent", 2, 0)
    assert p["overlap"] == pytest.approx((1 + 1 / 3) / 2) and p["recall"] == pytest.approx((1 + 1 / 3) / 2)
    assert p["trigram_jaccard"] == pytest.approx(0.5) and p["near_copy_share"] == pytest.approx(0.5)
    assert "rounds" not in r
    assert compare_corpora(a, b, tokenizer=letters, pair_by="none")["pairs"] is None
    text = format_comparison(r)
    assert f"KL(A || B) = {kl_ab:.3f} nats/token" in text and "near-copies (Jaccard >= 0.9): 50.00%" in text


def test_rounds_pairs_by_id_and_a_trained_tokenizer(tmp_path: Path, letters: Path) -> None:
    a, b = write_pair(tmp_path, rounds=True)
    r = compare_corpora(a, b, tokenizer=letters)
    assert set(r["rounds"]) == {"1", "2"}
    one, two = r["rounds"]["1"], r["rounds"]["2"]
    assert one["pairs"]["near_copy_share"] == 1.0 and one["b"]["documents"] == 1
    assert two["pairs"]["overlap"] == pytest.approx(1 / 3) and two["unseen_b_in_a"] == pytest.approx(1 / 3)
    # two fields of one file: B's ids are A's ids
    records = [{"id": "x1", "original": "a b a b", "rewrite": "b a b a"},
               {"id": "x2", "original": "c d", "rewrite": "d c"}]
    both = tmp_path / "pairs.jsonl"
    both.write_text("".join(json.dumps(rec) + "\n" for rec in records))
    r = compare_corpora(CorpusRef(str(both), "original"), CorpusRef(str(both), "rewrite"), tokenizer=letters)
    same = np.array([0, 0, 2, 2, 1, 1, 0])  # a b c d over the 7 ids
    assert r["pairs"]["by"] == "id" and r["pairs"]["overlap"] == 1.0
    assert r["kl_a_b"] == pytest.approx(unigram_kl(same, same)) and r["unseen_a_in_b"] == 0.0
    # no tokenizer: a BPE trained on both sides, kept when asked
    saved = tmp_path / "bpe.json"
    r = compare_corpora(a, b, vocab_size=300, save_tokenizer=saved)
    assert saved.exists() and r["tokenizer"]["hash"] and "trained on both corpora" in r["tokenizer"]["source"]
    again = compare_corpora(a, b, vocab_size=300)  # the same BPE, bit for bit
    assert again["tokenizer"]["hash"] == r["tokenizer"]["hash"] and again["kl_a_b"] == r["kl_a_b"]
    with pytest.raises(ConfigError, match="pair_by"):
        compare_corpora(a, b, tokenizer=letters, pair_by="sideways")


def test_max_docs_still_finds_the_parents_of_the_rewrites_read(tmp_path: Path, letters: Path) -> None:
    write_documents(tmp_path / "a.jsonl", [Document(id=f"a{i}", text="a b") for i in range(5)])
    write_documents(tmp_path / "b.jsonl", [Document(id="b0", text="a b", parent_id="a4"),
                                           Document(id="b1", text="a", parent_id="a0")])
    r = compare_corpora(tmp_path / "a.jsonl", tmp_path / "b.jsonl", tokenizer=letters, max_docs=1)
    assert r["a"]["documents"] == 1 and r["a"]["truncated"] and r["b"]["documents"] == 1
    assert r["pairs"]["pairs"] == 1 and r["pairs"]["near_copy_share"] == 0.0 and r["pairs"]["overlap"] == 1.0


# ---------------------------------------------------------------- the CLI


def test_cli_compare_prints_figures_or_json_and_one_line_errors(tmp_path: Path, letters: Path) -> None:
    a, b = write_pair(tmp_path)
    runner = CliRunner()
    out = runner.invoke(app, ["corpus", "compare", str(a), str(b), "--tokenizer", str(letters), "--json", "--quiet"])
    assert out.exit_code == 0, out.output
    result = json.loads(out.stdout)
    assert result["unseen_a_in_b"] == pytest.approx(1 / 7) and result["pairs"]["pairs"] == 2
    text = runner.invoke(app, ["corpus", "compare", str(a), str(b), "--tokenizer", str(letters), "--quiet"])
    assert "A's token mass whose types never occur in B: 14.29%" in text.stdout
    fields = runner.invoke(app, ["corpus", "compare", str(a), str(a), "--tokenizer", str(letters), "--quiet",
                                 "--b-text-field", "nope", "--json"])
    assert fields.exit_code != 0 and isinstance(fields.exception, InputError)
    assert "nope" in str(fields.exception)
    helptext = runner.invoke(app, ["corpus", "compare", "--help"]).stdout
    assert "--tokenizer" in helptext and "--vocab-size" in helptext and "near-copies" in helptext


# ---------------------------------------------------------------- STUDY/diagnostics.json and the report


def test_prepare_writes_diagnostics_once_and_they_match_the_api(tiny_world, tmp_path: Path) -> None:  # noqa: F811
    from synthscale.diagnostics.study import DIAGNOSTICS_FORMAT, study_diagnostics
    from synthscale.study.prepare import prepare_study
    from synthscale.study.spec import load_spec

    spec, _ = load_spec(write_tiny_spec(tmp_path / "spec.yaml", tiny_world, [2048]))
    study = tmp_path / "study"
    data = prepare_study(spec, study, progress=False)
    path = study / "diagnostics.json"
    saved = json.loads(path.read_text())
    assert saved["format"] == DIAGNOSTICS_FORMAT and saved["tokenizer_hash"] == data.tokenizer_hash
    hq = saved["kinds"]["hq"]
    n_hq = sum(1 for _ in open_lines(tiny_world.synthetic["hq"]))
    assert hq["vs_natural"]["pairs"]["by"] == "parent" and hq["vs_natural"]["pairs"]["pairs"] == n_hq
    assert 0 < hq["vs_natural"]["kl_natural_kind"] < 5 and saved["natural"]["documents"] == n_hq
    direct = study_diagnostics(CorpusRef(str(tiny_world.natural)), {"hq": CorpusRef(str(tiny_world.synthetic["hq"]))},
                               data.tokenizer_path)
    assert {k: v for k, v in saved.items() if k != "key"} == json.loads(json.dumps(direct))
    before = path.stat().st_mtime_ns
    prepare_study(spec, study, progress=False)
    assert path.stat().st_mtime_ns == before  # current: reused
    write_json(path, {**saved, "key": {"stale": True}})
    prepare_study(spec, study, progress=False)
    assert json.loads(path.read_text())["key"] == saved["key"]  # a stale key is recomputed


def open_lines(path: Path):
    with gzip.open(path, "rt") as f:
        yield from f


def diagnostics_for() -> dict:
    """A diagnostics.json with two kinds, one with collapse rounds."""
    profile = {"documents": 100, "tokens": 9000, "mean_tokens_per_doc": 90.0, "ttr": 0.05, "distinct_2": 0.4,
               "distinct_3": 0.7, "gzip_ratio": 2.5}
    vs = {"kl_natural_kind": 0.123, "kl_kind_natural": 0.2, "unseen_natural_in_kind": 0.0042, "length_ratio": 0.8,
          "pairs": {"by": "parent", "pairs": 100, "overlap": 0.61, "recall": 0.5, "near_copy_share": 0.03}}
    later = {**vs, "kl_natural_kind": 0.456, "pairs": {**vs["pairs"], "near_copy_share": 0.2}}
    return {"format": "synthscale.diagnostics/1", "vocab_size": 2048, "settings": {"diversity_tokens": 9000},
            "natural": profile,
            "kinds": {"hq": {"corpus": profile, "vs_natural": vs,
                             "rounds": {"2": {"corpus": profile, "vs_natural": later},
                                        "1": {"corpus": profile, "vs_natural": vs}}},
                      "textbook": {"corpus": {**profile, "gzip_ratio": None},
                                   "vs_natural": {**vs, "pairs": None, "kl_natural_kind": 0.8}}}}


def test_report_shows_corpus_diagnostics_and_works_without_them(tmp_path: Path) -> None:
    from synthscale.report import write_report

    from tests.report.test_report import FEW, make_analysis, make_results

    def report(study: Path) -> str:
        return write_report(study, make_results(FEW), make_analysis(FEW))["markdown"].read_text()

    assert "Corpus diagnostics" not in report(tmp_path / "none")
    study = tmp_path / "study"
    write_json(study / "diagnostics.json", diagnostics_for())
    md = report(study)
    section = md.split("## Corpus diagnostics", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    assert [r.split("|")[1].strip() for r in rows] == ["`natural`", "`hq`", "`hq, round 1`", "`hq, round 2`",
                                                        "`textbook`"]
    assert "| 0.123 |" in rows[1] and "0.42%" in rows[1] and "3.00%" in rows[1] and "| 0.456 |" in rows[3]
    assert "n/a" in rows[4] and "9,000 tokens of every corpus" in section
    write_json(study / "diagnostics.json", {"kinds": {"hq": {"vs_natural": {"kl_natural_kind": "high"}}}})
    with pytest.raises(InputError, match=r"diagnostics.json.*kinds.hq.vs_natural.kl_natural_kind"):
        report(study)
