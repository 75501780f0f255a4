"""The log vouches for itself; unparseable is never matched; no input stops the report.

Each test plays one attack (or one harmless control) on a real cluster, then
reconciles the logs the server really wrote, in each log format, and checks
the class the attack must produce.  Forged lines are written the way the red
team wrote them: appended to the real csv/json files, or through the logging
collector's pipe (``COPY ... TO PROGRAM``), which only reaches the stderr file.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import psycopg.sql
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
    # PostgreSQL 13 and 14 let PUBLIC create in schema public (15 revoked it).
    adb.run("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
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


# ------------------------------------------------------------ 2. the log vouches for itself

_STDERR_LINE = r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} \S+ \[\d+\] "


def _numbered(fmt: str, session: str) -> re.Pattern[str]:
    """Where a line of ``session`` in a file of ``fmt`` gives its number (group 1)."""
    s = re.escape(session)
    if fmt == "stderr":
        return re.compile(_STDERR_LINE + s + r" (\d+) ")
    if fmt == "csvlog":
        return re.compile(r"," + s + r",(\d+),")
    return re.compile(r'"session_id":"' + s + r'","line_num":(\d+),')


def _files(directory: Path, fmt: str) -> list[Path]:
    ext = {"stderr": ".log", "csvlog": ".csv", "jsonlog": ".json"}[fmt]
    return sorted(p for p in directory.iterdir() if p.suffix == ext)


def _session_numbers(directory: Path, fmt: str, session: str, text: str) -> list[int]:
    """The numbers of the session's lines that contain ``text``."""
    rx = _numbered(fmt, session)
    out = []
    for path in _files(directory, fmt):
        for line in path.read_text(encoding="utf-8").splitlines():
            m = rx.search(line)
            if m and text in line:
                out.append(int(m.group(1)))
    return out


def _cut(directory: Path, fmt: str, session: str, numbers: range) -> int:
    """Remove the session's lines with those numbers (with their continuation lines)."""
    rx = _numbered(fmt, session)
    removed = 0
    for path in _files(directory, fmt):
        kept, dropping = [], False
        for line in path.read_text(encoding="utf-8").splitlines(keepends=True):
            if fmt == "stderr" and line.startswith("\t"):
                if not dropping:
                    kept.append(line)
                continue
            m = rx.search(line)
            dropping = m is not None and int(m.group(1)) in numbers
            removed += dropping
            if not dropping:
                kept.append(line)
        path.write_text("".join(kept), encoding="utf-8")
    return removed


def _session(conn: psycopg.Connection[Any]) -> str:
    row = conn.execute(SESSION_ID).fetchone()
    assert row is not None
    return str(row[0])


def test_lines_cut_out_of_a_session_are_log_tampered(adb: Audited, tmp_path: Path) -> None:
    with adb.session("cutter") as conn:
        session = _session(conn)
        conn.execute("CREATE TABLE before_the_cut (id int)")
        conn.execute("CREATE TABLE cut_me (id int)")
        conn.execute("CREATE TABLE kept_one (id int)")
    time.sleep(0.3)
    adb.cluster.flush_logs()
    for fmt in formats(adb.cluster):
        copy = tmp_path / f"cut-{fmt}"
        shutil.copytree(adb.cluster.log_dir, copy)
        (first,) = _session_numbers(copy, fmt, session, "statement: CREATE TABLE cut_me")
        (kept,) = _session_numbers(copy, fmt, session, "statement: CREATE TABLE kept_one")
        # The statement and its marker lines: what someone hiding it would remove.
        assert _cut(copy, fmt, session, range(first, kept)) == kept - first >= 2, fmt
        result = adb.reconcile(fmt, logs=[str(copy)])
        assert_reports(result)
        (tampered,) = only(result, C.LOG_TAMPERED)
        assert tampered.severity == Severity.CRITICAL and tampered.session_id == session, fmt
        assert f"number {first - 1} to {kept}" in tampered.explanation, fmt
        assert "removed from the file" in tampered.explanation
        assert tampered.log_file is not None and tampered.log_line is not None
        # The row of the statement cut out is still held against the log.
        unlogged = [f for f in result.document.findings if f.audit_event_ids]
        assert unlogged and all(f.severity.rank >= Severity.HIGH.rank for f in unlogged), fmt
        assert result.document.summary.matched == 2
        assert_accounts(result)


