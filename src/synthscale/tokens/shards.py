"""Token shards: ``NAME.bin`` (token ids, each document followed by EOS) + ``NAME.json``.

The .bin holds the ids of all documents concatenated, each followed by the EOS id, as
uint16 when the vocabulary has fewer than 65536 ids, else uint32. The .json holds dtype,
vocab_size, eos_id, tokenizer_hash, n_tokens, n_docs, sha256 (of the .bin),
source_bytes (UTF-8 bytes of the source texts) and provenance (source paths, doc count).

Encoding streams the corpus in chunks through the tokenizer's batch encoder, so no whole
corpus is ever in memory. Both files are written to temp names and renamed; the .json
goes last and marks a complete shard. Shards are read back as read-only numpy memmaps.
"""

from __future__ import annotations

import hashlib
import itertools
import os
from collections.abc import Callable, Iterable, Iterator, Sized
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from .._io import make_temp_beside, read_json, sha256_file, write_json
from ..corpus import Document, read_documents
from ..errors import InputError
from ..progress import progress_bar
from .tokenizer import PIECE_CHARS, Tok, load_tokenizer

SHARD_FORMAT = "synthscale.token_shard/1"
CHUNK_DOCS = 1024  # documents per encode_batch call
CHUNK_BYTES = 1 << 20  # ... or fewer, once their text reaches this many characters (memory: about 150 x this)


@dataclass(frozen=True)
class ShardInfo:
    """The metadata of one token shard (the content of ``NAME.json``)."""

    prefix: Path
    dtype: str
    vocab_size: int
    eos_id: int
    tokenizer_hash: str
    n_tokens: int
    n_docs: int
    sha256: str
    source_bytes: int
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def bin_path(self) -> Path:
        """The token file."""
        return self.prefix.with_name(self.prefix.name + ".bin")

    @property
    def json_path(self) -> Path:
        """The metadata file."""
        return self.prefix.with_name(self.prefix.name + ".json")

    def to_meta(self) -> dict[str, Any]:
        """The JSON form written to ``NAME.json``."""
        meta = asdict(self)
        meta.pop("prefix")
        return {"format": SHARD_FORMAT, **meta}


def shard_dtype(vocab_size: int) -> np.dtype:
    """uint16 for vocabularies below 65536 ids, else uint32."""
    return np.dtype(np.uint16 if vocab_size < 65536 else np.uint32)


def shard_prefix(path: str | os.PathLike) -> Path:
    """The shard prefix of ``NAME``, ``NAME.bin`` or ``NAME.json``."""
    p = Path(path)
    return p.with_suffix("") if p.suffix in (".bin", ".json") else p


