"""Tamper resistance of the trigger channel: each red-team evasion performed for real.

A red-team pass against an installed auditor found ways to change or hide audit
evidence without a finding.  Every test here plays one attack on a real cluster
(the attacker is a superuser unless said otherwise; catalog edits are plain
``UPDATE pg_catalog...`` statements, which ``log_statement = 'ddl'`` never
logs), then checks the class reconcile gives it, and that the counts add up.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

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


@dataclass
class Audited:
    """A database with the auditor installed, and the intruder's tools."""

    cluster: TempCluster
    name: str
    out: Path
    t0: datetime

    def run(self, query: str, *, app: str = "tamper-test", user: str | None = None) -> Any:
        return self.cluster.execute(query, dbname=self.name, user=user, application_name=app)

    def session(self, app: str, user: str | None = None) -> psycopg.Connection[Any]:
        return psycopg.connect(
            self.cluster.dsn(self.name, user, application_name=app), autocommit=True
        )

    def reconcile(self, **opts: Any) -> ReconcileResult:
        # A live server's log goes on after the attack; MARKER_MISSING is only judged
        # for a firing the log read reaches past (see matcher._marker_unknowable).
        time.sleep(0.3)
        self.cluster.flush_logs()
        flags: dict[str, Any] = {
            "dsn": self.cluster.dsn(self.name),
            "logs": [str(self.cluster.log_dir)],
            "since": self.t0.isoformat(),
            "databases": [self.name],
            "out": str(self.out),
        }
        flags.update(opts)
        return reconcile(load_config(flags, environ={}))

    def status(self) -> capture.DatabaseStatus:
        (found,) = capture.status(self.cluster.dsn(self.name), databases=[self.name]).databases
        return found

    def ids(self) -> list[int]:
        return [int(r[0]) for r in self.run("SELECT id FROM auditor.events ORDER BY id")]


@pytest.fixture
def adb(tc: TempCluster, tmp_path: Path) -> Iterator[Audited]:
    name = f"tamper{next(_n)}"
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
    """logged DDL = matched + findings' share; audit rows = matched rows + rows in findings."""
    s = result.document.summary
    assert s.logged_ddl == s.matched + sum(f.accounts_logged_ddl for f in result.document.findings)
    rows = {(f.database, i) for f in result.document.findings for i in f.audit_event_ids}
    assert s.audit_rows == s.matched_audit_rows + len(rows)


def markers_of(cluster: TempCluster, app: str) -> list[dict[str, Any]]:
    """The marker records (with their CONTEXT) a session with ``app`` wrote, from the csvlog."""
    import csv

    cluster.flush_logs()
    out = []
    for path in cluster.log_dir.glob("*.csv"):
        with open(path, newline="", encoding="utf-8", errors="replace") as fh:
            for row in csv.reader(fh):
                if len(row) > 22 and row[22] == app and row[13].startswith("auditor-marker "):
                    out.append({"message": row[13], "context": row[18]})
    return out


def tamper(adb: Audited, change: str, *, table: str = "events", app: str = "forger") -> None:
    """An intruder who lifts the append-only protection in the catalog (no DDL), changes
    the table and puts the protection back: three sessions, none of them logged."""
    trigger = f"{table}_append_only"
    adb.run(f"UPDATE pg_trigger SET tgenabled = 'D' WHERE tgname = '{trigger}'", app=app)
    try:
        adb.run(change, app=app)  # a new session: its relcache sees the catalog as it is now
    finally:
        adb.run(f"UPDATE pg_trigger SET tgenabled = 'A' WHERE tgname = '{trigger}'", app=app)


@contextlib.contextmanager
def markers_unpinned(adb: Audited) -> Iterator[None]:
    """The audit function's settings stripped in the catalog (no DDL), then put back."""
    proc = "'auditor.record_event()'::regprocedure"
    ((config,),) = adb.run(f"SELECT proconfig::text FROM pg_proc WHERE oid = {proc}")
    adb.run(
        "UPDATE pg_proc SET proconfig = ARRAY['search_path=pg_catalog, pg_temp'] "
        f"WHERE oid = {proc}"
    )
    try:
        yield
    finally:
        adb.run(f"UPDATE pg_proc SET proconfig = '{config}'::text[] WHERE oid = {proc}")


MUTE = "SELECT set_config('log_min_messages', 'panic', true); "


# ---------------------------------------------------------------------------- 1. pinned markers


def test_a_session_cannot_mute_or_shorten_its_markers(adb: Audited) -> None:
    # Before the pins, the first set_config() alone dropped the marker; the second
    # would have dropped its CONTEXT (the proof of who wrote it).
    adb.run(
        MUTE + "SELECT set_config('log_error_verbosity', 'terse', true); "
        "SELECT set_config('backtrace_functions', 'exec_stmt_raise', true); "
        "CREATE TABLE not_muted (id int)",
        app="muter",
    )
    (marker,) = markers_of(adb.cluster, "muter")
    assert marker["context"].startswith("PL/pgSQL function auditor.record_event() line ")
    result = adb.reconcile()
    # The attempt is in the log and reported; the DDL's row is vouched for by its marker.
    (f,) = result.document.findings
    assert f.cls == C.CONFIG_DRIFT and f.severity == Severity.CRITICAL
    assert "log_min_messages set to 'panic'" in f.explanation and f.application == "muter"
    assert f.audit_event_ids == tuple(adb.ids())
    assert not only(result, C.MARKER_MISSING)
    assert_accounts(result)


