"""Read and write corpora: jsonl, jsonl.gz, jsonl.zst, parquet, plain text, hf:// datasets.

Every reader yields :class:`Document` records lazily. A malformed record raises an
InputError naming the file and line; with ``skip_bad=True`` it is skipped and counted
in the :class:`ReadStats` passed in.
"""

from __future__ import annotations

import gzip
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Iterable, Iterator

from .._io import make_temp_beside, reading, sha256_file, stable_hash
from ..errors import InputError, MissingDependencyError
from .document import Document

JSONL_SUFFIXES = (".jsonl", ".jsonl.gz", ".jsonl.zst", ".json.gz", ".ndjson")
TEXT_SUFFIXES = (".txt", ".txt.gz")


@dataclass
class ReadStats:
    """Counts kept while reading: documents read and malformed records skipped."""

    read: int = 0
    skipped: int = 0
    skipped_where: list[str] = field(default_factory=list)

    def skip(self, where: str) -> None:
        """Record one skipped record (keeps the first 20 locations)."""
        self.skipped += 1
        if len(self.skipped_where) < 20:
            self.skipped_where.append(where)


def read_documents(source: str | os.PathLike, *, skip_bad: bool = False,
                   stats: ReadStats | None = None, text_field: str = "text",
                   id_field: str = "id", limit: int | None = None) -> Iterator[Document]:
    """Yield the documents of a corpus file, folder of files, or ``hf://`` dataset."""
    stats = stats if stats is not None else ReadStats()
    src = str(source)
    if src.startswith("hf://"):
        docs = _read_hf(src, skip_bad=skip_bad, stats=stats, text_field=text_field, id_field=id_field)
    else:
        path = Path(src)
        if path.is_dir():
            docs = _read_dir(path, skip_bad=skip_bad, stats=stats, text_field=text_field, id_field=id_field)
        elif not path.exists():
            raise InputError("no such file or folder", path=src)
        else:
            docs = _read_file(path, skip_bad=skip_bad, stats=stats, text_field=text_field, id_field=id_field)
    for i, doc in enumerate(docs):
        if limit is not None and i >= limit:
            return
        stats.read += 1
        yield doc


def corpus_format(path: Path) -> str:
    """The format name of a corpus file from its suffix: jsonl, parquet or text."""
    name = path.name.lower()
    if name.endswith(JSONL_SUFFIXES):
        return "jsonl"
    if name.endswith(".parquet"):
        return "parquet"
    if name.endswith(TEXT_SUFFIXES):
        return "text"
    raise InputError(
        "unknown corpus format: expected .jsonl, .jsonl.gz, .jsonl.zst, .parquet or .txt", path=str(path)
    )


def _read_dir(path: Path, **kw) -> Iterator[Document]:
    files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
    files = [p for p in files if _is_corpus_file(p)]
    if not files:
        raise InputError("folder holds no corpus files (.jsonl[.gz|.zst], .parquet, .txt)", path=str(path))
    for f in files:
        yield from _read_file(f, **kw)


def _is_corpus_file(p: Path) -> bool:
    try:
        corpus_format(p)
        return True
    except InputError:
        return False


def _read_file(path: Path, **kw) -> Iterator[Document]:
    fmt = corpus_format(path)
    if fmt == "jsonl":
        return _read_jsonl(path, **kw)
    if fmt == "parquet":
        return _read_parquet(path, **kw)
    return _read_text(path, **kw)


def open_text(path: Path, mode: str = "rt") -> IO[str]:
    """Open a possibly compressed (.gz, .zst) text file."""
    name = path.name.lower()
    if name.endswith(".gz"):
        if "r" in mode:
            return gzip.open(path, mode, encoding="utf-8")
        # no file name and mtime 0 in the header: the same documents give the same bytes
        raw = gzip.GzipFile(filename="", mode="wb", fileobj=open(path, "wb"), mtime=0)
        return _ClosingTextWrapper(raw)
    if name.endswith(".zst"):
        import zstandard

        if "r" in mode:
            raw = zstandard.ZstdDecompressor().stream_reader(open(path, "rb"))
            return io.TextIOWrapper(raw, encoding="utf-8")
        raw = zstandard.ZstdCompressor().stream_writer(open(path, "wb"))
        return io.TextIOWrapper(raw, encoding="utf-8")
    return open(path, mode, encoding="utf-8")