def encode_corpus(docs: str | os.PathLike | Iterable[Document | str], tok: Tok | str | os.PathLike,
                  out_prefix: str | os.PathLike, progress: bool = True, *,
                  sources: list[str] | None = None) -> ShardInfo:
    """Encode documents into the shard ``out_prefix``.bin/.json and return its metadata.

    ``docs`` is a corpus path (file, folder or hf:// address, read with read_documents)
    or an iterable of Documents or texts. ``tok`` is a Tok or its path. ``sources``
    names where an iterable came from, for the provenance; a path names itself.
    """
    tok = load_tokenizer(tok)
    total = len(docs) if isinstance(docs, Sized) and not isinstance(docs, (str, os.PathLike)) else None
    if isinstance(docs, (str, os.PathLike)):
        sources = [str(docs)] if sources is None else sources
        docs = read_documents(docs)
    prefix = shard_prefix(out_prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    tmp_name = make_temp_beside(prefix.with_name(prefix.name + ".bin"), suffix=".bin.tmp")
    try:
        with (open(tmp_name, "wb") as out,
              progress_bar(f"encode {prefix.name}", total, enabled=progress, unit="docs") as advance):
            counts = _write_tokens(docs, tok, out, advance)
        info = ShardInfo(prefix=prefix, dtype=shard_dtype(tok.vocab_size).name, vocab_size=tok.vocab_size,
                         eos_id=tok.eos_id, tokenizer_hash=tok.hash, **counts,
                         provenance={"sources": sources or [], "n_docs": counts["n_docs"]})
        info.json_path.unlink(missing_ok=True)  # never leave an old .json describing the new .bin
        os.replace(tmp_name, info.bin_path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    write_json(info.json_path, info.to_meta())
    return info


def read_shard_info(prefix: str | os.PathLike) -> ShardInfo:
    """Read and validate ``NAME.json``; the shard must be complete."""
    prefix = shard_prefix(prefix)
    info_path = prefix.with_name(prefix.name + ".json")
    if not info_path.is_file():
        raise InputError("no shard metadata: the shard is missing or its encoding did not finish",
                         path=str(info_path))
    meta = read_json(info_path, what="token shard metadata",
                     fix="encode the corpus again (a study's prepare step does so by itself)")
    if not isinstance(meta, dict):
        raise InputError("shard metadata must be a JSON object", path=str(info_path))
    expected = {"dtype": str, "vocab_size": int, "eos_id": int, "tokenizer_hash": str, "n_tokens": int,
                "n_docs": int, "sha256": str, "source_bytes": int, "provenance": dict}
    for name, kind in expected.items():
        if not isinstance(meta.get(name), kind) or isinstance(meta.get(name), bool):
            raise InputError(f"field '{name}' must be {kind.__name__}, got {meta.get(name)!r}", path=str(info_path))
    if meta["dtype"] not in ("uint16", "uint32"):
        raise InputError(f"field 'dtype' must be uint16 or uint32, got {meta['dtype']!r}", path=str(info_path))
    return ShardInfo(prefix=prefix, **{name: meta[name] for name in expected})


def open_shard(prefix: str | os.PathLike, *, verify: bool = False) -> tuple[np.ndarray, dict[str, Any]]:
    """The shard's tokens as a read-only memmap and its metadata dict.

    The .bin size is always checked against n_tokens; ``verify`` also checks its sha256
    (reads the whole file once, in chunks).
    """
    info = read_shard_info(prefix)
    dtype = np.dtype(info.dtype)
    if not info.bin_path.is_file():
        raise InputError("shard token file is missing", path=str(info.bin_path))
    size = info.bin_path.stat().st_size
    if size != info.n_tokens * dtype.itemsize:
        raise InputError(f"token file has {size} bytes, metadata says {info.n_tokens} {info.dtype} tokens",
                         path=str(info.bin_path))
    if verify and sha256_file(info.bin_path) != info.sha256:
        raise InputError("token file sha256 does not match its metadata", path=str(info.bin_path))
    meta = info.to_meta()
    if info.n_tokens == 0:  # numpy cannot memmap an empty file
        return np.zeros(0, dtype=dtype), meta
    return np.memmap(info.bin_path, dtype=dtype, mode="r"), meta


def _write_tokens(docs: Iterable[Document | str], tok: Tok, out: BinaryIO,
                  advance: Callable[[float], None]) -> dict[str, Any]:
    """Encode ``docs`` chunk by chunk into ``out``; return n_tokens, n_docs, source_bytes, sha256."""
    dtype = shard_dtype(tok.vocab_size)
    sha = hashlib.sha256()
    n_tokens = n_docs = source_bytes = 0
    for texts in _chunks(docs):
        if len(texts) == 1 and len(texts[0]) > PIECE_CHARS:  # a long document: written piece by piece
            pieces = (np.asarray(ids, dtype=dtype) for ids in tok.encode_pieces(texts[0]))
            arrays = itertools.chain(pieces, [np.asarray([tok.eos_id], dtype=dtype)])
        else:
            arrays = iter([_with_eos(tok.encode_batch(texts), tok.eos_id, dtype)])
        for array in arrays:
            data = array.tobytes()
            out.write(data)
            sha.update(data)
            n_tokens += len(array)
        n_docs += len(texts)
        source_bytes += sum(_utf8_length(t) for t in texts)
        advance(len(texts))
    out.flush()
    os.fsync(out.fileno())
    return {"n_tokens": n_tokens, "n_docs": n_docs, "source_bytes": source_bytes, "sha256": sha.hexdigest()}


def _chunks(docs: Iterable[Document | str]) -> Iterator[list[str]]:
    """Texts in lists of at most CHUNK_DOCS documents or about CHUNK_BYTES characters."""
    chunk: list[str] = []
    size = 0
    for doc in docs:
        text = doc.text if isinstance(doc, Document) else doc
        if not isinstance(text, str):
            raise InputError(f"expected a Document or str, got {type(doc).__name__}")
        if len(text) > PIECE_CHARS:  # alone, so that it is encoded in pieces
            if chunk:
                yield chunk
                chunk, size = [], 0
            yield [text]
            continue
        chunk.append(text)
        size += len(text)
        if len(chunk) >= CHUNK_DOCS or size >= CHUNK_BYTES:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


def _utf8_length(text: str, block: int = 1 << 20) -> int:
    """UTF-8 bytes of ``text``, without encoding a long text at once."""
    if len(text) <= block:
        return len(text.encode("utf-8"))
    return sum(len(text[i:i + block].encode("utf-8")) for i in range(0, len(text), block))


def _with_eos(batch: list[list[int]], eos_id: int, dtype: np.dtype) -> np.ndarray:
    """The documents' ids concatenated, each followed by ``eos_id``."""
    total = sum(len(ids) for ids in batch) + len(batch)
    eos = (eos_id,)
    flat = itertools.chain.from_iterable(itertools.chain(ids, eos) for ids in batch)
    return np.fromiter(flat, dtype=dtype, count=total)
