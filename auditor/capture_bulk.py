"""Audit rows read in bulk: one COPY into Arrow columns, digests built from the columns.

A night's million audit rows cost about 28 us each to read one fetched tuple at a
time (psycopg's per-row loading, the digest's text built in Python, the
AuditEvent), in the process that also runs the log stream and the matcher.  Here
``COPY (SELECT ...) TO STDOUT (FORMAT csv)`` (``capture_copy_events.sql``: the rows,
columns and bounds of ``capture_read_events.sql``) is cut into batches at row ends,
each batch is parsed by Arrow's CSV reader into columns, each row's canonical digest
text (:mod:`auditor.digest`) is built by Arrow compute kernels and only hashed in
Python, repeated values are shared through dictionary encoding, and the AuditEvents
are built from the columns in one ``map``.

The digest is the trust property (a marker's ``digest=`` against the row), so a batch
is read here only when the columns give exactly what the row reader would have read:
text columns in UTF-8 (or a SQL_ASCII database's bytes, lengths in bytes, text kept
with ``surrogateescape`` as :func:`auditor.encoding.register_sql_ascii` reads it),
timestamps in the digest's own form from year 1000 to 9999, no NULL where the table
has NOT NULL.  For any other batch :func:`read_events` stops and says after which id
the row reader must go on (``capture.read_audit_events`` does, in the same
transaction); a connection whose client encoding is neither is not read here at all.

``AUDITOR_AUDIT_READ``: ``row`` (the row reader alone), ``copy`` or ``auto`` (the
default: ``copy`` where pyarrow is installed).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import re
from collections.abc import Callable, Generator, Mapping
from datetime import datetime, tzinfo
from functools import cache
from itertools import repeat
from typing import TYPE_CHECKING, Any

from auditor.digest import ROW_DIGEST_PREFIX
from auditor.encoding import is_sql_ascii
from auditor.model import AuditEvent

if TYPE_CHECKING:
    import psycopg

#: Bytes of COPY text parsed at once (a batch ends at a row end): bounds the memory a batch
#: takes (its bytes, its columns, what Arrow's pool keeps of them) while keeping Arrow's
#: per-call costs small.  Measured on 137,150 rows (bench/audit_read.py): peak RSS of the
#: reading process 342 MB at 4 MB (worker), 380 MB at 16 MB; the same CPU per row.
BATCH_BYTES = 4 * 1024 * 1024

#: Seconds without a batch from the worker after which it is taken for stuck (a batch
#: is one BATCH_BYTES of COPY, well under a second on a live server): it is stopped and
#: the reading process reads on from the last row it got, in the same snapshot.
WORKER_SILENCE = 120.0

#: An audit table smaller than this (its file, ``pg_relation_size``) is read in the
#: reading process: starting a worker (a forkserver, then a fork of it) costs more than
#: the rows of a small table (13,715 rows take ~10 MB).
WORKER_TABLE_BYTES = 32 * 1024 * 1024

#: The columns of ``capture_copy_events.sql`` and ``capture_read_events.sql``, in order.
COLUMNS = (
    "id", "event", "command_tag", "objects_json", "query", "caller_context", "statement_time",
    "clock_time", "session_user_name", "current_user_name", "login_user_name", "database_name",
    "client_addr", "client_port", "server_addr", "server_port", "application_name",
    "backend_pid", "session_id", "vxid", "xid", "row_xmin",
)  # fmt: skip
_INT_COLUMNS = ("id", "client_port", "server_port", "backend_pid", "xid", "row_xmin")
_TIME_COLUMNS = ("statement_time", "clock_time")
_NOT_NULL = ("id", "event", "command_tag", "objects_json", "statement_time", "clock_time",
             "session_user_name", "current_user_name", "database_name", "backend_pid",
             "session_id", "xid", "row_xmin")  # fmt: skip
#: The digest's fields in table order (``objects`` goes fourth, see auditor.digest): every
#: column but the row's xmin, which no digest can hold.
_DIGEST_COLUMNS = tuple(c for c in COLUMNS if c != "row_xmin")
#: A timestamp as the SQL writes it: ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` and the era.
_TIME_TEXT_LEN = 29
#: AuditEvent's fields in the order the columns are handed to it (positional).
_EVENT_FIELDS = (
    "schema", "id", "event", "command_tag", "objects", "query", "statement_time",
    "clock_time", "session_user", "current_user", "login_user", "database", "client_addr",
    "client_port", "server_addr", "server_port", "application_name", "backend_pid",
    "session_id", "vxid", "xid", "row_xmin", "digest", "objects_json", "caller_context",
)  # fmt: skip


def available() -> str | None:
    """Why the bulk reader cannot run here (a missing wheel), or None."""
    try:
        import pyarrow
        import pyarrow.compute
        import pyarrow.csv  # noqa: F401
    except ImportError as exc:  # pragma: no cover - depends on the installed wheels
        return f"{exc.name} is not installed"
    return None


def prepare() -> None:
    """Import what the reader imports lazily, in the calling thread, before any other
    thread reads: a process forked later (the log scan's workers) must not inherit a
    lock that a reading thread held at that moment (pyarrow's pandas shim imports
    pandas under one, on first use)."""
    if available() is not None:
        return
    import pyarrow.lib

    with contextlib.suppress(Exception):  # an internal of pyarrow's: best effort
        _ = pyarrow.lib._pandas_api.have_pandas


def engine() -> str:
    """The audit row reader in use: ``copy`` or ``row`` (see the module docstring)."""
    wanted = os.environ.get("AUDITOR_AUDIT_READ", "auto").strip().lower() or "auto"
    if wanted in ("auto", "copy") and available() is None:
        return "copy"
    return "row"


def describe() -> str:
    """One line for ``auditor --version``: the audit row reader and, for rows, why.

    >>> describe().startswith("audit row reader: ")
    True
    """
    missing = available()
    if engine() == "copy":
        return "audit row reader: COPY into columns (pyarrow)"
    why = f"{missing}: pure-Python fallback" if missing else "AUDITOR_AUDIT_READ=row"
    return f"audit row reader: one row at a time ({why})"


def usable(conn: psycopg.Connection[Any]) -> bool:
    """Whether this connection's rows can be read here (engine and client encoding)."""
    if engine() != "copy":
        return False
    return is_sql_ascii(conn) or conn.info.encoding == "utf-8"


def read_events(
    conn: psycopg.Connection[Any],
    query: str,
    params: Mapping[str, Any],
    schema: str,
    *,
    shared: Callable[[Any], Any],
) -> Generator[AuditEvent, None, int | None]:
    """The rows of ``query`` (``capture_copy_events.sql``) as AuditEvents, in id order.

    Returns (as the generator's value) None when every row was read, else the id of
    the last row yielded (``params["after_id"]`` for none): the row reader goes on
    after it.  ``shared`` maps a value to the one object kept for it
    (``capture._Rows.same``).
    """
    byte_lengths = is_sql_ascii(conn)
    build = _Builder(schema, byte_lengths, _zone(conn), shared)
    last_id: int = int(params["after_id"])
    batches = _copy_batches(conn, query, params)
    try:
        for data in batches:
            batch = _columns(data, byte_lengths)
            if batch is None:
                return last_id
            events = build(batch)
            yield from events
            if events:
                last_id = events[-1].id
    finally:
        batches.close()  # drains the stream: the connection reads on after the COPY
    return None


def _copy_batches(
    conn: psycopg.Connection[Any], query: str, params: Mapping[str, Any]
) -> Generator[bytes, None, None]:
    """The COPY stream in pieces of whole rows of about BATCH_BYTES."""
    with conn.cursor() as cur, cur.copy(query, params) as copy:
        buf = bytearray()
        try:
            for data in copy:
                buf += data
                # COPY's text format escapes newlines in values: a line end is a row end.
                if len(buf) >= BATCH_BYTES and buf[-1:] == b"\n":
                    yield bytes(buf)
                    buf.clear()
            if buf:
                yield bytes(buf)
        except GeneratorExit:
            for _ in copy:  # drain: the connection reads on after the COPY
                pass
            raise


def read_in_worker(
    conn: psycopg.Connection[Any],
    query: str,
    params: Mapping[str, Any],
    schema: str,
    *,
    shared: Callable[[Any], Any],
    dsn: str,
    role: str | None,
) -> Generator[AuditEvent, None, tuple[str, int] | None]:
    """:func:`read_events` with the COPY, parsing and digests in a worker process.

    The reading process only turns the worker's Arrow batches (IPC) into AuditEvents,
    so its GIL stays with the log stream and the matcher.  ``conn`` must be in a
    transaction of its own (not a savepoint): the worker (``dsn``, ``SET ROLE role``)
    reads in the snapshot ``conn`` exports, so it sees exactly the rows ``conn`` would.
    Returns None when every row was read, else ``(reader, after_id)``: ``"copy"``
    when the worker could not run or stopped (the caller reads on itself, and meets
    any real error itself), or ``"rows"`` for a batch the columns cannot read exactly.
    """
    import multiprocessing

    from psycopg import sql

    last_id: int = int(params["after_id"])
    # A server that revoked it from PUBLIC: read here, as before (an error would end the
    # transaction).  Not in a savepoint: a subtransaction cannot export its snapshot.
    may = conn.execute(
        "SELECT pg_catalog.has_function_privilege('pg_catalog.pg_export_snapshot()', 'EXECUTE'),"
        " pg_catalog.pg_relation_size(%s::regclass)",
        (f"{sql.Identifier(schema).as_string(None)}.events",),
    ).fetchone()
    if not (may and may[0]) or int(may[1] or 0) < WORKER_TABLE_BYTES:
        return ("copy", last_id)
    got = conn.execute("SELECT pg_catalog.pg_export_snapshot()").fetchone()
    snapshot = str(got[0]) if got else ""
    byte_lengths = is_sql_ascii(conn)
    build = _Builder(schema, byte_lengths, _zone(conn), shared)
    # Not fork: this runs in a thread while others hold locks (pyarrow's, importlib's)
    # that a forked child would wait for forever.  The forkserver imports the main
    # module as spawn does: one it cannot import (a script read from stdin) makes the
    # worker fail, and the rows are read here.
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["auditor.capture_bulk"])
    receive, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(
        target=_worker,
        args=(send, dsn, role, snapshot, query, dict(params), byte_lengths),
        name="auditor-audit-rows",
        daemon=True,
    )
    proc.start()
    send.close()
    try:
        while True:
            waited = 0.0
            while not receive.poll(1.0):
                waited += 1.0
                if not proc.is_alive() or waited >= WORKER_SILENCE:
                    return ("copy", last_id)  # died, or stuck: this process reads on
            try:
                message = receive.recv_bytes()
            except (EOFError, OSError):
                return ("copy", last_id)  # the worker died
            kind, body = message[:1], memoryview(message)[1:]  # no copy of a batch
            if kind == b"B":
                import pyarrow as pa

                batch = pa.ipc.open_stream(pa.py_buffer(body)).read_next_batch()
                events = build(batch)
                yield from events
                if events:
                    last_id = events[-1].id
            elif kind == b"D":
                return None
            elif kind == b"R":
                return ("rows", last_id)
            else:  # b"E": any failure of the worker's own connection
                return ("copy", last_id)
    finally:
        receive.close()
        proc.join(timeout=5)
        if proc.is_alive():
            proc.terminate()
            proc.join()


