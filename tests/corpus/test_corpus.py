"""corpus/: the Document record, readers/writers of every format, errors and stats."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from synthscale.corpus import Document, ReadStats, corpus_stats, parse_hf_uri, read_documents, write_documents
from synthscale.errors import InputError

from tests.conftest import run_cli

DOCS = [
    Document(id="a", text="Hello world.", domain="web"),
    Document(id="b", text="Zweiter Text — ünïcödé", domain="wiki", meta={"lang": "de"}),
    Document(id="c", text="Rephrased.", parent_id="a", style="hq", generator="toy@1", prompt_hash="abc",
             sampling={"temperature": 0.7}, seed=3),
]


@pytest.mark.parametrize("name", ["c.jsonl", "c.jsonl.gz", "c.jsonl.zst", "c.parquet"])
def test_roundtrip_every_format(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    assert write_documents(path, DOCS) == 3
    back = list(read_documents(path))
    assert [d.to_dict() for d in back] == [d.to_dict() for d in DOCS]
    assert back[2].is_synthetic and not back[0].is_synthetic


def test_malformed_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"id": "1", "text": "ok"}\n{"id": "2", "text": \n{"id": "3", "text": 5}\n')
    with pytest.raises(InputError, match=r"bad.jsonl:2: malformed record"):
        list(read_documents(path))
    stats = ReadStats()
    docs = list(read_documents(path, skip_bad=True, stats=stats))
    assert [d.id for d in docs] == ["1"]
    assert stats.skipped == 2 and stats.skipped_where[1].endswith("bad.jsonl:3")


def test_wrong_field_type_is_named(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl.gz"
    with gzip.open(path, "wt") as f:
        f.write(json.dumps({"id": "x", "text": "t", "domain": 3}) + "\n")
    with pytest.raises(InputError, match=r"t.jsonl.gz:1: .*'domain' must be a string"):
        list(read_documents(path))


def test_unknown_keys_kept_in_meta(tmp_path: Path) -> None:
    path = tmp_path / "k.jsonl"
    path.write_text(json.dumps({"id": 7, "text": "t", "kind": "natural", "url": "u"}) + "\n")
    (doc,) = read_documents(path)
    assert doc.id == "7" and doc.meta == {"kind": "natural", "url": "u"}


def test_plain_text_blocks(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("first para\nline two\n\n\nsecond para\n")
    docs = list(read_documents(path))
    assert [d.id for d in docs] == ["notes:1", "notes:2"]
    assert docs[0].text == "first para\nline two"


def test_folder_reads_all_files_sorted(tmp_path: Path) -> None:
    write_documents(tmp_path / "b.jsonl", DOCS[:1])
    write_documents(tmp_path / "a.parquet", DOCS[1:])
    assert [d.id for d in read_documents(tmp_path)] == ["b", "c", "a"]


def test_unknown_format_and_missing_file(tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text("id,text\n")
    with pytest.raises(InputError, match="unknown corpus format"):
        list(read_documents(tmp_path / "x.csv"))
    with pytest.raises(InputError, match="no such file"):
        list(read_documents(tmp_path / "missing.jsonl"))


def test_write_is_atomic_on_failure(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    write_documents(path, DOCS)

    def broken():
        yield DOCS[0]
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        write_documents(path, broken())
    assert len(list(read_documents(path))) == 3  # the old file is intact
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]  # no temp file left


def test_hf_uri_parsing() -> None:
    assert parse_hf_uri("hf://allenai/c4/en:validation") == ("allenai/c4", "en", "validation")
    assert parse_hf_uri("hf://org/name") == ("org/name", None, "train")
    with pytest.raises(InputError):
        parse_hf_uri("hf://a/b/c/d")


def test_hf_streaming_from_local_dataset_folder(tmp_path: Path) -> None:
    pytest.importorskip("datasets")
    folder = tmp_path / "ds"
    folder.mkdir()
    (folder / "train.jsonl").write_text("".join(json.dumps({"text": f"doc {i}"}) + "\n" for i in range(5)))
    docs = list(read_documents(f"hf://{folder}:train"))
    assert [d.text for d in docs] == [f"doc {i}" for i in range(5)]
    assert len({d.id for d in docs}) == 5 and docs[0].source.startswith("hf://")


def test_stats_counts(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    write_documents(path, DOCS)
    s = corpus_stats(str(path)).as_dict()
    assert s["documents"] == 3 and s["synthetic"] == 1
    assert s["bytes"] == sum(len(d.text.encode()) for d in DOCS)
    assert s["domains"] == {"(none)": 1, "web": 1, "wiki": 1}


def test_cli_stats_and_malformed_exit_code(tmp_path: Path) -> None:
    good = tmp_path / "g.jsonl"
    write_documents(good, DOCS)
    res = run_cli("corpus", "stats", str(good), "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["documents"] == 3
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "1", "text": "ok"}\nnot json\n')
    res = run_cli("corpus", "stats", str(bad))
    assert res.returncode == 2
    assert res.stderr.strip().count("\n") == 0 and "bad.jsonl:2" in res.stderr
    res = run_cli("corpus", "stats", str(bad), "--skip-bad", "--json")
    assert res.returncode == 0 and json.loads(res.stdout)["skipped"] == 1


def test_shared_corpora_read(shared_dir: Path) -> None:
    s = corpus_stats(str(shared_dir / "corpora" / "natural" / "c4_en_1k.jsonl.gz")).as_dict()
    assert s["documents"] == 1000 and s["bytes"] > 1_000_000


def test_gzip_output_is_byte_identical(tmp_path: Path) -> None:
    a, b = tmp_path / "a" / "c.jsonl.gz", tmp_path / "b" / "c.jsonl.gz"
    write_documents(a, DOCS)
    write_documents(b, DOCS)
    assert a.read_bytes() == b.read_bytes()
