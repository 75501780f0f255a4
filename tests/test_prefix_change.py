"""A ``log_line_prefix`` changed on a live server (issue 12).

A DBA sets another prefix with ALTER SYSTEM and reloads: the server writes the
new prefix into the same stderr file from the postmaster's ``parameter
"log_line_prefix" changed to "..."`` line on, and files rotated before keep the
old one.  Reading every file with the server's current prefix made the DDL
before the change a critical UNLOGGED_DDL (a false critical); reading a file
with the first prefix detected lost the lines after the change.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from psycopg import sql

from auditor import capture
from auditor.cluster import DEFAULT_LOG_LINE_PREFIX, TempCluster
from auditor.config import load_config
from auditor.logs.scan import scan
from auditor.model import LogRecord, ReadWarning, Severity
from auditor.reconcile import ReconcileResult, reconcile

PGBADGER = "%t [%p]: user=%u,db=%d,app=%a,client=%h "
DEBIAN = "%m [%p] %q%u@%d "
DDL = (
    "CREATE TABLE in_old_file (id int)",
    "CREATE TABLE before_change (id int)",
    "CREATE TABLE after_change (id int)",
    "ALTER TABLE after_change ADD COLUMN x int",
)


@dataclass
class Changed:
    """A cluster whose prefix was changed: the DDL of an older file, of the current
    file before the change and after it."""

    cluster: TempCluster
    name: str
    new: str
    t0: datetime
    t1: datetime
    older: Path
    current: Path
    out: Path

    def reconcile(self, **opts: Any) -> ReconcileResult:
        flags: dict[str, Any] = {
            "dsn": self.cluster.dsn(self.name),
            "logs": [str(self.cluster.log_dir)],
            "since": self.t0.isoformat(),
            "databases": [self.name],
            "out": str(self.out),
        }
        flags.update(opts)
        return reconcile(load_config(flags, environ={}))


@pytest.fixture(params=[PGBADGER, DEBIAN], ids=["pgbadger", "debian"])
def changed(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Changed]:
    new: str = request.param
    with TempCluster(log_destination="stderr") as c:
        assert c.log_line_prefix == DEFAULT_LOG_LINE_PREFIX
        name = "changed"
        c.execute(f"CREATE DATABASE {name}")
        capture.install(c.dsn(name), databases=[name])
        t0 = datetime.now(UTC)
        time.sleep(0.01)
        c.execute(DDL[0], dbname=name)
        c.flush_logs()
        older = c.current_logfiles()["stderr"]
        current = c.rotate_logs()["stderr"]
        t1 = datetime.now(UTC)
        time.sleep(0.01)
        c.execute(DDL[1], dbname=name)
        with c.connect() as conn:
            conn.execute(sql.SQL("ALTER SYSTEM SET log_line_prefix = {}").format(sql.Literal(new)))
        c.execute("SELECT pg_reload_conf()")
        time.sleep(1)
        for statement in DDL[2:]:
            c.execute(statement, dbname=name)
        time.sleep(0.3)
        c.flush_logs()
        assert b'parameter "log_line_prefix" changed to' in current.read_bytes()
        yield Changed(c, name, new, t0, t1, older, current, tmp_path / "out")


def _assert_all_matched(result: ReconcileResult) -> None:
    doc = result.document
    critical = [f for f in doc.findings if f.severity == Severity.CRITICAL]
    assert critical == [], [(f.cls.value, f.statement) for f in critical]
    bad = {"UNLOGGED_DDL", "UNREPORTED_DDL", "LOG_GAP", "MARKER_MISSING"}
    assert not [f for f in doc.findings if f.cls.value in bad], [
        (f.cls.value, f.explanation) for f in doc.findings if f.cls.value in bad
    ]
    assert [w for s in doc.logs for w in s.warnings] == []
    assert doc.summary.matched >= len(DDL)


def test_server_prefix_is_not_forced_on_older_lines(changed: Changed) -> None:
    result = changed.reconcile()
    _assert_all_matched(result)
    notes = result.document.notes
    old_note = next(n for n in notes if n.startswith(f"{changed.older}: read with"))
    assert repr(DEFAULT_LOG_LINE_PREFIX) in old_note
    assert f"the server now uses {changed.new!r}" in old_note
    cur_note = next(n for n in notes if n.startswith(f"{changed.current}: read with"))
    assert repr(DEFAULT_LOG_LINE_PREFIX) in cur_note and repr(changed.new) in cur_note


def test_a_given_prefix_that_reads_part_of_a_file_is_not_forced(changed: Changed) -> None:
    # The flag names the new prefix and only the current file (the window starts
    # after the rotation): its older lines are read with the prefix they show.
    result = changed.reconcile(
        logs=[str(changed.current)], log_line_prefix=changed.new, since=changed.t1.isoformat()
    )
    doc = result.document
    critical = [f for f in doc.findings if f.severity == Severity.CRITICAL]
    assert critical == [], [(f.cls.value, f.statement) for f in critical]
    assert [w for s in doc.logs for w in s.warnings] == []
    assert not [f for f in doc.findings if f.cls.value in ("UNLOGGED_DDL", "UNREPORTED_DDL")]
    assert doc.summary.matched >= len(DDL) - 1
    assert any(
        n.startswith(f"{changed.current}: read with") and repr(DEFAULT_LOG_LINE_PREFIX) in n
        for n in doc.notes
    )


def test_without_a_server_each_line_is_read_with_its_prefix(changed: Changed) -> None:
    stream = scan([str(changed.cluster.log_dir)], all_records=True)
    items = list(stream)
    warnings = [i for i in items if isinstance(i, ReadWarning)]
    assert warnings == []
    records = [i for i in items if isinstance(i, LogRecord)]
    for statement in DDL:
        (rec,) = [r for r in records if r.message == f"statement: {statement}"]
        assert rec.user == "postgres" and rec.database == changed.name, rec
        assert rec.time is not None and rec.pid is not None
        after = statement in DDL[2:]
        if after and changed.new == PGBADGER:
            assert rec.time_resolution_us == 1_000_000 and rec.session_id is None
        else:
            assert rec.time_resolution_us == 1000
        if not after:
            assert rec.session_id is not None and rec.vxid is not None
    by_file = {s.source: s for s in stream.sources}
    assert by_file[str(changed.older)].prefixes == (DEFAULT_LOG_LINE_PREFIX,)
    assert set(by_file[str(changed.current)].prefixes) == {DEFAULT_LOG_LINE_PREFIX, changed.new}


def test_the_change_is_learnt_where_the_sample_does_not_show_it(
    changed: Changed, tmp_path: Path
) -> None:
    # A file whose head has enough session lines is not sampled further: the
    # reader learns the new prefix from the postmaster's line.
    padded = _padded(changed, tmp_path / "postgresql.log", 70_000)
    shutil.copystat(changed.current, padded)
    stream = scan([str(padded)], all_records=False)
    items = list(stream)
    assert [i for i in items if isinstance(i, ReadWarning)] == []
    records = [i for i in items if isinstance(i, LogRecord)]
    for statement in DDL[1:]:
        assert any(r.message == f"statement: {statement}" for r in records), statement
    (st,) = stream.sources
    assert set(st.prefixes) == {DEFAULT_LOG_LINE_PREFIX, changed.new}


def _padded(changed: Changed, path: Path, size: int) -> Path:
    """The current file with the older file's statement lines repeated before the
    change, to ``size`` bytes: real lines, in a file too long to be sampled whole."""
    data = changed.current.read_bytes()
    cut = data.index(b'parameter "log_line_prefix" changed to')
    cut = data.rindex(b"\n", 0, cut) + 1
    head = changed.older.read_bytes()
    session = b"".join(ln + b"\n" for ln in head.split(b"\n") if b"statement: " in ln)
    with path.open("wb") as fh:
        fh.write(data[:cut])
        while fh.tell() < size:
            fh.write(session)
        fh.write(data[cut:])
    return path


def test_pieces_read_in_parallel_know_every_prefix(
    changed: Changed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import auditor.logs.scan as scan_module

    monkeypatch.setattr(scan_module, "PIECE_ALL", 32 * 1024)  # many pieces of a small file
    padded = _padded(changed, tmp_path / "postgresql.log", 100_000)
    # And lines of the new prefix after the change line: the DDL after the change
    # is in a later piece than that line.
    data = padded.read_bytes()
    at = data.index(b"\n", data.index(b'parameter "log_line_prefix" changed to')) + 1
    new_lines = b"".join(
        ln + b"\n" for ln in data[at:].split(b"\n") if b"auditor-marker" in ln and b"\t" not in ln
    )
    assert new_lines
    padded.write_bytes(data[:at] + new_lines * (100_000 // len(new_lines) + 1) + data[at:])
    stream = scan([str(padded)], all_records=True, jobs=2)
    items = list(stream)
    assert [i for i in items if isinstance(i, ReadWarning)] == []
    records = [i for i in items if isinstance(i, LogRecord)]
    for statement in DDL[2:]:
        (rec,) = [r for r in records if r.message == f"statement: {statement}"]
        assert rec.user == "postgres" and rec.database == changed.name


def test_a_line_of_no_prefix_in_use_stays_a_warning(changed: Changed, tmp_path: Path) -> None:
    other = Path(__file__).parent.parent / "fixtures" / "n_prefix" / "postgresql.log"
    foreign = other.read_bytes().split(b"\n", 1)[0] + b"\n"  # a '%n [%p] ' line
    data = changed.current.read_bytes()
    mixed = tmp_path / "postgresql.log"
    mixed.write_bytes(data + foreign)
    line = data.count(b"\n") + 1
    stream = scan([str(mixed)], all_records=True)
    warnings = [i for i in stream if isinstance(i, ReadWarning)]
    assert [
        (w.source.line, "not a log line for log_line_prefix" in w.message) for w in warnings
    ] == [(line, True)]
    assert repr(changed.new) in warnings[0].message


def test_a_client_cannot_announce_a_prefix(tmp_path: Path) -> None:
    # A statement quoting the postmaster's line, or a RAISE LOG of it, is no change:
    # the fake prefix (a literal user: it would read the client's lines with none)
    # is not taken, and the lines keep their fields.
    fake = "%m [%p] %q%c %l %v %x mallory@%d app=%a client=%h "
    text = f'parameter "log_line_prefix" changed to "{fake}"'
    with TempCluster(log_destination="stderr") as c:
        c.execute("CREATE ROLE mallory LOGIN SUPERUSER")
        c.execute(f"COMMENT ON ROLE mallory IS '{text}'", user="mallory")
        c.execute(f"DO $$BEGIN RAISE LOG '%', $q${text}$q$; END$$", user="mallory")
        c.execute("CREATE TABLE after_fake (id int)", user="mallory")
        c.flush_logs()
        stream = scan([str(c.log_dir)], all_records=True)
        items = list(stream)
    assert [i for i in items if isinstance(i, ReadWarning)] == []
    (rec,) = [
        i
        for i in items
        if isinstance(i, LogRecord) and i.message == "statement: CREATE TABLE after_fake (id int)"
    ]
    assert rec.user == "mallory" and rec.database == "postgres"
    assert all(s.prefixes == (DEFAULT_LOG_LINE_PREFIX,) for s in stream.sources)
