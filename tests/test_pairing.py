"""Pairing follows the evidence: real clusters with the prefixes servers really have, real clients.

Each test runs real client programs (Debian's psql, pgbench, pg_dump/pg_restore of
the server's major) against a cluster logging with a given ``log_line_prefix``,
then reconciles the real log files with the real audit table.  Ordinary work gives
no critical finding and the accounting adds up; the evasions on the same prefix
are still found, with their classes.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pairing_helpers import Watched, assert_accounts, criticals, only, psql, tool

from auditor.cluster import TempCluster
from auditor.model import FindingClass, Severity
from auditor.reconcile import ReconcileResult

C = FindingClass
_n = itertools.count(1)

#: Prefixes without %c/%v that real servers log with.
FALLBACK_PREFIXES = {
    "debian": "%m [%p] %q%u@%d ",  # Debian/Ubuntu's default
    "pgbadger": "%t [%p]: user=%u,db=%d,app=%a,client=%h ",  # pgBadger's (whole seconds)
    "rds": "%t:%r:%u@%d:[%p]:",  # RDS/Aurora's default
}


@pytest.fixture(scope="module", params=sorted(FALLBACK_PREFIXES))
def fallback(request: pytest.FixtureRequest) -> Iterator[TempCluster]:
    """A server that logs stderr only, with a prefix lacking %c and %v."""
    with TempCluster(
        log_line_prefix=FALLBACK_PREFIXES[request.param], log_destination="stderr"
    ) as c:
        yield c


@pytest.fixture(scope="module")
def exact() -> Iterator[TempCluster]:
    """The recommended prefix (%c and %v), all the formats the server writes."""
    with TempCluster() as c:
        yield c


def _watched(cluster: TempCluster, tmp_path: Path) -> Iterator[Watched]:
    w = Watched.create(cluster, f"pair{next(_n)}", tmp_path / "out")
    try:
        yield w
    finally:
        w.drop()


@pytest.fixture
def fb(fallback: TempCluster, tmp_path: Path) -> Iterator[Watched]:
    """A fresh audited database on the server without %c/%v."""
    yield from _watched(fallback, tmp_path)


@pytest.fixture
def ex(exact: TempCluster, tmp_path: Path) -> Iterator[Watched]:
    """A fresh audited database on the server with the recommended prefix."""
    yield from _watched(exact, tmp_path)


def _only_weaker_pairing_drift(result: ReconcileResult) -> None:
    """The one high finding a server without %c/%v gets: its live prefix, not an evasion."""
    highs = [f for f in result.document.findings if f.severity == Severity.HIGH]
    assert [(f.cls, "log_line_prefix" in f.explanation) for f in highs] == [
        (C.CONFIG_DRIFT, True)
    ], [(f.cls.value, f.statement) for f in highs]
    assert any("weaker" in n for n in result.document.notes)


def _repeated(n: int) -> str:
    return "".join("DROP TABLE IF EXISTS foo;\nCREATE TABLE foo (id int, v text);\n" * n)


# ------------------------------------------------------------------ without %c / %v


def test_real_clients_pair_on_pid_user_time_and_text(fb: Watched) -> None:
    """pgbench -i, a script of identical statements, a failed twin, pg_dump | pg_restore."""
    c = fb.cluster
    tool(c, "pgbench", "-i", "-s", "1", "--foreign-keys", fb.name)
    script = (
        _repeated(60)
        + "CREATE TABLE wt (a int);\n"
        # The same text twice in one session, the first one failing: the failed one must
        # not take the rows of the one that succeeded.
        + "SET default_transaction_read_only = on;\nDROP TABLE wt;\n"
        + "SET default_transaction_read_only = off;\nDROP TABLE wt;\n"
        + "CREATE TABLE m1 (id int)\\; CREATE INDEX ON m1 (id)\\; COMMENT ON TABLE m1 IS 'm';\n"
    )
    proc = psql(c, fb.name, script)
    assert "read-only transaction" in proc.stderr
    src = f"{fb.name}_src"
    c.execute(f"CREATE DATABASE {src}")
    try:
        c.execute(
            "CREATE TABLE t1 (id serial PRIMARY KEY, v text); CREATE INDEX ON t1 (v);"
            "CREATE VIEW v1 AS SELECT * FROM t1; CREATE SEQUENCE s1;"
            "CREATE FUNCTION f1() RETURNS int LANGUAGE sql AS 'SELECT 1'",
            dbname=src,
        )
        dump = fb.out / "src.dump"
        fb.out.mkdir(parents=True, exist_ok=True)
        tool(c, "pg_dump", "-Fc", "-f", str(dump), src)
        tool(c, "pg_restore", "-d", fb.name, str(dump))
    finally:
        c.execute(f"DROP DATABASE {src}")
    result = fb.reconcile()
    assert criticals(result) == []
    _only_weaker_pairing_drift(result)
    (failed,) = only(result, C.FAILED_DDL)
    assert failed.statement == "DROP TABLE wt;" and "read-only" in failed.explanation
    assert failed.audit_event_ids == ()
    s = result.document.summary
    assert s.matched >= 120 + 11 + 5  # the script, pgbench's DDL, the restore
    assert s.matched_audit_rows == s.audit_rows  # every row paired with its statement
    assert_accounts(result)


def test_evasions_found_among_identical_statements_without_session_ids(fb: Watched) -> None:
    """One session, one text, three times: logged and audited, unlogged, unreported."""
    script = (
        "CREATE TABLE twin (id int);\n"
        "DROP TABLE twin;\n"
        "SET log_statement = 'none';\n"
        "CREATE TABLE twin (id int);\n"  # audited, not logged
        "RESET log_statement;\n"
        "DROP TABLE twin;\n"
        "ALTER EVENT TRIGGER auditor_ddl_command_end DISABLE;\n"
        "CREATE TABLE twin (id int);\n"  # logged, not audited
        "ALTER EVENT TRIGGER auditor_ddl_command_end ENABLE ALWAYS;\n"
        "DROP TABLE twin;\n"
    )
    proc = psql(fb.cluster, fb.name, _repeated(20) + script, app="evil")
    assert proc.returncode == 0, proc.stderr
    creates = [
        int(r[0])
        for r in fb.run(
            "SELECT id FROM auditor.events WHERE command_tag = 'CREATE TABLE' "
            "AND query LIKE 'CREATE TABLE twin%' ORDER BY id"
        )
    ]
    assert len(creates) == 2
    result = fb.reconcile()
    (unlogged,) = only(result, C.UNLOGGED_DDL)
    assert unlogged.severity == Severity.CRITICAL
    assert unlogged.statement == "CREATE TABLE twin (id int);"
    assert unlogged.audit_event_ids == (creates[1],)  # the second one, not the first
    (unreported,) = only(result, C.UNREPORTED_DDL)
    assert unreported.severity == Severity.CRITICAL
    assert unreported.statement == "CREATE TABLE twin (id int);"
    assert "DISABLE" in unreported.explanation
    lines = [
        i
        for i, line in enumerate(
            (fb.cluster.log_dir / Path(unreported.log_file or "").name).read_text().splitlines(),
            1,
        )
        if "statement: CREATE TABLE twin" in line
    ]
    assert len(lines) == 2 and unreported.log_line == lines[1]  # the later logged one
    assert {f.cls for f in result.document.findings if f.severity == Severity.CRITICAL} == {
        C.UNLOGGED_DDL,
        C.UNREPORTED_DDL,
        C.EVENT_TRIGGER_DDL,
    }
    assert_accounts(result)


# ------------------------------------------------------------------ impersonation


def _restore_as_owners(watched: Watched) -> tuple[str, str]:
    """pg_restore --use-set-session-authorization of a dump whose objects two roles own."""
    c = watched.cluster
    alice, bob = f"{watched.name}_alice", f"{watched.name}_bob"
    src = f"{watched.name}_src"
    c.execute(f"CREATE ROLE {alice}; CREATE ROLE {bob}")
    c.execute(f"CREATE DATABASE {src}")
    try:
        c.execute(f"GRANT CREATE ON SCHEMA public TO {alice}, {bob}", dbname=src)
        c.execute(
            f"SET ROLE {alice}; CREATE TABLE t1 (id serial PRIMARY KEY, v text);"
            "CREATE INDEX ON t1 (v); CREATE VIEW v1 AS SELECT * FROM t1;"
            f"RESET ROLE; SET ROLE {bob}; CREATE TABLE t2 (id int); CREATE TABLE t3 (id int);"
            "CREATE FUNCTION f2() RETURNS int LANGUAGE sql AS 'SELECT 2'",
            dbname=src,
        )
        watched.out.mkdir(parents=True, exist_ok=True)
        dump = watched.out / "owners.dump"
        tool(c, "pg_dump", "-Fc", "-f", str(dump), src)
        watched.run(f"GRANT CREATE ON SCHEMA public TO {alice}, {bob}")
        tool(c, "pg_restore", "--use-set-session-authorization", "-d", watched.name, str(dump))
    finally:
        c.execute(f"DROP DATABASE {src}")
    return alice, bob


def _drop_roles(watched: Watched, *roles: str) -> None:
    watched.drop()
    watched.cluster.execute("DROP ROLE " + ", ".join(roles))


def test_pg_restore_as_owners_is_impersonated_ddl_without_session_ids(fb: Watched) -> None:
    _impersonation(fb)


def test_pg_restore_as_owners_is_impersonated_ddl_with_session_ids(ex: Watched) -> None:
    _impersonation(ex)


def _impersonation(watched: Watched) -> None:
    """One finding per run of statements as one role; the tool can be allow-listed."""
    alice, bob = _restore_as_owners(watched)
    try:
        # A DBA acting as alice by hand, in the same window: not pg_restore.
        psql(
            watched.cluster,
            watched.name,
            f"SET SESSION AUTHORIZATION {alice};\nCREATE TABLE by_hand (id int);\n",
            app="psql",
        )
        result = watched.reconcile()
        allowed = watched.reconcile(
            allow=[{"class": "IMPERSONATED_DDL", "application": "pg_restore", "reason": "restore"}]
        )
    finally:
        _drop_roles(watched, alice, bob)
    assert criticals(result) == []
    assert not only(result, C.ATTRIBUTION_MISMATCH)
    found = only(result, C.IMPERSONATED_DDL)
    restore = [f for f in found if f.application == "pg_restore"]
    (hand,) = [f for f in found if f.application == "psql"]
    assert hand.statement == "CREATE TABLE by_hand (id int);" and hand.accounts_logged_ddl == 1
    assert alice in hand.explanation and "'postgres'" in hand.explanation
    assert all(f.severity == Severity.HIGH and f.user == "postgres" for f in found)
    # pg_restore sets the session authorization once per owner: one finding per run of
    # statements as one role, each naming both roles and standing for all its statements.
    statements = sum(f.accounts_logged_ddl for f in restore)
    assert statements > len(restore) >= 2
    for f in restore:
        role = f.evidence["impersonated_role"]
        assert role in (alice, bob, "pg_database_owner"), role
        assert role in f.explanation and "'postgres'" in f.explanation
        listed = f.evidence["statements"]
        assert isinstance(listed, list) and len(listed) == f.accounts_logged_ddl
        assert listed[0]["text"] == f.statement and listed[0]["line"] == f.log_line
        assert len(f.audit_event_ids) >= f.accounts_logged_ddl
    assert {f.evidence["impersonated_role"] for f in restore} >= {alice, bob}
    assert_accounts(result)
    # The allow-list excuses the tool (by the application the rows recorded, also when
    # the prefix has no %a), not the DBA's own impersonation.
    got = {(f.application, f.allowed) for f in only(allowed, C.IMPERSONATED_DDL)}
    assert got == {("pg_restore", True), ("psql", False)}
    assert_accounts(allowed)


# ------------------------------------------------------------------ %c and %v


def test_statements_that_commit_internally_pair_in_every_format(ex: Watched) -> None:
    """CONCURRENTLY: triggers fire under a later vxid than the logged one."""
    script = (
        "CREATE TABLE cc (id int, u int);\n"
        "INSERT INTO cc SELECT g, g % 3 FROM generate_series(1, 100) g;\n"
        "CREATE INDEX CONCURRENTLY cc_id ON cc (id);\n"
        "REINDEX INDEX CONCURRENTLY cc_id;\n"
        "DROP INDEX CONCURRENTLY cc_id;\n"
        "CREATE UNIQUE INDEX CONCURRENTLY cc_u ON cc (u);\n"  # fails: duplicates
        "CREATE TABLE pp (id int) PARTITION BY RANGE (id);\n"
        "CREATE TABLE pp1 PARTITION OF pp FOR VALUES FROM (0) TO (10);\n"
        "ALTER TABLE pp DETACH PARTITION pp1 CONCURRENTLY;\n"
    )
    proc = psql(ex.cluster, ex.name, script)
    assert "could not create unique index" in proc.stderr, proc.stderr
    # Each CONCURRENTLY statement fired under a later vxid than its log line's.
    vxids = ex.run("SELECT count(DISTINCT vxid) FROM auditor.events")[0][0]
    assert vxids >= (6 if ex.cluster.major >= 17 else 5)
    formats = ["csvlog", "stderr"] + (["jsonlog"] if ex.cluster.major >= 15 else [])
    keys = {}
    for fmt in formats:
        result = ex.reconcile(fmt)
        (failed,) = only(result, C.FAILED_DDL)
        assert failed.statement == "CREATE UNIQUE INDEX CONCURRENTLY cc_u ON cc (u);"
        classes = sorted(f.cls.value for f in result.document.findings)
        if ex.cluster.major >= 17:
            # REINDEX fires event triggers from 17 on; log_statement = 'ddl' never logs it.
            (reindex,) = only(result, C.UNLOGGED_DDL)
            assert reindex.severity == Severity.LOW and "only 'all'" in reindex.explanation
            assert classes == ["FAILED_DDL", "UNLOGGED_DDL"], (fmt, classes)
        else:
            assert classes == ["FAILED_DDL"], (fmt, classes)
        # the CREATEs, CIC, DIC, DETACH (PostgreSQL 14+: a syntax error before, not logged)
        assert result.document.summary.matched == (6 if ex.cluster.major >= 14 else 5)
        assert_accounts(result)
        keys[fmt] = [(f.cls, f.statement, f.audit_event_ids) for f in result.document.findings]
    assert len({repr(v) for v in keys.values()}) == 1


def test_implicit_transaction_blocks_with_commit_rollback_and_errors(ex: Watched) -> None:
    """psql's \\; sends one string; a COMMIT inside it starts a new transaction."""
    script = (
        "create table i1 (id int)\\; commit\\; create table i2 (id int);\n"
        "begin\\; create table i3 (id int)\\; commit\\; create table i4 (id int)\\; select 1/0;\n"
        "create table i5 (id int)\\; rollback\\; create table i6 (id int);\n"
        "create table i7 (id int)\\; savepoint s\\; create table i8 (id int);\n"
        "select 1\\; create table i9 (id int)\\; select 2;\n"
    )
    proc = psql(ex.cluster, ex.name, script)
    assert "division by zero" in proc.stderr
    for fmt in ("csvlog", "stderr"):
        result = ex.reconcile(fmt)
        assert criticals(result) == [], fmt
        by_text = {f.statement: f for f in result.document.findings}
        i3 = by_text[
            "begin; create table i3 (id int); commit; create table i4 (id int); select 1/0;"
        ]
        assert i3.cls == C.FAILED_DDL and len(i3.audit_event_ids) == 1  # i3 committed
        i5 = by_text["create table i5 (id int); rollback; create table i6 (id int);"]
        assert i5.cls == C.ROLLED_BACK_DDL and len(i5.audit_event_ids) == 1  # i6 stays
        i7 = by_text["create table i7 (id int); savepoint s; create table i8 (id int);"]
        assert i7.cls == C.FAILED_DDL and i7.audit_event_ids == ()
        assert len(result.document.findings) == 3
        assert result.document.summary.matched == 2  # i1 + i2, i9
        assert_accounts(result)


