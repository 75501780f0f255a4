"""Attacks on the installed auditor that got through, each played for real on a cluster.

A hostile superuser changes a schema object with catalog DML (``UPDATE pg_proc``,
``UPDATE pg_class``: never logged under ``log_statement = 'ddl'``, never seen by event
triggers), which only the catalog channel can catch, and then gives that channel a
statement that seems to explain the change: a COMMENT on the object, a DDL statement
naming it that fails, or a harmless ALTER of it in the same transaction.  Each must
stay a critical SILENT_SCHEMA_CHANGE; the same statements without the catalog DML
must still explain what they did change (no false alarm).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from auditor import capture
from auditor.cluster import TempCluster
from auditor.config import load_config
from auditor.model import Finding, FindingClass, Severity
from auditor.reconcile import CARRY, ReconcileResult, reconcile

C = FindingClass
_n = itertools.count(1)


@pytest.fixture(scope="module")
def ac() -> Iterator[TempCluster]:
    with TempCluster() as c:
        yield c


@dataclass
class Audited:
    cluster: TempCluster
    name: str
    out: Path
    state: Path

    def run(self, query: str, *, app: str = "attack-test") -> Any:
        return self.cluster.execute(query, dbname=self.name, application_name=app)

    def fails(self, query: str) -> None:
        with pytest.raises(psycopg.Error):
            self.run(query)

    def session(self, *statements: str) -> None:
        """One session, one statement per round trip (BEGIN ... COMMIT spans several)."""
        with self.cluster.connect(self.name, application_name="attack-session") as conn:
            for stmt in statements:
                conn.execute(stmt)

    def reconcile(self, *, later: timedelta = timedelta(0)) -> ReconcileResult:
        """``later``: run as if that much later (evidence of the last CARRY minutes that
        has no counterpart yet, a role's DDL, is carried to the next run)."""
        self.cluster.flush_logs()
        flags: dict[str, Any] = {
            "dsn": self.cluster.dsn(self.name),
            "logs": [str(self.cluster.log_dir)],
            "databases": [self.name],
            "out": str(self.out),
            "state": str(self.state),
        }
        return reconcile(load_config(flags, environ={}), now=datetime.now(UTC) + later)


@pytest.fixture
def adb(ac: TempCluster, tmp_path: Path) -> Iterator[Audited]:
    name = f"atk{next(_n)}"
    ac.execute(f"CREATE DATABASE {name}")
    capture.install(ac.dsn(name), databases=[name])
    handle = Audited(ac, name, tmp_path / "out", tmp_path / "state.json")
    handle.run("CREATE FUNCTION pay(int) RETURNS int LANGUAGE sql AS 'SELECT $1'")
    handle.run("CREATE TABLE salaries (id int, amount int)")
    handle.reconcile()  # the baseline the attack is compared with
    try:
        yield handle
    finally:
        ac.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


NEW_BODY = "UPDATE pg_proc SET prosrc = 'SELECT $1 * 2' WHERE proname = 'pay'"
OPEN_TABLE = "UPDATE pg_class SET relacl = '{=arwdDxt/postgres}' WHERE relname = 'salaries'"


def silent(result: ReconcileResult) -> list[Finding]:
    return [f for f in result.document.findings if f.cls == C.SILENT_SCHEMA_CHANGE]


def naming(result: ReconcileResult, text: str) -> Finding:
    found = [f for f in silent(result) if text in f.explanation]
    assert len(found) == 1, [f.explanation for f in silent(result)]
    return found[0]


def test_a_comment_on_the_object_does_not_explain_catalog_dml(adb: Audited) -> None:
    adb.run("COMMENT ON FUNCTION pay(int) IS 'reviewed'")
    adb.run(NEW_BODY)
    adb.session("BEGIN", "COMMENT ON TABLE salaries IS 'reviewed'", OPEN_TABLE, "COMMIT")
    result = adb.reconcile()
    assert naming(result, "pay").severity == Severity.CRITICAL
    assert naming(result, "salaries").severity == Severity.CRITICAL


def test_a_failed_statement_naming_the_object_does_not_explain_catalog_dml(
    adb: Audited,
) -> None:
    adb.fails("ALTER FUNCTION pay(int) OWNER TO no_such_role")
    adb.fails("ALTER TABLE salaries OWNER TO no_such_role")
    adb.run(NEW_BODY)
    adb.run(OPEN_TABLE)
    result = adb.reconcile()
    assert naming(result, "pay").severity == Severity.CRITICAL
    assert naming(result, "salaries").severity == Severity.CRITICAL
    failed = [f for f in result.document.findings if f.cls == C.FAILED_DDL]
    assert len(failed) == 2 and all(f.severity == Severity.INFO for f in failed)


def test_an_alter_of_the_function_does_not_explain_a_new_body(adb: Audited) -> None:
    adb.session("BEGIN", "ALTER FUNCTION pay(int) COST 200", NEW_BODY, "COMMIT")
    result = adb.reconcile()
    found = naming(result, "pay")
    assert found.severity == Severity.CRITICAL
    assert "body" in found.explanation


def test_an_alter_of_the_table_does_not_explain_new_privileges(adb: Audited) -> None:
    adb.session(
        "BEGIN",
        "ALTER TABLE salaries ALTER COLUMN amount SET STATISTICS 100",
        OPEN_TABLE,
        "UPDATE pg_attribute SET attacl = '{=r/postgres}' "
        "WHERE attrelid = 'salaries'::regclass AND attname = 'id'",
        "COMMIT",
    )
    found = naming(adb.reconcile(), "salaries")
    assert found.severity == Severity.CRITICAL
    assert "acl" in found.explanation


def test_the_same_statements_alone_explain_what_they_change(adb: Audited) -> None:
    """No false alarm: the statements of the attacks, without catalog DML, and a failed
    CREATE INDEX CONCURRENTLY, whose invalid index stays behind."""
    adb.run("COMMENT ON FUNCTION pay(int) IS 'reviewed'; COMMENT ON TABLE salaries IS 'x'")
    adb.run("ALTER FUNCTION pay(int) COST 200")
    adb.run("CREATE OR REPLACE FUNCTION pay(int) RETURNS int LANGUAGE sql AS 'SELECT $1 + 1'")
    adb.run("GRANT SELECT ON salaries TO PUBLIC; GRANT UPDATE (amount) ON salaries TO PUBLIC")
    adb.run("ALTER TABLE salaries ALTER COLUMN amount SET STATISTICS 100")
    adb.run("CREATE ROLE ctl_owner")
    adb.run("ALTER TABLE salaries OWNER TO ctl_owner; ALTER FUNCTION pay(int) OWNER TO ctl_owner")
    adb.fails("ALTER TABLE salaries OWNER TO no_such_role")
    adb.run("INSERT INTO salaries VALUES (1, 1), (1, 2)")
    adb.fails("CREATE UNIQUE INDEX CONCURRENTLY salaries_id ON salaries (id)")
    ((valid,),) = adb.run(
        "SELECT indisvalid FROM pg_index WHERE indexrelid = 'salaries_id'::regclass"
    )
    assert valid is False
    try:
        result = adb.reconcile()
    finally:
        adb.run("DROP OWNED BY ctl_owner; DROP ROLE ctl_owner")
    assert silent(result) == [], [f.explanation for f in silent(result)]


def test_an_alter_role_does_not_explain_new_role_attributes(adb: Audited) -> None:
    """UPDATE pg_authid makes a role superuser and sets the bootstrap superuser's password,
    each next to a harmless ALTER ROLE of that role (medium, as any ALTER ROLE): the
    catalog channel explained the changes by the role's name."""
    su = adb.cluster.superuser
    adb.run("CREATE ROLE rol_r LOGIN")
    adb.reconcile()
    try:
        adb.run("ALTER ROLE rol_r CONNECTION LIMIT 5")
        adb.run("UPDATE pg_authid SET rolsuper = true WHERE rolname = 'rol_r'")
        adb.run(f"ALTER ROLE {su} VALID UNTIL 'infinity'")
        adb.run(
            "UPDATE pg_authid SET rolpassword = 'md5' || md5('hunter2' || rolname) "
            f"WHERE rolname = '{su}'"
        )
        result = adb.reconcile()
        adb.run("ALTER ROLE rol_r SUPERUSER PASSWORD 'x'; ALTER ROLE rol_r RENAME TO rol_r2")
        adb.run("CREATE ROLE rol_g; GRANT rol_g TO rol_r2; ALTER GROUP rol_g ADD USER " + su)
        ordinary = adb.reconcile()
    finally:
        adb.run(f"UPDATE pg_authid SET rolpassword = NULL WHERE rolname = '{su}'")
        adb.run("DROP ROLE IF EXISTS rol_r; DROP ROLE IF EXISTS rol_r2; DROP ROLE rol_g")
    assert naming(result, "rol_r").severity == Severity.CRITICAL
    assert "superuser" in naming(result, "rol_r").explanation
    assert "password" in naming(result, f"pg_authid {su} ").explanation
    assert silent(ordinary) == [], [f.explanation for f in silent(ordinary)]


# ------------------------------------------------------------- superuser-level role grants


@pytest.mark.parametrize(
    ("query", "grants"),
    [
        ("CREATE ROLE x IN ROLE pg_execute_server_program", True),
        ("CREATE USER x IN GROUP pg_read_server_files, other", True),
        ("CREATE ROLE x NOSUPERUSER LOGIN IN ROLE pg_write_server_files", True),
        ("CREATE ROLE x IN ROLE pg_read_all_data", False),
        ("CREATE ROLE x ROLE pg_execute_server_program", False),  # x's members, not x's
        ("CREATE ROLE x NOSUPERUSER", False),
    ],
)
def test_membership_in_a_server_file_role_by_any_statement_grants_superuser(
    query: str, grants: bool
) -> None:
    """GRANT pg_execute_server_program TO x was high; CREATE ROLE ... IN ROLE grants the
    same membership and was medium (ALTER GROUP cannot alter these reserved roles)."""
    from auditor.classify import classify

    assert classify(query).statements[0].grants_superuser is grants


def test_a_server_file_role_granted_by_create_role_is_high(adb: Audited) -> None:
    adb.run("CREATE ROLE atk_in IN ROLE pg_execute_server_program")
    adb.run("CREATE USER atk_group IN GROUP pg_write_server_files")
    try:
        result = adb.reconcile(later=CARRY + timedelta(minutes=1))
    finally:
        adb.run("DROP ROLE atk_in; DROP ROLE atk_group")
    found = {
        f.statement: f.severity
        for f in result.document.findings
        if f.cls == C.UNAUDITABLE_DDL and "atk_" in (f.statement or "")
    }
    assert found == {
        "CREATE ROLE atk_in IN ROLE pg_execute_server_program": Severity.HIGH,
        "CREATE USER atk_group IN GROUP pg_write_server_files": Severity.HIGH,
    }, found


def test_membership_in_a_superuser_role_is_a_superuser_grant(adb: Audited) -> None:
    """GRANT postgres TO mallory lets mallory SET ROLE postgres: superuser power (SPEC: high),
    like ALTER ROLE mallory SUPERUSER; it was medium, as any role grant."""
    su = adb.cluster.superuser
    adb.run("CREATE ROLE sux_staff; CREATE ROLE sux_m; CREATE ROLE sux_o")
    adb.run(f"GRANT {su} TO sux_m")
    adb.run(f"CREATE ROLE sux_n IN ROLE {su}")
    adb.run(f"ALTER GROUP {su} ADD USER sux_o")
    adb.run("GRANT sux_staff TO sux_m")
    try:
        result = adb.reconcile(later=CARRY + timedelta(minutes=1))
    finally:
        adb.run("DROP ROLE sux_m; DROP ROLE sux_n; DROP ROLE sux_o; DROP ROLE sux_staff")
    found = {
        f.statement: f.severity
        for f in result.document.findings
        if f.cls == C.UNAUDITABLE_DDL and "sux_" in (f.statement or "")
    }
    assert found == {
        "CREATE ROLE sux_staff; CREATE ROLE sux_m; CREATE ROLE sux_o": Severity.MEDIUM,
        f"GRANT {su} TO sux_m": Severity.HIGH,
        f"CREATE ROLE sux_n IN ROLE {su}": Severity.HIGH,
        f"ALTER GROUP {su} ADD USER sux_o": Severity.HIGH,
        "GRANT sux_staff TO sux_m": Severity.MEDIUM,
    }, found


# ------------------------------------------------------------------------ log files


def test_a_log_file_cut_below_what_was_read_is_log_tampered(adb: Audited) -> None:
    """A superuser rewrites the server's own log files through SQL (lo_export writes as
    the server's OS user) and keeps their first bytes: SPEC's LOG_TAMPERED (a file cut
    or replaced), critical; it was a LOG_GAP, high."""
    adb.run("CREATE TABLE before_the_cut (id int)")
    adb.reconcile(later=CARRY + timedelta(minutes=1))
    adb.cluster.flush_logs()
    cut = []
    formats = ["stderr", "csvlog", *(["jsonlog"] if adb.cluster.major >= 15 else [])]
    for (path,) in adb.run(f"SELECT pg_current_logfile(f) FROM unnest(ARRAY{formats!r}) AS f"):
        if path is None:
            continue
        ((oid,),) = adb.run(
            f"SELECT lo_from_bytea(0, substr(pg_read_binary_file('{path}'), 1, "
            f"(pg_stat_file('{path}')).size::int * 3 / 4))"
        )
        adb.run(f"SELECT lo_export({oid}, '{path}'); SELECT lo_unlink({oid})")
        cut.append(path)
    assert cut
    result = adb.reconcile(later=CARRY + timedelta(minutes=2))
    tampered = [
        f for f in result.document.findings if f.cls == C.LOG_TAMPERED and "cut" in f.explanation
    ]
    assert tampered and all(f.severity == Severity.CRITICAL for f in tampered), [
        (f.cls, f.explanation) for f in result.document.findings
    ]
    assert not [
        f for f in result.document.findings if f.cls == C.LOG_GAP and "shorter" in f.explanation
    ]