def _copy_logs(adb: Audited, copy: Path) -> None:
    """The log directory as it is now, into ``copy`` (replacing an earlier copy)."""
    time.sleep(0.3)
    adb.cluster.flush_logs()
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(adb.cluster.log_dir, copy)


def test_lines_cut_between_two_state_runs_are_log_tampered(adb: Audited, tmp_path: Path) -> None:
    """A session open across the nightly run: its first lines after the point where
    that run stopped reading are cut (nothing before them in this read shows the gap);
    the numbers the state kept do.  The same two runs without the cut raise nothing."""
    copy = tmp_path / "logs"

    with adb.session("long-lived") as conn:
        session = _session(conn)
        conn.execute("CREATE TABLE spans_the_run (id int)")
        _copy_logs(adb, copy)
        states = {fmt: tmp_path / f"state-{fmt}.json" for fmt in formats(adb.cluster)}
        for fmt, state in states.items():
            first = adb.reconcile(fmt, logs=[str(copy)], state=str(state))
            assert only(first, C.LOG_TAMPERED) == [], fmt
            assert session in json.loads(state.read_text())["lines"][fmt]["sessions"], fmt
        conn.execute("CREATE TABLE after_the_run (id int)")
        conn.execute("CREATE TABLE kept_after (id int)")
    _copy_logs(adb, copy)
    for fmt, state in states.items():
        control = tmp_path / f"control-{fmt}.json"
        shutil.copy(state, control)
        calm = adb.reconcile(fmt, logs=[str(copy)], state=str(control))
        assert only(calm, C.LOG_TAMPERED) == [], fmt
        assert [f for f in calm.document.findings if f.severity.rank >= Severity.HIGH.rank] == []
        assert calm.document.summary.matched == 2, fmt
    for fmt, state in states.items():
        (cut,) = _session_numbers(copy, fmt, session, "statement: CREATE TABLE after_the_run")
        (kept,) = _session_numbers(copy, fmt, session, "statement: CREATE TABLE kept_after")
        assert _cut(copy, fmt, session, range(cut, kept)) == kept - cut >= 2, fmt
        result = adb.reconcile(fmt, logs=[str(copy)], state=str(state))
        (tampered,) = only(result, C.LOG_TAMPERED)
        assert tampered.severity == Severity.CRITICAL and tampered.session_id == session, fmt
        assert "previous run (--state)" in tampered.explanation, fmt
        assert f"number {cut - 1}" in tampered.explanation, fmt
        assert f"is number {kept}" in tampered.explanation, fmt
        assert tampered.user == "postgres" and tampered.log_line is not None, fmt
        assert result.document.summary.matched == 1, fmt
        assert_accounts(result)


def _forge(cluster: TempCluster, fmt: str, session: str, statement: str) -> None:
    """Write a ``statement:`` line claiming number 1 of ``session``, modelled on the
    session's last line, the way an intruder can: appended to the csv/json file, sent
    through the collector's pipe into the stderr file."""
    (path,) = [cluster.current_logfiles()[fmt]]
    rx = _numbered(fmt, session)
    lines = path.read_text(encoding="utf-8").splitlines()
    last = [ln for ln in lines if rx.search(ln) and "LOG" in ln and "auditor-marker" in ln][-1]
    if fmt == "stderr":
        m = rx.search(last)
        assert m is not None
        head = last[: m.start(1)] + "1" + last[m.end(1) :]
        line = head[: head.index(" LOG:  ") + 7] + "statement: " + statement
        with cluster.connect() as conn:
            conn.execute(
                psycopg.sql.SQL("COPY (SELECT {}) TO PROGRAM 'cat >&2'").format(
                    psycopg.sql.Literal(line)
                )
            )
        return
    if fmt == "csvlog":
        row = next(csv.reader([last]))
        row[6], row[13], row[18], row[19] = "1", "statement: " + statement, "", ""
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerow(row)
        text = out.getvalue()
    else:
        rec = json.loads(last)
        rec.update(line_num=1, message="statement: " + statement)
        rec.pop("context", None)
        text = json.dumps(rec, separators=(",", ":")) + "\n"
    with path.open("a", encoding="utf-8") as fh:
        fh.write(text)


