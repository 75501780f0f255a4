"""pgAudit's AUDIT: lines as records of the log channel, on a real server running pgAudit.

Where ``pgaudit.log`` covers ``ddl``, pgAudit logs every DDL statement once it
ran, those inside functions, ``DO``, ``CALL`` and triggers too, which
``log_statement`` never shows.  So:

* a statement the client sent, also logged by ``log_statement``: nothing new;
* the same with ``log_statement`` below ``ddl`` (or silenced): the AUDIT line is
  the log's statement record, paired with the trigger's rows like a statement line;
* DDL inside a function: the log's record of that firing; with the trigger
  bypassed, it is UNREPORTED_DDL (before pgAudit neither channel saw it).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from auditor import capture
from auditor.cluster import TempCluster, find_bindir
from auditor.config import load_config
from auditor.logs.scan import scan
from auditor.model import FindingClass, LogRecord, MessageKind
from auditor.reconcile import ReconcileResult, reconcile

C = FindingClass
_n = itertools.count(1)


def _pgaudit_available() -> bool:
    lib = find_bindir().parent / "lib"
    return (lib / "pgaudit.so").exists() or (lib / "postgresql" / "pgaudit.so").exists()


pytestmark = pytest.mark.skipif(
    not _pgaudit_available(),
    reason="pgAudit is not built for this server (Debian: postgresql-<major>-pgaudit)",
)


@pytest.fixture(scope="module", params=["ddl", "none"], ids=["log_statement=ddl", "none"])
def pa(request: pytest.FixtureRequest) -> Iterator[TempCluster]:
    settings = {"shared_preload_libraries": "pgaudit", "pgaudit.log": "ddl, role"}
    with TempCluster(log_statement=request.param, settings=settings) as c:
        c.execute("CREATE EXTENSION pgaudit")
        yield c


def _reconcile(c: TempCluster, db: str, t0: datetime, out: Path) -> ReconcileResult:
    c.flush_logs()
    flags: dict[str, Any] = {
        "dsn": c.dsn(db),
        "logs": [str(c.log_dir / "*.csv")],
        "since": t0.isoformat(),
        "databases": [db],
        "out": str(out),
    }
    return reconcile(load_config(flags, environ={}, search_default=False))


@pytest.fixture
def audited(pa: TempCluster) -> Iterator[tuple[TempCluster, str, datetime]]:
    name = f"pga{next(_n)}"
    pa.execute(f"CREATE DATABASE {name}")
    capture.install(pa.dsn(name), databases=[name])
    time.sleep(0.01)
    try:
        yield pa, name, datetime.now(UTC)
    finally:
        pa.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _classes(result: ReconcileResult) -> dict[str, int]:
    return dict(result.document.summary.by_class)


def test_the_reader_sees_ddl_inside_functions(audited: Any) -> None:
    c, db, _ = audited
    c.execute("CREATE TABLE top_level (id int)", dbname=db, application_name="pga-top")
    c.execute(
        "DO $$ BEGIN CREATE TABLE in_do (id int); EXECUTE 'CREATE TABLE in_do2 (id int)'; END $$",
        dbname=db,
        application_name="pga-do",
    )
    c.flush_logs()
    for pattern in ("*.csv", "*.json", "*.log"):
        records = [r for r in scan([str(c.log_dir / pattern)], jobs=1) if isinstance(r, LogRecord)]
        mine = (MessageKind.STATEMENT, MessageKind.AUDIT)  # not the trigger's markers
        top = [r for r in records if r.application == "pga-top" and r.kind in mine]
        if pattern == "*.log" and c.log_statement == "none":
            # No statement line, and a prefix without %i cannot tell a statement the
            # client sent from one inside a function: left as an AUDIT record.
            assert [(r.kind, r.statement) for r in top] == [
                (MessageKind.AUDIT, "CREATE TABLE top_level (id int)")
            ]
            assert top[0].pgaudit is not None and top[0].pgaudit.nested is None
        else:
            assert [(r.kind, r.statement) for r in top] == [
                (MessageKind.STATEMENT, "CREATE TABLE top_level (id int)")
            ]
        nested = [r for r in records if r.application == "pga-do" and r.kind in mine]
        assert [(r.kind, r.statement) for r in nested] == [
            (MessageKind.AUDIT, "CREATE TABLE in_do (id int)"),
            (MessageKind.AUDIT, "CREATE TABLE in_do2 (id int)"),
        ]
        assert all(r.pgaudit and r.pgaudit.command == "CREATE TABLE" for r in nested)
        if pattern != "*.log":  # stderr's prefix has no %i: top level or nested unknown
            assert all(r.pgaudit and r.pgaudit.nested for r in nested)
        # (object names come from pgAudit's event trigger, created with the extension
        # in the database it is created in: here only 'postgres')


def test_audit_lines_pair_with_the_triggers_rows(audited: Any, tmp_path: Path) -> None:
    c, db, t0 = audited
    c.execute("CREATE TABLE t1 (id int); CREATE TABLE t2 (id int)", dbname=db)
    c.execute("CREATE FUNCTION mk() RETURNS void LANGUAGE plpgsql AS "
              "$$ BEGIN CREATE TABLE from_f (x text); END $$", dbname=db)  # fmt: skip
    c.execute("SELECT mk()", dbname=db)
    c.execute("DO $$ BEGIN CREATE TABLE from_do (id int); END $$", dbname=db)
    result = _reconcile(c, db, t0, tmp_path)
    classes = _classes(result)
    # Whatever log_statement says: top-level DDL matched (not UNLOGGED_DDL), DDL in
    # functions INDIRECT_DDL as before, and the AUDIT lines of it matched.
    assert classes.get("UNLOGGED_DDL", 0) == 0 and classes.get("UNREPORTED_DDL", 0) == 0
    assert classes.get("INDIRECT_DDL", 0) == 2
    s = result.document.summary
    assert s.logged_ddl == s.matched + sum(f.accounts_logged_ddl for f in result.document.findings)
    assert s.matched == 4  # t1;t2 (one string), CREATE FUNCTION, from_f, from_do


def test_ddl_inside_do_with_the_trigger_bypassed_is_unreported(
    audited: Any, tmp_path: Path
) -> None:
    c, db, t0 = audited
    c.execute(
        "BEGIN; SET LOCAL session_replication_role = replica; "
        "ALTER EVENT TRIGGER auditor_ddl_command_end DISABLE; "
        "DO $$ BEGIN CREATE TABLE hidden_in_do (id int); END $$; "
        "ALTER EVENT TRIGGER auditor_ddl_command_end ENABLE ALWAYS; COMMIT",
        dbname=db,
        application_name="pga-evasion",
    )
    result = _reconcile(c, db, t0, tmp_path)
    (found,) = [f for f in result.document.findings if f.cls == C.UNREPORTED_DDL]
    assert found.statement == "CREATE TABLE hidden_in_do (id int)"
    assert found.severity.value == "critical"
    assert found.application == "pga-evasion" and found.command_tags == ("CREATE TABLE",)
    assert "pgAudit logged CREATE TABLE run inside DO" in found.explanation