def test_time_only_breaks_ties_when_session_and_vxid_agree(tmp_path: Path) -> None:
    """Whole-second times with %c and %v: a statement is never rejected for its time."""
    with TempCluster(log_line_prefix="%t [%p] %c %v %u@%d ", log_destination="stderr") as c:
        w = Watched.create(c, "ties", tmp_path / "out")
        script = _repeated(30) + (
            "BEGIN;\nCREATE TABLE same (id int);\nSAVEPOINT a;\nDROP TABLE same;\n"
            "CREATE TABLE same (id int);\nROLLBACK TO a;\nDROP TABLE same;\n"
            "CREATE TABLE same (id int);\nCOMMIT;\n"
        )
        psql(c, w.name, script)
        with psycopg.connect(c.dsn(w.name, application_name="quiet"), autocommit=True) as conn:
            cur = psycopg.ClientCursor(conn)
            cur.execute("SET log_statement = 'none'")
            cur.execute("CREATE TABLE quiet_one (id int)")
        w.run("ALTER EVENT TRIGGER auditor_ddl_command_end DISABLE", app="evil")
        w.run("CREATE TABLE sneaky (id int)", app="evil")
        w.run("ALTER EVENT TRIGGER auditor_ddl_command_end ENABLE ALWAYS", app="evil")
        result = w.reconcile()
    classes = sorted((f.cls.value, f.statement) for f in result.document.findings)
    assert classes == [
        ("EVENT_TRIGGER_DDL", "ALTER EVENT TRIGGER auditor_ddl_command_end DISABLE"),
        ("EVENT_TRIGGER_DDL", "ALTER EVENT TRIGGER auditor_ddl_command_end ENABLE ALWAYS"),
        # the savepoint's rolled-back twins: same session, vxid and text as the kept ones
        ("ROLLED_BACK_DDL", "CREATE TABLE same (id int);"),
        ("ROLLED_BACK_DDL", "DROP TABLE same;"),
        ("UNLOGGED_DDL", "CREATE TABLE quiet_one (id int)"),
        ("UNREPORTED_DDL", "CREATE TABLE sneaky (id int)"),
    ]
    assert result.document.summary.matched == 60 + 3
    assert_accounts(result)