def test_a_forged_statement_line_is_log_tampered_and_not_paired(adb: Audited) -> None:
    with adb.session("sneaky") as conn:
        session = _session(conn)
        conn.execute("SET log_statement = 'none'")
        conn.execute("CREATE TABLE sneaky (id int)")
        conn.execute("CREATE TABLE sneaky_two (id int)")
    time.sleep(0.3)
    adb.cluster.flush_logs()
    for fmt in formats(adb.cluster):
        _forge(adb.cluster, fmt, session, "CREATE TABLE sneaky (id int)")
        result = adb.reconcile(fmt)
        assert_reports(result)
        tampered = only(result, C.LOG_TAMPERED)
        assert tampered and all(f.severity == Severity.CRITICAL for f in tampered), fmt
        assert any(f.session_id == session and "CREATE TABLE sneaky" in (f.statement or "")
                   for f in tampered), fmt  # fmt: skip
        # The forged line covers nothing: both statements are still unlogged.
        unlogged = only(result, C.UNLOGGED_DDL)
        assert sorted(f.statement or "" for f in unlogged) == [
            "CREATE TABLE sneaky (id int)",
            "CREATE TABLE sneaky_two (id int)",
        ], fmt
        assert result.document.summary.matched == 0
        assert_accounts(result)


def test_restarts_are_reported_and_a_single_user_run_is_log_tampered(tmp_path: Path) -> None:
    with TempCluster() as cluster:
        cluster.execute("CREATE DATABASE life")
        capture.install(cluster.dsn("life"), databases=["life"])
        handle = Audited(cluster, "life", tmp_path / "out", datetime.now(UTC))
        handle.run("CREATE TABLE before_restart (id int)")
        cluster.restart()
        handle.run("CREATE TABLE after_restart (id int)")
        # Seconds pass in single-user mode (its shutdown time is printed in whole seconds).
        out = cluster.single_user(
            "life", "CREATE TABLE t_single_user(id int);\nSELECT pg_sleep(2);\n"
        )
        assert "ERROR" not in out
        handle.run("CREATE TABLE after_single_user (id int)")
        for fmt in formats(cluster):
            result = handle.reconcile(fmt)
            assert_reports(result)
            (tampered,) = only(result, C.LOG_TAMPERED)
            assert tampered.severity == Severity.CRITICAL, fmt
            assert "postgres --single" in tampered.explanation
            restarts = only(result, C.LOG_GAP)
            assert [f.severity for f in restarts] == [Severity.INFO], fmt
            assert "restarted: cleanly shut down" in restarts[0].explanation
            assert result.document.summary.matched == 3
            assert_accounts(result)


def test_a_deleted_rotated_file_is_a_log_gap_between_its_neighbours(
    adb: Audited, tmp_path: Path
) -> None:
    with adb.session("long") as conn:
        conn.execute("CREATE TABLE in_first (id int)")
        time.sleep(1.1)
        adb.cluster.flush_logs()
        middle = adb.cluster.rotate_logs()
        conn.execute("CREATE TABLE in_deleted (id int)")
        time.sleep(1.1)
        adb.cluster.flush_logs()
        adb.cluster.rotate_logs()
        conn.execute("CREATE TABLE in_last (id int)")
    time.sleep(0.3)
    adb.cluster.flush_logs()
    copy = tmp_path / "logs"
    shutil.copytree(adb.cluster.log_dir, copy)
    for path in middle.values():
        (copy / path.name).unlink()
    for fmt in formats(adb.cluster):
        result = adb.reconcile(fmt, logs=[str(copy)])
        assert_reports(result)
        assert not [f for f in result.document.findings if f.severity == Severity.CRITICAL], fmt
        gaps = [f for f in only(result, C.LOG_GAP) if "missing" in f.explanation]
        assert len(gaps) == 1 and gaps[0].severity == Severity.HIGH, fmt
        assert "a rotated file deleted" in gaps[0].explanation
        assert not only(result, C.LOG_TAMPERED)
        assert_accounts(result)


