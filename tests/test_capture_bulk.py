"""The bulk audit row reader (COPY into columns, in-process and in a worker) against the
row reader: the same AuditEvents, field for field and digest for digest, on rows an
intruder may write (escapes, control characters, non-BMP text, NULL addresses, numbers
with fractions in ``objects``, years before 1000), in any session TimeZone, and a
batch it cannot read exactly handed to the row reader in the middle of a read.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from conftest import TestDB

from auditor import capture, capture_bulk
from auditor.db import connect
from auditor.digest import event_fields, fields_digest
from auditor.model import AuditEvent

READERS = ("row", "copy", "worker")


def _read(db: TestDB, reader: str, monkeypatch: pytest.MonkeyPatch, **kw: Any) -> list[Any]:
    monkeypatch.setenv("AUDITOR_AUDIT_READ", "row" if reader == "row" else "copy")
    monkeypatch.setattr(capture_bulk, "WORKER_TABLE_BYTES", 0)  # a worker for small tables too
    worker = (db.dsn(), None) if reader == "worker" else None
    with connect(db.dsn()) as conn:
        if kw.pop("timezone", None):
            conn.execute("SET TimeZone = 'America/St_Johns'")  # -03:30 / -02:30
        return list(capture.read_audit_events(conn, worker=worker, **kw))


def _tamper(db: TestDB, change: str) -> None:
    """Lift the append-only protection in the catalog, change the rows, put it back."""
    db.run("UPDATE pg_trigger SET tgenabled = 'D' WHERE tgname = 'events_append_only'")
    try:
        db.run(change)
    finally:
        db.run("UPDATE pg_trigger SET tgenabled = 'A' WHERE tgname = 'events_append_only'")


@pytest.fixture
def rows_db(db: TestDB) -> Iterator[TestDB]:
    capture.install(db.dsn(), databases=[db.name])
    db.run("CREATE TABLE plain (a int)")
    db.run('CREATE TABLE "tab\tand\\back" (a int)')
    db.run("CREATE TABLE crème (brûlée text DEFAULT '😀 €')")
    db.run("DO $$ BEGIN EXECUTE 'CREATE TABLE in_do (a int)'; END $$")
    db.run("CREATE TABLE multi (a int);\nCREATE INDEX ON multi (a);\r\n-- end")
    db.run("DROP TABLE plain")
    yield db


@pytest.fixture
def batches(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """What the in-process bulk reader did with each batch: ("ok" | "rows", first id)."""
    calls: list[tuple[str, int]] = []
    real = capture_bulk._columns

    def spy(data: bytes, byte_lengths: bool) -> Any:
        got = real(data, byte_lengths)
        calls.append(("ok" if got is not None else "rows", int(data.split(b"\t", 1)[0])))
        return got

    monkeypatch.setattr(capture_bulk, "_columns", spy)
    return calls


def _assert_same(got: dict[str, list[Any]], byte_lengths: bool = False) -> None:
    base = got["row"]
    assert base
    for reader, events in got.items():
        assert events == base, reader
        assert [repr(e) for e in events] == [repr(e) for e in base], reader
        again = [fields_digest(event_fields(e), e.objects_json, byte_lengths=byte_lengths)
                 for e in events]  # fmt: skip
        assert [e.digest for e in events] == again, reader


def test_every_reader_gives_the_same_events(
    rows_db: TestDB, monkeypatch: pytest.MonkeyPatch, batches: list[tuple[str, int]]
) -> None:
    _assert_same({r: _read(rows_db, r, monkeypatch) for r in READERS})
    _assert_same({r: _read(rows_db, r, monkeypatch, timezone=True) for r in READERS})
    since = _read(rows_db, "row", monkeypatch)[2].statement_time
    _assert_same({r: _read(rows_db, r, monkeypatch, since=since) for r in READERS})
    _assert_same({r: _read(rows_db, r, monkeypatch, after_id=3) for r in READERS})
    assert {r: _read(rows_db, r, monkeypatch, until=since.replace(year=2000)) for r in READERS} == {
        r: [] for r in READERS
    }
    assert batches and all(kind == "ok" for kind, _ in batches)  # the columns read them all


def test_rows_an_intruder_wrote_read_the_same_and_digest_the_same(
    rows_db: TestDB, monkeypatch: pytest.MonkeyPatch, batches: list[tuple[str, int]]
) -> None:
    _tamper(
        rows_db,
        "UPDATE auditor.events SET"
        " query = E'a\\\\b\\tc\\rd\\x01e\\x7f\\\\N \\\\' || query,"
        " caller_context = E'line\\nline', application_name = '', login_user_name = NULL,"
        " client_addr = NULL, server_addr = '10.1.2.3/8', client_port = NULL,"
        ' objects = \'[{"x": 1.50, "objid": 1e3, "in_extension": true, "s": "\\\\u00e9\\\\t"}]\''
        " WHERE id % 2 = 0",
    )
    _assert_same({r: _read(rows_db, r, monkeypatch) for r in READERS})
    assert batches == [("ok", 1)]  # in the columns, not handed to the row reader


def test_a_batch_the_columns_cannot_read_goes_to_the_row_reader(
    rows_db: TestDB, monkeypatch: pytest.MonkeyPatch, batches: list[tuple[str, int]]
) -> None:
    # A year before 1000 is written by the digest without padding (strftime): the
    # columns hand that batch, and all after it, to the row reader.
    _tamper(rows_db, "UPDATE auditor.events SET clock_time = '0999-05-06 07:08:09+00' WHERE id = 4")
    monkeypatch.setattr(capture_bulk, "BATCH_BYTES", 1)  # one row per batch
    got = {r: _read(rows_db, r, monkeypatch) for r in READERS}
    _assert_same(got)
    assert got["row"][3].clock_time.year == 999
    assert batches == [("ok", 1), ("ok", 2), ("ok", 3), ("rows", 4)]  # in-process: rows from 4


def test_the_event_maker_builds_what_the_dataclass_builds() -> None:
    now = datetime.now(UTC)
    args = ("s", 1, "ddl_command_end", "CREATE TABLE", (), "q", now, now, "u", "c", None,
            "db", None, None, "::1", 5432, "", 123, "sid", "3/4", 5, 6, "d", "[]", None)  # fmt: skip
    made = capture_bulk._event_maker()(*args)
    assert made == AuditEvent(*args) and repr(made) == repr(AuditEvent(*args))
    assert made.database_in_row is None


def test_pure_python_fallback_without_pyarrow(
    rows_db: TestDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where pyarrow is missing the row reader reads, and ``--version`` says why."""
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['pyarrow'] = None\n"
        "from auditor import capture, capture_bulk\n"
        "from auditor.db import connect\n"
        "print(capture_bulk.describe())\n"
        f"with connect({rows_db.dsn()!r}) as conn:\n"
        f"    rows = list(capture.read_audit_events(conn, worker=({rows_db.dsn()!r}, None)))\n"
        "print(' '.join(e.digest for e in rows))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert (
        out[0]
        == "audit row reader: one row at a time (pyarrow is not installed: pure-Python fallback)"
    )
    assert out[1].split() == [e.digest for e in _read(rows_db, "row", monkeypatch)]