def test_a_login_user_the_log_does_not_show_is_attribution_mismatch(ex: Watched) -> None:
    """A row claiming another login user than the log's (forged by hand): critical."""
    forge = (
        "ALTER EVENT TRIGGER auditor_ddl_command_end DISABLE; CREATE TABLE forged (id int);"
        "INSERT INTO auditor.events (event, command_tag, objects, query, statement_time,"
        " clock_time, session_user_name, current_user_name, login_user_name, database_name,"
        " backend_pid, session_id, vxid, xid)"
        " SELECT 'ddl_command_end', 'CREATE TABLE', '[]', current_query(), statement_timestamp(),"
        " clock_timestamp(), 'rec_mallory', 'rec_mallory', 'rec_mallory', current_database(),"
        " pg_backend_pid(), to_hex(trunc(extract(epoch FROM a.backend_start))::int) || '.' ||"
        " to_hex(a.pid), (SELECT virtualxid FROM pg_locks WHERE locktype = 'virtualxid'"
        " AND pid = pg_backend_pid()), txid_current()"
        " FROM pg_stat_activity a WHERE a.pid = pg_backend_pid();"
        "ALTER EVENT TRIGGER auditor_ddl_command_end ENABLE ALWAYS"
    )
    ex.run(forge, app="forger")
    result = ex.reconcile("csvlog")
    (f,) = only(result, C.ATTRIBUTION_MISMATCH)
    assert f.severity == Severity.CRITICAL and f.user == "postgres"
    assert "rec_mallory" in f.explanation and len(f.audit_event_ids) == 1
    assert not only(result, C.IMPERSONATED_DDL)
    assert_accounts(result)