def test_a_foreign_event_trigger_that_fires_first_cannot_mute_a_roles_markers(
    adb: Audited,
) -> None:
    role = f"{adb.name}_dev"
    adb.run(f"CREATE ROLE {role} LOGIN; GRANT CREATE ON SCHEMA public TO {role}")
    try:
        # Event triggers fire in name order: 'aaa_quiet' runs before auditor_ddl_command_end
        # and, as SECURITY DEFINER, may set what a role could not.
        adb.run(
            "CREATE FUNCTION public.quiet() RETURNS event_trigger LANGUAGE plpgsql "
            "SECURITY DEFINER AS $$ BEGIN "
            "PERFORM set_config('log_min_messages', 'panic', true); "
            "PERFORM set_config('log_error_verbosity', 'terse', true); END $$;"
            "CREATE EVENT TRIGGER aaa_quiet ON ddl_command_end EXECUTE FUNCTION public.quiet()",
            app="red-team",
        )
        adb.run("CREATE TABLE by_a_role (id int)", app="developer", user=role)
        (marker,) = markers_of(adb.cluster, "developer")
        assert "tag=CREATE TABLE" in marker["message"]
        assert marker["context"].startswith("PL/pgSQL function auditor.record_event() ")
        result = adb.reconcile()
        (et,) = only(result, C.EVENT_TRIGGER_DDL)
        assert et.severity == Severity.HIGH and "aaa_quiet" in et.explanation
        assert result.document.summary.matched == 1  # the role's CREATE TABLE
        assert classes(result) == ["EVENT_TRIGGER_DDL", "UNAUDITABLE_DDL"]  # + CREATE ROLE
        assert_accounts(result)
        # auditor status names the trigger, its order and what it does.
        warnings = [p.message for p in adb.status().problems if not p.weakens]
        (w,) = [m for m in warnings if "aaa_quiet" in m]
        assert "fires before auditor_ddl_command_end" in w
        assert "SECURITY DEFINER and changes settings" in w
    finally:
        adb.run("DROP EVENT TRIGGER IF EXISTS aaa_quiet; DROP FUNCTION IF EXISTS public.quiet()")
        adb.run(f"REVOKE CREATE ON SCHEMA public FROM {role}; DROP OWNED BY {role}")
        adb.cluster.execute(f"DROP ROLE {role}")


def _german(cluster: TempCluster) -> bool:
    """Whether this server can translate its messages to German (locale and NLS present)."""
    with cluster.connect() as conn:
        try:
            conn.execute("SET lc_messages = 'de_DE.UTF-8'")
            conn.execute("SELECT 1/0")
        except psycopg.errors.DivisionByZero as exc:
            return "Null" in str(exc)
        except psycopg.Error:
            return False
    return False


def test_a_translated_session_cannot_reshape_the_marker(adb: Audited) -> None:
    if not _german(adb.cluster):
        pytest.skip("this PostgreSQL build or OS has no German messages (NLS, de_DE locale)")
    with adb.session("german") as conn:
        cur = psycopg.ClientCursor(conn)
        cur.execute("SET lc_messages = 'de_DE.UTF-8'")
        cur.execute("DO $$ BEGIN RAISE LOG 'control line'; END $$")
        cur.execute("CREATE TABLE uebersetzt (id int)")
    adb.cluster.flush_logs()
    text = "".join(p.read_text(errors="replace") for p in adb.cluster.log_dir.glob("*.log"))
    # Unpinned, PL/pgSQL's CONTEXT is translated (what reconcile would take for a forgery) ...
    assert "PL/pgSQL-Funktion inline_code_block" in text
    # ... the audit function's own marker is not.
    (marker,) = markers_of(adb.cluster, "german")
    assert marker["context"].startswith("PL/pgSQL function auditor.record_event() ")
    result = adb.reconcile()
    # The session's own statement line is translated too ('Anweisung:'), which the log
    # readers do not take for one: the row stands without it, vouched for by its marker.
    (f,) = result.document.findings
    assert f.cls == C.UNLOGGED_DDL and "markers are in the log" in f.explanation
    assert not any("forged" in x.explanation for x in result.document.findings)


def test_a_granted_setting_does_not_let_a_role_mute_markers(adb: Audited) -> None:
    if adb.cluster.major < 15:
        pytest.skip("GRANT SET ON PARAMETER exists from PostgreSQL 15 on")
    role = f"{adb.name}_ops"
    adb.run(
        f"CREATE ROLE {role} LOGIN; GRANT CREATE ON SCHEMA public TO {role};"
        f"GRANT SET ON PARAMETER log_min_messages, log_statement TO {role}"
    )
    try:
        with adb.session("ops", user=role) as conn:
            cur = psycopg.ClientCursor(conn)
            cur.execute("SET log_min_messages = panic")  # SET is never logged under 'ddl'
            cur.execute("CREATE TABLE ops_table (id int)")
        (marker,) = markers_of(adb.cluster, "ops")
        assert "tag=CREATE TABLE" in marker["message"]
        report = capture.status(adb.cluster.dsn(adb.name), databases=[adb.name])
        grants = [p.message for p in report.problems if p.weakens and role in p.message]
        assert sorted(grants) == [
            f"{role} may SET log_min_messages without being a superuser "
            "(GRANT SET ON PARAMETER log_min_messages)",
            f"{role} may SET log_statement without being a superuser "
            "(GRANT SET ON PARAMETER log_statement)",
        ]
        result = adb.reconcile()
        drift = [f.explanation for f in only(result, C.CONFIG_DRIFT)]
        assert any("may SET log_statement" in d for d in drift)
        # log_min_messages = panic dropped the role's statement line (the log channel is
        # weakened), not the marker: the row is proven, the missing line reported.
        (unlogged,) = only(result, C.UNLOGGED_DDL)
        assert unlogged.statement == "CREATE TABLE ops_table (id int)"
        assert "markers are in the log" in unlogged.explanation
        assert not only(result, C.MARKER_MISSING)
        assert_accounts(result)
    finally:
        adb.run(f"REVOKE SET ON PARAMETER log_min_messages, log_statement FROM {role}")
        adb.run(f"REVOKE CREATE ON SCHEMA public FROM {role}; DROP OWNED BY {role}")
        adb.cluster.execute(f"DROP ROLE {role}")


