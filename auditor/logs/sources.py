"""Where log bytes come from: files, globs, directories, stdin, and the server over SQL.

A spec given by the user (``--log``) becomes one or more :class:`LogSource`:

* a file (plain, ``.gz``, ``.bz2``, ``.xz``, or ``.zst`` when ``zstandard`` is
  installed; compression is recognised by its magic bytes, not the name),
* a glob or a directory: every log file in it, rotated files in time order
  (by their first record's timestamp, which is right for ``postgresql.log.1``
  style names as well as for ``postgresql-%Y%m%d.log``),
* ``-``: standard input (read once),
* ``sql:`` or ``sql:PATTERN``: the server's log directory read through
  ``pg_ls_logdir()`` and ``pg_read_binary_file()``, for servers whose file
  system is out of reach (needs ``--dsn`` and a role allowed to call them).

:meth:`LogSource.open` returns a stream of *decompressed* bytes, optionally
from an offset, so every reader sees the same bytes whatever the container.
Memory stays bounded: everything is read in chunks.
"""

from __future__ import annotations

import bz2
import contextlib
import fnmatch
import glob
import gzip
import hashlib
import io
import lzma
import os
import stat
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import IO, Any, Protocol

from auditor.errors import LogInputError

try:  # pragma: no cover - optional accelerators
    from isal import igzip as _igzip
except ImportError:  # pragma: no cover
    _igzip = None  # type: ignore[assignment]
try:  # pragma: no cover
    import zstandard as _zstd
except ImportError:  # pragma: no cover
    _zstd = None  # type: ignore[assignment]

HEAD_HASH_BYTES = 4096
SQL_CHUNK = 8 * 1024 * 1024

_MAGIC = (
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bz2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
)
_FORMAT_BY_SUFFIX = {".csv": "csvlog", ".json": "jsonlog", ".log": "stderr"}
_COMPRESSED_SUFFIXES = (".gz", ".bz2", ".xz", ".zst")


def compression_of(head: bytes) -> str | None:
    """The compression a file's first bytes announce, or None for plain data.

    >>> compression_of(b"\\x1f\\x8b\\x08\\x00"), compression_of(b"2026-11-26 ")
    ('gzip', None)
    """
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    return None


def format_hint(name: str) -> str | None:
    """The format a file name suggests (``postgresql.csv.1.gz`` -> ``csvlog``).

    >>> format_hint("postgresql-2026-11-26.csv.gz"), format_hint("pg.json.3"), format_hint("x")
    ('csvlog', 'jsonlog', None)
    """
    base = name
    for _ in range(3):
        stem, ext = os.path.splitext(base)
        if ext in _COMPRESSED_SUFFIXES or ext.lstrip(".").isdigit():
            base = stem
            continue
        return _FORMAT_BY_SUFFIX.get(ext)
    return None