# ------------------------------------------------------------------ versions


def test_reindex_is_accounted_by_what_the_live_log_statement_can_log(ex: Watched) -> None:
    c = ex.cluster
    if c.major < 17:
        pytest.skip("REINDEX fires event triggers only from PostgreSQL 17 on")
    role = f"{ex.name}_all"
    c.execute(f"CREATE ROLE {role} LOGIN; ALTER ROLE {role} SET log_statement = 'all'")
    try:
        ex.run(f"GRANT CREATE ON SCHEMA public TO {role}")
        ex.run("CREATE TABLE ri (id int); CREATE INDEX ri_id ON ri (id)", user=role)
        ex.run("REINDEX INDEX ri_id")  # as postgres: log_statement = 'ddl'
        ex.run("REINDEX TABLE ri", user=role)  # logged: the role's sessions log all
        ex.run("REINDEX INDEX CONCURRENTLY ri_id", user=role)
        result = ex.reconcile("csvlog")
    finally:
        ex.drop()
        c.execute(f"DROP ROLE {role}")
    (low,) = only(result, C.UNLOGGED_DDL)
    assert low.statement == "REINDEX INDEX ri_id" and low.severity == Severity.LOW
    assert "log_statement = 'ddl'" in low.explanation
    assert criticals(result) == []
    # Besides it, only the CREATE ROLE; ALTER ROLE that set it up: role DDL the triggers never
    # see, and a setting that strengthens the log, so no CONFIG_DRIFT (that is for weakening).
    (setup,) = [f for f in result.document.findings if f is not low]
    assert setup.cls == C.UNAUDITABLE_DDL and setup.severity == Severity.MEDIUM
    assert f"ALTER ROLE {role} SET log_statement" in (setup.statement or "")
    assert "does not weaken either channel" in setup.explanation
    assert result.document.summary.matched == 4  # GRANT, CREATE TABLE + INDEX, both REINDEX
    assert_accounts(result)


