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
import hashlib
import io
import itertools
import lzma
import os
import stat
import sys
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import IO, Any, Protocol

from auditor.errors import LogInputError

try:  # pragma: no cover - optional accelerators
    from isal import isal_zlib as _isal_zlib
except ImportError:  # pragma: no cover
    _isal_zlib = None  # type: ignore[assignment]
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
    #: Named by the user (a file, '-'), not found in a directory, glob or ``sql:``.
    explicit: bool = True
    #: The format its first lines show (decided when a directory or glob is planned).
    detected: str | None = None
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


class Damaged(Exception):
    """The compressed data of a source is cut short or corrupt (``trailing``: only
    bytes after its end are not compressed data; everything before was returned)."""

    def __init__(self, reason: str, *, trailing: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.trailing = trailing


_CODEC_NAMES = {"gzip": "gzip", "bz2": "bzip2", "xz": "xz", "zstd": "zstd"}
_MAGIC_OF = {name: magic for magic, name in _MAGIC}
#: Compressed bytes fed per step, and decompressed bytes taken per step.
_IN_CHUNK = 256 * 1024
_OUT_CHUNK = 4 * 1024 * 1024


class _Decoded:
    """The decompressed bytes of a gzip, bzip2, xz or zstd file, member after member.

    The codecs' file objects lose data on damage (:class:`gzip.GzipFile` drops the
    last ~16 KB when garbage follows the data, :class:`lzma.LZMAFile` returns
    nothing of a truncated file, a truncated zstd frame just ends), so this reads
    with the decompressor objects: every byte that can be recovered is returned,
    then :class:`Damaged` says what went wrong.  Concatenated members (``cat
    a.gz b.gz``, pbzip2, multi-stream xz) are read one after the other; zero
    padding after the last one is ignored, as gzip does.
    """

    def __init__(self, raw: Any, codec: str) -> None:
        self.raw = raw
        self.codec = codec
        self.dec: Any = self._new()
        self.fed = 0  # compressed bytes fed to the current member
        self.pending = b""
        self.out = bytearray()
        self.done = False
        self.error: Damaged | None = None
        self.between = False  # a member ended: what follows decides
        self.total_in = 0

    def _new(self) -> Any:
        if self.codec == "gzip":
            if _isal_zlib is not None:
                return _isal_zlib.decompressobj(31)
            return zlib.decompressobj(31)
        if self.codec == "bz2":
            return bz2.BZ2Decompressor()
        if self.codec == "xz":
            return lzma.LZMADecompressor()
        if self.codec == "zstd":
            if _zstd is None:
                raise LogInputError(
                    "zstd-compressed log: install the 'zstandard' package (pip install zstandard)"
                )
            return _zstd.ZstdDecompressor().decompressobj()
        raise LogInputError(f"unknown compression {self.codec}")

    def _fail(self, reason: str, *, trailing: bool = False) -> None:
        self.error = Damaged(reason, trailing=trailing)
        self.done = True

    def _step(self) -> None:
        name = _CODEC_NAMES[self.codec]
        if not self.pending and self._needs_input():
            data = self.raw.read(_IN_CHUNK)
            if not data:
                if not self.between and self.fed:
                    self._fail(
                        f"the {name} data ends early (the file is cut short: copied or "
                        f"compressed while it was written, or damaged) after "
                        f"{self.total_in} compressed bytes"
                    )
                self.done = True
                return
            self.pending = data
        if self.between:
            rest = self.pending.lstrip(b"\x00")
            if not rest:
                self.pending = b""  # zero padding after the last member
                return
            if not rest.startswith(_MAGIC_OF[self.codec]):
                self._fail(
                    f"bytes after the end of the {name} data are not {name} data "
                    "(ignored; everything before them was read)",
                    trailing=True,
                )
                return
            self.pending, self.between, self.dec, self.fed = rest, False, self._new(), 0
        data, self.pending = self.pending, b""
        self.fed += len(data)
        self.total_in += len(data)
        try:
            if self.codec == "gzip":
                got = self.dec.decompress(data, _OUT_CHUNK)
                self.pending = self.dec.unconsumed_tail
            elif self.codec == "zstd":
                got = self.dec.decompress(data)
            else:
                got = self.dec.decompress(data, max_length=_OUT_CHUNK)
        except Exception as exc:  # zlib.error, IsalError, LZMAError, ZstdError, OSError...
            # Whatever the codec raises on bytes it cannot decode is damage to report.
            self._fail(f"the {name} data is corrupt after {self.total_in} compressed bytes ({exc})")
            return
        self.out += got
        if self.dec.eof:
            unused = bytes(self.dec.unused_data)
            self.total_in -= len(unused) + len(self.pending)
            self.pending = unused + self.pending
            self.between = True

    def _needs_input(self) -> bool:
        if self.between or self.codec in ("gzip", "zstd"):
            return True
        return bool(getattr(self.dec, "needs_input", True))

    def read(self, size: int = -1, /) -> bytes:
        want = _OUT_CHUNK if size is None or size < 0 else size
        while len(self.out) < want and not self.done:
            self._step()
        if not self.out and self.error is not None:
            error, self.error = self.error, None
            raise error
        data = bytes(self.out[:want])
        del self.out[:want]
        return data

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.raw.close()


def _decompressor(fh: Any, compression: str | None) -> RawStream:
    if compression is None:
        return fh  # type: ignore[no-any-return]
    return _Decoded(fh, compression)


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
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except OSError as exc:
        raise LogInputError(
            f"{directory}: cannot list the directory ({exc.strerror or exc})"
        ) from None
    out = []
    for entry in entries:
        try:
            if entry.name.startswith(".") or not entry.is_file():
                continue
        except OSError:
            pass  # cannot stat it: reading it says why
        out.append(entry.path)
    return out


def _stdin_source(stream: Any = None) -> LogSource:
    raw = stream if stream is not None else sys.stdin.buffer
    # A buffer as large as detection's head, so the format is decided before reading.
    raw = io.BufferedReader(raw, buffer_size=65536)
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
        if pattern and rows and not any(fnmatch.fnmatch(r[0], pattern) for r in rows):
            raise LogInputError(
                f"sql:{pattern}: no file of the server's log directory matches {pattern!r} "
                f"({len(rows)} file(s) there, e.g. {sorted(r[0] for r in rows)[0]!r})"
            )
        if not rows:
            raise LogInputError(
                f"sql:{pattern}: the server's log directory is empty (is logging_collector on?)"
            )
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
                    explicit=False,
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


@dataclass(frozen=True)
class Skipped:
    """A file that is not read, and why.

    ``kind`` is ``error`` (it could not be read: scan exits 2, reconcile counts a
    gap), ``refused`` (it is no PostgreSQL server log, e.g. PgBouncer's: an error
    when named by the user, a note when found in a directory) or ``duplicate`` (the
    same log as another file, in another format: the server writes stderr, csvlog
    and jsonlog at once; one is read).
    """

    name: str
    reason: str
    kind: str
    explicit: bool = False

    def __str__(self) -> str:
        return self.reason


class SourceList(list[LogSource]):
    """The sources to read, in order, and the files left out (:attr:`skipped`)."""

    def __init__(self, items: Sequence[LogSource] = (), skipped: Sequence[Skipped] = ()) -> None:
        super().__init__(items)
        self.skipped: list[Skipped] = list(skipped)


#: Which format of one log is read when a server writes several (structured first).
PREFERRED = ("jsonlog", "csvlog", "cnpg", "cloudsql", "stderr", "syslog", "logplex")


def open_sources(
    specs: Sequence[str],
    *,
    dsn: str | None = None,
    fmt: str = "auto",
    stdin: Any = None,
    log_timezone: str | None = None,
) -> SourceList:
    """Expand ``--log`` specs into sources, in the order they should be read.

    Each file is read in its own format.  Globs and directories expand to their
    files in time order (their first record's time, placed in ``log_timezone``;
    else their mtime).  Files that are not PostgreSQL server logs (PgBouncer's,
    an unrelated ``.csv``) and files that hold the same log as another in a
    second format (a server writing stderr, csvlog and jsonlog at once: the same
    name, another extension, the same first time) are left out and listed in
    :attr:`SourceList.skipped` with the reason; with ``fmt`` given, files of other
    formats are left out of directories and globs too.
    """
    out = SourceList()
    if not specs:
        raise LogInputError("no log given (--log FILE, DIR, GLOB, '-' or 'sql:')")
    for spec in specs:
        if spec == "-":
            out.append(_stdin_source(stdin))
            continue
        if spec.startswith("sql:"):
            out.extend(_plan(_sql_sources(dsn, spec[4:]), fmt, out.skipped, spec, log_timezone))
            continue
        if os.path.isdir(spec):
            paths = _dir_files(spec)
            if not paths:
                raise LogInputError(f"{spec}: directory holds no log files")
            out.extend(_plan(_found(paths, out.skipped), fmt, out.skipped, spec, log_timezone))
            continue
        if any(ch in spec for ch in "*?["):
            matches = sorted(p for p in glob.glob(spec) if os.path.isfile(p))
            if not matches:
                raise LogInputError(f"{spec}: no file matches")
            out.extend(_plan(_found(matches, out.skipped), fmt, out.skipped, spec, log_timezone))
            continue
        if not os.path.exists(spec):
            raise LogInputError(f"{spec}: no such file or directory")
        out.append(_file_source(spec))
    if len(specs) > 1:
        drop_named_twice(out, log_timezone)
    return out


def drop_named_twice(sources: SourceList, tz: str | None) -> None:
    """Drop a file that more than one ``--log`` spec names (a directory and a file in it,
    overlapping globs), and a file that holds, in another format, the same log as a file of
    another spec in the same directory.

    Read twice, every statement would be two statements, and the second copy of each
    a DDL that no audit row explains: a false critical from a typing slip.  Kept: the
    first one named, or, for two formats, the one :data:`PREFERRED` ranks first (as
    within a directory).
    """
    from auditor.logs.detect import _first_lines, first_time, vote_format

    kept: list[LogSource] = []
    files: dict[tuple[int, int], LogSource] = {}
    for src in sources:
        if src.kind == "file" and src.path is not None:
            try:
                st = os.stat(src.path)
            except OSError:
                kept.append(src)  # the reader reports it
                continue
            first = files.get((st.st_dev, st.st_ino))
            if first is not None:
                sources.skipped.append(
                    Skipped(
                        src.name,
                        f"{src.name}: the same file as {first.name}, named twice in --log: "
                        "read once",
                        "duplicate",
                    )
                )
                continue
            files[(st.st_dev, st.st_ino)] = src
        kept.append(src)
    facts: dict[int, tuple[str, float | None]] = {}
    for i, src in enumerate(kept):
        if src.kind != "file" or src.path is None:
            continue
        fmt = src.detected
        try:
            head = peek(src, 65536)
        except (Damaged, LogInputError):
            continue
        if fmt is None:
            fmt = vote_format(_first_lines(head, 50), src.hint).fmt
        when = first_time(head, fmt, tz)
        facts[i] = (fmt, when.timestamp() if when is not None else None)
    rank = {f: i for i, f in enumerate(PREFERRED)}
    dropped: set[int] = set()
    for i, j in itertools.combinations(sorted(facts), 2):
        a, b = kept[i], kept[j]
        (fa, ta), (fb, tb) = facts[i], facts[j]
        if (
            i in dropped
            or j in dropped
            or fa == fb
            or a.path is None
            or b.path is None
            or os.path.dirname(os.path.abspath(a.path)) != os.path.dirname(os.path.abspath(b.path))
            or stem(a.name) != stem(b.name)
            or (ta is not None and tb is not None and abs(ta - tb) > 60)
        ):
            continue
        first_wins = rank.get(fa, 99) <= rank.get(fb, 99)
        keep, drop, fk, fd = (a, j, fa, fb) if first_wins else (b, i, fb, fa)
        dropped.add(drop)
        sources.skipped.append(
            Skipped(
                kept[drop].name,
                f"{kept[drop].name}: the same log as {keep.name} (read as {fk}), "
                f"not read again as {fd}",
                "duplicate",
            )
        )
    sources[:] = [s for i, s in enumerate(kept) if i not in dropped]


def _found(paths: Sequence[str], skipped: list[Skipped]) -> list[LogSource]:
    """Sources for the files of a directory or glob; unreadable ones are skipped errors."""
    out = []
    for path in paths:
        try:
            out.append(replace(_file_source(path), explicit=False))
        except LogInputError as exc:
            skipped.append(Skipped(path, str(exc), "error"))
    return out


def stem(name: str) -> str:
    """A log file's name without its format and compression extensions (the rotation
    number stays): files of one rotation of the same log share it.

    >>> stem("postgresql-2026-11-26.csv.gz"), stem("postgresql.log.1"), stem("pg.json")
    ('postgresql-2026-11-26', 'postgresql.1', 'pg')
    """
    base = os.path.basename(name)
    for ext in _COMPRESSED_SUFFIXES:
        if base.endswith(ext):
            base = base[: -len(ext)]
    parts = [p for p in base.split(".") if p not in ("log", "csv", "json")]
    return ".".join(parts) or base


def _plan(
    sources: list[LogSource], fmt: str, skipped: list[Skipped], spec: str, tz: str | None
) -> list[LogSource]:
    """The files of one directory, glob or ``sql:`` spec that are read, in time order."""
    from auditor.logs.detect import _first_lines, first_time, refusal, vote_format

    seen: list[tuple[LogSource, str, bytes]] = []
    order: dict[str, int] = {}
    for index, src in enumerate(sources):
        try:
            head = peek(src, 65536)
        except Damaged:
            head = b""  # the reader reports the damage where it is
        except LogInputError as exc:
            skipped.append(Skipped(src.name, str(exc), "error"))
            continue
        vote = vote_format(_first_lines(head, 50), src.hint)
        why = refusal(vote, src.name)
        if why is not None:
            skipped.append(Skipped(src.name, why, "refused"))
            continue
        if fmt != "auto" and vote.fmt != fmt and head:
            skipped.append(
                Skipped(
                    src.name, f"{src.name}: a {vote.fmt} log, not {fmt} (--log-format)", "refused"
                )
            )
            continue
        seen.append((replace(src, detected=vote.fmt), vote.fmt, head))
        order[seen[-1][0].name] = index
    timed: list[tuple[float | None, LogSource, str]] = []
    for src, f, head in seen:
        when = first_time(head, f, tz)
        timed.append((when.timestamp() if when is not None else None, src, f))
    rank = {f: i for i, f in enumerate(PREFERRED)}
    kept: list[tuple[float | None, LogSource, str]] = []
    for t, src, f in sorted(timed, key=lambda e: rank.get(e[2], 99)):
        twin = next(
            (
                k
                for k in kept
                if k[2] != f
                and stem(k[1].name) == stem(src.name)
                and (t is None or k[0] is None or abs(k[0] - t) <= 60)
            ),
            None,
        )
        if twin is not None:
            skipped.append(
                Skipped(
                    src.name,
                    f"{src.name}: the same log as {twin[1].name} (read as {twin[2]}), "
                    f"not read again as {f}",
                    "duplicate",
                )
            )
            continue
        kept.append((t, src, f))
    if not kept and not any(s.kind == "error" for s in skipped):
        reasons = "; ".join(s.reason for s in skipped[-3:])
        raise LogInputError(f"{spec}: holds no PostgreSQL server log ({reasons})")
    if spec.startswith("sql:"):
        kept.sort(key=lambda k: order.get(k[1].name, 0))
        return [s for _, s, _ in kept]
    kept.sort(key=lambda k: ((k[0] if k[0] is not None else (k[1].mtime or 0.0)), k[1].name))
    return [s for _, s, _ in kept]


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


__all__ = [
    "Damaged",
    "LogSource",
    "RawStream",
    "Skipped",
    "SourceList",
    "compression_of",
    "format_hint",
    "open_sources",
    "peek",
    "stem",
]
