"""reconcile on real clusters: every finding class produced for real, and the accounting.

Each test gets a fresh database with the auditor installed in a cluster of
this module (the tests change server settings and disable triggers, so they do
not share the session cluster).  The evasion or failure is really performed;
the reconciler then reads the cluster's real log files and audit table.
"""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
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
from auditor.timeline import timeline

C = FindingClass
_n = itertools.count(1)


@pytest.fixture(scope="module")
def rc() -> Iterator[TempCluster]:
    with TempCluster() as c:
        yield c


@dataclass
class Audited:
    cluster: TempCluster
    name: str
    out: Path
    t0: datetime

    def run(
        self, query: str, *, app: str = "rec-test", user: str | None = None, db: str | None = None
    ) -> Any:
        return self.cluster.execute(query, dbname=db or self.name, user=user, application_name=app)

    def fails(self, query: str, **kw: Any) -> None:
        with pytest.raises(psycopg.Error):
            self.run(query, **kw)

    def flags(self, **opts: Any) -> dict[str, Any]:
        flags: dict[str, Any] = {
            "dsn": self.cluster.dsn(self.name),
            "logs": [str(self.cluster.log_dir)],
            "since": self.t0.isoformat(),
            "databases": [self.name],
            "out": str(self.out),
        }
        flags.update(opts)
        return flags

    def reconcile(self, **opts: Any) -> ReconcileResult:
        self.cluster.flush_logs()
        return reconcile(load_config(self.flags(**opts), environ={}))

    def admin(self, query: str) -> None:
        """As superuser, outside the test's database (server-wide changes)."""
        self.cluster.execute(query, application_name="rec-admin")


@pytest.fixture
def adb(rc: TempCluster, tmp_path: Path) -> Iterator[Audited]:
    name = f"rec{next(_n)}"
    rc.execute(f"CREATE DATABASE {name}")
    capture.install(rc.dsn(name), databases=[name])
    time.sleep(0.01)
    handle = Audited(rc, name, tmp_path / "out", datetime.now(UTC))
    try:
        yield handle
    finally:
        rc.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def only(result: ReconcileResult, cls: FindingClass) -> list[Finding]:
    return [f for f in result.document.findings if f.cls == cls]


def assert_accounts(result: ReconcileResult) -> None:
    """logged DDL = matched + findings' share; audit rows = matched rows + rows in findings."""
    doc = result.document
    s = doc.summary
    assert s.logged_ddl == s.matched + sum(f.accounts_logged_ddl for f in doc.findings)
    rows = {(f.database, i) for f in doc.findings for i in f.audit_event_ids}
    assert s.audit_rows == s.matched_audit_rows + len(rows)
    assert sum(s.by_class.values()) == len(doc.findings)
    data = json.loads((result.paths["json"]).read_text())
    assert data["summary"]["logged_ddl"] == s.logged_ddl


def tamper(adb: Audited, change: str, *, prepare: str = "", app: str = "forger") -> None:
    """What an intruder with the owner's rights does: lift the protection, change, restore."""
    adb.run(
        prepare + "ALTER TABLE auditor.events DISABLE TRIGGER events_append_only;"
        f"{change};"
        "ALTER TABLE auditor.events ENABLE ALWAYS TRIGGER events_append_only",
        app=app,
    )


def audit_ids(adb: Audited, where: str = "true") -> list[int]:
    rows = adb.run(f"SELECT id FROM auditor.events WHERE {where} ORDER BY id")
    return [int(r[0]) for r in rows]


# ---------------------------------------------------------------------------- matched


def test_ordinary_work_matches_with_no_finding(adb: Audited) -> None:
    adb.run("CREATE TABLE orders (id serial PRIMARY KEY, placed timestamptz)")
    adb.run(
        "CREATE INDEX orders_placed ON orders (placed); ALTER TABLE orders ADD COLUMN note text"
    )
    adb.run("CREATE VIEW recent AS SELECT * FROM orders")
    adb.run("CREATE EXTENSION pg_trgm")
    adb.run("COMMENT ON TABLE orders IS 'orders'; GRANT SELECT ON orders TO PUBLIC")
    adb.run("CREATE TABLE IF NOT EXISTS orders (id int)")
    adb.run("DROP VIEW recent")
    with psycopg.connect(adb.cluster.dsn(adb.name), autocommit=True) as conn:  # extended protocol
        conn.execute("CREATE TABLE ext_t (id int DEFAULT %s)".replace("%s", "42"), prepare=True)
        conn.execute("ALTER TABLE ext_t ADD COLUMN v int")
    result = adb.reconcile()
    assert result.document.findings == ()
    s = result.document.summary
    assert s.logged_ddl == 9 and s.matched == 9
    assert s.audit_rows == len(audit_ids(adb)) > 60  # the extension alone fires dozens of times
    assert_accounts(result)
    assert result.exit_code == 0


# ---------------------------------------------------------------------------- each class


def test_unreported_ddl_when_the_trigger_is_disabled(adb: Audited) -> None:
    adb.run("ALTER EVENT TRIGGER auditor_ddl_command_end DISABLE", app="evil")
    adb.run("CREATE TABLE sneaky (id int)", app="evil")
    adb.run("ALTER EVENT TRIGGER auditor_ddl_command_end ENABLE ALWAYS", app="evil")
    result = adb.reconcile()
    (f,) = only(result, C.UNREPORTED_DDL)
    assert f.severity == Severity.CRITICAL
    assert f.statement == "CREATE TABLE sneaky (id int)"
    assert f.application == "evil" and f.session_id and f.audit_event_ids == ()
    assert "DISABLE" in f.explanation  # points at the cause seen earlier in the log
    disables = only(result, C.EVENT_TRIGGER_DDL)
    assert {d.statement for d in disables} == {
        "ALTER EVENT TRIGGER auditor_ddl_command_end DISABLE",
        "ALTER EVENT TRIGGER auditor_ddl_command_end ENABLE ALWAYS",
    }
    # DISABLE weakens the trigger: critical.  ENABLE ALWAYS cannot weaken it; it ends the
    # evasion (judged on its own): the class's default.
    severity = {d.statement: d.severity for d in disables}
    assert severity["ALTER EVENT TRIGGER auditor_ddl_command_end DISABLE"] == Severity.CRITICAL
    assert severity["ALTER EVENT TRIGGER auditor_ddl_command_end ENABLE ALWAYS"] == Severity.HIGH
    assert_accounts(result)
    assert result.exit_code == 1


def test_event_trigger_ddl_on_another_trigger_is_high(adb: Audited) -> None:
    adb.run(
        "CREATE FUNCTION noop() RETURNS event_trigger LANGUAGE plpgsql AS $$ BEGIN END $$;"
        "CREATE EVENT TRIGGER other_et ON ddl_command_start EXECUTE FUNCTION noop()"
    )
    result = adb.reconcile()
    (f,) = only(result, C.EVENT_TRIGGER_DDL)
    assert f.severity == Severity.HIGH and "other_et" in f.explanation
    assert f.command_tags == ("CREATE FUNCTION", "CREATE EVENT TRIGGER")
    # The CREATE FUNCTION of the same string was audited: its row belongs to the finding.
    assert list(f.audit_event_ids) == audit_ids(adb)
    assert_accounts(result)


def test_audit_row_missing_after_delete(adb: Audited) -> None:
    adb.run("CREATE TABLE to_hide (id int)", app="victim")
    (row_id,) = audit_ids(adb)
    tamper(adb, f"DELETE FROM auditor.events WHERE id = {row_id}", app="cleaner")
    result = adb.reconcile()
    (f,) = only(result, C.AUDIT_ROW_MISSING)
    assert f.severity == Severity.CRITICAL
    assert f.statement == "CREATE TABLE to_hide (id int)" and f.application == "victim"
    assert f.audit_event_ids == ()  # the row is gone; the marker proves it existed
    assert str(row_id) in f.explanation
    # Tampering with the audit table's protections is itself reported.
    (drift,) = only(result, C.CONFIG_DRIFT)
    assert drift.application == "cleaner" and drift.severity == Severity.CRITICAL
    assert_accounts(result)


def test_audit_row_altered_after_update(adb: Audited) -> None:
    adb.run("CREATE TABLE honest (id int)", app="victim")
    (row_id,) = audit_ids(adb)
    tamper(adb, f"UPDATE auditor.events SET session_user_name = 'nobody' WHERE id = {row_id}")
    result = adb.reconcile()
    (f,) = only(result, C.AUDIT_ROW_ALTERED)
    assert f.severity == Severity.CRITICAL
    assert f.statement == "CREATE TABLE honest (id int)"
    assert f.audit_event_ids == (row_id,)
    assert_accounts(result)