def _worker(
    send: Any,
    dsn: str,
    role: str | None,
    snapshot: str,
    query: str,
    params: dict[str, Any],
    byte_lengths: bool,
) -> None:
    """The worker process: COPY in the parent's snapshot, columns and digests, sent as IPC."""
    import pyarrow as pa
    from psycopg import sql

    from auditor.db import connect

    try:
        with connect(dsn, application_name="auditor reconcile") as conn:
            if role:
                conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
            if is_sql_ascii(conn) != byte_lengths:
                raise ValueError("not the parent's database")
            with conn.transaction():
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot)))
                batches = _copy_batches(conn, query, params)
                for data in batches:
                    batch = _columns(data, byte_lengths)
                    if batch is None:
                        batches.close()
                        send.send_bytes(b"R")
                        return
                    sink = pa.BufferOutputStream()
                    with pa.ipc.new_stream(sink, batch.schema) as writer:
                        writer.write_batch(batch)
                    send.send_bytes(b"B" + sink.getvalue().to_pybytes())
        send.send_bytes(b"D")
    except Exception as exc:  # the parent reads on itself and meets a real error there
        with contextlib.suppress(OSError):  # a parent that stopped reading
            send.send_bytes(b"E" + str(exc).encode("utf-8", "replace"))
    finally:
        with contextlib.suppress(OSError):
            send.close()


