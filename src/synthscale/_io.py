"""Small helpers shared by every stage: atomic writes, stable hashes, and reading files.

Reading: every JSON, parquet/csv table or safetensors file a stage reads goes through
``reading`` (via ``read_json``, ``read_table``, ``read_safetensors``,
``read_safetensors_metadata``), which turns a missing file into a MissingFileError and
a damaged one (truncated, corrupt, wrong format) into a DamagedFileError: one line that
names the file, says what is wrong and what to do. Both are InputErrors (the CLI prints
them and exits 2) and also FileNotFoundError / ValueError, for code that catches those.

Writing: ``atomic_target`` and the ``atomic_write_*`` helpers write a temp file beside
the target and rename it over the target; the result has the mode a plain ``open()``
would give (the old file's mode, else 0666 minus the umask), not mkstemp's 0600.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any, Iterator, TypeVar

T = TypeVar("T")

# What to do about a damaged or missing file, when the caller knows nothing better.
DEFAULT_FIX = "restore it, or delete it and rerun the command that wrote it"


def current_umask() -> int:
    """This process's umask (read from /proc where possible: no window where it is changed)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def plain_file_mode(path: str | os.PathLike) -> int:
    """The permission bits ``open(path, "w")`` would leave: the existing file's, else 0666 minus the umask."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return 0o666 & ~current_umask()


def make_temp_beside(path: str | os.PathLike, suffix: str = ".tmp") -> str:
    """A new empty temp file in ``path``'s folder, with the mode a plain open() of ``path`` would give."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    try:
        os.fchmod(fd, plain_file_mode(path))
    finally:
        os.close(fd)
    return tmp


@contextlib.contextmanager
def atomic_target(path: str | os.PathLike) -> Iterator[str]:
    """Yield a temp path beside ``path``; on success fsync it and move it over ``path``.

    Whatever writes the temp file (our code, safetensors, pyarrow), readers see either
    the old file or the complete new one; on failure the temp file is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = make_temp_beside(path)
    try:
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file in the same folder + os.replace)."""
    with atomic_target(path) as tmp, open(tmp, "wb") as f:
        f.write(data)


def dataclass_from_dict(cls: type[T], d: dict[str, Any]) -> T:
    """Build dataclass ``cls`` from a dict; unknown or missing fields raise ConfigError."""
    from .errors import ConfigError

    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ConfigError(f"{cls.__name__}: unknown field(s) {', '.join(unknown)}")
    try:
        return cls(**d)
    except TypeError as e:  # missing required fields
        raise ConfigError(f"{cls.__name__}: {e}") from None


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def to_json(obj: Any) -> str:
    """Canonical, human-readable JSON (sorted keys, 2-space indent, trailing newline)."""
    return json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False, default=_json_default) + "\n"


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as canonical JSON, atomically."""
    atomic_write_text(path, to_json(obj))


@contextlib.contextmanager
def reading(path: str | os.PathLike, what: str, fix: str | None = None) -> Iterator[Path]:
    """Read ``path`` (a ``what``, e.g. "eval set") inside the block; failures become one-line errors.

    A missing file raises MissingFileError, one that cannot be parsed DamagedFileError,
    both naming the file, what is wrong with it, and ``fix`` (what to do; DEFAULT_FIX
    when None). A SynthscaleError raised in the block passes unchanged. Keep the block
    to the reading itself, so that other mistakes are not blamed on the file.
    """
    from .errors import DamagedFileError, InputError, MissingFileError, SynthscaleError

    p = Path(path)
    hint = f"; {fix or DEFAULT_FIX}"
    if not p.exists():
        raise MissingFileError(f"{what} is missing{hint}", path=str(p))
    if p.is_dir():
        raise InputError(f"expected a {what} here, found a folder", path=str(p))
    try:
        yield p
    except SynthscaleError:
        raise
    except FileNotFoundError:  # removed while we read it
        raise MissingFileError(f"{what} is missing{hint}", path=str(p)) from None
    except PermissionError:
        raise InputError(f"cannot read the {what}: permission denied", path=str(p)) from None
    except (MemoryError, KeyboardInterrupt):
        raise
    except Exception as e:  # every parser has its own error types: json, pyarrow, pandas, safetensors
        problem = "is empty" if _is_empty(p) else f"is damaged ({_first_line(e)})"
        raise DamagedFileError(f"{what} {problem}{hint}", path=str(p)) from None


def read_json(path: str | os.PathLike, *, what: str = "JSON file", fix: str | None = None,
              missing_ok: bool = False) -> Any:
    """The content of a JSON file (None when it is absent and ``missing_ok``); see ``reading``."""
    if missing_ok and not os.path.lexists(path):
        return None
    with reading(path, what, fix) as p:
        return json.loads(p.read_bytes())


def read_table(path: str | os.PathLike, *, what: str = "table", fix: str | None = None):
    """A .csv or .parquet file as a pandas DataFrame; see ``reading``."""
    import pandas as pd

    with reading(path, what, fix) as p:
        if p.name.lower().endswith(".parquet"):
            return pd.read_parquet(p)
        return pd.read_csv(p)


def read_safetensors(path: str | os.PathLike, *, what: str = "safetensors file", fix: str | None = None,
                     framework: str = "pt") -> tuple[dict[str, Any], dict[str, str]]:
    """(tensors by name, metadata) of a safetensors file (``framework`` pt or numpy); see ``reading``."""
    from safetensors import safe_open

    with reading(path, what, fix) as p, safe_open(str(p), framework=framework) as f:
        metadata = dict(f.metadata() or {})
        return {name: f.get_tensor(name) for name in f.keys()}, metadata


def read_safetensors_metadata(path: str | os.PathLike, *, what: str = "safetensors file",
                              fix: str | None = None) -> dict[str, str]:
    """The metadata of a safetensors file (its header only is read); see ``reading``."""
    from safetensors import safe_open

    with reading(path, what, fix) as p, safe_open(str(p), framework="pt") as f:
        return dict(f.metadata() or {})


def _is_empty(path: Path) -> bool:
    try:
        return path.stat().st_size == 0
    except OSError:
        return False


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    line = text.splitlines()[0] if text else type(e).__name__
    return line if len(line) <= 200 else line[:197] + "..."


def stable_hash(obj: Any, length: int = 12) -> str:
    """A short sha256 hex digest of the canonical JSON of ``obj`` (stable across runs)."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=_json_default)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:length]


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Full sha256 hex digest of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _json_default(o: Any) -> Any:
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "item"):  # numpy scalars
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    if hasattr(o, "model_dump"):
        return o.model_dump()
    if hasattr(o, "__dataclass_fields__"):
        from dataclasses import asdict

        return asdict(o)
    raise TypeError(f"not JSON serializable: {type(o).__name__}")