class _ClosingTextWrapper(io.TextIOWrapper):
    """A UTF-8 text wrapper over a GzipFile that also closes the file object underneath."""

    def __init__(self, gz: gzip.GzipFile):
        super().__init__(gz, encoding="utf-8")
        self._fileobj = gz.fileobj

    def close(self) -> None:
        super().close()
        if self._fileobj is not None and not self._fileobj.closed:
            self._fileobj.close()


def open_binary(path: Path) -> IO[bytes]:
    """Open a possibly compressed (.gz, .zst) file for reading bytes."""
    name = path.name.lower()
    if name.endswith(".gz"):
        return gzip.open(path, "rb")
    if name.endswith(".zst"):
        import zstandard

        return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(open(path, "rb"), closefd=True))
    return open(path, "rb")


def _decoded_lines(path: Path, *, skip_bad: bool, stats: ReadStats) -> Iterator[tuple[int, str]]:
    """(line number, text) of every line, each decoded as UTF-8 on its own: an undecodable line raises
    an InputError naming it, or with ``skip_bad`` is skipped and counted."""
    try:
        with open_binary(path) as f:
            for lineno, raw in enumerate(f, start=1):
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    if not skip_bad:
                        raise InputError(f"not valid UTF-8 (byte {e.start + 1} of the line: {e.reason}; use "
                                         "--skip-bad to skip such lines)", path=str(path), line=lineno) from None
                    stats.skip(f"{path}:{lineno}")
                    continue
                del raw  # a long line is not held twice while the reader works on it
                yield lineno, line
                del line
    except (OSError, EOFError) as e:
        raise InputError(f"cannot read: {e}", path=str(path)) from None
    except Exception as e:  # zstandard raises its own error type for a damaged frame
        if isinstance(e, InputError):
            raise
        raise InputError(f"cannot read: {e}", path=str(path)) from None


def _read_jsonl(path: Path, *, skip_bad: bool, stats: ReadStats, text_field: str, id_field: str) -> Iterator[Document]:
    for lineno, line in _decoded_lines(path, skip_bad=skip_bad, stats=stats):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            doc = Document.from_dict(record, text_field=text_field, id_field=id_field)
        except (json.JSONDecodeError, ValueError) as e:
            msg = e.msg if isinstance(e, json.JSONDecodeError) else str(e)
            if not skip_bad:
                raise InputError(f"malformed record: {msg} (use --skip-bad to skip such lines)",
                                 path=str(path), line=lineno) from None
            stats.skip(f"{path}:{lineno}")
            continue
        del line, record  # only the document stays alive while the caller works on it
        yield doc


def _read_parquet(path: Path, *, skip_bad: bool, stats: ReadStats, text_field: str,
                  id_field: str) -> Iterator[Document]:
    import pyarrow.parquet as pq

    fix = "replace the file (a parquet file cannot be read past damage; --skip-bad does not help)"
    with reading(path, "parquet corpus", fix):
        pf = pq.ParquetFile(path)
    if text_field not in pf.schema_arrow.names:
        raise InputError(f"parquet file has no '{text_field}' column", path=str(path))
    row = 0
    batches = pf.iter_batches(batch_size=1024)
    while True:
        with reading(path, "parquet corpus", fix):  # a damaged row group shows only when it is read
            batch = next(batches, None)
        if batch is None:
            break
        for record in batch.to_pylist():
            row += 1
            record = {k: v for k, v in record.items() if v is not None}  # columns absent in this row
            for key in ("meta", "sampling"):  # written as JSON strings by write_documents
                if isinstance(record.get(key), str):
                    try:
                        record[key] = json.loads(record[key])
                    except json.JSONDecodeError:
                        pass
            try:
                yield Document.from_dict(record, text_field=text_field, id_field=id_field,
                                         fallback_id=f"{path.stem}:{row}")
            except ValueError as e:
                if not skip_bad:
                    raise InputError(f"malformed row {row}: {e}", path=str(path)) from None
                stats.skip(f"{path}:row {row}")


