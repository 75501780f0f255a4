"""The trigger channel against the action matrix of pg-facts section 4, on a real cluster.

One database of the session cluster gets ``auditor install``; every action of the
matrix (A01-A24, B02, B04, plus a savepoint rolled back inside a committed
transaction) runs under its own ``application_name``; the tests then compare what
the audit table holds, what the three log files say, and what the facts predict.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest
from psycopg import sql

from auditor import capture
from auditor.cluster import TempCluster
from auditor.digest import row_digest
from auditor.marker import Marker, parse_marker
from auditor.model import AuditEvent

SCHEMA = "auditor"

# stderr entries of the test clusters: DEFAULT_LOG_LINE_PREFIX = "%m [%p] %q%c %l %v %x %u@%d app=%a client=%h "
_STDERR = re.compile(
    r"^\S+ \S+ \S+ \[(?P<pid>\d+)\] (?P<sid>[0-9a-f]+\.[0-9a-f]+) (?P<line>\d+) (?P<vxid>\S+) "
    r"(?P<xid>\d+) (?P<user>[^@ ]*)@(?P<db>\S*) app=(?P<app>.*?) client=(?P<client>\S*) "
    r"(?P<sev>[A-Z]+):  (?P<msg>.*)$",
    re.DOTALL,
)


@dataclass
class Rec:
    """One log message, the fields these tests need, from any of the three formats."""

    fmt: str
    sid: str
    vxid: str
    app: str
    severity: str
    message: str
    context: str = ""
    statement: str = ""


@dataclass
class World:
    """Everything the matrix produced: audit rows and log records per action."""

    cluster: TempCluster
    dbname: str
    events: list[AuditEvent]
    records: list[Rec]
    status: dict[int, str | None] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)

    def rows(self, app: str) -> list[AuditEvent]:
        return [e for e in self.events if e.application_name == app]

    def recs(self, app: str, fmt: str | None = None) -> list[Rec]:
        return [r for r in self.records if r.app == app and (fmt is None or r.fmt == fmt)]

    def markers(self, app: str, fmt: str = "stderr") -> list[Marker]:
        out = []
        for r in self.recs(app, fmt):
            m = parse_marker(r.message)
            if m is not None and r.severity == "LOG":
                out.append(m)
        return out

    def statements(self, app: str, fmt: str = "stderr") -> list[Rec]:
        return [
            r
            for r in self.recs(app, fmt)
            if r.severity == "LOG"
            and (r.message.startswith("statement: ") or r.message.startswith("execute "))
        ]


def _records(slice_: Any) -> list[Rec]:
    out: list[Rec] = []
    stderr: list[Rec] = []
    for entry in slice_.stderr:
        m = _STDERR.match(entry)
        if m is None:
            continue
        sev, msg = m["sev"], m["msg"]
        if sev in ("CONTEXT", "STATEMENT", "DETAIL", "HINT") and stderr:
            prev = stderr[-1]
            if prev.sid == m["sid"]:
                if sev == "CONTEXT":
                    prev.context = msg
                elif sev == "STATEMENT":
                    prev.statement = msg
                continue
        stderr.append(Rec("stderr", m["sid"], m["vxid"], m["app"], sev, msg))
    out.extend(stderr)
    for row in slice_.csvlog:
        out.append(
            Rec(
                "csvlog",
                row.get("session_id", ""),
                row.get("virtual_transaction_id", ""),
                row.get("application_name", ""),
                row.get("error_severity", ""),
                row.get("message", ""),
                row.get("context", ""),
                row.get("query", ""),
            )
        )
    for obj in slice_.jsonlog:
        out.append(
            Rec(
                "jsonlog",
                str(obj.get("session_id", "")),
                str(obj.get("vxid", "")),
                str(obj.get("application_name", "")),
                str(obj.get("error_severity", "")),
                str(obj.get("message", "")),
                str(obj.get("context", "")),
                str(obj.get("statement", "")),
            )
        )
    return out


def _run(cluster: TempCluster, dbname: str, app: str, query: str, *, fails: bool = False) -> None:
    """One simple-protocol query string, like psql -c, under its own application_name."""
    try:
        cluster.execute(query, dbname=dbname, application_name=app)
    except psycopg.Error:
        if not fails:
            raise
    else:
        assert not fails, f"{app}: expected {query!r} to fail"


@pytest.fixture(scope="module")
def matrix(cluster: TempCluster, module_logs: Any) -> Iterator[World]:
    """Install into a fresh database, play the whole matrix once, read both channels."""
    dbname = "capture_matrix"
    role = "capture_matrix_role"
    with cluster.connect() as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    capture.install(cluster.dsn(dbname))
    logs = module_logs
    mark = logs.mark()
    notes: dict[str, Any] = {}
    run = lambda app, q, **kw: _run(cluster, dbname, app, q, **kw)  # noqa: E731

    # Setup objects the actions need (not part of the matrix).
    run(
        "setup",
        "CREATE FUNCTION deny_fn() RETURNS event_trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'sequences are forbidden (%)', tg_tag; END $$",
    )
    run(
        "A01_create_evt_trigger",
        "CREATE EVENT TRIGGER matrix_noop ON ddl_command_start WHEN TAG IN ('CREATE CAST') EXECUTE FUNCTION deny_fn()",
    )
    run("A01_create_evt_trigger", "DROP EVENT TRIGGER matrix_noop")
    run("A02_plain_create", "CREATE TABLE t_plain(id int)")
    run("A03_serial_pk", "CREATE TABLE t_serial(id serial PRIMARY KEY, v text)")
    run("A04_multi_stmt", "CREATE TABLE t_m1(id int); SELECT 1; CREATE TABLE t_m2(id int)")
    run("A05_dup_fail", "CREATE TABLE t_plain(id int)", fails=True)
    run("A06_rollback", "BEGIN; CREATE TABLE t_rolled_back(id int); ROLLBACK")
    with cluster.connect(dbname, application_name="A07_aborted_xact", autocommit=False) as conn:
        with pytest.raises(psycopg.errors.DivisionByZero):
            conn.execute("SELECT 1/0")
        with pytest.raises(psycopg.errors.InFailedSqlTransaction):
            psycopg.ClientCursor(conn).execute("CREATE TABLE t_in_aborted(id int)")
        conn.rollback()
    run(
        "A08_do_block",
        "DO $$ BEGIN EXECUTE 'CREATE TABLE t_do(id int)'; CREATE TABLE t_do2(id int); END $$",
    )
    # the same DO in a session that logs everything, to compare its prefix with the rows
    with cluster.connect(dbname, application_name="A08_do_logged") as conn:
        cur = psycopg.ClientCursor(conn)
        cur.execute("SET log_statement = 'all'")
        cur.execute("DO $$ BEGIN CREATE TABLE t_do3(id int); END $$")
    run(
        "A09_function",
        "CREATE FUNCTION mk_tbl(n text) RETURNS void LANGUAGE plpgsql AS $$ BEGIN EXECUTE format('CREATE TABLE %I(id int)', n); END $$",
    )
    run("A09_function_call", "SELECT mk_tbl('t_from_func')")
    run(
        "A10_call_proc",
        "CREATE PROCEDURE mk_proc() LANGUAGE plpgsql AS $$ BEGIN CREATE TABLE t_from_proc(id int); END $$",
    )
    run("A10_call_proc_call", "CALL mk_proc()")
    run("A11_evt_disable", "ALTER EVENT TRIGGER auditor_ddl_command_end DISABLE")
    run("A11_evt_disabled_create", "CREATE TABLE t_while_disabled(id int)")
    run("A11_evt_disable", "ALTER EVENT TRIGGER auditor_ddl_command_end ENABLE ALWAYS")
    run(
        "A12_replica_role", "SET session_replication_role = replica; CREATE TABLE t_replica(id int)"
    )
    run("A13_create_role", f"CREATE ROLE {role} LOGIN")
    run("A14_grant_table", f"GRANT SELECT ON t_plain TO {role}")
    run("A14_grant_db", f"GRANT CONNECT ON DATABASE {dbname} TO {role}")
    # pg_read_all_data exists from PostgreSQL 14 on; any role grant shows the same.
    granted = "pg_read_all_data" if cluster.major >= 14 else "pg_monitor"
    run("A14_grant_role", f"GRANT {granted} TO {role}")
    run("A14_revoke_table", f"REVOKE SELECT ON t_plain FROM {role}")
    run("A15_comment_table", "COMMENT ON TABLE t_plain IS 'plain table'")
    run("A15_comment_role", f"COMMENT ON ROLE {role} IS 'test role'")
    run("A16_alter_system", "ALTER SYSTEM SET work_mem = '8MB'")
    run("A16_alter_system", "ALTER SYSTEM RESET work_mem")
    run("A17_create_db", "CREATE DATABASE capture_matrix_db2")
    run("A18_truncate", "TRUNCATE t_plain")
    run("A18_vacuum", "VACUUM t_plain")
    run("A18_reindex", "REINDEX TABLE t_serial")
    run("A18_select_into", "SELECT 1 AS x INTO t_select_into")
    run("A18_ctas", "CREATE TABLE t_ctas AS SELECT 1 AS x")
    run("A18_explain_ctas", "EXPLAIN ANALYZE CREATE TABLE t_explain_ctas AS SELECT 1 AS x")
    run("A18_add_column", "ALTER TABLE t_plain ADD COLUMN v text")
    run("A18_alter_type", "ALTER TABLE t_plain ALTER COLUMN id TYPE bigint")
    run("A18_create_index", "CREATE INDEX ON t_plain(v)")
    run("A18_cluster", "CLUSTER t_serial USING t_serial_pkey")
    run("A18_drop", "DROP TABLE t_m1, t_m2")
    run("A18_extension", "CREATE EXTENSION citext")
    run(
        "A19_evt_fn_error",
        "CREATE EVENT TRIGGER deny_seq ON ddl_command_start WHEN TAG IN ('CREATE SEQUENCE') EXECUTE FUNCTION deny_fn()",
    )
    run("A19_denied", "CREATE SEQUENCE s_denied", fails=True)
    run("A19_evt_fn_error", "DROP EVENT TRIGGER deny_seq")
    run("A20_multiline", "CREATE TABLE t_multiline (\n    id int,\n    v text\n)")
    run("A21_syntax_err", "CREATE TABLEX t_bad(id int)", fails=True)
    with cluster.connect(dbname, application_name="A22_log_off") as conn:
        cur = psycopg.ClientCursor(conn)  # simple protocol, two separate statements
        cur.execute("SET log_statement = 'none'")
        cur.execute("CREATE TABLE t_unlogged_ddl(id int)")
    with cluster.connect(dbname, application_name="A23_ext_prepared") as conn:
        conn.execute("CREATE TABLE t_prep(id int)", prepare=True)
    with cluster.connect(dbname, application_name="A23_ext_param") as conn:
        conn.execute("CREATE TABLE t_ext_ctas AS SELECT %s::int AS c", [42])
    with cluster.connect(dbname, application_name="A24_session_id") as conn:
        cur = psycopg.ClientCursor(conn)
        cur.execute(
            "SELECT to_hex(trunc(extract(epoch FROM backend_start))::int)||'.'||to_hex(pid), "
            "(SELECT virtualxid FROM pg_locks WHERE locktype = 'virtualxid' AND pid = pg_backend_pid()) "
            "FROM pg_stat_activity WHERE pid = pg_backend_pid(); CREATE TABLE t_sid(id int)"
        )
        notes["A24"] = cur.fetchone() if cur.description else None
    run("B02_if_not_exists", "CREATE TABLE IF NOT EXISTS t_plain(id int)")
    run("B04_ctas_execute", "PREPARE q AS SELECT 1 AS x; CREATE TABLE t_ctas_exec AS EXECUTE q")
    run(
        "SP_savepoint",
        "BEGIN; CREATE TABLE t_sp_a(id int); SAVEPOINT s; CREATE TABLE t_sp_b(id int); "
        "ROLLBACK TO SAVEPOINT s; CREATE TABLE t_sp_c(id int); COMMIT",
    )
    run("DROP_view", "CREATE VIEW v_plain AS SELECT * FROM t_plain; DROP VIEW v_plain")

    slice_ = logs.since(mark)
    with cluster.connect(dbname) as conn:
        events = list(capture.read_audit_events(conn, SCHEMA))
    records = _records(slice_)
    w = World(cluster, dbname, events, records, notes=notes)
    xids = {m.xid for r in records if (m := parse_marker(r.message)) is not None}
    with cluster.connect(dbname) as conn:
        w.status = capture.xact_status(conn, xids)
    try:
        yield w
    finally:
        with cluster.connect() as conn:
            for db in (dbname, "capture_matrix_db2"):
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db))
                )
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


# -- rows per action, as pg-facts section 4 predicts -------------------------------

# app -> (number of rows by event, total objects in the ddl_command_end rows)
EXPECTED: dict[str, tuple[dict[str, int], int | None]] = {
    "A01_create_evt_trigger": ({}, None),  # event trigger DDL never fires
    "A02_plain_create": ({"ddl_command_end": 1}, 1),
    "A03_serial_pk": ({"ddl_command_end": 1}, 4),
    "A04_multi_stmt": ({"ddl_command_end": 2}, 2),
    "A05_dup_fail": ({}, None),
    "A06_rollback": ({}, None),  # rolled back: marker only
    "A07_aborted_xact": ({}, None),
    "A08_do_block": ({"ddl_command_end": 2}, 2),
    "A08_do_logged": ({"ddl_command_end": 1}, 1),
    "A09_function": ({"ddl_command_end": 1}, 1),
    "A09_function_call": ({"ddl_command_end": 1}, 1),
    "A10_call_proc": ({"ddl_command_end": 1}, 1),
    "A10_call_proc_call": ({"ddl_command_end": 1}, 1),
    "A11_evt_disabled_create": ({}, None),
    "A12_replica_role": ({"ddl_command_end": 1}, 1),  # ENABLE ALWAYS
    "A13_create_role": ({}, None),
    "A14_grant_table": ({"ddl_command_end": 1}, 1),
    "A14_grant_db": ({}, None),
    "A14_grant_role": ({}, None),
    "A14_revoke_table": ({"ddl_command_end": 1}, 1),
    "A15_comment_table": ({"ddl_command_end": 1}, 1),
    "A15_comment_role": ({}, None),
    "A16_alter_system": ({}, None),
    "A17_create_db": ({}, None),
    "A18_truncate": ({}, None),
    "A18_vacuum": ({}, None),
    "A18_reindex": ({}, None),  # fires only from PG17
    "A18_select_into": ({"ddl_command_end": 1}, 1),
    "A18_ctas": ({"ddl_command_end": 1}, 1),
    "A18_explain_ctas": ({}, None),  # creates the table, fires nothing
    "A18_add_column": ({"ddl_command_end": 1}, 1),
    # ALTER COLUMN TYPE rewrites the table: one table_rewrite row besides the command's
    "A18_alter_type": ({"ddl_command_end": 1, "table_rewrite": 1}, 1),
    "A18_create_index": ({"ddl_command_end": 1}, 1),
    "A18_cluster": ({}, None),
    # DROP: nothing collected at ddl_command_end, the objects come with sql_drop
    "A18_drop": ({"ddl_command_end": 1, "sql_drop": 1}, 0),
    "A19_denied": ({}, None),
    "A20_multiline": ({"ddl_command_end": 1}, 1),
    "A21_syntax_err": ({}, None),
    "A22_log_off": ({"ddl_command_end": 1}, 1),
    "A23_ext_prepared": ({"ddl_command_end": 1}, 1),
    "A23_ext_param": ({"ddl_command_end": 1}, 1),
    "A24_session_id": ({"ddl_command_end": 1}, 1),
    "B02_if_not_exists": ({"ddl_command_end": 1}, 0),  # a row although nothing was collected
    "B04_ctas_execute": ({"ddl_command_end": 1}, 1),
    "SP_savepoint": ({"ddl_command_end": 2}, 2),  # t_sp_b was rolled back with its savepoint
    "DROP_view": ({"ddl_command_end": 2, "sql_drop": 1}, 1),
}


@pytest.mark.parametrize("app", sorted(EXPECTED))
def test_matrix_rows_match_pg_facts(matrix: World, app: str) -> None:
    expected_events, expected_objects = EXPECTED[app]
    if app == "A18_reindex" and matrix.cluster.major >= 17:
        expected_events = {"ddl_command_end": 1}
    rows = matrix.rows(app)
    got: dict[str, int] = {}
    for e in rows:
        got[e.event] = got.get(e.event, 0) + 1
    assert got == expected_events, [(e.event, e.command_tag, e.query) for e in rows]
    if expected_objects is not None:
        ddl_end = [e for e in rows if e.event == "ddl_command_end"]
        assert sum(len(e.objects) for e in ddl_end) == expected_objects


def test_every_trigger_eligible_statement_leaves_a_row(matrix: World) -> None:
    """Each logged statement that event triggers see has >= 1 row, DROP and IF NOT EXISTS included."""
    eligible = [app for app, (events, _) in EXPECTED.items() if events]
    for app in eligible:
        assert matrix.rows(app), app
    assert [e.command_tag for e in matrix.rows("B02_if_not_exists")] == ["CREATE TABLE"]
    drop_tags = {(e.event, e.command_tag) for e in matrix.rows("A18_drop")}
    assert drop_tags == {("sql_drop", "DROP TABLE"), ("ddl_command_end", "DROP TABLE")}


def test_row_contents(matrix: World) -> None:
    serial = matrix.rows("A03_serial_pk")[0]
    assert {o.command_tag for o in serial.objects} == {
        "CREATE SEQUENCE",
        "CREATE TABLE",
        "CREATE INDEX",
        "ALTER SEQUENCE",
    }
    assert {o.object_identity for o in serial.objects} >= {
        "public.t_serial",
        "public.t_serial_id_seq",
        "public.t_serial_pkey",
    }
    multi = matrix.rows("A04_multi_stmt")
    assert {e.query for e in multi} == {
        "CREATE TABLE t_m1(id int); SELECT 1; CREATE TABLE t_m2(id int)"
    }
    assert len({e.statement_time for e in multi}) == 1  # one string, one statement_timestamp()
    drop = next(e for e in matrix.rows("A18_drop") if e.event == "sql_drop")
    dropped = {(o.object_type, o.object_identity) for o in drop.objects}
    assert {("table", "public.t_m1"), ("table", "public.t_m2")} <= dropped
    assert len(drop.objects) == 6  # per table: the table, its row type, its array type
    assert all(o.original is not None and o.address_names for o in drop.objects)
    grant = matrix.rows("A14_grant_table")[0]
    assert grant.command_tag == "GRANT" and grant.objects[0].object_type == "TABLE"
    assert grant.objects[0].object_identity is None  # as pg-facts says for GRANT
    rewrite = next(e for e in matrix.rows("A18_alter_type") if e.event == "table_rewrite")
    assert rewrite.objects[0].object_identity == "public.t_plain"
    assert rewrite.objects[0].rewrite_reason is not None
    multiline = matrix.rows("A20_multiline")[0]
    assert multiline.query == "CREATE TABLE t_multiline (\n    id int,\n    v text\n)"
    ext = matrix.rows("A23_ext_param")[0]
    assert ext.query == "CREATE TABLE t_ext_ctas AS SELECT $1::int AS c"
    for e in matrix.events:
        assert e.session_user == "postgres" and e.current_user == "postgres"
        assert e.login_user == "postgres"
        assert e.database == matrix.dbname
        assert e.client_addr == "127.0.0.1" and e.server_addr == "127.0.0.1"
        assert e.server_port == matrix.cluster.port and e.client_port
        assert e.backend_pid > 0 and e.xid > 0
        assert e.statement_time <= e.clock_time


def test_create_extension_rows_match_pg_facts(matrix: World) -> None:
    """citext: one row per firing; 93 objects in all, 92 of them in_extension (pg-facts A18).

    PostgreSQL 18 ships citext 1.8, whose update scripts create 117 (pg-versions.md).
    """
    rows = matrix.rows("A18_extension")
    objects = [o for e in rows for o in e.objects]
    expected = 117 if matrix.cluster.major >= 18 else 93
    assert len(objects) == expected
    # Every object but the extension itself is a member of it.
    assert sum(1 for o in objects if o.in_extension) == expected - 1
    assert [o.object_type for o in objects if not o.in_extension] == ["extension"]
    assert {e.query for e in rows} == {"CREATE EXTENSION citext"}
    assert [e.command_tag for e in rows].count("CREATE EXTENSION") == 1
    assert len(rows) > 1  # the script's statements fire one by one


def test_indirect_ddl_is_recorded_with_the_outer_query(matrix: World) -> None:
    """DDL in DO, a function or a procedure: rows carry the outer text, the log has no line."""
    for app, outer in (
        ("A08_do_block", "DO $$"),
        ("A09_function_call", "SELECT mk_tbl("),
        ("A10_call_proc_call", "CALL mk_proc()"),
    ):
        rows = matrix.rows(app)
        assert rows and all(e.query and e.query.startswith(outer) for e in rows)
        assert all(e.command_tag == "CREATE TABLE" for e in rows)
        assert matrix.statements(app) == []  # log_statement = ddl does not log DO/SELECT/CALL
        assert len(matrix.markers(app)) == len(rows)
    # the call stack names the inner statement and what ran it
    do = [e.caller_context for e in matrix.rows("A08_do_block")]
    assert (
        do[0]
        == 'SQL statement "CREATE TABLE t_do(id int)"\nPL/pgSQL function inline_code_block line 1 at EXECUTE'
    )
    assert do[1].startswith(
        'SQL statement "CREATE TABLE t_do2(id int)"\nPL/pgSQL function inline_code_block'
    )
    (fn,) = matrix.rows("A09_function_call")
    assert fn.caller_context and "PL/pgSQL function mk_tbl(text)" in fn.caller_context
    (proc,) = matrix.rows("A10_call_proc_call")
    assert proc.caller_context and "PL/pgSQL function mk_proc()" in proc.caller_context
    # statements the client sent have none, extension scripts neither (in_extension says it)
    for app in ("A02_plain_create", "A04_multi_stmt", "A23_ext_param", "A18_extension", "A18_drop"):
        assert all(e.caller_context is None for e in matrix.rows(app)), app


def test_unlogged_ddl_still_has_row_and_marker(matrix: World) -> None:
    """A22: SET log_statement = 'none' hides the statement, not the row nor the marker."""
    assert matrix.statements("A22_log_off") == []
    rows = matrix.rows("A22_log_off")
    markers = matrix.markers("A22_log_off")
    assert [m.id for m in markers] == [e.id for e in rows]
    # the marker's STATEMENT line keeps a copy of the hidden text
    stderr = [r for r in matrix.recs("A22_log_off", "stderr") if parse_marker(r.message)]
    assert "CREATE TABLE t_unlogged_ddl" in stderr[0].statement


# -- markers --------------------------------------------------------------------------


def test_every_row_has_its_marker_in_every_format(matrix: World) -> None:
    by_id = {e.id: e for e in matrix.events}
    for fmt in matrix.cluster.log_destination.split(","):  # no jsonlog before PostgreSQL 15
        markers = {
            m.id: m
            for r in matrix.records
            if r.fmt == fmt and (m := parse_marker(r.message)) is not None and m.schema == SCHEMA
        }
        for event in matrix.events:
            m = markers.get(event.id)
            assert m is not None, (fmt, event.id, event.command_tag, event.application_name)
            assert m.xid == event.row_xmin
            assert m.event == event.event and m.tag == event.command_tag
            assert m.digest == event.digest, (fmt, event.id)
        extra = set(markers) - set(by_id)
        # markers without rows are exactly the rolled-back firings
        for mid in extra:
            assert matrix.status[markers[mid].xid] == "aborted", (fmt, mid)


def test_marker_context_names_the_audit_function(matrix: World) -> None:
    for r in matrix.records:
        if parse_marker(r.message) and r.severity == "LOG":
            assert f"function {SCHEMA}.record_event()" in r.context, (r.fmt, r.context)


def test_marker_statement_line_once_per_statement(matrix: World) -> None:
    """CREATE EXTENSION fires ~90 times; only its first marker repeats the query."""
    recs = [r for r in matrix.recs("A18_extension", "stderr") if parse_marker(r.message)]
    assert len(recs) == len(matrix.rows("A18_extension"))
    assert [bool(r.statement) for r in recs].count(True) == 1
    assert recs[0].statement == "CREATE EXTENSION citext"


def test_rollback_and_savepoint_markers(matrix: World) -> None:
    """A06 and a rolled-back savepoint: marker present, row absent, its xid aborted."""
    (m,) = matrix.markers("A06_rollback")
    assert matrix.status[m.xid] == "aborted"
    assert m.id not in {e.id for e in matrix.events}
    sp = matrix.markers("SP_savepoint")
    rows = matrix.rows("SP_savepoint")
    assert len(sp) == 3 and len(rows) == 2
    rolled_back = [x for x in sp if x.id not in {e.id for e in rows}]
    assert len(rolled_back) == 1
    assert matrix.status[rolled_back[0].xid] == "aborted"
    # the savepoint's marker carries the subtransaction's xid, not the top-level one
    assert rolled_back[0].xid not in {e.xid % 2**32 for e in rows}
    assert all(matrix.status[e.row_xmin] == "committed" for e in rows)
    # and the committed rows of the same transaction share its top-level xid
    assert len({e.xid for e in rows}) == 1
    assert matrix.markers("A07_aborted_xact") == [] and matrix.markers("A05_dup_fail") == []
    assert matrix.markers("A19_denied") == []


# -- session id and vxid --------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["stderr", "csvlog", "jsonlog"])
@pytest.mark.parametrize(
    "app",
    [
        "A02_plain_create",
        "A04_multi_stmt",
        "A23_ext_prepared",
        "A23_ext_param",
        "A08_do_block",
        "A08_do_logged",
        "A18_drop",
        "SP_savepoint",
    ],
)
def test_session_id_and_vxid_equal_the_log(matrix: World, app: str, fmt: str) -> None:
    if fmt not in matrix.cluster.log_destination.split(","):
        pytest.skip(f"PostgreSQL {matrix.cluster.major} has no {fmt}")
    rows = matrix.rows(app)
    assert rows
    if app == "A08_do_block":
        # the DO itself is not logged: compare with the markers, which the log prints
        # with the same prefix as any statement of that transaction
        recs = [r for r in matrix.recs(app, fmt) if parse_marker(r.message)]
    else:
        recs = matrix.statements(app, fmt)
    assert recs, (app, fmt)
    for e in rows:
        assert (e.session_id, e.vxid) in {(r.sid, r.vxid) for r in recs}, (
            app,
            fmt,
            e.session_id,
            e.vxid,
        )
    if app != "A08_do_block":
        stmt = recs[0]
        assert stmt.message.split(": ", 1)[1] == rows[0].query


def test_session_id_formula_matches_pg_facts(matrix: World) -> None:
    """A24: the row's session id equals what pg_stat_activity yields and the log prints."""
    sid, vxid = matrix.notes["A24"]
    (row,) = matrix.rows("A24_session_id")
    assert (row.session_id, row.vxid) == (sid, vxid)


# -- digest ----------------------------------------------------------------------------


def test_sql_and_python_digests_agree(matrix: World) -> None:
    with matrix.cluster.connect(matrix.dbname) as conn:
        sql_digests = dict(
            conn.execute(
                f"SELECT e.id, {SCHEMA}.row_digest(e) FROM {SCHEMA}.events AS e"
            ).fetchall()
        )
        # a session with other TimeZone/DateStyle/extra_float_digits computes the same
        conn.execute("SET TimeZone = 'America/Los_Angeles'; SET DateStyle = 'SQL, DMY'")
        conn.execute("SET extra_float_digits = 0")
        again = dict(
            conn.execute(
                f"SELECT e.id, {SCHEMA}.row_digest(e) FROM {SCHEMA}.events AS e"
            ).fetchall()
        )
    assert sql_digests == again
    assert sql_digests == {e.id: e.digest for e in matrix.events}
    assert all(row_digest(e) == e.digest for e in matrix.events)