# ---------------------------------------------------------------------------- 2. MARKER_MISSING


def test_a_row_whose_marker_was_suppressed_is_marker_missing(adb: Audited) -> None:
    # A catalog edit strips the pins: no DDL, no row, nothing logged.
    with markers_unpinned(adb), adb.session("muted") as conn:
        cur = psycopg.ClientCursor(conn)
        cur.execute(MUTE + "CREATE TABLE unvouched (id int)")
        session = cur.execute(SESSION_ID).fetchone()[0]
    assert markers_of(adb.cluster, "muted") == []
    (row_id,) = adb.ids()
    # Without a marker nothing shows the row as it was: rewrite it at leisure.
    tamper(adb, f"UPDATE auditor.events SET session_user_name = 'nobody' WHERE id = {row_id}")
    assert adb.status().weakened is False  # everything was put back
    result = adb.reconcile()
    (f,) = only(result, C.MARKER_MISSING)
    assert f.severity == Severity.CRITICAL
    assert f.session_id == session and f.application == "muted"
    assert f.statement == MUTE + "CREATE TABLE unvouched (id int)"
    assert f.audit_event_ids == (row_id,)
    assert f"row {row_id} has no marker in the log" in f.explanation
    # What the rewritten row claims is reported, but it does not decide the class.
    assert "session_user 'nobody'" in f.explanation
    assert classes(result) == ["MARKER_MISSING"]  # the set_config is in the same record
    assert_accounts(result)


def test_a_wiped_and_restored_audit_table_is_caught_by_xmin(adb: Audited) -> None:
    adb.run("CREATE TABLE precious (id int)", app="victim")
    adb.run("CREATE TABLE precious2 (id int); CREATE INDEX ON precious2 (id)", app="victim")
    before = adb.run("SELECT id, xmin::text FROM auditor.events ORDER BY id")
    dump = adb.cluster.data_dir / f"{adb.name}.copy"
    plan = capture.install(adb.cluster.dsn(adb.name), databases=[adb.name], dry_run=True)
    with adb.session("wiper") as conn:
        cur = psycopg.ClientCursor(conn)
        cur.execute("SET log_statement = 'none'")  # itself never logged
        cur.execute(sql.SQL("COPY auditor.events TO {}").format(sql.Literal(str(dump))))
        cur.execute("DROP SCHEMA auditor CASCADE")  # the event triggers go with it
        cur.execute("CREATE TABLE behind_the_back (id int)")
        with conn.transaction():  # auditor install, run by hand (the script converges)
            for stmt in plan.databases[0].statements:
                cur.execute(stmt)
        cur.execute(sql.SQL("COPY auditor.events FROM {}").format(sql.Literal(str(dump))))
        cur.execute("SELECT setval('auditor.events_id_seq', (SELECT max(id) FROM auditor.events))")
    after = adb.run("SELECT id, xmin::text FROM auditor.events ORDER BY id")
    assert [r[0] for r in after] == [r[0] for r in before]  # same ids, same content ...
    assert all(a[1] != b[1] for a, b in zip(after, before, strict=True))  # ... other xmin
    assert adb.status().weakened is False
    result = adb.reconcile()
    found = only(result, C.MARKER_MISSING)
    assert sorted(f.statement or "" for f in found) == [
        "CREATE TABLE precious (id int)",
        "CREATE TABLE precious2 (id int); CREATE INDEX ON precious2 (id)",
    ]
    assert all("inserted again" in f.explanation for f in found)
    assert all(f.severity == Severity.CRITICAL and f.application == "victim" for f in found)
    assert sorted(i for f in found for i in f.audit_event_ids) == [r[0] for r in before]
    assert classes(result) == ["MARKER_MISSING", "MARKER_MISSING"]
    assert_accounts(result)


def test_gaps_in_the_audit_ids_need_a_marker_or_a_reason(adb: Audited) -> None:
    adb.run("CREATE TABLE g1 (id int)")
    adb.run("BEGIN; CREATE TABLE g_undone (id int); ROLLBACK", app="undo")  # id + marker
    # The audit function fails after it drew an id: the DDL is refused, its ERROR names
    # the function.  (The settings row it needs is gone, then put back.)
    adb.run("DELETE FROM auditor.settings")
    with pytest.raises(psycopg.Error, match="settings row"):
        adb.run("CREATE TABLE g_refused (id int)", app="refused")
    adb.run("INSERT INTO auditor.settings VALUES (1, 'outbox', false, 'auditor_events')")
    adb.run("CREATE TABLE g2 (id int)")
    # An id burnt by hand: neither a row nor a marker, nothing in the log explains it.
    ((burnt,),) = adb.run("SELECT nextval('auditor.events_id_seq')", app="burner")
    adb.run("CREATE TABLE g3 (id int)")
    result = adb.reconcile()
    (gap,) = only(result, C.MARKER_MISSING)
    assert gap.severity == Severity.CRITICAL and gap.audit_event_ids == ()
    assert f"Audit id(s) {burnt} of auditor.events_id_seq" in gap.explanation
    assert gap.evidence["ids"] == [burnt, burnt]
    assert classes(result) == ["FAILED_DDL", "MARKER_MISSING", "ROLLED_BACK_DDL"]
    assert_accounts(result)