def test_a_file_deleted_between_two_state_runs_is_a_log_gap(adb: Audited, tmp_path: Path) -> None:
    """The session goes on over rotations between the nightly runs: with every file
    there, nothing is raised; with the file written between the runs deleted before the
    second one, the numbers the state kept skip where the files meet (a LOG_GAP)."""
    copy = tmp_path / "logs"

    with adb.session("rotating") as conn:
        conn.execute("CREATE TABLE before_night (id int)")
        _copy_logs(adb, copy)
        states = {fmt: tmp_path / f"state-{fmt}.json" for fmt in formats(adb.cluster)}
        for fmt, state in states.items():
            assert (
                only(adb.reconcile(fmt, logs=[str(copy)], state=str(state)), C.LOG_TAMPERED) == []
            )
        time.sleep(1.1)
        adb.cluster.flush_logs()
        middle = adb.cluster.rotate_logs()
        conn.execute("CREATE TABLE in_deleted (id int)")
        time.sleep(1.1)
        adb.cluster.flush_logs()
        adb.cluster.rotate_logs()
        conn.execute("CREATE TABLE in_last (id int)")
    _copy_logs(adb, copy)
    for fmt, state in states.items():
        control = tmp_path / f"control-{fmt}.json"
        shutil.copy(state, control)
        calm = adb.reconcile(fmt, logs=[str(copy)], state=str(control))
        assert [f for f in calm.document.findings if f.severity.rank >= Severity.HIGH.rank] == []
        assert calm.document.summary.matched == 2, fmt
    for path in middle.values():
        (copy / path.name).unlink()
    for fmt, state in states.items():
        result = adb.reconcile(fmt, logs=[str(copy)], state=str(state))
        assert not [f for f in result.document.findings if f.severity == Severity.CRITICAL], fmt
        gaps = [f for f in only(result, C.LOG_GAP) if "missing" in f.explanation]
        assert len(gaps) == 1 and gaps[0].severity == Severity.HIGH, fmt
        assert "a rotated file deleted" in gaps[0].explanation, fmt
        assert not only(result, C.LOG_TAMPERED), fmt
        assert_accounts(result)


def test_harmless_statements_raise_nothing_above_medium(tmp_path: Path) -> None:
    with TempCluster() as cluster:  # a log no other test wrote into
        cluster.execute("CREATE DATABASE calm")
        capture.install(cluster.dsn("calm"), databases=["calm"])
        _harmless(Audited(cluster, "calm", tmp_path / "out", datetime.now(UTC)))


def _harmless(adb: Audited) -> None:
    adb.run("CREATE TABLE base (id int, v text)", app="setup")
    harmless = [
        "PREPARE q AS SELECT * FROM base WHERE id = $1",
        "EXECUTE q(1)",
        "CREATE TEMP TABLE scratch (id int)",
        "CREATE UNLOGGED TABLE fast (id int)",
        "SELECT * INTO copied FROM base",
        "CREATE MATERIALIZED VIEW mv AS SELECT * FROM base",
        "REFRESH MATERIALIZED VIEW mv",
        "COMMENT ON TABLE base IS 'x'",
        "GRANT SELECT ON base TO PUBLIC",
        "CREATE PUBLICATION pub FOR TABLE base",
        "SELECT 'a\nLOG:  statement: CREATE TABLE x (id int)\n2026-01-01 00:00:00.000 UTC "
        "[1] 6b07b9ae.1 1 3/1 0 postgres@postgres app= client= LOG:  statement: DROP TABLE y'",
        "SELECT '\"\n2026-01-01 00:00:00 UTC,,,1,,6b07b9ae.1,1,,x'",
    ]
    with adb.session("harmless") as conn:
        for q in harmless:
            conn.execute(q.encode(), prepare=False)  # the simple protocol
        conn.execute("INSERT INTO base VALUES (%s, %s)", (1, "extended"), prepare=True)
        conn.execute("CREATE TABLE ext_ddl (id int)", prepare=True)
    for fmt in formats(adb.cluster):
        result = adb.reconcile(fmt)
        loud = [f for f in result.document.findings if f.severity.rank > Severity.MEDIUM.rank]
        assert loud == [], (fmt, [(f.cls, f.explanation[:200]) for f in loud])
        assert not only(result, C.LOG_TAMPERED)
        assert_accounts(result)