@pytest.mark.parametrize(
    "objects",
    [
        '[{"object_identity": 5, "object_type": ["x"], "classid": "not a number",'
        ' "objid": 1.5e400, "address_names": 7, "address_args": {"a": 1},'
        ' "in_extension": "yes"}, 3, "text", null]',
        '{"not": "a list"}',
        '"just a string"',
    ],
)
def test_hostile_objects_in_an_altered_row_are_reported_not_crashed_on(
    adb: Audited, objects: str
) -> None:
    # An intruder who rewrites the objects column to break the reconcile itself.
    adb.run("CREATE TABLE broken_objects (id int)", app="victim")
    (row_id,) = audit_ids(adb)
    tamper(adb, f"UPDATE auditor.events SET objects = '{objects}'::jsonb WHERE id = {row_id}")
    result = adb.reconcile()
    (f,) = only(result, C.AUDIT_ROW_ALTERED)
    assert f.statement == "CREATE TABLE broken_objects (id int)"
    assert f.audit_event_ids == (row_id,)
    assert_accounts(result)
    # Every report was written, with the altered row in the evidence.
    html = result.paths["html"].read_text(encoding="utf-8")
    assert "broken_objects" in html
    data = json.loads(result.paths["json"].read_text(encoding="utf-8"))
    (altered,) = [x for x in data["findings"] if x["class"] == "AUDIT_ROW_ALTERED"]
    assert [a["id"] for a in altered["evidence"]["audit"]] == [row_id]
    # The story of the object is told too, from the log's side.
    from auditor.timeline import timeline

    adb.cluster.flush_logs()
    flags = {
        "dsn": adb.cluster.dsn(adb.name),
        "logs": [str(adb.cluster.log_dir)],
        "since": adb.t0.isoformat(),
        "databases": [adb.name],
    }
    story = timeline(load_config(flags, environ={}), object_name="broken_objects")
    assert any(s.finding and s.finding.cls == C.AUDIT_ROW_ALTERED for s in story.steps)


@pytest.mark.parametrize(
    ("prepare", "change"),
    [
        (
            "",
            "event = 'bogus', command_tag = '', query = NULL, caller_context = repeat('x', 100000)",
        ),
        ("", "session_id = '', vxid = 'not/a/vxid', backend_pid = -1, xid = -5"),
        ("", "database_name = 'elsewhere', client_addr = '::1', client_port = -3"),
        ("", "statement_time = 'infinity', clock_time = '-infinity'"),
        ("", "statement_time = '1970-01-01', session_user_name = E'\\u202e\\x01'"),
        (
            "ALTER TABLE auditor.events ALTER statement_time DROP NOT NULL,"
            " ALTER clock_time DROP NOT NULL, ALTER event DROP NOT NULL,"
            " ALTER command_tag DROP NOT NULL, ALTER session_id DROP NOT NULL,"
            " ALTER objects DROP NOT NULL, ALTER backend_pid DROP NOT NULL;",
            "statement_time = NULL, clock_time = NULL, event = NULL, command_tag = NULL,"
            " session_id = NULL, objects = NULL, backend_pid = NULL",
        ),
    ],
)
def test_a_row_rewritten_with_odd_values_is_reported_not_crashed_on(
    adb: Audited, prepare: str, change: str
) -> None:
    adb.run("CREATE TABLE odd_values (id int)", app="victim")
    (row_id,) = audit_ids(adb)
    tamper(adb, f"UPDATE auditor.events SET {change} WHERE id = {row_id}", prepare=prepare)
    result = adb.reconcile()
    # The statement is reported (the row no longer proves it), the counts add up,
    # and every report was written.
    about = [
        f for f in result.document.findings if f.statement == "CREATE TABLE odd_values (id int)"
    ]
    assert about and {f.cls for f in about} <= {C.AUDIT_ROW_ALTERED, C.AUDIT_ROW_MISSING}
    assert_accounts(result)
    assert all(p.exists() for p in result.paths.values())
    if "statement_time = NULL" in change:
        # A row without a statement time is in no window: its marker finds it missing,
        # and the explanation says a changed time is one way to get there.
        (f,) = about
        assert f.cls == C.AUDIT_ROW_MISSING and "changed its statement time" in f.explanation
    if "elsewhere" in change:
        (f,) = about
        assert f.cls == C.AUDIT_ROW_ALTERED and f.audit_event_ids == (row_id,)
        (row,) = f.evidence["audit"]
        assert row["database"] == adb.name and row["database_in_row"] == "elsewhere"


def test_a_forged_marker_is_reported_and_never_paired(adb: Audited) -> None:
    # Any role can RAISE LOG a marker-shaped line.  One for the row id the next DDL
    # will get, written first (it would win the pairing), and one for a row that
    # never existed (it would read as a deleted row).
    adb.admin("DROP ROLE IF EXISTS rec_forger; CREATE ROLE rec_forger LOGIN")
    adb.run("GRANT CREATE ON SCHEMA public TO rec_forger")
    (next_id,) = adb.run("SELECT last_value + 1 FROM auditor.events_id_seq")[0]
    forge = (
        "DO $$ BEGIN RAISE LOG 'auditor-marker v1 schema=auditor id=% xid=% "
        "event=ddl_command_end digest=% tag=CREATE TABLE', {id}, txid_current() % 4294967296, "
        "repeat('0', 64); END $$"
    )
    adb.run(forge.format(id=next_id) + "; CREATE TABLE forged_first (id int)", user="rec_forger")
    adb.run(forge.format(id=987654), app="forger", user="rec_forger")
    adb.run(
        """DO $$ BEGIN RAISE LOG 'parameter "log_statement" changed to "ddl"'; END $$""",
        app="forger",
        user="rec_forger",
    )
    result = adb.reconcile()
    forged = [f for f in only(result, C.CONFIG_DRIFT) if "forged audit marker" in f.explanation]
    assert len(forged) == 2
    assert {f.severity for f in forged} == {Severity.CRITICAL}
    assert all("inline_code_block" in f.explanation for f in forged)
    assert {f.user for f in forged} == {"rec_forger"}
    # The real marker pairs with its row: the DDL is matched, nothing reads as altered
    # or deleted.
    classes = {f.cls for f in result.document.findings}
    assert not classes & {C.AUDIT_ROW_ALTERED, C.AUDIT_ROW_MISSING, C.UNLOGGED_DDL}
    assert_accounts(result)
    assert result.document.summary.matched >= 1
    (reload,) = [
        f for f in only(result, C.CONFIG_DRIFT) if "forged server message" in f.explanation
    ]
    assert reload.severity == Severity.CRITICAL and reload.user == "rec_forger"


def test_unlogged_ddl_after_set_log_statement_none(adb: Audited) -> None:
    with psycopg.connect(
        adb.cluster.dsn(adb.name, application_name="quiet"), autocommit=True
    ) as conn:
        cur = psycopg.ClientCursor(conn)
        cur.execute("SET log_statement = 'none'")
        cur.execute("CREATE TABLE quiet_one (id int)")
        session = conn.execute(
            "SELECT to_hex(trunc(extract(epoch FROM backend_start))::int)||'.'||to_hex(pid) "
            "FROM pg_stat_activity WHERE pid = pg_backend_pid()"
        ).fetchone()[0]
    result = adb.reconcile()
    (f,) = only(result, C.UNLOGGED_DDL)
    assert f.severity == Severity.CRITICAL
    assert f.statement == "CREATE TABLE quiet_one (id int)"
    assert f.session_id == session and f.audit_event_ids == tuple(audit_ids(adb))
    assert "markers are in the log" in f.explanation
    assert f.accounts_logged_ddl == 0
    assert_accounts(result)


def test_set_session_authorization_is_impersonated_ddl(adb: Audited) -> None:
    adb.admin("DROP ROLE IF EXISTS rec_alice; CREATE ROLE rec_alice")
    adb.run("GRANT CREATE ON SCHEMA public TO rec_alice")
    with psycopg.connect(
        adb.cluster.dsn(adb.name, application_name="sudo"), autocommit=True
    ) as conn:
        cur = psycopg.ClientCursor(conn)
        cur.execute("SET SESSION AUTHORIZATION rec_alice")
        cur.execute("CREATE TABLE framed (id int)")
    try:
        result = adb.reconcile()
    finally:
        adb.run("DROP TABLE framed; REVOKE CREATE ON SCHEMA public FROM rec_alice")
        adb.admin("DROP ROLE rec_alice")
    # Both channels agree on who logged in (the log's user is the row's login user):
    # the DDL ran as another role, which the finding names, but nobody forged anything.
    assert not only(result, C.ATTRIBUTION_MISMATCH)
    (f,) = [
        f for f in only(result, C.IMPERSONATED_DDL) if f.statement == "CREATE TABLE framed (id int)"
    ]
    assert f.severity == Severity.HIGH and f.user == "postgres"
    assert "rec_alice" in f.explanation and "'postgres'" in f.explanation
    assert "SET SESSION AUTHORIZATION" in f.explanation
    assert len(f.audit_event_ids) == 1 and f.accounts_logged_ddl == 1
    assert_accounts(result)