def _zone(conn: psycopg.Connection[Any]) -> tzinfo:
    """The zone psycopg gives the datetimes it loads on this connection (its TimeZone)."""
    from psycopg._tz import get_tzinfo

    return get_tzinfo(conn.pgconn)


@cache
def _event_maker() -> Callable[..., AuditEvent]:
    """AuditEvent(*fields) without the frozen dataclass's ``__init__`` (half its cost).

    The frozen ``__init__`` sets each of the 26 fields through ``object.__setattr__``;
    this sets them through the slots' own descriptors, in the same order, with the same
    values (``tests/test_capture_bulk.py`` compares both).
    """
    every = dataclasses.fields(AuditEvent)
    fields = [f.name for f in every]
    later = every[len(_EVENT_FIELDS) :]
    if fields[: len(_EVENT_FIELDS)] != list(_EVENT_FIELDS) or any(
        f.default is dataclasses.MISSING for f in later
    ):
        raise AssertionError("AuditEvent's fields changed: update capture_bulk._EVENT_FIELDS")
    rest = {f.name: f.default for f in later}
    namespace: dict[str, Any] = {"new": object.__new__, "cls": AuditEvent}
    for name in fields:
        namespace[f"set_{name}"] = getattr(AuditEvent, name).__set__
    for name, default in rest.items():
        namespace[f"default_{name}"] = default
    body = "".join(f"    set_{n}(o, {n})\n" for n in _EVENT_FIELDS)
    body += "".join(f"    set_{n}(o, default_{n})\n" for n in rest)
    source = f"def make({', '.join(_EVENT_FIELDS)}):\n    o = new(cls)\n{body}    return o\n"
    exec(source, namespace)  # generated from the dataclass's own field names
    maker: Callable[..., AuditEvent] = namespace["make"]
    return maker


