"""Reading damaged files fails loudly in one line (the _io reading helper and its users); files are
written with the mode a plain open() gives; corpora with undecodable bytes (--skip-bad)."""

from __future__ import annotations

import gzip
import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest

from synthscale._io import (atomic_write_bytes, read_json, read_safetensors, read_safetensors_metadata, read_table,
                            write_json)
from synthscale.corpus import Document, ReadStats, read_documents, write_documents
from synthscale.errors import DamagedFileError, InputError, MissingFileError
from synthscale.tokens import encode_corpus, read_shard_info, train_tokenizer

from tests.conftest import run_cli


def _one_line_error(res, *needles: str) -> str:
    """The CLI failed with exit 2 and one line on stderr holding every needle, no traceback."""
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    assert "Traceback" not in res.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


# --- the helper -----------------------------------------------------------------------------------

def test_read_json_names_the_file_what_is_wrong_and_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "eval.json"
    with pytest.raises(MissingFileError, match=r"eval\.json: run evaluation is missing; rerun it") as missing:
        read_json(path, what="run evaluation", fix="rerun it")
    assert isinstance(missing.value, FileNotFoundError) and isinstance(missing.value, InputError)
    assert read_json(path, missing_ok=True) is None

    path.write_text('{"evals": [1, 2')
    with pytest.raises(DamagedFileError) as damaged:
        read_json(path, what="run evaluation", fix="rerun it")
    message = str(damaged.value)
    assert isinstance(damaged.value, ValueError) and "\n" not in message
    assert message.startswith(f"{path}: run evaluation is damaged (") and message.endswith("; rerun it")

    path.write_text("")
    with pytest.raises(DamagedFileError, match="eval.json: JSON file is empty; restore it"):
        read_json(path)
    path.write_bytes(b'{"a": "\xff"}')  # not UTF-8
    with pytest.raises(DamagedFileError, match="is damaged"):
        read_json(path)
    path.write_text('{"a": 1}')
    assert read_json(path) == {"a": 1}


def test_tables_and_safetensors_damage_is_one_line(tmp_path: Path) -> None:
    import pandas as pd
    from safetensors.numpy import save_file

    table = tmp_path / "results.parquet"
    pd.DataFrame({"a": [1, 2]}).to_parquet(table)
    assert read_table(table)["a"].tolist() == [1, 2]
    table.write_bytes(table.read_bytes()[:-20])  # truncated: the footer is gone
    with pytest.raises(DamagedFileError, match=r"results\.parquet: results table is damaged \(.*\); rebuild"):
        read_table(table, what="results table", fix="rebuild")
    csv = tmp_path / "results.csv"
    csv.write_text("")
    with pytest.raises(DamagedFileError, match="results.csv: table is empty"):
        read_table(csv)

    weights = tmp_path / "w.safetensors"
    save_file({"x": np.arange(64, dtype=np.float32)}, str(weights), metadata={"format": "t"})
    tensors, meta = read_safetensors(weights, framework="numpy")
    assert meta == {"format": "t"} and tensors["x"].sum() == 2016
    assert read_safetensors_metadata(weights) == {"format": "t"}
    weights.write_bytes(weights.read_bytes()[:-8])  # truncated tensor data
    with pytest.raises(DamagedFileError, match=r"w\.safetensors: checkpoint is damaged \(.*\n?"):
        read_safetensors(weights, what="checkpoint")
    weights.write_bytes(b"\x00" * 3)
    with pytest.raises(DamagedFileError, match="w.safetensors: safetensors file is damaged"):
        read_safetensors_metadata(weights)