def test_ids_lost_by_a_crash_restart_are_not_a_finding(tmp_path: Path) -> None:
    # synchronous_commit on: the rows committed before the crash survive it.
    with TempCluster(settings={"synchronous_commit": True}) as c:
        c.execute("CREATE DATABASE crash")
        capture.install(c.dsn("crash"), databases=["crash"])
        time.sleep(0.01)
        t0 = datetime.now(UTC)
        for i in range(3):
            c.execute(f"CREATE TABLE before_{i} (id int)", dbname="crash")
        with c.connect("crash") as victim:
            pid = victim.execute("SELECT pg_backend_pid()").fetchone()[0]
            os.kill(pid, signal.SIGKILL)  # the postmaster restarts every backend
            deadline = time.monotonic() + 60
            while True:
                try:
                    c.execute("CREATE TABLE after_crash (id int)", dbname="crash")
                    break
                except psycopg.OperationalError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.5)
        ids = [
            int(r[0])
            for r in c.execute("SELECT id FROM auditor.events ORDER BY id", dbname="crash")
        ]
        assert ids[:3] == [1, 2, 3] and 4 < ids[3] <= 4 + 32  # the sequence's cached values
        c.flush_logs()
        cfg = {"dsn": c.dsn("crash"), "logs": [str(c.log_dir)], "since": t0.isoformat(),
               "databases": ["crash"], "out": str(tmp_path / "out")}  # fmt: skip
        result = reconcile(load_config(cfg, environ={}))
    assert not only(result, C.MARKER_MISSING)
    assert result.document.summary.matched == 4
    assert_accounts(result)


# ---------------------------------------------------------------------------- 3. vouched rows


def test_state_runs_verify_every_row_they_vouched_for(adb: Audited, tmp_path: Path) -> None:
    state = str(tmp_path / "state.json")
    for i in range(3):
        adb.run(f"CREATE TABLE kept_{i} (id int)", app="day1")
    first = adb.reconcile(state=state)
    assert first.document.findings == () and first.document.summary.matched == 3
    vouched = json.loads(Path(state).read_text())["vouched"][adb.name]
    assert vouched["through"] == 3 and vouched["blocks"]["0"].startswith("3:")
    # Nothing changed: nothing to report, and the rows are not read again.
    quiet = adb.reconcile(state=state, since=None)
    assert quiet.document.findings == () and quiet.document.summary.audit_rows == 0
    # Days later: a row that run judged is rewritten, with no DDL and no marker to match.
    ids = adb.ids()
    tamper(adb, f"UPDATE auditor.events SET query = 'CREATE TABLE harmless ()' WHERE id = {ids[1]}")
    second = adb.reconcile(state=state, since=None)
    (f,) = second.document.findings
    assert f.cls == C.AUDIT_ROW_ALTERED and f.severity == Severity.CRITICAL
    assert f.database == adb.name and "Audit ids 0-999" in f.explanation
    assert f.evidence["vouched"] == {"ids": [0, 999], "rows_then": 3, "rows_now": 3}
    assert_accounts(second)
    # That run vouched for the table as it is now; then a row is deleted ...
    adb.run(f"CREATE TABLE saved AS SELECT * FROM auditor.events WHERE id = {ids[0]}")
    tamper(adb, f"DELETE FROM auditor.events WHERE id = {ids[0]}")
    third = adb.reconcile(state=state, since=None)
    gone = [f for f in third.document.findings if f.cls == C.AUDIT_ROW_MISSING]
    (g,) = gone
    assert "1 of its 3 row(s) are gone" in g.explanation and g.database == adb.name
    # ... and put back as it was (same id and content, another xmin): not what was vouched.
    adb.run("INSERT INTO auditor.events SELECT * FROM saved")
    fourth = adb.reconcile(state=state, since=None)
    (h,) = [f for f in fourth.document.findings if "Audit ids 0-999" in f.explanation]
    counts = h.evidence["vouched"]
    assert h.cls == C.AUDIT_ROW_ALTERED and counts["rows_now"] == counts["rows_then"] + 1
    assert_accounts(fourth)
    fifth = adb.reconcile(state=state, since=None)
    assert not [f for f in fifth.document.findings if "Audit ids" in f.explanation]


# ---------------------------------------------------------------------------- 4. by identity


def _unqualified_definition(adb: Audited) -> str:
    """The audit function's own CREATE OR REPLACE, without the schema in its name."""
    ((text,),) = adb.run("SELECT pg_get_functiondef('auditor.record_event()'::regprocedure)")
    return text.replace("FUNCTION auditor.record_event()", "FUNCTION record_event()", 1)


def test_create_or_replace_through_search_path_is_tampering(adb: Audited) -> None:
    definition = _unqualified_definition(adb)
    assert "FUNCTION record_event()" in definition
    with adb.session("replacer") as conn:
        cur = psycopg.ClientCursor(conn)
        cur.execute("SET search_path = auditor, public")  # not logged under 'ddl'
        cur.execute(definition)
        session = cur.execute(SESSION_ID).fetchone()[0]
    result = adb.reconcile()
    (f,) = result.document.findings
    assert f.cls == C.CONFIG_DRIFT and f.severity == Severity.CRITICAL
    assert f.session_id == session and f.application == "replacer"
    assert "the auditor's own function auditor.record_event()" in f.explanation
    assert_accounts(result)