def test_config_drift_from_alter_system_reload_and_live_state(adb: Audited) -> None:
    adb.admin("ALTER SYSTEM SET log_statement = 'none'")
    adb.admin("SELECT pg_reload_conf()")
    time.sleep(0.5)
    try:
        adb.run("ALTER EVENT TRIGGER auditor_sql_drop DISABLE")
        result = adb.reconcile()
    finally:
        adb.run("ALTER EVENT TRIGGER auditor_sql_drop ENABLE ALWAYS")
        adb.admin("ALTER SYSTEM RESET log_statement")
        adb.admin("SELECT pg_reload_conf()")
        time.sleep(0.5)
    drift = only(result, C.CONFIG_DRIFT)
    texts = " | ".join(f.explanation for f in drift)
    # The ALTER SYSTEM line (the statement itself was logged before the reload) ...
    assert any(
        f.statement == "ALTER SYSTEM SET log_statement = 'none'" and f.accounts_logged_ddl == 1
        for f in drift
    )
    # ... the server's 'parameter "log_statement" changed to "none"' line ...
    assert any("reloaded" in f.explanation and "log_statement" in f.explanation for f in drift)
    # ... and the live state: log_statement is none, a trigger is disabled.
    assert "Live server state" in texts and "auditor_sql_drop" in texts
    assert all(f.severity == Severity.CRITICAL for f in drift)
    assert_accounts(result)


def test_setting_changes_that_weaken_nothing_are_not_drift(adb: Audited) -> None:
    """ALTER FUNCTION f() RESET ALL and friends: audited DDL or info, never CONFIG_DRIFT."""
    adb.admin("DROP ROLE IF EXISTS rec_tuned; CREATE ROLE rec_tuned")
    adb.run(
        "CREATE FUNCTION tuned() RETURNS int LANGUAGE sql SET log_statement = 'all' AS 'SELECT 1'"
    )
    adb.run("ALTER FUNCTION tuned() RESET ALL")
    adb.run("ALTER FUNCTION tuned() SET log_min_messages = 'error'")
    adb.run(f"ALTER ROLE rec_tuned IN DATABASE {adb.name} SET log_statement = 'all'")
    adb.run("ALTER ROLE rec_tuned RESET ALL")
    adb.run("ALTER SYSTEM SET log_min_messages = 'info'")
    adb.admin("SELECT pg_reload_conf()")
    time.sleep(0.5)
    try:
        result = adb.reconcile()
        tl = timeline(load_config(adb.flags(), environ={}))
    finally:
        adb.admin("ALTER SYSTEM RESET log_min_messages")
        adb.admin("SELECT pg_reload_conf()")
        adb.admin("DROP ROLE rec_tuned")
        time.sleep(0.5)
    assert only(result, C.CONFIG_DRIFT) == []
    assert result.document.summary.matched == 3  # the three function statements
    info = {f.statement: f.severity for f in only(result, C.UNAUDITABLE_DDL)}
    assert info == {
        f"ALTER ROLE rec_tuned IN DATABASE {adb.name} SET log_statement = 'all'": Severity.INFO,
        "ALTER ROLE rec_tuned RESET ALL": Severity.INFO,
        "ALTER SYSTEM SET log_min_messages = 'info'": Severity.INFO,
        "DROP ROLE IF EXISTS rec_tuned; CREATE ROLE rec_tuned": Severity.MEDIUM,
    }
    assert result.exit_code == 0
    assert_accounts(result)
    # The reload that followed is no finding, but a step of the story.
    (reload,) = [
        s for s in tl.steps if s.log and 'parameter "log_min_messages"' in (s.log.statement or "")
    ]
    assert reload.finding is None


def test_setting_changes_that_weaken_are_drift(adb: Audited) -> None:
    adb.admin("DROP ROLE IF EXISTS rec_hushed; CREATE ROLE rec_hushed")
    adb.run("CREATE FUNCTION replicated() RETURNS int LANGUAGE sql AS 'SELECT 1'")
    adb.run("ALTER FUNCTION replicated() SET session_replication_role = replica")
    adb.run(f"ALTER ROLE rec_hushed IN DATABASE {adb.name} SET log_statement = 'none'")
    adb.run("ALTER SYSTEM RESET log_statement")  # falls back to postgresql.conf or 'none'
    with psycopg.connect(adb.cluster.dsn(adb.name, application_name="chatty")) as conn:
        conn.autocommit = True
        cur = psycopg.ClientCursor(conn)
        cur.execute("SET log_statement = 'all'")  # itself not logged under 'ddl'
        cur.execute("SET log_min_messages = 'error'")  # logged now, weakens nothing
        cur.execute("SET log_statement = 'none'")  # logged, and then silence
        cur.execute("CREATE TABLE chatty_quiet (id int)")
    try:
        result = adb.reconcile()
        tl = timeline(load_config(adb.flags(), environ={}))
    finally:
        adb.admin("DROP ROLE rec_hushed")
    drift = {f.statement: f.severity for f in only(result, C.CONFIG_DRIFT) if f.statement}
    assert drift == {
        "ALTER FUNCTION replicated() SET session_replication_role = replica": Severity.CRITICAL,
        f"ALTER ROLE rec_hushed IN DATABASE {adb.name} SET log_statement = 'none'": (
            Severity.CRITICAL
        ),
        "ALTER SYSTEM RESET log_statement": Severity.HIGH,
        "SET log_statement = 'none'": Severity.CRITICAL,
    }
    # ... and the live check sees the role's override.
    assert any(
        "rec_hushed" in f.explanation and not f.statement for f in only(result, C.CONFIG_DRIFT)
    )
    (fn,) = [f for f in only(result, C.CONFIG_DRIFT) if "replica" in (f.statement or "")]
    assert fn.audit_event_ids and "event triggers" in fn.explanation
    assert [f.statement for f in only(result, C.UNLOGGED_DDL)] == [
        "CREATE TABLE chatty_quiet (id int)"
    ]
    (step,) = [s for s in tl.steps if s.log and s.log.statement == "SET log_min_messages = 'error'"]
    assert step.finding is None
    assert_accounts(result)


# ------------------------------------------------------------------ least privilege


