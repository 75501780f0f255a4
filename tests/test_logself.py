"""The log vouches for itself; unparseable is never matched; no input stops the report.

Each test plays one attack (or one harmless control) on a real cluster, then
reconciles the logs the server really wrote, in each log format, and checks
the class the attack must produce.  Forged lines are written the way the red
team wrote them: appended to the real csv/json files, or through the logging
collector's pipe (``COPY ... TO PROGRAM``), which only reaches the stderr file.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from auditor import capture
from auditor.cluster import TempCluster
from auditor.config import load_config
from auditor.model import Finding, FindingClass, Severity
from auditor.reconcile import ReconcileResult, reconcile

C = FindingClass
_n = itertools.count(1)
SESSION_ID = (
    "SELECT to_hex(trunc(extract(epoch FROM backend_start))::int)||'.'||to_hex(pid) "
    "FROM pg_stat_activity WHERE pid = pg_backend_pid()"
)


@pytest.fixture(scope="module")
def tc() -> Iterator[TempCluster]:
    with TempCluster() as c:
        yield c


def formats(cluster: TempCluster) -> list[str]:
    return ["stderr", "csvlog", "jsonlog"] if cluster.major >= 15 else ["stderr", "csvlog"]


@dataclass
class Audited:
    """A database with the auditor installed."""

    cluster: TempCluster
    name: str
    out: Path
    t0: datetime

    def run(self, query: str, *, app: str = "logself", user: str | None = None) -> Any:
        return self.cluster.execute(query, dbname=self.name, user=user, application_name=app)

    def session(self, app: str, user: str | None = None) -> psycopg.Connection[Any]:
        return psycopg.connect(
            self.cluster.dsn(self.name, user, application_name=app), autocommit=True
        )

    def reconcile(self, fmt: str = "auto", **opts: Any) -> ReconcileResult:
        time.sleep(0.3)  # the log goes on after the attack (MARKER_MISSING needs that)
        self.cluster.flush_logs()
        flags: dict[str, Any] = {
            "dsn": self.cluster.dsn(self.name),
            "logs": [str(self.cluster.log_dir)],
            "log_format": fmt,
            "since": self.t0.isoformat(),
            "databases": [self.name],
            "out": str(self.out / fmt),
        }
        flags.update(opts)
        return reconcile(load_config(flags, environ={}))


@pytest.fixture
def adb(tc: TempCluster, tmp_path: Path) -> Iterator[Audited]:
    name = f"logself{next(_n)}"
    tc.execute(f"CREATE DATABASE {name}")
    capture.install(tc.dsn(name), databases=[name])
    time.sleep(0.01)
    handle = Audited(tc, name, tmp_path / "out", datetime.now(UTC))
    try:
        yield handle
    finally:
        tc.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def only(result: ReconcileResult, cls: FindingClass) -> list[Finding]:
    return [f for f in result.document.findings if f.cls == cls]


def classes(result: ReconcileResult) -> list[str]:
    return sorted(f.cls.value for f in result.document.findings)


def assert_accounts(result: ReconcileResult) -> None:
    s = result.document.summary
    assert s.logged_ddl == s.matched + sum(f.accounts_logged_ddl for f in result.document.findings)
    rows = {(f.database, i) for f in result.document.findings for i in f.audit_event_ids}
    assert s.audit_rows == s.matched_audit_rows + len(rows)


def assert_reports(result: ReconcileResult) -> None:
    for kind in ("json", "csv", "html"):
        assert result.paths[kind].is_file() and result.paths[kind].stat().st_size > 0


# ------------------------------------------------------------ 1. unparseable is never matched

HIDE = "SELECT 1 FROM pg_catalog.pg_class system_user LIMIT 1"


def _pg15_grammar(cluster: TempCluster) -> None:
    if cluster.major >= 16:
        pytest.skip("PostgreSQL 16+ reserves system_user: the server itself rejects the string")


def test_a_disabled_trigger_hidden_behind_a_newer_keyword_is_found(adb: Audited) -> None:
    _pg15_grammar(adb.cluster)
    with adb.session("hider") as conn:
        cur = psycopg.ClientCursor(conn)
        session = cur.execute(SESSION_ID).fetchone()[0]
        cur.execute(
            "ALTER EVENT TRIGGER auditor_ddl_command_end DISABLE; CREATE TABLE hidden(x text); "
            f"ALTER EVENT TRIGGER auditor_ddl_command_end ENABLE ALWAYS; {HIDE}"
        )
    for fmt in formats(adb.cluster):
        result = adb.reconcile(fmt)
        (f,) = result.document.findings
        assert f.severity == Severity.CRITICAL and f.session_id == session, fmt
        assert f.cls == C.UNREPORTED_DDL and f.application == "hider"
        assert "disable of the auditor's own trigger" in f.explanation
        assert "CREATE TABLE hidden(x text)" in f.explanation
        assert set(f.command_tags) == {"ALTER EVENT TRIGGER", "CREATE TABLE"}
        assert result.document.summary.matched == 0
        assert_accounts(result)


def test_a_superuser_grant_hidden_behind_a_newer_keyword_is_found(adb: Audited) -> None:
    _pg15_grammar(adb.cluster)
    role = f"{adb.name}_boss"
    try:
        adb.run(f"CREATE ROLE {role} SUPERUSER; {HIDE}", app="hider")
        for fmt in formats(adb.cluster):
            result = adb.reconcile(fmt)
            (f,) = result.document.findings
            assert f.cls == C.UNAUDITABLE_DDL and f.severity == Severity.HIGH, fmt
            assert "grants superuser" in f.explanation and f.application == "hider"
            assert_accounts(result)
    finally:
        adb.cluster.execute(f"DROP ROLE IF EXISTS {role}")


def test_what_the_server_rejected_too_is_failed_ddl(adb: Audited) -> None:
    # The regression suite's strategy: PostgreSQL 15 reads it and fails at analysis (so
    # it logs the statement and the ERROR); 16+ refuse it in the grammar (nothing logged).
    with pytest.raises(psycopg.Error):
        adb.run("CREATE TABLE p (a int) PARTITION BY MAGIC (a)", app="magic")
    for fmt in formats(adb.cluster):
        result = adb.reconcile(fmt)
        if adb.cluster.major >= 16:
            assert result.document.findings == ()
            continue
        (f,) = result.document.findings
        assert f.cls == C.FAILED_DDL and f.severity == Severity.INFO, fmt
        assert 'unrecognized partitioning strategy "magic"' in f.explanation
        assert_accounts(result)


def test_a_deep_expression_from_a_nobody_writes_every_report(adb: Audited) -> None:
    role = f"{adb.name}_nobody"
    adb.cluster.execute(f"CREATE ROLE {role} LOGIN")
    try:
        deep = "CREATE TABLE public.deep AS SELECT " + "(1+" * 600 + "1" + ")" * 600
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            adb.run(deep, app="deep", user=role)
        for fmt in formats(adb.cluster):
            result = adb.reconcile(fmt)
            assert_reports(result)
            assert classes(result) == ["FAILED_DDL", "UNAUDITABLE_DDL"]  # + the CREATE ROLE
            (f,) = only(result, C.FAILED_DDL)
            assert f.user == role, fmt
            assert f.command_tags == ("CREATE TABLE AS",)
            assert result.exit_code == 0
            assert_accounts(result)
    finally:
        adb.cluster.execute(f"DROP ROLE IF EXISTS {role}")


# ------------------------------------------------------------ 3. no input stops the report


def test_a_file_with_another_prefix_stops_nothing_else(adb: Audited) -> None:
    with adb.session("quiet") as conn:
        cur = psycopg.ClientCursor(conn)
        cur.execute("SET log_statement = 'none'")
        cur.execute("CREATE TABLE unlogged_one (id int)")
    other = Path(__file__).parent.parent / "fixtures" / "n_prefix" / "postgresql.log"
    logs = [str(other), str(adb.cluster.log_dir / "*.log")]
    result = adb.reconcile("stderr", logs=logs, log_line_prefix=adb.cluster.log_line_prefix)
    assert_reports(result)
    (unlogged,) = only(result, C.UNLOGGED_DDL)
    assert unlogged.application == "quiet" and unlogged.severity == Severity.CRITICAL
    (gap,) = only(result, C.LOG_GAP)
    assert gap.log_file == str(other) and "matches no line" in gap.explanation
    summaries = {s.path: s for s in result.document.logs}
    assert summaries[str(other)].format == "unreadable"
    assert any(s.format == "stderr" and s.records for s in result.document.logs)
    assert result.exit_code == 1  # the run is complete: only the one file was unreadable
    assert_accounts(result)


def test_garbage_at_the_head_of_a_file_does_not_swallow_the_file_before(adb: Audited) -> None:
    with adb.session("quiet") as conn:
        cur = psycopg.ClientCursor(conn)
        cur.execute("SET log_statement = 'none'")
        cur.execute("CREATE TABLE unlogged_two (id int)")
    time.sleep(0.2)
    adb.cluster.flush_logs()
    adb.cluster.rotate_logs()
    # Bytes a superuser sends through the collector's pipe land first in the new file.
    adb.run("COPY (SELECT 'not a log line at all') TO PROGRAM 'cat >&2'", app="pipe")
    adb.run("CREATE TABLE after_the_garbage (id int)", app="later")
    result = adb.reconcile("stderr")
    assert_reports(result)
    (unlogged,) = only(result, C.UNLOGGED_DDL)
    assert unlogged.application == "quiet" and unlogged.severity == Severity.CRITICAL
    (gap,) = only(result, C.LOG_GAP)
    assert "could not be read" in gap.explanation and gap.log_line == 1
    assert gap.audit_event_ids == ()
    assert result.document.summary.matched == 1
    assert_accounts(result)