def test_a_new_search_path_and_a_shadowing_builtin_are_tampering(adb: Audited) -> None:
    try:
        adb.run(
            "ALTER FUNCTION auditor.record_event() SET search_path = public, pg_catalog",
            app="shadow",
        )
        adb.run(
            "CREATE FUNCTION public.inet_client_addr() RETURNS inet LANGUAGE sql "
            "AS $$ SELECT '203.0.113.9'::inet $$",
            app="shadow",
        )
        adb.run("CREATE TABLE framed (id int)", app="victim")
        ((addr,),) = adb.run("SELECT client_addr::text FROM auditor.events WHERE query ~ 'framed'")
        assert addr == "203.0.113.9/32"  # the shadow works: every row now lies
        result = adb.reconcile()
    finally:
        adb.run("ALTER FUNCTION auditor.record_event() SET search_path = pg_catalog, pg_temp")
        adb.run("DROP FUNCTION public.inet_client_addr()")
    drift = only(result, C.CONFIG_DRIFT)
    by_statement = {f.statement: f for f in drift if f.statement}
    alter = by_statement[
        "ALTER FUNCTION auditor.record_event() SET search_path = public, pg_catalog"
    ]
    assert alter.severity == Severity.CRITICAL and alter.application == "shadow"
    assert "function auditor.record_event()" in alter.explanation
    (shadow,) = [f for s, f in by_statement.items() if "inet_client_addr" in s]
    assert shadow.severity == Severity.CRITICAL and shadow.session_id
    assert "shadows the built-in inet_client_addr" in shadow.explanation
    # Live: the function runs with settings install did not give it.
    live = " | ".join(f.explanation for f in drift if f.statement is None)
    assert "lost its fixed search_path" in live and "added: search_path=public, pg_catalog" in live
    assert result.document.summary.matched == 1  # the victim's CREATE TABLE
    assert_accounts(result)


def test_tampering_inside_a_do_block_is_critical_not_indirect(adb: Audited) -> None:
    try:
        adb.run(
            "DO $$ BEGIN EXECUTE 'ALTER FUNCTION auditor.record_event() "
            "RESET backtrace_functions'; END $$",
            app="sneaky",
        )
        result = adb.reconcile()
    finally:
        adb.run("ALTER FUNCTION auditor.record_event() SET backtrace_functions = ''")
    assert not only(result, C.INDIRECT_DDL)
    found = [f for f in only(result, C.CONFIG_DRIFT) if f.audit_event_ids]
    (f,) = found
    assert f.severity == Severity.CRITICAL and f.application == "sneaky"
    assert "inside a DO block" in f.explanation and "auditor.record_event()" in f.explanation
    assert_accounts(result)


def test_names_only_the_log_saw_resolve_against_the_auditors_objects(adb: Audited) -> None:
    # With its trigger off, the audit rows say nothing: only the statement text is left.
    with adb.session("in-the-dark") as conn:
        cur = psycopg.ClientCursor(conn)
        cur.execute("ALTER EVENT TRIGGER auditor_ddl_command_end DISABLE")
        cur.execute("SET search_path = auditor, public")
        cur.execute("COMMENT ON FUNCTION record_event() IS 'nothing to see'")
        cur.execute("ALTER EVENT TRIGGER auditor_ddl_command_end ENABLE ALWAYS")
    # Ordinary DDL that shares a name with the auditor's objects, or reads its table.
    adb.run("CREATE TABLE events (id int)", app="app")
    adb.run("CREATE VIEW audit_copy AS SELECT id, command_tag FROM auditor.events", app="app")
    result = adb.reconcile()
    (f,) = [f for f in only(result, C.CONFIG_DRIFT) if f.statement]
    assert f.statement == "COMMENT ON FUNCTION record_event() IS 'nothing to see'"
    assert f.severity == Severity.CRITICAL
    assert "record_event (unqualified; no other object" in f.explanation
    assert len(only(result, C.EVENT_TRIGGER_DDL)) == 2
    assert result.document.summary.matched == 2  # the table and the view
    assert classes(result) == ["CONFIG_DRIFT", "EVENT_TRIGGER_DDL", "EVENT_TRIGGER_DDL"]
    assert_accounts(result)


# ---------------------------------------------------------------------------- 4b. own rows

UNPROTECT = "ALTER TABLE auditor.events DISABLE TRIGGER events_append_only; "
PROTECT = "ALTER TABLE auditor.events ENABLE ALWAYS TRIGGER events_append_only"
LATEST = "DELETE FROM auditor.events WHERE id = (SELECT max(id) FROM auditor.events); "


def _marked_ids(adb: Audited, app: str) -> list[int]:
    """The audit ids whose markers a session with ``app`` wrote in the database."""
    import csv
    import re

    adb.cluster.flush_logs()
    ids = []
    for path in adb.cluster.log_dir.glob("*.csv"):
        with open(path, newline="", encoding="utf-8", errors="replace") as fh:
            for row in csv.reader(fh):
                m = re.match(r"auditor-marker .* id=(\d+) ", row[13]) if len(row) > 22 else None
                if m and row[2] == adb.name and row[22] == app:
                    ids.append(int(m.group(1)))
    return sorted(ids)


def _deleted_rows(result: ReconcileResult) -> list[int]:
    """Every audit id an AUDIT_ROW_MISSING finding names as gone, once per finding."""
    return sorted(
        int(a["id"])
        for f in only(result, C.AUDIT_ROW_MISSING)
        for a in f.evidence["audit"]
        if a.get("row") == "absent"
    )