def test_a_worker_that_fails_hands_the_read_back(
    rows_db: TestDB, monkeypatch: pytest.MonkeyPatch, batches: list[tuple[str, int]]
) -> None:
    monkeypatch.setattr(capture_bulk, "WORKER_TABLE_BYTES", 0)
    monkeypatch.setenv("AUDITOR_AUDIT_READ", "copy")
    with connect(rows_db.dsn()) as conn:  # the worker cannot connect: it says so, and dies
        got = list(capture.read_audit_events(conn, worker=(rows_db.dsn() + " port=1", None)))
    assert got == _read(rows_db, "row", monkeypatch)
    assert batches == [("ok", 1)]  # read on in this process, in columns


def test_small_tables_are_read_here(
    rows_db: TestDB, monkeypatch: pytest.MonkeyPatch, batches: list[tuple[str, int]]
) -> None:
    """Below WORKER_TABLE_BYTES no worker starts (the test tables are a few kB)."""
    monkeypatch.setenv("AUDITOR_AUDIT_READ", "copy")
    with connect(rows_db.dsn()) as conn:
        got = list(capture.read_audit_events(conn, worker=(rows_db.dsn(), None)))
    assert got == _read(rows_db, "row", monkeypatch) and batches == [("ok", 1)]


def test_a_sql_ascii_database_reads_the_same_in_columns(
    cluster: Any, monkeypatch: pytest.MonkeyPatch, batches: list[tuple[str, int]]
) -> None:
    """Bytes as stored, lengths in bytes (auditor.digest), non-UTF-8 bytes kept."""
    name = "bulk_sql_ascii"
    cluster.execute(
        f"CREATE DATABASE {name} ENCODING 'SQL_ASCII' TEMPLATE template0 "
        "LC_COLLATE 'C' LC_CTYPE 'C'"
    )
    try:
        db = TestDB(cluster, name)
        capture.install(db.dsn(), databases=[name])
        with connect(db.dsn()) as conn:
            conn.execute("CREATE TABLE café (nom text DEFAULT 'crème\tbrûlée')".encode())
        _tamper(db, "UPDATE auditor.events SET query = query || E'\\xe9\\n'")
        got = {r: _read(db, r, monkeypatch) for r in READERS}
        _assert_same(got, byte_lengths=True)
        assert got["row"][0].query.endswith("\udce9\n")
        assert batches == [("ok", 1)]
    finally:
        cluster.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_without_execute_on_pg_export_snapshot_the_read_stays_here(
    rows_db: TestDB, monkeypatch: pytest.MonkeyPatch, batches: list[tuple[str, int]]
) -> None:
    role = rows_db.create_role("bulk_reader")
    rows_db.run(
        f"GRANT USAGE ON SCHEMA auditor TO {role}; GRANT SELECT ON auditor.events TO {role}"
    )
    rows_db.run("REVOKE EXECUTE ON FUNCTION pg_catalog.pg_export_snapshot() FROM PUBLIC")
    try:
        monkeypatch.setenv("AUDITOR_AUDIT_READ", "copy")
        with connect(rows_db.dsn(role)) as conn:
            got = list(capture.read_audit_events(conn, worker=(rows_db.dsn(role), None)))
        assert got == _read(rows_db, "row", monkeypatch)
        assert batches == [("ok", 1)]  # read in this process, in columns
    finally:
        rows_db.run("GRANT EXECUTE ON FUNCTION pg_catalog.pg_export_snapshot() TO PUBLIC")
