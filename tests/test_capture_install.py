"""``auditor install / uninstall / status`` and the table's protections, on real clusters.

Tests that change server-wide state (``--all-databases`` with template1, ALTER
SYSTEM) run on a private throwaway cluster so they cannot disturb the session's.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from pairing_helpers import client_tool
from typer.testing import CliRunner

from auditor import capture
from auditor.cli import app
from auditor.cluster import TempCluster
from auditor.digest import row_digest
from auditor.errors import InstallError
from auditor.marker import parse_marker

runner = CliRunner()

# Everything an install could leave in a database or the cluster, by name (no oids).
SNAPSHOT = """
SELECT jsonb_build_object(
  'namespaces', (SELECT jsonb_agg(jsonb_build_array(n.nspname, pg_get_userbyid(n.nspowner),
                        (SELECT array_agg(a::text ORDER BY a::text) FROM unnest(n.nspacl) a),
                        obj_description(n.oid, 'pg_namespace')) ORDER BY n.nspname)
                   FROM pg_namespace n WHERE n.nspname !~ '^pg_(toast|temp)'),
  'relations', (SELECT jsonb_agg(jsonb_build_array(n.nspname, c.relname, c.relkind,
                        (SELECT array_agg(a::text ORDER BY a::text) FROM unnest(c.relacl) a),
                        c.relrowsecurity, obj_description(c.oid, 'pg_class'),
                        pg_get_userbyid(c.relowner)) ORDER BY n.nspname, c.relname)
                  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')),
  'columns', (SELECT jsonb_agg(jsonb_build_array(c.oid::regclass::text, a.attname,
                      format_type(a.atttypid, a.atttypmod), a.attnotnull,
                      pg_get_expr(d.adbin, d.adrelid)) ORDER BY c.oid::regclass::text, a.attnum)
                FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
                JOIN pg_namespace n ON n.oid = c.relnamespace
                LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
               WHERE a.attnum > 0 AND NOT a.attisdropped
                 AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')),
  'constraints', (SELECT jsonb_agg(jsonb_build_array(c.conrelid::regclass::text, c.conname,
                          pg_get_constraintdef(c.oid)) ORDER BY c.conrelid::regclass::text, c.conname)
                    FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
                   WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')),
  'functions', (SELECT jsonb_agg(jsonb_build_array(n.nspname, p.proname,
                        pg_get_function_identity_arguments(p.oid), md5(p.prosrc), p.prosecdef,
                        p.proconfig, (SELECT array_agg(a::text ORDER BY a::text) FROM unnest(p.proacl) a),
                        pg_get_userbyid(p.proowner))
                        ORDER BY n.nspname, p.proname, pg_get_function_identity_arguments(p.oid))
                  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')),
  'triggers', (SELECT jsonb_agg(jsonb_build_array(t.tgrelid::regclass::text, t.tgname, t.tgenabled,
                       t.tgtype, t.tgfoid::regprocedure::text) ORDER BY t.tgrelid::regclass::text, t.tgname)
                 FROM pg_trigger t WHERE NOT t.tgisinternal),
  'event_triggers', (SELECT jsonb_agg(jsonb_build_array(e.evtname, e.evtevent, e.evtenabled,
                             e.evtfoid::regprocedure::text, e.evttags, pg_get_userbyid(e.evtowner))
                             ORDER BY e.evtname) FROM pg_event_trigger e),
  'roles', (SELECT jsonb_agg(jsonb_build_array(r.rolname, r.rolcanlogin,
                    shobj_description(r.oid, 'pg_authid')) ORDER BY r.rolname)
              FROM pg_roles r WHERE r.rolname !~ '^pg_'),
  'role_settings', (SELECT jsonb_agg(jsonb_build_array(s.setdatabase, s.setrole, s.setconfig)
                             ORDER BY s.setdatabase, s.setrole) FROM pg_db_role_setting s),
  'default_acl', (SELECT count(*) FROM pg_default_acl)
)
"""


def snapshot(cluster: TempCluster, dbname: str) -> dict[str, Any]:
    with cluster.connect(dbname) as conn:
        row = conn.execute(SNAPSHOT).fetchone()
    assert row is not None
    return dict(row[0])


def cli(*args: str) -> Any:
    return runner.invoke(app, list(args))


def _events(cluster: TempCluster, dbname: str, schema: str = "auditor") -> list[Any]:
    with cluster.connect(dbname) as conn:
        return list(capture.read_audit_events(conn, schema))


def _markers(got: Any) -> list[Any]:
    """The markers of a log slice, read from csvlog (every major); jsonlog (PG 15+) must
    carry the same ones."""
    markers = [m for r in got.csvlog if (m := parse_marker(r.get("message", ""))) is not None]
    if got.jsonlog:
        in_json = [m for o in got.jsonlog if (m := parse_marker(str(o.get("message", ""))))]
        assert in_json == markers
    return markers


@pytest.fixture
def private_cluster() -> Iterator[TempCluster]:
    """A cluster of this test's own, for server-wide changes."""
    with TempCluster() as c:
        yield c


# -- install -------------------------------------------------------------------------


def test_install_twice_equals_install_once(db) -> None:
    result = cli("install", "--dsn", db.dsn())
    assert result.exit_code == 0, result.output
    assert f"{db.name}: installed auditor" in result.output
    once = snapshot(db.cluster, db.name)
    result = cli("install", "--dsn", db.dsn())
    assert result.exit_code == 0, result.output
    assert f"{db.name}: reinstalled auditor" in result.output
    assert snapshot(db.cluster, db.name) == once
    with db.connect() as conn:
        installs = conn.execute("SELECT count(*) FROM auditor.installs").fetchone()
        settings = conn.execute("SELECT * FROM auditor.settings").fetchall()
    assert installs == (2,)  # the history keeps both runs
    assert settings == [(1, "outbox", False, "auditor_events")]
    # the install itself is not audited (its triggers are dropped first)
    assert _events(db.cluster, db.name) == []
    assert capture.status(db.dsn(), databases=[db.name]).exit_code == 0


def test_install_creates_what_the_spec_lists(db) -> None:
    capture.install(db.dsn())
    state = snapshot(db.cluster, db.name)
    evts = {e[0]: e for e in state["event_triggers"]}
    assert set(evts) == {"auditor_ddl_command_end", "auditor_sql_drop", "auditor_table_rewrite"}
    assert all(e[2] == "A" and e[3] == "auditor.record_event()" for e in evts.values())
    funcs = {f[1]: f for f in state["functions"] if f[0] == "auditor"}
    assert set(funcs) == set(capture.expected_functions("auditor"))
    for name in ("record_event",):
        assert funcs[name][4] is True  # SECURITY DEFINER
        assert "search_path=pg_catalog, pg_temp" in funcs[name][5]
    # PUBLIC (an empty grantee "=...") appears in no ACL of the schema
    for f in funcs.values():
        assert f[6] is not None and not any(a.startswith("=") for a in f[6]), f
    rels = {r[1]: r for r in state["relations"] if r[0] == "auditor"}
    for name in ("events", "installs", "settings"):
        acl = rels[name][3] or []
        assert not any(a.startswith("=") for a in acl), (name, acl)
    for name in ("events", "installs"):
        owner_acl = next(a for a in rels[name][3] if a.startswith("postgres="))
        assert not set("wdD") & set(owner_acl.split("=")[1].split("/")[0]), owner_acl
    triggers = {(t[0], t[1]): t for t in state["triggers"]}
    for table in ("auditor.events", "auditor.installs"):
        name = table.split(".")[1] + "_append_only"
        assert triggers[(table, name)][2] == "A"


def test_upgrade_in_place_from_a_drifted_older_copy(db) -> None:
    """An older or tampered copy (renamed trigger, stale function, old body) is replaced."""
    capture.install(db.dsn())
    fresh = snapshot(db.cluster, db.name)
    db.run(
        "ALTER EVENT TRIGGER auditor_sql_drop RENAME TO auditor_old_sql_drop;"
        "ALTER EVENT TRIGGER auditor_old_sql_drop ENABLE;"
        "ALTER EVENT TRIGGER auditor_ddl_command_end DISABLE;"
        "CREATE FUNCTION auditor.old_helper() RETURNS int LANGUAGE sql AS 'SELECT 1';"
        "CREATE OR REPLACE FUNCTION auditor.refuse_change() RETURNS trigger LANGUAGE plpgsql"
        "  AS $$ BEGIN RETURN NULL; END $$;"
        "ALTER TABLE auditor.events DISABLE TRIGGER events_append_only;"
        "GRANT SELECT ON auditor.events TO PUBLIC;"
        "GRANT DELETE ON auditor.events TO postgres;"
    )
    drifted = capture.status(db.dsn(), databases=[db.name])
    assert drifted.exit_code == 1
    messages = "\n".join(str(p) for d in drifted.databases for p in d.problems)
    for expected in (
        "auditor_ddl_command_end is disabled",
        "auditor_sql_drop (sql_drop) is missing",
        "auditor_old_sql_drop also runs the audit function",
        "refuse_change() was changed since install",
        "unexpected function auditor.old_helper()",
        "events_append_only on auditor.events is disabled",
        "PUBLIC has SELECT on auditor.events",
        "owner of auditor.events holds DELETE again",
    ):
        assert expected in messages, messages
    report = capture.install(db.dsn())
    assert report.databases[0].action == "reinstalled"
    assert any("old_helper" in n for n in report.databases[0].notices)
    assert snapshot(db.cluster, db.name) == fresh
    assert capture.status(db.dsn(), databases=[db.name]).exit_code == 0


def test_install_upgrades_an_install_of_schema_version_2_in_place(db) -> None:
    """Version 2's audit function pinned only search_path and log_min_error_statement."""
    capture.install(db.dsn())
    config = dict(capture.expected_configs("auditor"))
    with db.connect() as conn:
        live = conn.execute(
            "SELECT proname, coalesce(proconfig, '{}') FROM pg_proc "
            "WHERE pronamespace = 'auditor'::regnamespace"
        ).fetchall()
    assert {name: tuple(c) for name, c in live} == config  # what status compares with
    # Make it what version 2 left: fewer SET clauses, and its install record.
    db.run(
        "ALTER FUNCTION auditor.record_event() RESET log_min_messages;"
        "ALTER FUNCTION auditor.record_event() RESET log_error_verbosity;"
        "ALTER FUNCTION auditor.record_event() RESET lc_messages;"
        "ALTER FUNCTION auditor.record_event() RESET backtrace_functions;"
        "INSERT INTO auditor.installs (package_version, schema_version, mail_mode, functions)"
        " SELECT '0.0.9', 2, mail_mode, functions FROM auditor.installs ORDER BY id DESC LIMIT 1"
    )
    old = capture.status(db.dsn(), databases=[db.name])
    assert old.exit_code == 1  # an old install can have its markers muted
    messages = [p.message for d in old.databases for p in d.problems]
    assert any(
        "record_event() does not pin log_min_messages=warning, log_error_verbosity=default, "
        "lc_messages=C"
        in m
        and "older version: run auditor install" in m
        for m in messages
    ), messages
    report = capture.install(db.dsn())
    (done,) = report.databases
    assert done.action == "upgraded" and done.previous_version == "0.0.9"
    assert f"{db.name}: upgraded auditor" in capture.format_install(report)
    with db.connect() as conn:
        (pinned,) = conn.execute(
            "SELECT proconfig FROM pg_proc WHERE oid = 'auditor.record_event()'::regprocedure"
        ).fetchone()
        (version,) = conn.execute(
            "SELECT schema_version FROM auditor.installs ORDER BY id DESC LIMIT 1"
        ).fetchone()
    assert tuple(pinned) == config["record_event"] and version == capture.SCHEMA_VERSION == 5
    assert capture.status(db.dsn(), databases=[db.name]).exit_code == 0


def test_dry_run_prints_the_exact_sql_and_changes_nothing(db, cluster) -> None:
    before = snapshot(cluster, db.name)
    result = cli("install", "--dsn", db.dsn(), "--dry-run", "--reader-role", "capture_dry_reader")
    assert result.exit_code == 0, result.output
    assert snapshot(cluster, db.name) == before
    script = result.stdout
    assert "CREATE EVENT TRIGGER" in script and "ENABLE ALWAYS" in script
    assert "CREATE ROLE" in script
    db.roles.append("capture_dry_reader")
    # The printed script, run by psql, installs exactly what install installs (the server's
    # own psql, or Debian's 15 where the build has none: PG 13's).
    proc = subprocess.run(
        [str(client_tool(cluster, "psql")), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", db.dsn()],
        input=script,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    by_script = snapshot(cluster, db.name)
    capture.uninstall(db.dsn())
    assert snapshot(cluster, db.name) == before
    capture.install(db.dsn(), reader_role="capture_dry_reader")
    assert snapshot(cluster, db.name) == by_script


def test_install_refuses_without_superuser(db) -> None:
    user = db.create_role("capture_not_super")
    before = snapshot(db.cluster, db.name)
    proc = subprocess.run(
        [sys.executable, "-m", "auditor", "install", "--dsn", db.dsn(user)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert "not a superuser" in proc.stderr and "Traceback" not in proc.stderr
    assert "nothing was changed" in proc.stderr
    assert snapshot(db.cluster, db.name) == before
    with pytest.raises(InstallError):
        capture.uninstall(db.dsn(user))


def test_install_rejects_foreign_schema_and_unknown_database(db) -> None:
    db.run("CREATE SCHEMA mine; CREATE TABLE mine.t(id int)")
    with pytest.raises(InstallError, match="was not created by auditor"):
        capture.install(db.dsn(), schema="mine")
    with pytest.raises(InstallError, match="does not exist"):
        capture.install(db.dsn(), databases=["no_such_database_here"])
    result = cli("install", "--dsn", db.dsn(), "--mail-mode", "carrier-pigeon")
    assert result.exit_code == 2 and "carrier-pigeon" in result.output


def test_all_databases_includes_template1_and_new_databases_inherit(private_cluster) -> None:
    c = private_cluster
    before = {name: snapshot(c, name) for name in ("postgres", "template1")}
    result = cli("install", "--dsn", c.dsn(), "--all-databases")
    assert result.exit_code == 0, result.output
    assert "postgres: installed" in result.output and "template1: installed" in result.output
    c.execute("CREATE DATABASE born_later")
    c.execute("CREATE TABLE t_inherited(id int)", dbname="born_later")
    (row,) = _events(c, "born_later")
    assert row.command_tag == "CREATE TABLE" and row.database == "born_later"
    status = capture.status(c.dsn())
    assert {d.name for d in status.databases} == {"postgres", "template1", "born_later"}
    assert status.exit_code == 0, capture.format_status(status)
    result = cli("uninstall", "--dsn", c.dsn(), "--all-databases")
    assert result.exit_code == 0, result.output
    for name, snap in before.items():
        assert snapshot(c, name) == snap
    status = capture.status(c.dsn())
    assert status.exit_code == 1  # nothing monitored any more
    assert all(not d.installed for d in status.databases)


# -- uninstall -----------------------------------------------------------------------


def test_uninstall_leaves_no_object_behind(db) -> None:
    role = "capture_reader_u"
    db.roles.append(role)
    before = snapshot(db.cluster, db.name)
    capture.install(db.dsn(), reader_role=role)
    db.run("CREATE TABLE t_audited(id int); DROP TABLE t_audited")
    assert len(_events(db.cluster, db.name)) == 3
    result = cli("uninstall", "--dsn", db.dsn())
    assert result.exit_code == 0, result.output
    assert "3 audit rows dropped" in result.output and f"dropped role {role}" in result.output
    after = snapshot(db.cluster, db.name)
    assert after == before
    result = cli("uninstall", "--dsn", db.dsn())
    assert result.exit_code == 0 and "not installed" in result.output


def test_uninstall_refuses_when_something_foreign_depends_on_it(db) -> None:
    capture.install(db.dsn())
    db.run("CREATE VIEW public.my_audit AS SELECT id, query FROM auditor.events")
    result = cli("uninstall", "--dsn", db.dsn())
    assert result.exit_code == 2
    assert "my_audit" in result.output and "rolled back" in result.output
    assert capture.status(db.dsn(), databases=[db.name]).exit_code == 0  # still intact


def test_uninstall_keeps_a_reader_role_it_did_not_create(db) -> None:
    role = db.create_role("capture_own_reader")
    capture.install(db.dsn(), reader_role=role)
    capture.uninstall(db.dsn())
    with db.cluster.connect() as conn:
        assert conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role]).fetchone()


# -- protections ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE auditor.events SET query = 'nothing to see'",
        "UPDATE auditor.events SET query = 'x' WHERE id < 0",  # even when no row matches
        "DELETE FROM auditor.events",
        "TRUNCATE auditor.events",
        "SET session_replication_role = replica; DELETE FROM auditor.events",
        "DELETE FROM auditor.installs",
        "TRUNCATE auditor.installs CASCADE",
    ],
)
def test_audit_table_is_append_only_even_for_a_superuser(db, statement) -> None:
    capture.install(db.dsn())
    db.run("CREATE TABLE t_evidence(id int)")
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
        db.run(statement)
    assert len(_events(db.cluster, db.name)) == 1


def test_drop_of_the_audit_table_fails_closed(db) -> None:
    capture.install(db.dsn())
    with pytest.raises(psycopg.Error):
        db.run("DROP TABLE auditor.events CASCADE")
    with pytest.raises(psycopg.Error):
        db.run("ALTER TABLE auditor.events RENAME TO gone")
    assert capture.status(db.dsn(), databases=[db.name]).exit_code == 0


def test_reader_role_can_read_and_nothing_else(db) -> None:
    capture.install(db.dsn(), reader_role="capture_reader_r")
    db.roles.append("capture_reader_r")
    reader = db.create_role("capture_reconciler")
    outsider = db.create_role("capture_outsider")
    db.run(f"GRANT capture_reader_r TO {reader}")
    db.run("CREATE TABLE t_read(id int)", app="reader_test")
    with db.connect(reader) as conn:
        (event,) = [
            e for e in capture.read_audit_events(conn) if e.application_name == "reader_test"
        ]
        assert event.command_tag == "CREATE TABLE"
        got = conn.execute(
            "SELECT auditor.row_digest(e) FROM auditor.events e WHERE id = %s", [event.id]
        ).fetchone()
        assert got == (event.digest,)
        for stmt in (
            "INSERT INTO auditor.events (event) VALUES ('x')",
            "UPDATE auditor.events SET query = 'x'",
            "DELETE FROM auditor.settings",
            "SELECT auditor.after_event(e) FROM auditor.events e",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(stmt)
    with db.connect(outsider) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("SELECT * FROM auditor.events")
    # the outsider's own DDL is audited all the same (SECURITY DEFINER trigger)
    with db.connect(outsider, application_name="outsider") as conn:
        conn.execute("CREATE TABLE public.t_outsider(id int)")
    rows = [e for e in _events(db.cluster, db.name) if e.application_name == "outsider"]
    assert [(e.session_user, e.current_user, e.login_user) for e in rows] == [
        (outsider, outsider, outsider)
    ]


def test_set_role_is_recorded_as_current_user(db) -> None:
    capture.install(db.dsn())
    actor = db.create_role("capture_actor")
    db.run(f"GRANT {actor} TO postgres")
    db.run(f"SET ROLE {actor}; CREATE TABLE public.t_as_actor(id int)", app="set_role")
    (row,) = [e for e in _events(db.cluster, db.name) if e.application_name == "set_role"]
    assert (row.session_user, row.current_user, row.login_user) == ("postgres", actor, "postgres")


def test_altering_a_row_changes_its_digest(db, logs) -> None:
    """Digest in the marker = digest of the row; change one column and they differ."""
    capture.install(db.dsn())
    mark = logs.mark()
    db.run("CREATE TABLE t_digest(id int); ALTER TABLE t_digest ADD COLUMN v text", app="digest")
    got = logs.since(mark)
    markers = {m.id: m for m in _markers(got)}
    events = _events(db.cluster, db.name)
    assert len(events) == 2
    for e in events:
        assert markers[e.id].digest == e.digest == row_digest(e)
    # a superuser who first disables the protection can rewrite history ...
    db.run("ALTER TABLE auditor.events DISABLE TRIGGER events_append_only")
    db.run(f"UPDATE auditor.events SET application_name = 'nobody' WHERE id = {events[0].id}")
    db.run("ALTER TABLE auditor.events ENABLE ALWAYS TRIGGER events_append_only")
    after = {e.id: e for e in _events(db.cluster, db.name)}
    # ... but the altered row no longer matches its marker, the untouched one does
    assert after[events[0].id].digest != markers[events[0].id].digest
    assert after[events[1].id].digest == markers[events[1].id].digest
    # and the row's xmin no longer equals the marker's xid either
    assert after[events[0].id].row_xmin != markers[events[0].id].xid
    # disabling and re-enabling the protection was itself recorded
    tags = [e.command_tag for e in after.values() if e.id > events[1].id]
    assert tags == ["ALTER TABLE", "ALTER TABLE"]
    with db.connect() as conn:
        sql_digest = conn.execute(
            "SELECT auditor.row_digest(e) FROM auditor.events e WHERE id = %s", [events[0].id]
        ).fetchone()
    assert sql_digest == (after[events[0].id].digest,)


# -- fail closed -----------------------------------------------------------------------


def test_internal_error_aborts_the_ddl_and_says_why(db) -> None:
    capture.install(db.dsn())
    # Breaking the table is itself DDL, and refused while the trigger is on ...
    with pytest.raises(psycopg.errors.CheckViolation):
        db.run("ALTER TABLE auditor.events ADD CONSTRAINT broken CHECK (false) NOT VALID")
    # ... so a superuser switches the trigger off first (logged), then breaks it.
    db.run(
        "ALTER EVENT TRIGGER auditor_ddl_command_end DISABLE;"
        "ALTER TABLE auditor.events ADD CONSTRAINT broken CHECK (false) NOT VALID;"
        "ALTER EVENT TRIGGER auditor_ddl_command_end ENABLE ALWAYS"
    )
    with pytest.raises(psycopg.errors.CheckViolation) as exc:
        db.run("CREATE TABLE t_refused(id int)")
    assert "auditor.record_event()" in (exc.value.diag.context or "")
    with db.connect() as conn:
        assert conn.execute("SELECT to_regclass('public.t_refused')").fetchone() == (None,)


def test_missing_settings_row_refuses_ddl_with_an_auditor_message(db) -> None:
    capture.install(db.dsn())
    db.run("DELETE FROM auditor.settings")
    with pytest.raises(psycopg.errors.RaiseException, match=r"settings row .* is missing"):
        db.run("CREATE TABLE t_refused(id int)")
    status = capture.status(db.dsn(), databases=[db.name])
    assert any("settings row" in str(p) for d in status.databases for p in d.problems)
    capture.install(db.dsn())  # restores it
    db.run("CREATE TABLE t_allowed(id int)")


def test_suppressed_insert_refuses_ddl(db) -> None:
    capture.install(db.dsn())
    db.run(
        "CREATE FUNCTION public.swallow() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$"
    )
    create = "CREATE TRIGGER swallow BEFORE INSERT ON auditor.events FOR EACH ROW EXECUTE FUNCTION public.swallow()"
    # the CREATE TRIGGER's own audit row is the first one swallowed: refused
    with pytest.raises(psycopg.errors.RaiseException, match="was not stored"):
        db.run(create)
    db.run(
        "ALTER EVENT TRIGGER auditor_ddl_command_end DISABLE;"
        f"{create};"
        "ALTER EVENT TRIGGER auditor_ddl_command_end ENABLE ALWAYS"
    )
    with pytest.raises(psycopg.errors.RaiseException, match="was not stored"):
        db.run("CREATE TABLE t_swallowed(id int)")
    status = capture.status(db.dsn(), databases=[db.name])
    assert status.exit_code == 1
    assert any("unexpected trigger swallow" in str(p) for d in status.databases for p in d.problems)


# -- NOTIFY -----------------------------------------------------------------------------


def _notifications(conn: psycopg.Connection[Any], timeout: float = 2.0) -> list[str]:
    out = []
    for n in conn.notifies(timeout=timeout, stop_after=None):
        out.append(n.payload)
        if n.channel != "auditor_events":
            raise AssertionError(n.channel)
    return out


def test_notify_per_row_on_commit_only(db) -> None:
    capture.install(db.dsn())
    with db.connect() as listener:
        listener.execute("LISTEN auditor_events")
        db.run("CREATE TABLE t_n1(id int)")
        db.run("BEGIN; CREATE TABLE t_n2(id int); ROLLBACK")
        db.run("DROP TABLE t_n1")
        payloads = [int(p) for p in _notifications(listener)]
    ids = [e.id for e in _events(db.cluster, db.name)]
    assert payloads == ids and len(ids) == 3  # CREATE; DROP = sql_drop + ddl_command_end
    capture.install(db.dsn(), mail_mode="none")
    with db.connect() as listener:
        listener.execute("LISTEN auditor_events")
        db.run("CREATE TABLE t_n3(id int)")
        assert _notifications(listener, timeout=1.0) == []


# -- status ------------------------------------------------------------------------------


def test_status_exit_codes(private_cluster) -> None:
    c = private_cluster
    capture.install(c.dsn())
    result = cli("status", "--dsn", c.dsn(), "--database", "postgres")
    assert result.exit_code == 0, result.output
    assert "OK: both channels intact" in result.output
    assert "auditor_ddl_command_end ENABLE ALWAYS" in result.output

    c.execute("ALTER EVENT TRIGGER auditor_ddl_command_end DISABLE")
    result = cli("status", "--dsn", c.dsn(), "--database", "postgres")
    assert result.exit_code == 1 and "auditor_ddl_command_end is disabled" in result.output
    c.execute("ALTER EVENT TRIGGER auditor_ddl_command_end ENABLE")
    result = cli("status", "--dsn", c.dsn(), "--database", "postgres")
    assert result.exit_code == 1 and "not ENABLE ALWAYS" in result.output
    c.execute("ALTER EVENT TRIGGER auditor_ddl_command_end ENABLE ALWAYS")
    assert cli("status", "--dsn", c.dsn(), "--database", "postgres").exit_code == 0

    c.execute("ALTER SYSTEM SET log_statement = 'none'")
    c.execute("SELECT pg_reload_conf()")
    result = cli("status", "--dsn", c.dsn(), "--database", "postgres", "--format", "json")
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert doc["weakened"] is True and doc["settings"]["log_statement"] == "none"
    assert any("log_statement" in p["message"] for p in doc["problems"])
    c.execute("ALTER SYSTEM RESET log_statement")
    c.execute("SELECT pg_reload_conf()")
    assert cli("status", "--dsn", c.dsn(), "--database", "postgres").exit_code == 0

    c.execute("CREATE ROLE capture_quiet; ALTER ROLE capture_quiet SET log_statement = 'none'")
    result = cli("status", "--dsn", c.dsn(), "--database", "postgres")
    assert result.exit_code == 1 and "role capture_quiet" in result.output
    c.execute("DROP ROLE capture_quiet")

    # without --database every database counts: template1 is not monitored here
    result = cli("status", "--dsn", c.dsn())
    assert result.exit_code == 1 and "database template1: not installed" in result.output


def test_status_sees_function_and_privilege_tampering(db) -> None:
    capture.install(db.dsn())
    assert capture.status(db.dsn(), databases=[db.name]).exit_code == 0
    db.run(
        "CREATE OR REPLACE FUNCTION auditor.after_event(e auditor.events) RETURNS void "
        "LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp "
        "AS $$ BEGIN END $$"
    )
    db.run("GRANT EXECUTE ON FUNCTION auditor.record_event() TO PUBLIC")
    db.run("GRANT USAGE ON SCHEMA auditor TO PUBLIC")
    db.run("ALTER FUNCTION auditor.record_event() SECURITY INVOKER")
    report = capture.status(db.dsn(), databases=[db.name])
    assert report.exit_code == 1
    messages = [p.message for d in report.databases for p in d.problems]
    for expected in (
        "function auditor.after_event() was changed since install (body differs)",
        "PUBLIC may execute auditor.record_event()",
        "PUBLIC has USAGE on schema auditor",
        "function auditor.record_event() is no longer SECURITY DEFINER",
    ):
        assert expected in messages, messages
    (dbstatus,) = report.databases
    assert not dbstatus.functions_ok and not dbstatus.protections_ok and dbstatus.triggers_ok


def test_status_unreachable_server_is_one_line_and_exit_2() -> None:
    from auditor.cluster import free_port

    port = free_port()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "auditor",
            "status",
            "--dsn",
            f"host=127.0.0.1 port={port} user=x password=hunter2",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and f"127.0.0.1:{port}" in proc.stderr
    assert "hunter2" not in proc.stderr and "Traceback" not in proc.stderr


def test_status_as_reader_role_needs_no_superuser(db) -> None:
    capture.install(db.dsn(), reader_role="capture_reader_s")
    db.roles.append("capture_reader_s")
    user = db.create_role("capture_monitor")
    db.run(f"GRANT capture_reader_s TO {user}")
    report = capture.status(db.dsn(user), databases=[db.name])
    assert report.exit_code == 0, capture.format_status(report)
    with db.connect(user) as conn:
        assert report.databases[0].audit_rows == len(list(capture.read_audit_events(conn)))


def test_custom_schema_name(db, logs) -> None:
    mark = logs.mark()
    capture.install(db.dsn(), schema="audit_trail")
    db.run("CREATE TABLE t_custom(id int)", app="custom_schema")
    (event,) = _events(db.cluster, db.name, "audit_trail")
    got = logs.since(mark)
    markers = _markers(got)
    assert [(m.schema, m.id, m.digest) for m in markers] == [
        ("audit_trail", event.id, event.digest)
    ]
    assert capture.status(db.dsn(), databases=[db.name], schema="audit_trail").exit_code == 0
    with db.connect() as conn:
        names = conn.execute("SELECT evtname FROM pg_event_trigger ORDER BY 1").fetchall()
    assert names == [
        ("audit_trail_ddl_command_end",),
        ("audit_trail_sql_drop",),
        ("audit_trail_table_rewrite",),
    ]
    capture.uninstall(db.dsn(), schema="audit_trail")
    with db.connect() as conn:
        assert conn.execute("SELECT count(*) FROM pg_event_trigger").fetchone() == (0,)


def test_xact_status_of_marker_xids(db) -> None:
    capture.install(db.dsn())
    with db.connect(autocommit=False) as conn:
        conn.execute("CREATE TABLE t_x1(id int)")
        xmin = conn.execute(
            "SELECT xmin::text::bigint FROM auditor.events ORDER BY id DESC LIMIT 1"
        ).fetchone()
        with db.connect() as other:
            assert capture.xact_status(other, [xmin[0]]) == {xmin[0]: "in progress"}
        conn.rollback()
    with db.connect() as conn:
        assert capture.xact_status(conn, [xmin[0]]) == {xmin[0]: "aborted"}
        assert capture.xact_status(conn, []) == {}
        # an xid the server has not handed out yet cannot come from a real marker
        assert capture.xact_status(conn, [xmin[0], xmin[0] + 100000]) == {
            xmin[0]: "aborted",
            xmin[0] + 100000: "future",
        }


def test_install_warns_about_settings_that_weaken_the_log_channel() -> None:
    with TempCluster(
        log_statement="none",
        log_destination="stderr",
        log_line_prefix="%m [%p] ",
        settings={"logging_collector": False, "log_error_verbosity": "terse"},
    ) as c:
        proc = subprocess.run(
            [sys.executable, "-m", "auditor", "install", "--dsn", c.dsn()],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        warnings = [line for line in proc.stderr.splitlines() if "warning:" in line]
        assert len(warnings) == 4, proc.stderr
        assert "log_statement = 'none'" in warnings[0]
        assert "logging_collector = off" in warnings[1]
        assert "lacks %c and %v" in warnings[2]
        assert "log_error_verbosity = 'terse'" in warnings[3] and "forged" in warnings[3]
        assert "postgres: installed auditor" in proc.stdout
        # status says the same and exits 1, although the triggers are fine; terse
        # verbosity is a warning, not a weakened channel
        report = capture.status(c.dsn(), databases=["postgres"])
        assert report.exit_code == 1 and report.databases[0].triggers_ok
        assert len([p for p in report.problems if p.weakens]) == 3
        (warning,) = [p for p in report.problems if not p.weakens]
        assert "log_error_verbosity = 'terse'" in warning.message