@pytest.mark.parametrize(
    "attack, victim",
    [
        # The string's own ALTER TABLE row, deleted by the DELETE after it.
        (UNPROTECT + LATEST + PROTECT, "own"),
        # Another DDL of the same string, deleted with the protection lifted.
        (
            "CREATE TABLE victim_t (id int); " + UNPROTECT + "DELETE FROM auditor.events "
            "WHERE query = current_query() AND command_tag = 'CREATE TABLE'; " + PROTECT,
            "other",
        ),
        # Both: every row the string wrote before the DELETE.
        (
            UNPROTECT + "CREATE TABLE victim_t (id int); DELETE FROM auditor.events "
            "WHERE query = current_query(); " + PROTECT,
            "all",
        ),
    ],
)
def test_a_string_that_deletes_its_own_rows_names_each_row(
    adb: Audited, attack: str, victim: str
) -> None:
    adb.run("CREATE TABLE ordinary (id int)", app="before")
    adb.run(attack, app="eraser")
    marked = _marked_ids(adb, "eraser")
    kept = [i for i in adb.ids() if i in marked]
    deleted = [i for i in marked if i not in kept]
    assert len(deleted) == {"own": 1, "other": 1, "all": 2}[victim] and kept, victim
    result = adb.reconcile()
    # The string itself: it lifted the audit table's protection (critical, as before).
    (drift,) = only(result, C.CONFIG_DRIFT)
    assert drift.severity == Severity.CRITICAL and drift.application == "eraser"
    assert "DISABLE TRIGGER events_append_only" in drift.explanation
    assert drift.accounts_logged_ddl == 1 and set(drift.audit_event_ids) == set(kept)
    # Every row it deleted is named, in exactly one finding.
    assert _deleted_rows(result) == deleted
    (missing,) = only(result, C.AUDIT_ROW_MISSING)
    assert missing.severity == Severity.CRITICAL and missing.application == "eraser"
    for i in deleted:
        assert f"{i} (" in missing.explanation
    assert missing.log_file and missing.log_line  # the marker that proves the row
    assert result.document.summary.matched == 1  # CREATE TABLE ordinary
    assert_accounts(result)


def test_a_commit_inside_a_failing_string_does_not_hide_what_it_committed(
    adb: Audited,
) -> None:
    # psql's \; sends one string; its COMMIT makes the first part stick, the error
    # after it made the whole string read as failed DDL (info) before.
    with pytest.raises(psycopg.errors.DivisionByZero):
        adb.run(UNPROTECT + LATEST + PROTECT + "; COMMIT; SELECT 1/0", app="eraser")
    marked = _marked_ids(adb, "eraser")
    (deleted,) = [i for i in marked if i not in adb.ids()]
    result = adb.reconcile()
    (drift,) = only(result, C.CONFIG_DRIFT)
    assert drift.severity == Severity.CRITICAL and "division by zero" in drift.explanation
    assert "DISABLE TRIGGER events_append_only" in drift.explanation
    assert _deleted_rows(result) == [deleted]
    assert not only(result, C.FAILED_DDL)
    assert_accounts(result)


def test_a_failing_string_without_a_commit_stays_failed_ddl(adb: Audited) -> None:
    with pytest.raises(psycopg.errors.DivisionByZero):
        adb.run(UNPROTECT + LATEST + PROTECT + "; SELECT 1/0", app="clumsy")
    with pytest.raises(psycopg.errors.DivisionByZero):
        adb.run("CREATE TABLE kept_t (id int); COMMIT; SELECT 1/0", app="clumsy")
    result = adb.reconcile()
    # Nothing of the first string stuck (its markers' transaction aborted); the second
    # committed its CREATE TABLE, whose row is there and pairs.
    first, second = sorted(only(result, C.FAILED_DDL), key=lambda f: f.log_line or 0)
    assert classes(result) == ["FAILED_DDL", "FAILED_DDL"]
    assert first.severity == second.severity == Severity.INFO
    assert first.audit_event_ids == () and len(second.audit_event_ids) == 1
    assert "stay" in second.explanation
    assert_accounts(result)


# ---------------------------------------------------------------------------- 5. status


def test_status_sees_what_the_red_team_used(adb: Audited) -> None:
    role = f"{adb.name}_mallory"
    adb.run(f"CREATE ROLE {role}")
    try:
        adb.run(
            "CREATE FUNCTION public.early() RETURNS event_trigger LANGUAGE plpgsql "
            "SECURITY DEFINER AS $$ BEGIN PERFORM set_config('application_name', 'x', true); "
            "END $$; CREATE EVENT TRIGGER a_early ON ddl_command_end "
            "EXECUTE FUNCTION public.early();"
            "CREATE FUNCTION public.late() RETURNS event_trigger LANGUAGE plpgsql "
            "AS $$ BEGIN END $$; CREATE EVENT TRIGGER zz_late ON sql_drop "
            "EXECUTE FUNCTION public.late()"
        )
        adb.run(
            "ALTER TABLE auditor.events SET UNLOGGED;"
            "ALTER FUNCTION auditor.record_event() RESET log_min_messages;"
            f"ALTER TABLE auditor.settings OWNER TO {role};"
            f"GRANT INSERT ON auditor.events TO {role}"
        )
        # Catalog edits, which no channel sees as they happen:
        adb.run(
            "UPDATE pg_trigger SET tgenabled = 'D' WHERE tgname = 'installs_append_only';"
            "UPDATE pg_class SET relhastriggers = false WHERE oid = 'auditor.events'::regclass"
        )
        st = adb.status()
        weakening = [p.message for p in st.problems if p.weakens]
        warnings = [p.message for p in st.problems if not p.weakens]
        for expected in (
            "auditor.events is UNLOGGED: crash recovery empties it",
            "record_event() does not pin log_min_messages=warning",
            "record_event() runs with other settings than install gave it "
            "(removed: log_min_messages=warning)",
            f"auditor.settings is owned by {role}, not a superuser",
            f"{role} holds INSERT on auditor.events",
            "append-only trigger installs_append_only on auditor.installs is disabled",
            "pg_class.relhastriggers is false for auditor.events",
        ):
            assert any(expected in m for m in weakening), (expected, weakening)
        (early,) = [m for m in warnings if "a_early" in m]
        assert "fires before auditor_ddl_command_end" in early
        assert "SECURITY DEFINER and changes settings" in early
        (late,) = [m for m in warnings if "zz_late" in m]
        assert "fires after auditor_sql_drop" in late and "SECURITY DEFINER" not in late
        assert any("different owners" in m for m in warnings)
        # Reconcile turns every weakening into a live CONFIG_DRIFT, and the DDL that did
        # it is tampering by the identity of what it touched.
        result = adb.reconcile()
        live = [f.explanation for f in only(result, C.CONFIG_DRIFT) if f.statement is None]
        assert len(live) == len(weakening)
        (ddl,) = [f for f in only(result, C.CONFIG_DRIFT) if f.statement]
        assert ddl.severity == Severity.CRITICAL and "auditor.events" in ddl.explanation
        assert_accounts(result)
    finally:
        adb.run(
            "UPDATE pg_trigger SET tgenabled = 'A' WHERE tgname = 'installs_append_only';"
            "UPDATE pg_class SET relhastriggers = true WHERE oid = 'auditor.events'::regclass"
        )
        adb.run(f"ALTER TABLE auditor.settings OWNER TO {adb.cluster.superuser}")
        adb.run(f"DROP OWNED BY {role}")
        adb.cluster.execute(f"DROP ROLE {role}")