def test_a_line_of_a_session_no_process_had_is_log_tampered(adb: Audited) -> None:
    with adb.session("quiet") as conn:
        conn.execute("SET log_statement = 'none'")
        conn.execute("CREATE TABLE covered_up (id int)")
    time.sleep(0.3)
    adb.cluster.flush_logs()
    for fmt in formats(adb.cluster):
        if fmt == "stderr":
            continue  # %p and %c are read from the same process there: see the csv/json
        (path,) = [adb.cluster.current_logfiles()[fmt]]
        last = path.read_text(encoding="utf-8").splitlines()[-1]
        # A made-up session numbered from 1, whose id names another pid than its line.
        fake = f"{int(time.time()):x}.{0x7FFF:x}"
        if fmt == "csvlog":
            row = next(csv.reader([last]))
            row[3], row[5], row[6] = "4242", fake, "1"
            row[13], row[18], row[19] = "statement: CREATE TABLE covered_up (id int)", "", ""
            out = io.StringIO()
            csv.writer(out, lineterminator="\n").writerow(row)
            text = out.getvalue()
        else:
            rec = json.loads(last)
            rec.update(pid=4242, session_id=fake, line_num=1)
            rec.update(message="statement: CREATE TABLE covered_up (id int)")
            text = json.dumps(rec, separators=(",", ":")) + "\n"
        with path.open("a", encoding="utf-8") as fh:
            fh.write(text)
        result = adb.reconcile(fmt)
        (tampered,) = only(result, C.LOG_TAMPERED)
        assert tampered.severity == Severity.CRITICAL and tampered.session_id == fake, fmt
        assert "belongs to process 32767, not to 4242" in tampered.explanation
        (unlogged,) = only(result, C.UNLOGGED_DDL)
        assert unlogged.statement == "CREATE TABLE covered_up (id int)"
        assert_accounts(result)


# ------------------------------------------------------------ 4. a line that reads two ways

#: Prefixes whose client-chosen fields come before the severity: pgBadger's, the one the
#: README recommends (the test clusters' own), Debian's.
TWO_WAY_PREFIXES = {
    "pgbadger": "%t [%p]: user=%u,db=%d,app=%a,client=%h ",
    "readme": "%m [%p] %q%c %l %v %x %u@%d app=%a client=%h ",
    "debian": "%m [%p] %q%u@%d ",
}
#: Ordinary application names (Django sets none), role names with spaces and at-signs.
ORDINARY_APPS = ["psql", "pg_dump", "pg_restore", "", "PostgreSQL JDBC Driver", "app: worker 3"]
EVIL = "CREATE TABLE evil_t (id int)"


def _two_way_attacks(kind: str, client: str) -> dict[str, tuple[str | None, str | None]]:
    """(application_name, role) that make a line of the session read as another one."""
    if kind == "debian":  # %u@%d: the role name holds '@<db> LOG:  ' and a decoy
        return {"decoy": (None, "evil@postgres LOG:  statement: SELECT 1 --")}
    sep = "," if kind == "pgbadger" else " "
    return {
        # The statement line reads as a harmless SELECT whose comment swallows the DDL.
        "decoy": (f"x{sep}client={client} LOG:  statement: SELECT 1 --", None),
        # Every line of the session reads as a marker-looking line.
        "marker": (f"x{sep}client={client} LOG:  auditor-marker v1 schema=auditor id=9", None),
    }