class RawStream(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class LogSource:
    """One log file (or stdin, or a file read over SQL), ready to be opened.

    ``name`` is how messages refer to it; ``inode``/``size``/``head_hash``
    identify the file for incremental runs (size and hash are of the stored,
    possibly compressed, bytes; offsets are always in decompressed bytes).
    """

    name: str
    kind: str  # "file", "stdin" or "sql"
    path: str | None = None
    compression: str | None = None
    hint: str | None = None
    size: int | None = None
    inode: int | None = None
    mtime: float | None = None
    head_hash: str | None = None
    dsn: str | None = field(default=None, repr=False, compare=False)
    _stdin: Any = field(default=None, repr=False, compare=False)

    @property
    def seekable(self) -> bool:
        """Plain files can be split and resumed by offset without re-reading."""
        return self.kind == "file" and self.compression is None

    def open(self, start_offset: int = 0) -> RawStream:
        """A stream of the decompressed bytes, positioned at ``start_offset``."""
        if self.kind == "stdin":
            stream = self._stdin if self._stdin is not None else sys.stdin.buffer
            raw: RawStream = _decompressor(stream, self.compression)
            _skip(raw, start_offset)
            return raw
        if self.kind == "sql":
            sql_stream: RawStream = _SqlFileStream(self)
            raw = _decompressor(sql_stream, self.compression)
            _skip(raw, start_offset)
            return raw
        assert self.path is not None
        try:
            fh: IO[bytes] = open(self.path, "rb")  # noqa: SIM115 - returned to the caller
        except OSError as exc:
            raise LogInputError(f"{self.name}: cannot open ({exc.strerror})") from None
        if self.compression is None:
            fh.seek(start_offset)
            return fh
        raw = _decompressor(fh, self.compression)
        _skip(raw, start_offset)
        return raw


def _skip(stream: RawStream, count: int) -> None:
    while count > 0:
        data = stream.read(min(count, 8 * 1024 * 1024))
        if not data:
            return
        count -= len(data)


def _decompressor(fh: Any, compression: str | None) -> RawStream:
    if compression is None:
        return fh  # type: ignore[no-any-return]
    if compression == "gzip":
        if _igzip is not None:
            return _igzip.IGzipFile(fileobj=fh, mode="rb")  # type: ignore[no-untyped-call]
        return gzip.GzipFile(fileobj=fh, mode="rb")
    if compression == "bz2":
        return bz2.BZ2File(fh, "rb")
    if compression == "xz":
        return lzma.LZMAFile(fh, "rb")
    if compression == "zstd":
        if _zstd is None:
            raise LogInputError(
                "zstd-compressed log: install the 'zstandard' package (pip install zstandard)"
            )
        return _zstd.ZstdDecompressor().stream_reader(fh)
    raise LogInputError(f"unknown compression {compression}")


# -- local files ------------------------------------------------------------------


def _file_source(path: str, display: str | None = None) -> LogSource:
    try:
        st = os.stat(path)
    except OSError as exc:
        raise LogInputError(f"{display or path}: cannot read ({exc.strerror})") from None
    if not stat.S_ISREG(st.st_mode):
        raise LogInputError(f"{display or path}: not a regular file")
    try:
        with open(path, "rb") as fh:
            head = fh.read(HEAD_HASH_BYTES)
    except OSError as exc:
        raise LogInputError(f"{display or path}: cannot read ({exc.strerror})") from None
    return LogSource(
        name=display or path,
        kind="file",
        path=path,
        compression=compression_of(head),
        hint=format_hint(os.path.basename(path)),
        size=st.st_size,
        inode=st.st_ino,
        mtime=st.st_mtime,
        head_hash=hashlib.sha256(head).hexdigest(),
    )


def _dir_files(directory: str) -> list[str]:
    out = []
    for entry in sorted(os.scandir(directory), key=lambda e: e.name):
        if entry.name.startswith(".") or not entry.is_file():
            continue
        out.append(entry.path)
    return out


def _stdin_source(stream: Any = None) -> LogSource:
    raw = stream if stream is not None else sys.stdin.buffer
    if not isinstance(raw, io.BufferedReader):
        raw = io.BufferedReader(raw)
    head = raw.peek(8)[:8]
    return LogSource(name="-", kind="stdin", compression=compression_of(head), _stdin=raw)


# -- the server's log directory over SQL ----------------------------------------------


def _sql_sources(dsn: str | None, pattern: str) -> list[LogSource]:
    if not dsn:
        raise LogInputError("sql: log sources need a server connection (--dsn)")
    import psycopg

    from auditor.db import connect, describe_dsn, sql_text

    with connect(dsn, application_name="auditor-logs") as conn:
        try:
            rows = conn.execute(sql_text("log_ls.sql")).fetchall()
        except psycopg.Error as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise LogInputError(
                f"{describe_dsn(dsn)}: cannot list the log directory with pg_ls_logdir() "
                f"({reason}); grant pg_monitor or run as superuser"
            ) from None
        sources = []
        for name, size, modified in rows:
            if pattern and not fnmatch.fnmatch(name, pattern):
                continue
            head = _sql_read(conn, name, 0, HEAD_HASH_BYTES)
            sources.append(
                LogSource(
                    name=f"sql:{name}",
                    kind="sql",
                    path=name,
                    compression=compression_of(head),
                    hint=format_hint(name),
                    size=int(size),
                    mtime=modified.timestamp() if modified else None,
                    head_hash=hashlib.sha256(head).hexdigest(),
                    dsn=dsn,
                )
            )
    return sources


def _sql_read(conn: Any, name: str, offset: int, length: int) -> bytes:
    import psycopg

    from auditor.db import sql_text

    try:
        params = {"name": name, "offset": offset, "length": length}
        row = conn.execute(sql_text("log_read.sql"), params).fetchone()
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise LogInputError(
            f"sql:{name}: cannot read with pg_read_binary_file() ({reason}); "
            "grant pg_read_server_files or run as superuser"
        ) from None
    return bytes(row[0]) if row and row[0] is not None else b""


class _SqlFileStream:
    """Reads a server log file in chunks with ``pg_read_binary_file()``."""

    def __init__(self, source: LogSource) -> None:
        from auditor.db import connect

        assert source.dsn is not None and source.path is not None
        self.source = source
        self.conn = connect(source.dsn, application_name="auditor-logs")
        self.offset = 0
        self.buffer = b""
        self.eof = False

    def read(self, size: int = -1, /) -> bytes:
        want = SQL_CHUNK if size is None or size < 0 else size
        while len(self.buffer) < want and not self.eof:
            assert self.source.path is not None
            chunk = _sql_read(self.conn, self.source.path, self.offset, max(want, SQL_CHUNK))
            if not chunk:
                self.eof = True
                break
            self.offset += len(chunk)
            self.buffer += chunk
        out, self.buffer = self.buffer[:want], self.buffer[want:]
        return out

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()


# -- putting it together ----------------------------------------------------------------


def open_sources(
    specs: Sequence[str],
    *,
    dsn: str | None = None,
    fmt: str = "auto",
    stdin: Any = None,
    log_timezone: str | None = None,
) -> list[LogSource]:
    """Expand ``--log`` specs into sources, in the order they should be read.

    Globs and directories expand to their files in time order (their first
    record's time, placed in ``log_timezone``; else their mtime); when a
    directory or glob holds several formats of the same log (a server
    writing stderr, csvlog and jsonlog at once), only one format is kept:
    ``fmt`` when given, else jsonlog, then csvlog, then stderr.
    """
    out: list[LogSource] = []
    if not specs:
        raise LogInputError("no log given (--log FILE, DIR, GLOB, '-' or 'sql:')")
    for spec in specs:
        if spec == "-":
            out.append(_stdin_source(stdin))
            continue
        if spec.startswith("sql:"):
            out.extend(
                _pick_format(_sql_sources(dsn, spec[4:]), fmt, ordered=True, tz=log_timezone)
            )
            continue
        if os.path.isdir(spec):
            files = [_file_source(p) for p in _dir_files(spec)]
            if not files:
                raise LogInputError(f"{spec}: directory holds no log files")
            out.extend(_pick_format(files, fmt, ordered=False, tz=log_timezone))
            continue
        if any(ch in spec for ch in "*?["):
            matches = sorted(p for p in glob.glob(spec) if os.path.isfile(p))
            if not matches:
                raise LogInputError(f"{spec}: no file matches")
            out.extend(
                _pick_format(
                    [_file_source(p) for p in matches], fmt, ordered=False, tz=log_timezone
                )
            )
            continue
        if not os.path.exists(spec):
            raise LogInputError(f"{spec}: no such file or directory")
        out.append(_file_source(spec))
    return out


def _pick_format(
    sources: list[LogSource], fmt: str, *, ordered: bool, tz: str | None = None
) -> list[LogSource]:
    """Keep one format of a multi-format directory and put rotated files in time order."""
    from auditor.logs.detect import detect_format, first_time

    detected: list[tuple[LogSource, str]] = []
    for src in sources:
        head = peek(src, 65536)
        detected.append((src, detect_format(head, src.hint)))
    formats = {f for _, f in detected}
    if fmt != "auto":
        keep = fmt
    else:
        keep = next((f for f in ("jsonlog", "csvlog", "stderr") if f in formats), "stderr")
    chosen = [(s, f) for s, f in detected if f == keep]
    if ordered:
        return [s for s, _ in chosen]
    keyed = []
    for src, f in chosen:
        t = first_time(peek(src, 65536), f, tz)
        keyed.append(((t.timestamp() if t is not None else src.mtime or 0.0), src.name, src))
    keyed.sort(key=lambda k: (k[0], k[1]))
    return [replace(s, hint=s.hint or keep) for _, _, s in keyed]


def peek(source: LogSource, size: int) -> bytes:
    """The first ``size`` decompressed bytes (stdin is peeked without consuming it)."""
    if source.kind == "stdin":
        raw = source._stdin
        data: bytes = raw.peek(size)[:size] if raw is not None else b""
        if source.compression is not None:
            return b""  # cannot peek into a compressed pipe without consuming it
        return data
    stream = source.open(0)
    try:
        return stream.read(size)
    finally:
        stream.close()


def iter_chunks(stream: RawStream, size: int) -> Iterator[bytes]:
    """Fixed-size reads until the end of the stream."""
    while True:
        data = stream.read(size)
        if not data:
            return
        yield data


__all__ = ["LogSource", "RawStream", "compression_of", "format_hint", "open_sources", "peek"]