# ---------------------------------------------------------------------------- 5b. owners

OWNER_ROUTES = {
    # The ALTER alone fails (record_event() fires for it already as the new owner); with
    # its trigger disabled around it, it sticks.
    "disabled": "ALTER EVENT TRIGGER auditor_ddl_command_end DISABLE; "
    "ALTER FUNCTION auditor.record_event() OWNER TO {role}; "
    "ALTER EVENT TRIGGER auditor_ddl_command_end ENABLE ALWAYS",
    # A catalog edit: no DDL at all.
    "catalog": "UPDATE pg_proc SET proowner = '{role}'::regrole "
    "WHERE oid = 'auditor.record_event()'::regprocedure",
}


@pytest.mark.parametrize("route", sorted(OWNER_ROUTES))
def test_an_audit_function_owned_by_a_non_superuser_is_broken_and_said_so(
    adb: Audited, route: str
) -> None:
    role = f"{adb.name}_owner"
    adb.run(f"CREATE ROLE {role}")
    try:
        # Alone, the ALTER is refused by the audit function it changes (fail closed).
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            adb.run(f"ALTER FUNCTION auditor.record_event() OWNER TO {role}", app="owner")
        adb.run(OWNER_ROUTES[route].format(role=role), app="owner")
        # Every DDL now fails before the audit function's body runs: PostgreSQL applies
        # its SET clauses as its owner, who may not set log_min_error_statement.
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as refused:
            adb.run("CREATE TABLE refused (id int)", app="victim")
        assert 'permission denied to set parameter "log_min_error_statement"' in str(refused.value)
        st = adb.status()
        assert st.weakened and st.broken and not st.functions_ok
        (broken,) = [p.message for p in st.problems if p.breaks]
        assert f"record_event() is owned by {role}, not a superuser: BROKEN" in broken
        assert "every DDL in this database is refused" in broken
        assert "log_min_error_statement" in broken and "auditor install" in broken
        report = capture.status(adb.cluster.dsn(adb.name), databases=[adb.name])
        assert report.exit_code == 1
        text = capture.format_status(report)
        assert (
            "functions BROKEN" in text
            and f"BROKEN: the trigger channel refuses every DDL in {adb.name}" in text
        )
        result = adb.reconcile()
        live = [f for f in only(result, C.CONFIG_DRIFT) if f.statement is None]
        assert any(
            f.severity == Severity.CRITICAL and f"owned by {role}" in f.explanation for f in live
        )
        failed = {f.statement: f for f in only(result, C.FAILED_DDL)}
        victim = failed["CREATE TABLE refused (id int)"]
        assert victim.severity == Severity.INFO
        assert "The auditor refused it, not the statement" in victim.explanation
        assert (
            "The auditor refused it"
            in failed[f"ALTER FUNCTION auditor.record_event() OWNER TO {role}"].explanation
        )
        if route == "disabled":
            # The change of owner itself: the string that made it stick is critical.
            (string,) = [f for f in result.document.findings if f.application == "owner"
                         and f.cls != C.FAILED_DDL]  # fmt: skip
            assert string.severity == Severity.CRITICAL
            assert f"OWNER TO {role}" in string.explanation
        assert_accounts(result)
        # The repair the message names works by hand: the ALTER fires the audit function
        # as its new (superuser) owner.
        adb.run(f"ALTER FUNCTION auditor.record_event() OWNER TO {adb.cluster.superuser}")
        adb.run("CREATE TABLE accepted (id int)", app="victim")
        assert not adb.status().weakened
    finally:
        adb.run(f"ALTER FUNCTION auditor.record_event() OWNER TO {adb.cluster.superuser}")
        adb.cluster.execute(f"DROP ROLE IF EXISTS {role}")