def _cli(adb: Audited, command: str, *args: str) -> subprocess.CompletedProcess[str]:
    adb.cluster.flush_logs()
    return subprocess.run(
        [sys.executable, "-m", "auditor", command, "--log", str(adb.cluster.log_dir),
         "--since", adb.t0.isoformat(), "--database", adb.name, *args],
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip


def _with_reader(adb: Audited, reader: str) -> None:
    """Install again with a reader role; the window starts after that install."""
    capture.install(adb.cluster.dsn(adb.name), databases=[adb.name], reader_role=reader)
    time.sleep(0.01)
    adb.t0 = datetime.now(UTC)


def test_without_dsn_markers_vouch_for_their_rows_never_deleted(adb: Audited) -> None:
    """No --dsn: a marker proves its trigger fired, not that its row is gone."""
    adb.run("CREATE TABLE orders (id serial PRIMARY KEY, placed timestamptz)")
    adb.run("CREATE INDEX orders_placed ON orders (placed); ALTER TABLE orders ADD COLUMN n text")
    adb.run("DO $$BEGIN EXECUTE 'CREATE TABLE made_in_do (x int)'; END$$")
    with psycopg.connect(adb.cluster.dsn(adb.name), autocommit=True) as conn:
        conn.execute("SET log_statement = 'none'")
        conn.execute("CREATE TABLE quiet_one (id int)")
    adb.run("ALTER EVENT TRIGGER auditor_ddl_command_end DISABLE", app="evil")
    adb.run("ALTER TABLE orders ALTER COLUMN n TYPE varchar(9)", app="evil")  # rewrite only
    adb.run("ALTER EVENT TRIGGER auditor_ddl_command_end ENABLE ALWAYS", app="evil")
    result = adb.reconcile(dsn=None)
    doc = result.document
    assert only(result, C.AUDIT_ROW_MISSING) == [] and only(result, C.ROLLED_BACK_DDL) == []
    assert doc.summary.matched == 2  # two logged strings, each with its markers
    (indirect,) = only(result, C.INDIRECT_DDL)
    assert "not read" in indirect.explanation and indirect.severity == Severity.MEDIUM
    (unlogged,) = only(result, C.UNLOGGED_DDL)
    assert (
        unlogged.severity == Severity.CRITICAL and "markers are in the log" in unlogged.explanation
    )
    (unreported,) = only(result, C.UNREPORTED_DDL)
    assert unreported.statement == "ALTER TABLE orders ALTER COLUMN n TYPE varchar(9)"
    assert "table_rewrite" in unreported.explanation
    assert {f.statement for f in only(result, C.EVENT_TRIGGER_DDL)} == {
        "ALTER EVENT TRIGGER auditor_ddl_command_end DISABLE",
        "ALTER EVENT TRIGGER auditor_ddl_command_end ENABLE ALWAYS",
    }
    assert {f.cls for f in doc.findings} == {
        C.INDIRECT_DDL,
        C.UNLOGGED_DDL,
        C.UNREPORTED_DDL,
        C.EVENT_TRIGGER_DDL,
    }
    assert any("No --dsn" in n for n in doc.notes)


def test_a_role_that_cannot_read_the_audit_schema_gets_exit_2_not_deleted_rows(
    adb: Audited,
) -> None:
    adb.admin("DROP ROLE IF EXISTS rec_nosy; CREATE ROLE rec_nosy LOGIN")
    adb.t0 = datetime.now(UTC)
    adb.run("CREATE TABLE seen_by_both (id int)")
    try:
        result = adb.reconcile(dsn=adb.cluster.dsn(adb.name, "rec_nosy"))
        cli = _cli(adb, "reconcile", "--dsn", adb.cluster.dsn(adb.name, "rec_nosy"),
                   "--out", str(adb.out / "cli"))  # fmt: skip
        tl = _cli(adb, "timeline", "--dsn", adb.cluster.dsn(adb.name, "rec_nosy"))
    finally:
        adb.admin("DROP ROLE rec_nosy")
    assert result.exit_code == 2
    (error,) = result.errors
    assert error == (
        f"database {adb.name}: permission denied for schema auditor: reconcile needs USAGE on "
        "schema auditor and SELECT on its tables (auditor install --reader-role ROLE, then "
        "--reader-role ROLE or connect as a member)"
    )
    # Never "not installed", never a deleted row: the database is not judged at all.
    classes = {f.cls for f in result.document.findings}
    assert not classes & {C.AUDIT_ROW_MISSING, C.UNREPORTED_DDL, C.UNMONITORED_DATABASE}
    assert result.document.databases == ()
    assert any(error in n for n in result.document.notes)
    assert result.paths["json"].exists()
    for out in (cli, tl):
        assert out.returncode == 2, out.stderr
        assert f"auditor: error: {error}" in out.stderr and "Traceback" not in out.stderr
    assert cli.stderr.count("\n") == 1 and "exit 2: the run is incomplete" in cli.stdout
    assert tl.stderr.count("\n") == 1 and "deleted" not in tl.stdout + tl.stderr


def test_a_role_that_reads_the_events_but_not_the_install_record(adb: Audited) -> None:
    adb.admin("DROP ROLE IF EXISTS rec_half; CREATE ROLE rec_half LOGIN")
    adb.run("GRANT USAGE ON SCHEMA auditor TO rec_half; GRANT SELECT ON auditor.events TO rec_half")
    adb.run("CREATE TABLE half_seen (id int)")
    try:
        result = adb.reconcile(dsn=adb.cluster.dsn(adb.name, "rec_half"))
    finally:
        adb.run(
            "REVOKE ALL ON auditor.events FROM rec_half; REVOKE ALL ON SCHEMA auditor FROM rec_half"
        )
        adb.admin("DROP ROLE rec_half")
    assert result.exit_code == 2
    (error,) = result.errors
    assert error.startswith(f"database {adb.name}: permission denied for table ")
    assert "reconcile needs USAGE on schema auditor and SELECT on its tables" in error
    assert not {f.cls for f in result.document.findings} & {C.AUDIT_ROW_MISSING, C.UNREPORTED_DDL}


def test_a_reader_without_pg_xact_status_gets_exit_2(adb: Audited) -> None:
    _with_reader(adb, "rec_reader_x")
    adb.admin(
        "DROP ROLE IF EXISTS rec_member_x; CREATE ROLE rec_member_x LOGIN IN ROLE rec_reader_x"
    )
    adb.run("REVOKE EXECUTE ON FUNCTION pg_xact_status(xid8) FROM PUBLIC")
    adb.run("CREATE TABLE with_marker (id int)")
    try:
        result = adb.reconcile(dsn=adb.cluster.dsn(adb.name, "rec_member_x"))
    finally:
        adb.run("GRANT EXECUTE ON FUNCTION pg_xact_status(xid8) TO PUBLIC")
        adb.admin("DROP ROLE rec_member_x")
    assert result.exit_code == 2
    (error,) = result.errors
    assert error.startswith(
        f"database {adb.name}: permission denied for function pg_xact_status: reconcile needs "
        "EXECUTE on pg_xact_status(xid8)"
    )
    assert not {f.cls for f in result.document.findings} & {C.AUDIT_ROW_MISSING, C.UNREPORTED_DDL}


def test_the_reader_role_path(adb: Audited) -> None:
    """A NOINHERIT member reads only with --reader-role; a non-member cannot SET ROLE."""
    _with_reader(adb, "rec_reader_y")
    adb.admin(
        "DROP ROLE IF EXISTS rec_member_y, rec_stranger; "
        "CREATE ROLE rec_member_y LOGIN NOINHERIT IN ROLE rec_reader_y; "
        "CREATE ROLE rec_stranger LOGIN"
    )
    adb.run("CREATE TABLE read_as_reader (id int)")
    member = adb.cluster.dsn(adb.name, "rec_member_y")
    try:
        as_reader = adb.reconcile(dsn=member, reader_role="rec_reader_y")
        without = adb.reconcile(dsn=member)
        stranger = _cli(adb, "reconcile", "--dsn", adb.cluster.dsn(adb.name, "rec_stranger"),
                        "--reader-role", "rec_reader_y", "--out", str(adb.out / "s"))  # fmt: skip
    finally:
        adb.admin("DROP ROLE rec_member_y, rec_stranger")
    assert as_reader.exit_code == 0 and as_reader.errors == ()
    assert as_reader.document.summary.matched == 1
    assert [d.installed for d in as_reader.document.databases] == [True]
    assert without.exit_code == 2 and "permission denied" in without.errors[0]
    assert stranger.returncode == 2
    assert stranger.stderr.count("\n") == 1 and "Traceback" not in stranger.stderr
    assert "cannot SET ROLE rec_reader_y" in stranger.stderr


# ------------------------------------------------------------- a reconcile watching nothing


def test_a_server_without_the_auditor_fails_visibly(tmp_path: Path) -> None:
    """A nightly job pointed at the wrong server must not stay green (exit 2, reports kept)."""
    with TempCluster() as bare:
        bare.execute("CREATE DATABASE shop")
        bare.execute("CREATE TABLE unwatched (id int)", dbname="shop")
        bare.flush_logs()
        out = subprocess.run(
            [sys.executable, "-m", "auditor", "reconcile", "--dsn", bare.dsn("postgres"),
             "--log", str(bare.log_dir), "--out", str(tmp_path / "out")],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        status = subprocess.run(
            [sys.executable, "-m", "auditor", "status", "--dsn", bare.dsn("postgres")],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert status.returncode == 1 and "WEAKENED" in status.stdout
    assert out.returncode == 2, out.stdout + out.stderr
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    assert "the auditor is installed in none of the databases checked" in out.stderr
    assert "postgres, shop, template1" in out.stderr
    data = json.loads((tmp_path / "out" / "findings.json").read_text())
    assert any("installed in none" in n for n in data["notes"])
    assert {d["name"]: d["installed"] for d in data["sources"]["databases"]} == {
        "postgres": False,
        "shop": False,
        "template1": False,
    }
    # Its DDL is still judged from the log alone: the unwatched database is said so.
    assert [
        f["class"] for f in data["findings"] if f["statement"] == "CREATE TABLE unwatched (id int)"
    ] == ["UNMONITORED_DATABASE"]


def test_a_database_list_without_the_auditor_fails_visibly(adb: Audited) -> None:
    other = f"{adb.name}_bare"
    adb.admin(f"CREATE DATABASE {other}")
    try:
        result = adb.reconcile(databases=[other])
    finally:
        adb.admin(f"DROP DATABASE {other}")
    assert result.exit_code == 2
    (error,) = result.errors
    assert f"installed in none of the databases checked ({other})" in error


# ------------------------------------------------------------------ installs and first run


@pytest.fixture
def fresh(rc: TempCluster, tmp_path: Path) -> Iterator[Audited]:
    """A database without the auditor yet; the window starts before anything in it."""
    name = f"rec{next(_n)}"
    rc.execute(f"CREATE DATABASE {name}")
    time.sleep(0.01)
    handle = Audited(rc, name, tmp_path / "out", datetime.now(UTC))
    try:
        yield handle
    finally:
        rc.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        rc.execute("DROP ROLE IF EXISTS rec_first_reader")


def _older_install_row(adb: Audited) -> None:
    """What an install of an older version left in the history (the row install reads)."""
    adb.run(
        "INSERT INTO auditor.installs (package_version, schema_version, mail_mode, functions) "
        "VALUES ('0.0.9', 1, 'outbox', '{}')"
    )


def test_first_run_install_and_upgrade_are_info(fresh: Audited) -> None:
    fresh.run("CREATE TABLE from_before (id int)")
    fresh.run("CREATE INDEX from_before_id ON from_before (id)")
    capture.install(fresh.cluster.dsn(fresh.name), databases=[fresh.name],
                    reader_role="rec_first_reader")  # fmt: skip
    fresh.run("CREATE TABLE after_install (id int)")
    _older_install_row(fresh)
    report = capture.install(fresh.cluster.dsn(fresh.name), databases=[fresh.name],
                             reader_role="rec_first_reader")  # fmt: skip
    assert report.databases[0].action == "upgraded"
    fresh.run("CREATE TABLE after_upgrade (id int)")
    result = fresh.reconcile()
    assert result.exit_code == 0, [
        (f.cls, f.severity, f.statement) for f in result.document.findings
    ]
    assert {f.severity for f in result.document.findings} == {Severity.INFO}
    before = only(result, C.UNMONITORED_DATABASE)
    assert sorted(f.statement for f in before) == [
        "CREATE INDEX from_before_id ON from_before (id)",
        "CREATE TABLE from_before (id int)",
    ]
    assert all("before the auditor was installed" in f.explanation for f in before)
    installs = only(result, C.EVENT_TRIGGER_DDL)
    assert len(installs) == 2
    texts = " | ".join(f.explanation for f in installs)
    assert "(installed to " in texts and "(upgraded from 0.0.9 to " in texts
    (role,) = only(result, C.UNAUDITABLE_DDL)
    assert "created role 'rec_first_reader'" in role.explanation
    assert result.document.summary.matched == 2
    assert_accounts(result)


def test_every_statement_install_sends_is_a_known_shape(fresh: Audited) -> None:
    """The recognised shapes follow the installer: a statement it adds must be added there."""
    from auditor.installs import statement_shape

    for kw in ({}, {"reader_role": "rec_first_reader"}, {"mail_mode": "none"}):
        report = capture.install(fresh.cluster.dsn(fresh.name), dry_run=True, **kw)
        (db,) = report.databases
        assert [s for s in db.statements if statement_shape(s, "auditor") is None] == [], kw


def test_a_replayed_install_script_without_its_installs_row_stays_what_it_is(
    adb: Audited,
) -> None:
    """The same texts, no installs row at that time by that user: not an install."""
    plan = [
        *(f'DROP EVENT TRIGGER IF EXISTS "auditor_{e}"' for e in capture.EVENTS),
        capture.render("capture_install.sql", "auditor"),
        capture.render("capture_event_triggers.sql", "auditor"),
    ]
    with psycopg.connect(adb.cluster.dsn(adb.name, application_name="auditor install")) as conn:
        for stmt in plan:
            conn.execute(stmt)
    result = adb.reconcile()
    ours = [f for f in only(result, C.EVENT_TRIGGER_DDL) if f.severity == Severity.CRITICAL]
    assert ours and all(f.application == "auditor install" for f in ours)
    assert not [f for f in result.document.findings if f.severity == Severity.INFO]
    assert result.exit_code == 1
    assert_accounts(result)


def test_an_install_transaction_with_one_more_statement_is_not_an_install(adb: Audited) -> None:
    """An installs row is written, by that user, at that time; but the transaction also
    created a table behind the dropped triggers' back."""
    stmts = [
        'DROP EVENT TRIGGER IF EXISTS "auditor_ddl_command_end"',
        'DROP EVENT TRIGGER IF EXISTS "auditor_sql_drop"',
        'DROP EVENT TRIGGER IF EXISTS "auditor_table_rewrite"',
        capture.render("capture_install.sql", "auditor"),
        "CREATE TABLE smuggled (id int)",
        "INSERT INTO auditor.installs (package_version, schema_version, mail_mode, functions) "
        f"VALUES ('{capture.__version__}', {capture.SCHEMA_VERSION}, 'outbox', '{{}}')",
        capture.render("capture_event_triggers.sql", "auditor"),
    ]
    with psycopg.connect(adb.cluster.dsn(adb.name)) as conn:
        for stmt in stmts:
            conn.execute(stmt)
    result = adb.reconcile()
    (smuggled,) = [
        f for f in result.document.findings if f.statement == "CREATE TABLE smuggled (id int)"
    ]
    assert smuggled.cls == C.UNREPORTED_DDL and smuggled.severity == Severity.CRITICAL
    assert not [f for f in result.document.findings if "auditor install" in f.explanation]
    assert_accounts(result)


def test_an_uninstall_and_the_ddl_before_a_reinstall_are_never_info(adb: Audited) -> None:
    capture.uninstall(adb.cluster.dsn(adb.name), databases=[adb.name])
    adb.run("CREATE TABLE while_uninstalled (id int)")
    capture.install(adb.cluster.dsn(adb.name), databases=[adb.name])
    result = adb.reconcile()
    (gap,) = [
        f
        for f in result.document.findings
        if f.statement == "CREATE TABLE while_uninstalled (id int)"
    ]
    assert gap.cls == C.UNREPORTED_DDL and gap.severity == Severity.CRITICAL
    dropped = [f for f in result.document.findings if f.time and f.cls == C.EVENT_TRIGGER_DDL]
    assert any(f.severity == Severity.CRITICAL and "DROP EVENT TRIGGER" in (f.statement or "")
               for f in dropped)  # fmt: skip
    # The reinstall is recognised (info); the uninstall is not.
    (reinstall,) = [f for f in result.document.findings if "auditor install" in f.explanation]
    assert reinstall.severity == Severity.INFO and "(installed to " in reinstall.explanation
    assert_accounts(result)


def test_unmonitored_database(adb: Audited) -> None:
    other = f"{adb.name}_plain"
    adb.admin(f"CREATE DATABASE {other}")
    try:
        adb.run("CREATE TABLE nobody_watches (id int)", db=other)
        result = adb.reconcile(databases=[adb.name, other])
    finally:
        adb.admin(f"DROP DATABASE {other}")
    (f,) = only(result, C.UNMONITORED_DATABASE)
    assert f.database == other and f.severity == Severity.HIGH
    assert f.statement == "CREATE TABLE nobody_watches (id int)"
    dbs = {d.name: d.installed for d in result.document.databases}
    assert dbs == {adb.name: True, other: False}
    assert_accounts(result)


def test_unauditable_ddl(adb: Audited) -> None:
    adb.admin("DROP ROLE IF EXISTS rec_role, rec_root")
    adb.run("CREATE ROLE rec_role")
    adb.run("CREATE ROLE rec_root SUPERUSER")
    adb.run(f"GRANT CONNECT ON DATABASE {adb.name} TO rec_role")
    adb.run("ALTER SYSTEM SET work_mem = '8MB'")
    try:
        result = adb.reconcile()
    finally:
        adb.run(f"REVOKE CONNECT ON DATABASE {adb.name} FROM rec_role")
        adb.admin("DROP ROLE rec_role, rec_root")
        adb.admin("ALTER SYSTEM RESET work_mem")
    found = {f.statement: f.severity for f in only(result, C.UNAUDITABLE_DDL)}
    assert found == {
        # Run from another database: role DDL is cluster-wide, so --database keeps it.
        "DROP ROLE IF EXISTS rec_role, rec_root": Severity.MEDIUM,
        "CREATE ROLE rec_role": Severity.MEDIUM,
        "CREATE ROLE rec_root SUPERUSER": Severity.HIGH,
        f"GRANT CONNECT ON DATABASE {adb.name} TO rec_role": Severity.MEDIUM,
        "ALTER SYSTEM SET work_mem = '8MB'": Severity.HIGH,
    }
    assert_accounts(result)


def test_indirect_ddl_from_do_function_and_procedure(adb: Audited) -> None:
    adb.run(
        "CREATE FUNCTION mk() RETURNS void LANGUAGE plpgsql AS $$ BEGIN EXECUTE 'CREATE TABLE by_func (id int)'; END $$"
    )
    adb.run(
        "CREATE PROCEDURE mkp() LANGUAGE plpgsql AS $$ BEGIN CREATE TABLE by_proc (id int); END $$"
    )
    adb.run("DO $$ BEGIN CREATE TABLE by_do (id int); END $$", app="migrator")
    adb.run("SELECT mk()", app="migrator")
    adb.run("CALL mkp()", app="migrator")
    result = adb.reconcile()
    found = only(result, C.INDIRECT_DDL)
    assert sorted(f.statement or "" for f in found) == [
        "CALL mkp()",
        "DO $$ BEGIN CREATE TABLE by_do (id int); END $$",
        "SELECT mk()",
    ]
    assert all(f.severity == Severity.MEDIUM and len(f.audit_event_ids) == 1 for f in found)
    assert all(f.accounts_logged_ddl == 0 for f in found)
    assert result.document.summary.matched == 2  # the CREATE FUNCTION and CREATE PROCEDURE
    assert_accounts(result)


def test_allow_list_keeps_the_record_marked(adb: Audited) -> None:
    adb.run("DO $$ BEGIN CREATE TABLE allowed_do (id int); END $$", app="migrator")
    result = adb.reconcile(
        allow=[{"class": "INDIRECT_DDL", "application": "migrator", "reason": "flyway"}],
        severity={"FAILED_DDL": "high"},
    )
    (f,) = only(result, C.INDIRECT_DDL)
    assert f.allowed and "flyway" in f.explanation
    assert result.exit_code == 0
    data = json.loads(result.paths["json"].read_text())
    assert data["findings"][0]["allowed"] is True


def test_failed_and_rolled_back_ddl(adb: Audited) -> None:
    adb.run("CREATE TABLE dup (id int)")
    adb.fails("CREATE TABLE dup (id int)", app="oops")
    adb.run("BEGIN; CREATE TABLE never (id int); ROLLBACK", app="undo")
    with psycopg.connect(
        adb.cluster.dsn(adb.name, application_name="undo2"), autocommit=True
    ) as conn:
        cur = psycopg.ClientCursor(conn)
        cur.execute("BEGIN")
        cur.execute("CREATE TABLE never2 (id int)")
        cur.execute("ROLLBACK")
    result = adb.reconcile()
    (failed,) = only(result, C.FAILED_DDL)
    assert failed.application == "oops" and failed.severity == Severity.INFO
    assert "already exists" in failed.explanation
    rolled = {f.statement for f in only(result, C.ROLLED_BACK_DDL)}
    assert rolled == {
        "BEGIN; CREATE TABLE never (id int); ROLLBACK",
        "CREATE TABLE never2 (id int)",
    }
    assert not only(result, C.AUDIT_ROW_MISSING)
    assert result.exit_code == 0  # info only
    assert_accounts(result)


def test_rolled_back_savepoint_in_committed_transaction(adb: Audited) -> None:
    with psycopg.connect(adb.cluster.dsn(adb.name, application_name="sp"), autocommit=True) as conn:
        cur = psycopg.ClientCursor(conn)
        cur.execute("BEGIN")
        cur.execute("CREATE TABLE kept1 (id int)")
        cur.execute("SAVEPOINT s1")
        cur.execute("CREATE TABLE undone (id int)")
        cur.execute("ROLLBACK TO SAVEPOINT s1")
        cur.execute("CREATE TABLE kept2 (id int)")
        cur.execute("COMMIT")
    adb.run(
        "BEGIN; SAVEPOINT a; CREATE TABLE undone2 (id int); ROLLBACK TO a; CREATE TABLE kept3 (id int); COMMIT"
    )
    result = adb.reconcile()
    assert not only(result, C.AUDIT_ROW_MISSING)
    rolled = only(result, C.ROLLED_BACK_DDL)
    assert {f.statement for f in rolled} == {
        "CREATE TABLE undone (id int)",
        "BEGIN; SAVEPOINT a; CREATE TABLE undone2 (id int); ROLLBACK TO a; CREATE TABLE kept3 (id int); COMMIT",
    }
    assert result.document.summary.matched == 2  # kept1, kept2
    assert_accounts(result)


def test_log_gap_for_a_missing_file_and_garbled_lines(adb: Audited, tmp_path: Path) -> None:
    with psycopg.connect(adb.cluster.dsn(adb.name), autocommit=True) as conn:
        cur = psycopg.ClientCursor(conn)
        cur.execute("SET log_statement = 'none'")
        cur.execute("CREATE TABLE quiet_before_gap (id int)")
    adb.run("CREATE TABLE before_gap (id int)")
    adb.cluster.flush_logs()
    logs = tmp_path / "logs"
    logs.mkdir()
    current = adb.cluster.current_logfiles()["csvlog"]
    lines = current.read_bytes().splitlines(keepends=True)
    garbled = [*lines[:-3], b"\x00\x01 this is not a csv row at all\n", *lines[-3:]]
    copy = logs / "postgresql.csv"
    copy.write_bytes(b"".join(garbled))
    result = adb.reconcile(logs=[str(copy), str(tmp_path / "missing.csv")])
    gaps = only(result, C.LOG_GAP)
    texts = [g.explanation for g in gaps]
    assert any("missing.csv" in t for t in texts)
    bad_line = len(lines) - 2  # 1-based line of the inserted garbage
    assert any(g.log_file == str(copy) and g.log_line == bad_line for g in gaps), texts
    assert all(g.severity == Severity.HIGH for g in gaps)
    # The rest of the input was still read: the table before the gap matched.
    assert result.document.summary.matched == 1
    # The garbled line spans only its neighbours' times: earlier evidence keeps its class.
    (unlogged,) = only(result, C.UNLOGGED_DDL)
    assert unlogged.statement == "CREATE TABLE quiet_before_gap (id int)"
    assert all(g.audit_event_ids == () for g in gaps)
    assert_accounts(result)


def test_nothing_readable_is_exit_2(adb: Audited, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from auditor.cli import app

    out = CliRunner().invoke(
        app,
        [
            "reconcile",
            "--dsn",
            adb.cluster.dsn(adb.name),
            "--log",
            str(tmp_path / "nope.log"),
            "--out",
            str(tmp_path / "o"),
        ],
    )
    assert out.exit_code == 2
    assert "nope.log" in out.output and "Traceback" not in out.output


def test_unreachable_server_is_exit_2(tmp_path: Path, rc: TempCluster) -> None:
    from typer.testing import CliRunner

    from auditor.cli import app

    out = CliRunner().invoke(
        app,
        [
            "reconcile",
            "--dsn",
            "host=127.0.0.1 port=1 user=x password=sekret dbname=y",
            "--log",
            str(rc.log_dir),
            "--out",
            str(tmp_path / "o"),
        ],
    )
    assert out.exit_code == 2
    assert (
        "127.0.0.1:1" in out.output and "sekret" not in out.output and "Traceback" not in out.output
    )


def test_cli_writes_reports_and_exit_codes(adb: Audited, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from auditor.cli import app

    adb.fails("CREATE TABLE x (id int, id int)", app="typo")
    adb.cluster.flush_logs()
    args = ["reconcile", "--dsn", adb.cluster.dsn(adb.name), "--log", str(adb.cluster.log_dir),
            "--since", adb.t0.isoformat(), "--database", adb.name, "--out", str(tmp_path / "r")]  # fmt: skip
    out = CliRunner().invoke(app, args)
    assert out.exit_code == 0, out.output  # FAILED_DDL is info, below the default 'high'
    out = CliRunner().invoke(app, [*args, "--fail-on", "info"])
    assert out.exit_code == 1
    assert re.search(r"info\s+1\s+FAILED_DDL", out.output)
    for name in ("findings.json", "findings.csv", "report.html"):
        assert (tmp_path / "r" / name).is_file()


def test_reruns_give_identical_findings(adb: Audited) -> None:
    adb.run("DO $$ BEGIN CREATE TABLE r1 (id int); END $$")
    adb.fails("CREATE TABLE r1 (id int)")
    first = adb.reconcile(until=datetime.now(UTC).isoformat())
    second = adb.reconcile(until=first.document.until.isoformat())
    a = [(f.id, f.cls, f.statement, f.audit_event_ids) for f in first.document.findings]
    b = [(f.id, f.cls, f.statement, f.audit_event_ids) for f in second.document.findings]
    assert a == b and len(a) == 2


# ---------------------------------------------------------------------------- a whole day


def test_mixed_day_in_every_format_with_rotation(adb: Audited) -> None:
    """Dozens of sessions, a rotation mid-day: only the deliberate findings, same in all formats."""
    import threading

    def worker(k: int) -> None:
        for j in range(3):
            adb.run(
                f"CREATE TABLE day_{k}_{j} (id serial PRIMARY KEY, v text);"
                f"CREATE INDEX ON day_{k}_{j} (v)",
                app=f"app{k % 4}",
            )
            adb.run(f"ALTER TABLE day_{k}_{j} ADD COLUMN w int", app=f"app{k % 4}")
            if j == 2:
                adb.run(f"DROP TABLE day_{k}_{j}", app=f"app{k % 4}")

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(12)]
    for t in threads[:6]:
        t.start()
    for t in threads[:6]:
        t.join()
    adb.cluster.rotate_logs()
    for t in threads[6:]:
        t.start()
    adb.run("DO $$ BEGIN CREATE TABLE day_do (id int); END $$", app="deliberate")
    adb.fails("CREATE TABLE day_0_0 (id int)", app="deliberate")
    for t in threads[6:]:
        t.join()
    adb.cluster.flush_logs()
    results = {}
    formats = (("csvlog", "*.csv"), ("jsonlog", "*.json"), ("stderr", "*.log"))
    written = adb.cluster.log_destination.split(",")  # no jsonlog before PostgreSQL 15
    for fmt, pattern in (f for f in formats if f[0] in written):
        result = adb.reconcile(logs=[str(adb.cluster.log_dir / pattern)])
        assert_accounts(result)
        assert len({s.path for s in result.document.logs}) >= 2  # rotated mid-day
        results[fmt] = result
        classes = sorted(f.cls.value for f in result.document.findings)
        assert classes == ["FAILED_DDL", "INDIRECT_DDL"], (fmt, classes)
        s = result.document.summary
        assert s.logged_ddl == 12 * 3 * 2 + 12 + 1  # + the DROPs + the failed one
        assert s.matched == s.logged_ddl - 1
    keys = {
        fmt: [
            (f.cls, f.statement, f.session_id, f.vxid, f.audit_event_ids)
            for f in r.document.findings
        ]
        for fmt, r in results.items()
    }
    assert len({repr(k) for k in keys.values()}) == 1 and len(keys) == len(written)


# ---------------------------------------------------------------------------- incremental runs


def test_state_reports_each_finding_once_and_reads_rotated_files_once(
    adb: Audited, tmp_path: Path
) -> None:
    import gzip
    import shutil

    logs = tmp_path / "logs"
    logs.mkdir()
    state = tmp_path / "state.json"

    def sync() -> None:
        """Copy the server's csv logs as a log shipper would (newest file keeps growing)."""
        adb.cluster.flush_logs()
        for p in adb.cluster.log_dir.glob("*.csv"):
            target = logs / p.name
            if not (logs / (p.name + ".gz")).exists():
                shutil.copyfile(p, target)

    adb.run("DO $$ BEGIN CREATE TABLE inc1 (id int); END $$", app="run1")
    adb.run("CREATE TABLE inc_ok1 (id int)", app="run1")
    sync()
    first = adb.reconcile(logs=[str(logs)], state=str(state))
    assert [f.statement for f in first.document.findings] == [
        "DO $$ BEGIN CREATE TABLE inc1 (id int); END $$"
    ]
    assert first.document.summary.matched == 1

    # The log grows, then rotates; the old file is compressed by logrotate.
    adb.run("DO $$ BEGIN CREATE TABLE inc2 (id int); END $$", app="run2")
    sync()
    old = max(logs.glob("*.csv"), key=lambda p: p.stat().st_mtime)
    adb.cluster.rotate_logs()
    adb.run("CREATE TABLE inc_ok2 (id int)", app="run2")
    adb.fails("CREATE TABLE inc_ok2 (id int)", app="run2")
    sync()
    with open(old, "rb") as src, gzip.open(str(old) + ".gz", "wb") as dst:
        shutil.copyfileobj(src, dst)
    old.unlink()

    second = adb.reconcile(logs=[str(logs)], state=str(state), since=None)
    stmts = sorted((f.cls.value, f.statement) for f in second.document.findings)
    assert stmts == [
        ("FAILED_DDL", "CREATE TABLE inc_ok2 (id int)"),
        ("INDIRECT_DDL", "DO $$ BEGIN CREATE TABLE inc2 (id int); END $$"),
    ]
    assert second.document.summary.matched == 1  # inc_ok2, not inc_ok1 again
    assert_accounts(second)
    # A third run with nothing new reports nothing.
    third = adb.reconcile(logs=[str(logs)], state=str(state), since=None)
    assert third.document.findings == () and third.document.summary.logged_ddl == 0


def test_state_carries_an_open_transaction_to_the_next_run(adb: Audited, tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    conn = psycopg.connect(adb.cluster.dsn(adb.name, application_name="slow"), autocommit=True)
    try:
        cur = psycopg.ClientCursor(conn)
        cur.execute("BEGIN")
        cur.execute("CREATE TABLE slow_one (id int)")
        first = adb.reconcile(state=str(state))
        assert first.document.findings == ()
        assert any("carried" in n for n in first.document.notes)
        cur.execute("COMMIT")
    finally:
        conn.close()
    second = adb.reconcile(state=str(state), since=None)
    assert second.document.findings == ()
    assert second.document.summary.matched == 1 and second.document.summary.audit_rows == 1


def test_nested_ddl_inside_a_ddl_statement_and_rolled_back_do(adb: Audited) -> None:
    adb.run(
        "CREATE FUNCTION side() RETURNS int LANGUAGE plpgsql AS "
        "$$ BEGIN EXECUTE 'CREATE TABLE side_effect (id int)'; RETURN 1; END $$"
    )
    adb.run("CREATE TABLE outer_t AS SELECT side() AS x", app="ctas")
    adb.run("BEGIN; DO $$ BEGIN CREATE TABLE in_do_rb (id int); END $$; ROLLBACK", app="dorb")
    result = adb.reconcile()
    (ind,) = only(result, C.INDIRECT_DDL)
    assert ind.statement == "CREATE TABLE outer_t AS SELECT side() AS x" and ind.command_tags == (
        "CREATE TABLE",
    )
    (rb,) = only(result, C.ROLLED_BACK_DDL)
    assert rb.application == "dorb" and rb.audit_event_ids == () and rb.accounts_logged_ddl == 0
    assert result.document.summary.matched == 2  # CREATE FUNCTION, the CTAS itself
    assert_accounts(result)


# ---------------------------------------------------------------------------- weaker logs


def test_pairing_falls_back_to_pid_without_session_id_in_the_prefix(tmp_path: Path) -> None:
    """An old stderr prefix without %c/%v: pid, user, database, time and text instead."""
    with TempCluster(log_line_prefix="%m [%p] %u@%d ", log_destination="stderr") as c:
        c.execute("CREATE DATABASE oldlog")
        capture.install(c.dsn("oldlog"), databases=["oldlog"])
        time.sleep(0.01)
        t0 = datetime.now(UTC)
        c.execute("CREATE TABLE a (id int)", dbname="oldlog")
        c.execute("CREATE TABLE a2 (id int); CREATE TABLE a3 (id int)", dbname="oldlog")
        c.execute("DO $$ BEGIN CREATE TABLE b (id int); END $$", dbname="oldlog")
        c.execute("ALTER EVENT TRIGGER auditor_ddl_command_end DISABLE", dbname="oldlog")
        c.execute("CREATE TABLE hidden (id int)", dbname="oldlog")
        c.execute("ALTER EVENT TRIGGER auditor_ddl_command_end ENABLE ALWAYS", dbname="oldlog")
        c.flush_logs()
        cfg = load_config(
            {
                "dsn": c.dsn("oldlog"),
                "logs": [str(c.log_dir)],
                "log_line_prefix": "%m [%p] %u@%d ",
                "since": t0.isoformat(),
                "databases": ["oldlog"],
                "out": str(tmp_path / "out"),
            },
            environ={},
        )
        result = reconcile(cfg)
    doc = result.document
    assert any("%c" in n and "weaker" in n for n in doc.notes)
    classes = sorted((f.cls.value, f.statement or "") for f in doc.findings)
    assert classes == [
        # live state: a stderr-only log whose prefix lacks %c and %v weakens the log channel
        ("CONFIG_DRIFT", ""),
        ("EVENT_TRIGGER_DDL", "ALTER EVENT TRIGGER auditor_ddl_command_end DISABLE"),
        ("EVENT_TRIGGER_DDL", "ALTER EVENT TRIGGER auditor_ddl_command_end ENABLE ALWAYS"),
        ("INDIRECT_DDL", "DO $$ BEGIN CREATE TABLE b (id int); END $$"),
        ("UNREPORTED_DDL", "CREATE TABLE hidden (id int)"),
    ]
    assert doc.summary.matched == 2
    assert_accounts(result)


def test_several_databases_read_with_the_reader_role(rc: TempCluster, tmp_path: Path) -> None:
    names = [f"multi{next(_n)}", f"multi{next(_n)}"]
    for name in names:
        rc.execute(f"CREATE DATABASE {name}")
    try:
        capture.install(rc.dsn("postgres"), databases=names, reader_role="rec_reader")
        time.sleep(0.01)
        t0 = datetime.now(UTC)
        for name in names:
            rc.execute("CREATE TABLE shared_name (id int)", dbname=name)
            rc.execute("DO $$ BEGIN CREATE TABLE via_do (id int); END $$", dbname=name)
        rc.flush_logs()
        cfg = load_config(
            {
                "dsn": rc.dsn("postgres"),
                "logs": [str(rc.log_dir)],
                "since": t0.isoformat(),
                "databases": names,
                "reader_role": "rec_reader",
                "out": str(tmp_path / "out"),
            },
            environ={},
        )
        result = reconcile(cfg)
        # The reader role can read the audit table but not change it.
        with pytest.raises(psycopg.Error):
            rc.execute("SET ROLE rec_reader; DELETE FROM auditor.events", dbname=names[0])
    finally:
        for name in names:
            rc.execute(f"DROP DATABASE {name} WITH (FORCE)")
        rc.execute("DROP ROLE IF EXISTS rec_reader")
    doc = result.document
    assert {d.name for d in doc.databases if d.installed} == set(names)
    indirect = only(result, C.INDIRECT_DDL)
    assert sorted(f.database for f in indirect) == sorted(names)
    assert doc.summary.matched == 2 and doc.summary.audit_rows == 4
    assert_accounts(result)


# ---------------------------------------------------------------------------- report mail


def test_reconcile_mails_the_report(adb: Audited, smtp_sink: Any, tmp_path: Path) -> None:
    from email import policy
    from email.parser import BytesParser

    from typer.testing import CliRunner

    from auditor.cli import app

    adb.run("DO $$ BEGIN CREATE TABLE mailed (id int); END $$")
    adb.cluster.flush_logs()
    args = ["reconcile", "--dsn", adb.cluster.dsn(adb.name), "--log", str(adb.cluster.log_dir),
            "--since", adb.t0.isoformat(), "--database", adb.name, "--out", str(tmp_path / "r"),
            "--mail-to", "dba@example.com"]  # fmt: skip
    env = {"AUDITOR_SMTP_HOST": "127.0.0.1", "AUDITOR_SMTP_PORT": str(smtp_sink.port),
           "AUDITOR_MAIL_FROM": "auditor@example.com"}  # fmt: skip
    out = CliRunner().invoke(app, args, env=env)
    assert out.exit_code == 0, out.output
    assert "report mailed to dba@example.com" in out.output
    (path,) = smtp_sink.paths()
    msg = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
    assert msg["To"] == "dba@example.com" and "1 finding" in msg["Subject"]
    body = msg.get_body(("plain",)).get_content()
    assert "INDIRECT_DDL" in body
    (attachment,) = list(msg.iter_attachments())
    assert attachment.get_filename() == "report.html"
    assert attachment.get_payload(decode=True) == (tmp_path / "r" / "report.html").read_bytes()

    # SMTP down: the reports are still written, the summary printed, and exit 2 says why.
    smtp_sink.stop()
    out = CliRunner().invoke(app, [*args[:-4], "--out", str(tmp_path / "r2"), *args[-2:]], env=env)
    assert out.exit_code == 2
    assert "INDIRECT_DDL" in out.output and "not mailed" in out.output
    assert (tmp_path / "r2" / "report.html").is_file()


def test_report_command_reproduces_the_reconcile_outputs(adb: Audited, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from auditor.cli import app

    adb.run("DO $$ BEGIN CREATE TABLE again (id int); END $$")
    adb.fails("CREATE TABLE again (id int)")
    result = adb.reconcile()
    assert len(result.document.findings) == 2
    out = CliRunner().invoke(
        app,
        ["report", str(result.paths["json"]), "--html", str(tmp_path / "r.html"),
         "--csv", str(tmp_path / "r.csv")],
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    assert (tmp_path / "r.html").read_bytes() == result.paths["html"].read_bytes()
    assert (tmp_path / "r.csv").read_bytes() == result.paths["csv"].read_bytes()


def test_rows_after_the_last_log_read_are_a_log_gap_not_unlogged(
    adb: Audited, tmp_path: Path
) -> None:
    import shutil

    adb.run("CREATE TABLE early (id int)")
    adb.cluster.flush_logs()
    logs = tmp_path / "logs"
    logs.mkdir()
    for p in adb.cluster.log_dir.glob("*.csv"):
        shutil.copyfile(p, logs / p.name)  # a log shipper that stopped here
    time.sleep(6)  # past the five-second slack of log coverage
    adb.run("CREATE TABLE late (id int)")
    result = adb.reconcile(logs=[str(logs)])
    assert not only(result, C.UNLOGGED_DDL)
    (gap,) = only(result, C.LOG_GAP)
    assert "logs read end" in gap.explanation and len(gap.audit_event_ids) == 1
    assert result.document.summary.matched == 1
    assert_accounts(result)


def test_state_keeps_log_records_read_past_the_window_end(adb: Audited, tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    adb.run("DO $$ BEGIN CREATE TABLE first_half (id int); END $$")
    time.sleep(0.05)
    middle = datetime.now(UTC)
    time.sleep(0.05)
    adb.run("CREATE TABLE second_half (id int)")
    adb.fails("CREATE TABLE second_half (id int)")
    first = adb.reconcile(state=str(state), until=middle.isoformat())
    assert [f.cls for f in first.document.findings] == [C.INDIRECT_DDL]
    # The second half's lines were read (the file offset moved past them) but lie after
    # --until: the next run must still see them.
    second = adb.reconcile(state=str(state), since=None)
    assert [f.cls for f in second.document.findings] == [C.FAILED_DDL]
    assert second.document.summary.matched == 1
    assert_accounts(second)


def test_ddl_just_after_the_last_line_read_is_a_gap_not_unlogged(adb: Audited) -> None:
    """The newest rotated file left out of --log: its first seconds are not 'unlogged'."""
    adb.run("CREATE TABLE before_rotation (id int)", app="app")
    adb.cluster.flush_logs()
    old = adb.cluster.current_logfiles()
    adb.cluster.rotate_logs()
    adb.run("CREATE TABLE after_rotation (id int)", app="app")  # well within 5 s
    adb.cluster.flush_logs()
    for fmt, path in old.items():
        result = adb.reconcile(logs=[str(path)])
        assert_accounts(result)
        got = [(f.cls, f.severity) for f in result.document.findings]
        assert got == [(C.LOG_GAP, Severity.HIGH)], (fmt, got)
        (gap,) = result.document.findings
        assert "after_rotation" in (gap.statement or "") or gap.audit_event_ids, fmt
        assert result.document.summary.matched == 1


def test_a_log_named_twice_is_read_once(adb: Audited) -> None:
    """A directory and a file in it, or one file twice: each statement is still one."""
    adb.run("CREATE TABLE named_twice (id int)", app="app")
    adb.cluster.flush_logs()
    files = adb.cluster.current_logfiles()
    once = adb.reconcile(logs=[str(adb.cluster.log_dir)])
    want = [(f.cls, f.severity, f.statement) for f in once.document.findings]
    assert all(f.severity != Severity.CRITICAL for f in once.document.findings)
    for path in files.values():
        for logs in ([str(path), str(path)], [str(adb.cluster.log_dir), str(path)]):
            result = adb.reconcile(logs=logs)
            got = [(f.cls, f.severity, f.statement) for f in result.document.findings]
            assert got == want, (logs, got)
            assert result.document.summary.matched == once.document.summary.matched
            assert_accounts(result)
            assert any("read once" in n or "not read again" in n for n in result.document.notes)


def test_without_dsn_the_install_and_what_came_before_it_are_not_critical(
    cluster: Any, tmp_path: Path
) -> None:
    """The first log-only run after an install: low at most, and a bypass still critical."""
    name = f"nodsn{next(_n)}"
    cluster.execute(f"CREATE DATABASE {name}")
    try:
        cluster.execute("CREATE TABLE before_install (id int)", dbname=name)
        capture.install(cluster.dsn(name), databases=[name])
        cluster.execute("CREATE TABLE audited_one (id int)", dbname=name)
        capture.install(cluster.dsn(name), databases=[name])  # an upgrade, the same text
        with cluster.connect(name, application_name="bypass") as conn:
            conn.execute("ALTER EVENT TRIGGER auditor_ddl_command_end DISABLE")
            conn.execute("CREATE TABLE bypassed (id int)")
            conn.execute("ALTER EVENT TRIGGER auditor_ddl_command_end ENABLE ALWAYS")
        cluster.flush_logs()
        flags = {"logs": [str(cluster.log_dir)], "databases": [name], "out": str(tmp_path)}
        result = reconcile(load_config(flags, environ={}))
        mine = [f for f in result.document.findings if f.database == name]
        by_stmt = {(f.statement or "").split("(")[0]: f for f in mine if f.statement}
        pre = by_stmt["CREATE TABLE before_install "]
        assert (pre.cls, pre.severity) == (C.UNMONITORED_DATABASE, Severity.LOW)
        installs = [f for f in mine if f.command_tags == ("auditor install",)]
        assert [f.severity for f in installs] == [Severity.LOW, Severity.LOW]
        assert all("--dsn" in f.explanation for f in [pre, *installs])
        bypassed = by_stmt["CREATE TABLE bypassed "]
        assert bypassed.severity == Severity.CRITICAL, bypassed
        assert "audited_one" not in " ".join(f.statement or "" for f in mine)  # its marker
        assert_accounts(result)
    finally:
        cluster.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_an_install_under_debians_prefix_is_recognised(tmp_path: Path) -> None:
    """No %c, no %v: the install's statements are told by their process, not critical."""

    with TempCluster(log_destination="stderr", log_line_prefix="%m [%p] %q%u@%d ") as c:
        c.execute("CREATE DATABASE deb")
        capture.install(c.dsn("deb"), databases=["deb"])
        c.execute("CREATE TABLE after_install (id int)", dbname="deb")
        with c.connect("deb") as conn:  # the same process, one after the other
            conn.execute("CREATE TABLE same_session (id int)")
            conn.execute("ALTER TABLE same_session ADD COLUMN v int")
        c.flush_logs()
        flags = {"dsn": c.dsn("deb"), "logs": [str(c.log_dir)], "databases": ["deb"]}
        result = reconcile(load_config({**flags, "out": str(tmp_path)}, environ={}))
        assert [f for f in result.document.findings if f.severity == Severity.CRITICAL] == []
        (install,) = [f for f in result.document.findings if "auditor install" in f.explanation]
        assert install.severity == Severity.INFO and install.cls == C.EVENT_TRIGGER_DDL
        assert result.document.summary.matched == 3
        assert_accounts(result)