#: COPY's text format escapes (``CopyAttributeOutText``): a backslash, the control
#: characters it names, and nothing else.
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)
_ESCAPE_BYTES = re.compile(rb"\\(.)", re.DOTALL)
_UNESCAPED = {"\\": "\\", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}
_UNESCAPED_BYTES = {k.encode(): v.encode() for k, v in _UNESCAPED.items()}


class _Unknown(Exception):
    """An escape COPY does not write: the batch goes to the row reader."""


def _unescape(value: Any) -> Any:
    r"""A text (or, for SQL_ASCII, bytes) value of COPY's text format, unescaped.

    >>> _unescape(r"a\nb\\n\tc") == "a\nb\\n\tc", _unescape(rb"x\\y") == b"x\\y"
    (True, True)
    """
    if isinstance(value, bytes):
        table: Mapping[Any, Any] = _UNESCAPED_BYTES
        pattern: re.Pattern[Any] = _ESCAPE_BYTES
    else:
        table, pattern = _UNESCAPED, _ESCAPE

    def one(m: re.Match[Any]) -> Any:
        got = table.get(m.group(1))
        if got is None:
            raise _Unknown(m.group(0))
        return got

    return pattern.sub(one, value)


def _columns(data: bytes, byte_lengths: bool) -> Any:
    """Whole COPY lines as one Arrow batch with each row's digest, or None when the
    columns cannot give exactly what the row reader would (see the module docstring).

    Text columns unescaped (string, or binary for SQL_ASCII), integers as int64,
    timestamps as the digest's text, and a ``digest`` column.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pcsv

    text_type = pa.binary() if byte_lengths else pa.string()
    try:
        table = pcsv.read_csv(
            pa.py_buffer(data),
            read_options=pcsv.ReadOptions(column_names=list(COLUMNS), use_threads=False),
            parse_options=pcsv.ParseOptions(
                delimiter="\t", quote_char=False, escape_char=False, newlines_in_values=False
            ),
            convert_options=pcsv.ConvertOptions(
                column_types={c: text_type for c in COLUMNS},
                strings_can_be_null=True,
                null_values=["\\N"],
            ),
        ).combine_chunks()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    cols: dict[str, Any] = {c: table.column(c).chunk(0) for c in COLUMNS}
    if any(cols[c].null_count for c in _NOT_NULL):
        return None
    ints: dict[str, Any] = {}
    times: dict[str, Any] = {}
    try:
        for c in COLUMNS:
            if c in _INT_COLUMNS or c in _TIME_COLUMNS:
                continue
            escaped = pc.match_substring(cols[c], "\\")
            if pc.any(escaped).as_py():
                fixed = [_unescape(v) for v in cols[c].filter(escaped).to_pylist()]
                cols[c] = pc.replace_with_mask(cols[c], escaped, pa.array(fixed, text_type))
        for c in _INT_COLUMNS:
            ints[c] = pc.cast(pc.cast(cols[c], pa.string()), pa.int64())
        for c in _TIME_COLUMNS:
            raw = pc.cast(cols[c], pa.string())
            lengths = pc.utf8_length(raw)
            if pc.min(lengths).as_py() != _TIME_TEXT_LEN or pc.max(lengths).as_py() != (
                _TIME_TEXT_LEN
            ):
                return None
            if not pc.all(pc.ends_with(raw, "ZAD")).as_py():
                return None  # BC
            text = pc.utf8_slice_codeunits(raw, 0, _TIME_TEXT_LEN - 2)
            if pc.any(pc.starts_with(text, "0")).as_py():
                return None  # before year 1000: strftime's unpadded %Y (auditor.digest)
            times[c] = text
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, _Unknown):
        return None

    def field(c: str) -> Any:
        """``enc()`` of one digest field for every row: ``~`` or ``<length>:<text>``."""
        if c in ints:
            value = pc.cast(pc.cast(ints[c], pa.string()), text_type)
        elif c in times:
            value = pc.cast(times[c], text_type)
        else:
            value = cols[c]
        length = pc.binary_length(value) if byte_lengths else pc.utf8_length(value)
        joined = pc.binary_join_element_wise(
            pc.cast(pc.cast(length, pa.string()), text_type), value, pa.scalar(":", text_type)
        )
        return pc.fill_null(joined, pa.scalar("~", text_type))

    prefix = pa.scalar(ROW_DIGEST_PREFIX, text_type)
    try:
        canonical = pc.binary_join_element_wise(
            prefix, *(field(c) for c in _DIGEST_COLUMNS), pa.scalar("", text_type)
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    sha = hashlib.sha256
    digests = [sha(b).hexdigest() for b in pc.cast(canonical, pa.binary()).to_pylist()]
    out = {c: ints.get(c, times.get(c, cols[c])) for c in COLUMNS}
    out["digest"] = pa.array(digests, pa.string())
    return pa.RecordBatch.from_pydict(out)


class _Builder:
    """AuditEvents from :func:`_columns` batches: the Python side of the bulk reader."""

    def __init__(
        self, schema: str, byte_lengths: bool, zone: tzinfo, shared: Callable[[Any], Any]
    ) -> None:
        self.schema = schema
        self.byte_lengths = byte_lengths
        self.zone = zone
        self.shared = shared
        self.make = _event_maker()

    def __call__(self, batch: Any) -> list[AuditEvent]:
        import pyarrow.compute as pc

        byte_lengths, zone, shared = self.byte_lengths, self.zone, self.shared
        cols = {c: batch.column(c) for c in (*COLUMNS, "digest")}

        decode: Callable[[Any], Any] | None = None
        if byte_lengths:

            def decode(v: Any) -> Any:
                return None if v is None else v.decode("utf-8", "surrogateescape")

        def values(
            c: str, share: bool = True, convert: Callable[[Any], Any] | None = None
        ) -> list[Any]:
            """A column as Python values; each distinct value one object (dictionary encoding)."""
            arr = cols[c]
            encoded = pc.dictionary_encode(arr)
            distinct = encoded.dictionary.to_pylist()
            if decode is not None and c not in _INT_COLUMNS and c not in _TIME_COLUMNS:
                distinct = [decode(v) for v in distinct]
            if convert is not None:
                distinct = [convert(v) for v in distinct]
            if share:
                distinct = [None if v is None else shared(v) for v in distinct]
            distinct.append(None)
            index = pc.fill_null(encoded.indices, len(distinct) - 1).to_pylist()
            return list(map(distinct.__getitem__, index))

        def plain(c: str) -> list[Any]:
            """A column whose values are mostly distinct, as Python values."""
            out: list[Any] = cols[c].to_pylist()
            if decode is not None and c not in _INT_COLUMNS:
                out = [decode(v) for v in out]
            return out

        def to_time(text: str) -> datetime:
            return datetime.fromisoformat(text).astimezone(zone)

        from auditor.capture import AuditObjects

        objects_json = plain("objects_json")
        clock = [to_time(t) for t in cols["clock_time"].to_pylist()]
        return list(
            map(
                self.make,
                repeat(self.schema),
                plain("id"),
                values("event"),
                values("command_tag"),
                map(AuditObjects, objects_json),
                values("query", share=False),
                values("statement_time", share=False, convert=to_time),
                clock,
                values("session_user_name"),
                values("current_user_name"),
                values("login_user_name"),
                values("database_name"),
                values("client_addr"),
                values("client_port"),
                values("server_addr"),
                values("server_port"),
                values("application_name"),
                values("backend_pid"),
                values("session_id", share=False),
                values("vxid", share=False),
                plain("xid"),
                plain("row_xmin"),
                cols["digest"].to_pylist(),
                objects_json,
                values("caller_context"),
            )
        )