@pytest.mark.parametrize(
    "function",
    ["canon_text(text)", "row_digest(auditor.events)", "after_event(auditor.events)",
     "refuse_change()"],
)  # fmt: skip
def test_other_audit_functions_given_to_a_non_superuser_stay_critical(
    adb: Audited, function: str
) -> None:
    role = f"{adb.name}_owner"
    adb.run(f"CREATE ROLE {role}")
    try:
        adb.run(f"ALTER FUNCTION auditor.{function} OWNER TO {role}", app="owner")
        adb.run("CREATE TABLE still_audited (id int)", app="victim")  # DDL still works
        st = adb.status()
        assert st.weakened and not st.broken
        name = function.split("(")[0]
        assert any(f"{name}() is owned by {role}, not a superuser" in p.message
                   for p in st.problems)  # fmt: skip
        result = adb.reconcile()
        (alter,) = [f for f in only(result, C.CONFIG_DRIFT) if f.statement]
        assert alter.severity == Severity.CRITICAL and alter.application == "owner"
        assert f"auditor.{name}" in alter.explanation
        assert result.document.summary.matched == 1
        assert_accounts(result)
    finally:
        adb.run(f"ALTER FUNCTION auditor.{function} OWNER TO {adb.cluster.superuser}")
        adb.cluster.execute(f"DROP ROLE IF EXISTS {role}")


def test_an_owner_granted_every_pinned_setting_is_broken_by_the_rights_it_lacks(
    adb: Audited,
) -> None:
    if adb.cluster.major < 15:
        pytest.skip("GRANT SET ON PARAMETER exists from PostgreSQL 15 on")
    role = f"{adb.name}_owner"
    pins = "log_min_error_statement, log_min_messages, log_error_verbosity, lc_messages, "
    pins += "backtrace_functions"
    adb.run(f"CREATE ROLE {role}; GRANT SET ON PARAMETER {pins} TO {role}")
    try:
        adb.run(OWNER_ROUTES["catalog"].format(role=role), app="owner")
        # The settings apply now; the body, run with the owner's rights, cannot read the
        # audit schema (install grants nobody anything there).
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="schema auditor"):
            adb.run("CREATE TABLE refused (id int)", app="victim")
        st = adb.status()
        assert st.broken
        (broken,) = [p.message for p in st.problems if p.breaks]
        assert f"{role} lacks USAGE on schema auditor" in broken
        assert "permission denied for schema auditor" in broken
        assert "may not set" not in broken
        # Given those rights too (granted while its trigger is off: any DDL fails until
        # then), it works, with that role's rights: weakened, not broken.
        adb.run(
            "ALTER EVENT TRIGGER auditor_ddl_command_end DISABLE; "
            f"GRANT USAGE ON SCHEMA auditor TO {role}; "
            f"GRANT INSERT, SELECT ON auditor.events, auditor.settings TO {role}; "
            f"GRANT USAGE ON SEQUENCE auditor.events_id_seq TO {role}; "
            f"GRANT pg_read_all_stats TO {role}; "
            f"GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA auditor TO {role}; "
            "ALTER EVENT TRIGGER auditor_ddl_command_end ENABLE ALWAYS"
        )
        adb.run("CREATE TABLE works (id int)", app="victim")
        st = adb.status()
        assert st.weakened and not st.broken
        assert any(f"record_event() is owned by {role}, not a superuser: the audit runs"
                   in p.message for p in st.problems)  # fmt: skip
    finally:
        adb.run(f"ALTER FUNCTION auditor.record_event() OWNER TO {adb.cluster.superuser}")
        adb.run(f"REVOKE ALL ON SCHEMA auditor FROM {role}; REVOKE ALL ON ALL TABLES IN "
                f"SCHEMA auditor FROM {role}; REVOKE ALL ON ALL SEQUENCES IN SCHEMA auditor "
                f"FROM {role}; REVOKE ALL ON ALL FUNCTIONS IN SCHEMA auditor FROM {role}")  # fmt: skip
        adb.run(f"REVOKE SET ON PARAMETER {pins} FROM {role}")
        adb.cluster.execute(f"DROP ROLE IF EXISTS {role}")


# ---------------------------------------------------------------------------- 6. SQL_ASCII


def test_a_sql_ascii_database_is_read_as_the_server_stores_it(
    tc: TempCluster, tmp_path: Path
) -> None:
    name = f"tamper_ascii{next(_n)}"
    tc.execute(
        f"CREATE DATABASE {name} ENCODING 'SQL_ASCII' TEMPLATE template0 "
        "LC_COLLATE 'C' LC_CTYPE 'C'"
    )
    try:
        capture.install(tc.dsn(name), databases=[name])
        time.sleep(0.01)
        adb = Audited(tc, name, tmp_path / "out", datetime.now(UTC))
        with adb.session("accents") as conn:
            # UTF-8 bytes, as a UTF-8 client sends them: SQL_ASCII stores them unconverted
            # and counts each byte as a character (which the row digest does too).
            conn.execute("CREATE TABLE café (nom text DEFAULT 'crème brûlée')".encode())
        assert capture.status(tc.dsn(name), databases=[name]).exit_code == 0
        result = adb.reconcile()
        assert result.document.findings == () and result.document.summary.matched == 1
        # A byte that is not UTF-8, written into a row: reported, shown, never a crash.
        (row_id,) = adb.ids()
        tamper(adb, f"UPDATE auditor.events SET query = query || E'\\\\xe9' WHERE id = {row_id}")
        result = adb.reconcile()
        (f,) = result.document.findings
        assert f.cls == C.AUDIT_ROW_ALTERED and f.audit_event_ids == (row_id,)
        assert_accounts(result)
        from auditor.db import connect

        with connect(tc.dsn(name)) as conn:
            (row,) = capture.read_audit_events(conn)
        assert row.query == "CREATE TABLE café (nom text DEFAULT 'crème brûlée')\\xe9"
    finally:
        tc.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