def test_damaged_shard_metadata_and_eval_set_fail_in_one_line_on_the_cli(tmp_path: Path) -> None:
    tok = train_tokenizer(["alpha beta gamma delta " * 50], 300, tmp_path / "tok.json")
    encode_corpus(["alpha beta", "gamma delta"], tok, tmp_path / "shard", progress=False)
    (tmp_path / "shard.json").write_text('{"dtype": "uint16", "vocab')
    with pytest.raises(DamagedFileError, match="token shard metadata is damaged"):
        read_shard_info(tmp_path / "shard")
    _one_line_error(run_cli("tokens", "info", str(tmp_path / "shard")), "shard.json", "token shard metadata",
                    "is damaged", "encode the corpus again")

    (tmp_path / "set.safetensors").write_bytes(b"garbage!")
    _one_line_error(run_cli("evaluate", str(tmp_path / "nothing"), "--eval-set", f"web={tmp_path / 'set'}"),
                    "no such run folder or checkpoint file", "nothing")
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    (tmp_path / "run" / "checkpoints" / "final.safetensors").write_bytes(b"garbage!")
    _one_line_error(run_cli("evaluate", str(tmp_path / "run"), "--eval-set", f"web={tmp_path / 'set'}"),
                    "set.safetensors: eval set is damaged")


# --- file modes -----------------------------------------------------------------------------------

@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_written_files_have_the_mode_a_plain_open_gives(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        write_json(tmp_path / "a.json", {"a": 1})
        atomic_write_bytes(tmp_path / "b.bin", b"x")
        write_documents(tmp_path / "c.jsonl.gz", [Document(id="1", text="one two three")])
        tok = train_tokenizer(["one two three four " * 20], 280, tmp_path / "tok.json")
        encode_corpus(tmp_path / "c.jsonl.gz", tok, tmp_path / "shard", progress=False)
        with open(tmp_path / "plain", "w") as f:
            f.write("x")
    finally:
        os.umask(old)
    want = stat.S_IMODE((tmp_path / "plain").stat().st_mode)
    assert want == 0o666 & ~umask
    for name in ("a.json", "b.bin", "c.jsonl.gz", "tok.json", "shard.bin", "shard.json"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == want, name
    # rewriting keeps the mode the file has, as open() would
    os.chmod(tmp_path / "a.json", 0o600)
    write_json(tmp_path / "a.json", {"a": 2})
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o600


# --- corpora with bytes that are not UTF-8 --------------------------------------------------------

def _bad_corpus(path: Path) -> Path:
    lines = [json.dumps({"id": str(i), "text": f"document number {i}"}).encode() for i in range(6)]
    lines[2] = b'{"id": "2", "text": "caf\xe9 latin-1"}'
    lines[4] = b'{"id": "4", "text": "\xff\xfe"}'
    data = b"\n".join(lines) + b"\n"
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return path


@pytest.mark.parametrize("name", ["bad.jsonl", "bad.jsonl.gz"])
def test_undecodable_lines_are_named_or_skipped_and_counted(tmp_path: Path, name: str) -> None:
    path = _bad_corpus(tmp_path / name)
    with pytest.raises(InputError, match=rf"{name}:3: not valid UTF-8 \(byte 25 of the line.*--skip-bad"):
        list(read_documents(path))
    stats = ReadStats()
    docs = list(read_documents(path, skip_bad=True, stats=stats))
    assert [d.id for d in docs] == ["0", "1", "3", "5"]
    assert stats.skipped == 2 and stats.skipped_where == [f"{path}:3", f"{path}:5"]


def test_corpus_stats_skip_bad_and_text_field_on_the_cli(tmp_path: Path) -> None:
    path = _bad_corpus(tmp_path / "bad.jsonl")
    _one_line_error(run_cli("corpus", "stats", str(path)), "bad.jsonl:3", "not valid UTF-8")
    res = run_cli("corpus", "stats", str(path), "--skip-bad", "--json")
    assert res.returncode == 0, res.stderr
    stats = json.loads(res.stdout)
    assert stats["documents"] == 4 and stats["skipped"] == 2 and stats["skipped_where"][0].endswith("bad.jsonl:3")

    other = tmp_path / "content.jsonl"
    other.write_text("".join(json.dumps({"key": f"k{i}", "content": "x" * i}) + "\n" for i in range(1, 4)))
    _one_line_error(run_cli("corpus", "stats", str(other)), "content.jsonl:1", "field 'text' must be a string")
    res = run_cli("corpus", "stats", str(other), "--text-field", "content", "--id-field", "key", "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["documents"] == 3 and json.loads(res.stdout)["bytes"] == 6