@pytest.fixture(params=sorted(TWO_WAY_PREFIXES))
def two_way(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Audited]]:
    kind = str(request.param)
    with TempCluster(log_line_prefix=TWO_WAY_PREFIXES[kind]) as cluster:
        for _app, role in _two_way_attacks(kind, "127.0.0.1").values():
            if role:  # before install: the catalog channel's baseline holds it
                cluster.execute(f'CREATE ROLE "{role}" LOGIN SUPERUSER')
        cluster.execute('CREATE ROLE "app user@example.com" LOGIN SUPERUSER')
        cluster.execute("CREATE DATABASE twoway")
        capture.install(cluster.dsn("twoway"), databases=["twoway"])
        time.sleep(1.1)  # %t prints whole seconds: the setup stays before the window
        yield kind, Audited(cluster, "twoway", tmp_path / "out", datetime.now(UTC))


def test_a_line_that_reads_two_ways_is_log_tampered_and_never_paired(
    two_way: tuple[str, Audited],
) -> None:
    kind, adb = two_way
    for app in ORDINARY_APPS:
        adb.run(f'CREATE TABLE "t {app or "none"}" (id int)', app=app)
    adb.run("CREATE TABLE spaced (id int)", app="psql", user="app user@example.com")
    # Log-shaped text in a statement, too far from the prefix for any chosen field.
    adb.run(
        "COMMENT ON TABLE spaced IS 'client=127.0.0.1 LOG:  statement: DROP TABLE spaced'",
        app="psql",
    )
    attacks = _two_way_attacks(kind, "127.0.0.1")
    for name, (app, role) in attacks.items():
        adb.run(EVIL.replace("evil_t", f"evil_{name}"), app=app or "psql", user=role)
    result = adb.reconcile("stderr", log_line_prefix=TWO_WAY_PREFIXES[kind])
    assert_reports(result)
    tampered = only(result, C.LOG_TAMPERED)
    assert len(tampered) == len(attacks), (kind, [f.explanation[200:900] for f in tampered])
    unlogged = only(result, C.UNLOGGED_DDL)
    assert len(unlogged) == len(attacks), kind
    for name in attacks:
        evil = EVIL.replace("evil_t", f"evil_{name}")
        (t,) = [f for f in tampered if f"LOG 'statement: {evil}'" in f.explanation]
        assert t.severity == Severity.CRITICAL and t.log_file and t.log_line, (kind, name)
        assert "read two ways" in t.explanation and t.accounts_logged_ddl == 1
        # The row of the DDL is still held against the log, and says why it has no line.
        (u,) = [f for f in unlogged if f.statement == evil]
        assert u.severity == Severity.CRITICAL, (kind, name)
        assert f":{t.log_line}, LOG_TAMPERED" in u.explanation
    # Nothing else: the ordinary names and the log-shaped comment read one way.
    assert result.document.summary.matched == len(ORDINARY_APPS) + 2, kind
    assert classes(result) == sorted(["LOG_TAMPERED", "UNLOGGED_DDL"] * len(attacks)), kind
    assert_accounts(result)


def test_a_set_log_statement_that_reads_two_ways_is_not_lost(tmp_path: Path) -> None:
    # Under log_statement = 'all' the SET is logged: a crafted application_name made it
    # read as a SELECT, so the weakening went unseen and the DDL after it read as
    # suppressed for no reason.
    with TempCluster(log_statement="all") as cluster:
        cluster.execute("CREATE DATABASE setway")
        capture.install(cluster.dsn("setway"), databases=["setway"])
        adb = Audited(cluster, "setway", tmp_path / "out", datetime.now(UTC))
        app = "x client=127.0.0.1 LOG:  statement: SELECT 1 --"
        with adb.session(app) as conn:
            cur = psycopg.ClientCursor(conn)
            cur.execute("SET log_statement = 'none'")
            cur.execute("CREATE TABLE quietly (id int)")
        result = adb.reconcile("stderr")
        (t,) = only(result, C.LOG_TAMPERED)
        assert t.severity == Severity.CRITICAL
        assert "LOG \"statement: SET log_statement = 'none'\"" in t.explanation
        (u,) = only(result, C.UNLOGGED_DDL)
        assert u.statement == "CREATE TABLE quietly (id int)" and "read two ways" in u.explanation
        assert_accounts(result)