def _read_text(path: Path, *, skip_bad: bool, stats: ReadStats, text_field: str, id_field: str) -> Iterator[Document]:
    """A plain text file: each block separated by blank lines is a document ``STEM:N``."""
    block: list[str] = []
    n = 0
    for _, line in _decoded_lines(path, skip_bad=skip_bad, stats=stats):
        if line.strip():
            block.append(line.rstrip("\r\n"))
        elif block:
            n += 1
            yield Document(id=f"{path.stem}:{n}", text="\n".join(block), source=str(path))
            block = []
    if block:
        n += 1
        yield Document(id=f"{path.stem}:{n}", text="\n".join(block), source=str(path))


def parse_hf_uri(uri: str) -> tuple[str, str | None, str]:
    """Split ``hf://ORG/NAME[/CONFIG][:SPLIT]`` into (name, config, split); split defaults to train."""
    body = uri[len("hf://"):]
    split = "train"
    if ":" in body:
        body, split = body.rsplit(":", 1)
    parts = [p for p in body.split("/") if p]
    if len(parts) == 1:
        return parts[0], None, split
    if len(parts) == 2:
        return "/".join(parts), None, split
    if len(parts) == 3:
        return "/".join(parts[:2]), parts[2], split
    raise InputError(f"bad dataset address '{uri}': expected hf://ORG/NAME[/CONFIG][:SPLIT]")


def _read_hf(uri: str, *, skip_bad: bool, stats: ReadStats, text_field: str, id_field: str) -> Iterator[Document]:
    """Stream a Hugging Face dataset. A local dataset folder works too (hf:///abs/path or hf://./path)."""
    try:
        import datasets
    except ImportError:
        raise MissingDependencyError("datasets", "hf") from None
    body = uri[len("hf://"):]
    local, _, local_split = body.partition(":")
    if local.startswith(("/", "./", "../")) and Path(local).exists():
        # a dataset folder on disk: the same streaming code path, no hub needed
        name, config, split = local, None, local_split or "train"
    else:
        name, config, split = parse_hf_uri(uri)
    try:
        ds = datasets.load_dataset(name, config, split=split, streaming=True)
    except Exception as e:  # datasets raises many types; report in one line
        raise InputError(f"cannot load dataset: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}",
                         path=uri) from None
    for row, record in enumerate(ds, start=1):
        try:
            doc = Document.from_dict(dict(record), text_field=text_field, id_field=id_field,
                                     fallback_id=f"{name}:{split}:{row}")
        except ValueError as e:
            if not skip_bad:
                raise InputError(f"malformed row {row}: {e}", path=uri) from None
            stats.skip(f"{uri}:row {row}")
            continue
        if doc.source is None:
            doc.source = uri
        yield doc


def write_documents(path: str | os.PathLike, docs: Iterable[Document]) -> int:
    """Write documents to a .jsonl[.gz|.zst] or .parquet file atomically; return the count."""
    path = Path(path)
    fmt = corpus_format(path)
    if fmt == "text":
        raise InputError("writing plain text loses ids; write .jsonl or .parquet", path=str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(make_temp_beside(path, suffix=path.name))  # the suffix keeps the format (.gz, .zst)
    n = 0
    try:
        if fmt == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            rows = []
            for doc in docs:
                d = doc.to_dict()
                d["meta"] = json.dumps(d.get("meta", {}), sort_keys=True)
                if "sampling" in d:
                    d["sampling"] = json.dumps(d["sampling"], sort_keys=True)
                rows.append(d)
            n = len(rows)
            columns = list(dict.fromkeys(k for row in rows for k in row))  # union, first-seen order
            empty = pa.table({"id": [], "text": []})
            table = pa.table({c: [row.get(c) for row in rows] for c in columns}) if rows else empty
            pq.write_table(table, tmp)
        else:
            with open_text(tmp, "wt") as f:
                for doc in docs:
                    f.write(json.dumps(doc.to_dict(), ensure_ascii=False, sort_keys=True) + "\n")
                    n += 1
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return n


def corpus_fingerprint(path: str) -> str:
    """A content hash of a corpus file or folder (the address string for hf:// sources)."""
    if path.startswith("hf://"):
        return stable_hash({"uri": path}, 16)
    p = Path(path)
    if not p.exists():
        raise InputError("no such file or folder", path=path)
    if p.is_file():
        return sha256_file(p)[:16]
    files = sorted(f for f in p.rglob("*") if f.is_file() and not f.name.startswith("."))
    return stable_hash({str(f.relative_to(p)): sha256_file(f) for f in files}, 16)