def test_extension_rows_with_the_pg18_script_frame_are_not_indirect(
    ex: Watched, smtp_sink: Any
) -> None:
    """Rows written before record_event() dropped PG 18's extension-script frame."""
    from typer.testing import CliRunner

    from auditor.cli import app

    c = ex.cluster
    if c.major < 18:
        pytest.skip("only PostgreSQL 18 adds the extension script's frame to PG_CONTEXT")
    (definition,) = ex.run("SELECT pg_get_functiondef('auditor.record_event()'::regprocedure)")[0]
    assert "extension script file" in definition
    old = "\n".join(line for line in definition.splitlines() if "regexp_replace(v_ctx" not in line)
    ex.run(old)  # the function as the previous version wrote it
    try:
        ex.run("CREATE EXTENSION citext", app="ext")
    finally:
        ex.run(definition)
    total, with_frame = ex.run(
        "SELECT count(*), count(*) FILTER (WHERE caller_context LIKE '%extension script file%')"
        " FROM auditor.events WHERE application_name = 'ext'"
    )[0]
    assert total > 90 and with_frame == total - 1  # all but the extension's own row
    result = ex.reconcile("csvlog")
    assert not only(result, C.INDIRECT_DDL) and not only(result, C.UNLOGGED_DDL)
    assert [f for f in result.document.findings if f.statement == "CREATE EXTENSION citext"] == []
    assert_accounts(result)
    # The mail of that statement says it was sent by the client, not "run indirectly".
    out = CliRunner().invoke(
        app,
        ["notify", "--dsn", c.dsn(ex.name), "--database", ex.name, "--once",
         "--smtp-host", "127.0.0.1", "--smtp-port", str(smtp_sink.port),
         "--mail-to", "dba@example.org"],
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    (mail,) = [
        p.read_text(errors="replace")
        for p in smtp_sink.paths()
        if "CREATE EXTENSION DDL change" in p.read_text(errors="replace")
    ]
    assert "Run indirectly" not in mail and "citext" in mail
