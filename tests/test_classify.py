"""Statement classification agrees with what a real server logs and fires.

Every statement below is run against the session cluster (log_statement =
'ddl') in a database with a ``ddl_command_end`` event trigger that records
``TG_TAG``.  For each one the test compares the server's behaviour (logged or
not; which tags fired) with :func:`auditor.classify.classify`.
"""

from __future__ import annotations

import pytest

from auditor.classify import LogLevel, classify

SETUP = """
CREATE TABLE fired (n serial, tag text, app text);
CREATE FUNCTION rec() RETURNS event_trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO fired (tag, app) VALUES (tg_tag, current_setting('application_name')); END $$;
CREATE FUNCTION rec_start() RETURNS event_trigger LANGUAGE plpgsql AS $$ BEGIN NULL; END $$;
CREATE EVENT TRIGGER cls_rec ON ddl_command_end EXECUTE FUNCTION rec();
CREATE TABLE base (id int PRIMARY KEY, v text);
"""

# Statements, run in this order, each in its own session.
CASES = [
    "CREATE TABLE c1 (id int)",
    "CREATE TABLE IF NOT EXISTS c1 (id int)",
    "CREATE TABLE c2 (id serial PRIMARY KEY)",
    "ALTER TABLE c1 ADD COLUMN v text",
    "CREATE INDEX c1_v ON c1 (v)",
    "CREATE VIEW v1 AS SELECT * FROM c1",
    "SELECT * INTO c3 FROM c1",
    "select 1 as x into c3b",
    "CREATE TABLE c4 AS SELECT 1 AS x",
    "EXPLAIN ANALYZE CREATE TABLE c5 AS SELECT 1 AS x",
    "EXPLAIN SELECT 1",
    "CREATE MATERIALIZED VIEW mv AS SELECT 1 AS x",
    "REFRESH MATERIALIZED VIEW mv",
    "COMMENT ON TABLE c1 IS 'x'",
    "COMMENT ON ROLE cls_bob IS 'x'",
    "GRANT SELECT ON c1 TO cls_bob",
    "REVOKE SELECT ON c1 FROM cls_bob",
    "GRANT CONNECT ON DATABASE {db} TO cls_bob",
    "GRANT {predefined_role} TO cls_bob",
    "REVOKE {predefined_role} FROM cls_bob",
    "ALTER ROLE cls_bob SET work_mem = '8MB'",
    "ALTER DATABASE {db} SET work_mem = '8MB'",
    "CLUSTER c2 USING c2_pkey",
    "REINDEX TABLE c1",
    "VACUUM c1",
    "TRUNCATE c1",
    "BEGIN; LOCK TABLE c1; COMMIT",
    "BEGIN; CREATE TABLE c6 (id int); COMMIT",
    "CREATE TABLE c7 (id int); SELECT 1; CREATE TABLE c8 (id int)",
    "/* leading comment */ create table c8b (id int) -- trailing",
    "CREATE FUNCTION f1() RETURNS int LANGUAGE sql AS 'SELECT 1'",
    "ALTER FUNCTION f1() SET search_path = public",
    "CREATE PROCEDURE p1() LANGUAGE sql AS 'SELECT 1'",
    "DROP PROCEDURE p1()",
    "DROP FUNCTION f1()",
    "CREATE SCHEMA s1",
    "ALTER TABLE c1 SET SCHEMA s1",
    "ALTER TABLE s1.c1 RENAME TO c1r",
    "ALTER TABLE s1.c1r RENAME COLUMN v TO w",
    "ALTER TABLE s1.c1r OWNER TO cls_bob",
    "DROP TABLE s1.c1r CASCADE",
    "DROP TABLE IF EXISTS no_such_table",
    "CREATE TYPE mood AS ENUM ('a', 'b')",
    "ALTER TYPE mood ADD VALUE 'c'",
    "CREATE TYPE pair AS (a int, b int)",
    "CREATE DOMAIN d1 AS int CHECK (VALUE > 0)",
    "ALTER DOMAIN d1 DROP CONSTRAINT d1_check",
    "CREATE SEQUENCE sq1",
    "ALTER SEQUENCE sq1 RESTART",
    "ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO cls_bob",
    "CREATE POLICY pol1 ON c2 USING (true)",
    "CREATE TRIGGER trg1 BEFORE INSERT ON c2 FOR EACH ROW EXECUTE FUNCTION suppress_redundant_updates_trigger()",
    "CREATE RULE r1 AS ON DELETE TO c4 DO INSTEAD NOTHING",
    "CREATE STATISTICS st1 ON id, v FROM base",
    "CREATE EVENT TRIGGER cls_tmp ON ddl_command_start EXECUTE FUNCTION rec_start()",
    "ALTER EVENT TRIGGER cls_tmp DISABLE",
    "ALTER EVENT TRIGGER cls_tmp RENAME TO cls_tmp2",
    "DROP EVENT TRIGGER cls_tmp2",
    "ALTER SYSTEM SET work_mem = '5MB'",
    "ALTER SYSTEM RESET work_mem",
    "SET log_statement = 'ddl'",
    "CREATE ROLE cls_tmp",
    "ALTER ROLE cls_tmp NOLOGIN",
    "DROP ROLE cls_tmp",
    "PREPARE q AS SELECT 1 AS x; CREATE TABLE c11 AS EXECUTE q",
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "ALTER EXTENSION pg_trgm UPDATE",
    "DROP EXTENSION pg_trgm",
    "CREATE TABLE c12 (id int); DROP TABLE c12",
    "REASSIGN OWNED BY cls_bob TO postgres",
    "DROP OWNED BY cls_bob",
    'CREATE TABLE "tëst_ü" ("ä" int)',
]


@pytest.fixture
def played(db, logs):
    """Run every case; return (case, logged?, fired tags) triples."""
    db.create_role("cls_bob")
    db.run(SETUP)
    # pg_read_all_data exists from PostgreSQL 14 on; a role grant of any predefined role is
    # the same statement to the parser, the log and the event triggers.
    role = "pg_read_all_data" if db.cluster.major >= 14 else "pg_read_all_stats"
    fields = {"db": db.name, "predefined_role": role}
    mark = logs.mark()
    for i, case in enumerate(CASES):
        db.run(case.format(**fields), app=f"cls{i:03d}")
    got = logs.since(mark)
    fired_rows = db.run("SELECT app, tag FROM fired ORDER BY n")
    results = []
    for i, case in enumerate(CASES):
        app = f"cls{i:03d}"
        logged = [
            r for r in got.csvlog
            if r["application_name"] == app and r["message"].startswith("statement: ")
        ]  # fmt: skip
        tags = [tag for a, tag in fired_rows if a == app]
        results.append((case.format(**fields), len(logged), tags))
    db.run("ALTER SYSTEM RESET ALL")
    db.run("SELECT pg_reload_conf()")
    return results


def test_log_level_and_firing_match_the_server(played, cluster) -> None:
    mismatches = []
    for case, logged, tags in played:
        c = classify(case, server_version_num=cluster.version_num)
        assert c.parse_error is None, case
        expected_log = 1 if c.is_ddl else 0
        expected_tags = [s.command_tag for s in c.firing_statements]
        if "EXTENSION" in case and tags:
            # Extension scripts fire once per inner statement, then once for the extension.
            tags = tags[-1:]
        if (logged, tags) != (expected_log, expected_tags):
            mismatches.append((case, (logged, tags), (expected_log, expected_tags)))
    assert mismatches == []


def test_create_extension_fires_inner_statements_first(played) -> None:
    tags = next(t for case, _, t in played if case.startswith("CREATE EXTENSION"))
    assert len(tags) > 5 and tags[-1] == "CREATE EXTENSION"


def test_indirect_ddl_is_fired_but_not_logged(db, logs) -> None:
    db.run(SETUP)
    mark = logs.mark()
    db.run(
        "DO $$ BEGIN EXECUTE 'CREATE TABLE ind1 (id int)'; CREATE TABLE ind2 (id int); END $$",
        app="ind",
    )
    got = logs.since(mark)
    assert not [
        r
        for r in got.csvlog
        if r["application_name"] == "ind" and r["message"].startswith("statement:")
    ]
    assert db.run("SELECT tag FROM fired WHERE app = 'ind' ORDER BY n") == [
        ("CREATE TABLE",),
        ("CREATE TABLE",),
    ]
    c = classify("DO $$ BEGIN EXECUTE 'CREATE TABLE ind1 (id int)'; END $$")
    assert c.firing_statements == () and not c.is_ddl and c.statements[0].runs_code


@pytest.mark.parametrize(
    ("query", "reason_part"),
    [
        ("ALTER SYSTEM SET log_statement = 'none'", "ALTER SYSTEM"),
        ("CREATE ROLE x SUPERUSER", "shared"),
        ("GRANT pg_read_all_data TO x", "role membership"),
        ("GRANT CONNECT ON DATABASE d TO x", "database"),
        ("COMMENT ON TABLESPACE pg_default IS 'x'", "tablespace"),
        ("CLUSTER t USING i", "CLUSTER"),
        ("EXPLAIN (ANALYZE) CREATE TABLE t AS SELECT 1", "EXPLAIN ANALYZE"),
        ("DROP EVENT TRIGGER e", "event-trigger DDL"),
    ],
)
def test_unauditable_reasons(query: str, reason_part: str) -> None:
    s = classify(query).statements[0]
    assert s.is_ddl and not s.fires_ddl_command_end
    assert s.unauditable_reason and reason_part in s.unauditable_reason


def test_reindex_fires_from_17() -> None:
    assert not classify("REINDEX TABLE t", server_version_num=160000).firing_statements
    assert classify("REINDEX TABLE t", server_version_num=170000).firing_statements
    s = classify("REINDEX TABLE t").statements[0]
    assert s.log_level == LogLevel.ALL and s.schema_change


def test_settings_that_weaken_a_channel() -> None:
    cases = {
        "SET LOCAL session_replication_role = replica": (
            "session_replication_role",
            "replica",
            "local",
        ),
        "ALTER SYSTEM SET log_statement = 'none'": ("log_statement", "none", "system"),
        "ALTER ROLE app SET log_statement TO 'none'": ("log_statement", "none", "role"),
        "ALTER DATABASE app SET log_min_error_statement = panic": (
            "log_min_error_statement",
            "panic",
            "database",
        ),
        "ALTER FUNCTION f() SET log_statement = none": ("log_statement", "none", "function"),
        "SELECT set_config('log_statement', 'none', false)": ("log_statement", "none", "session"),
        "RESET event_triggers": ("event_triggers", None, "session"),
    }
    for query, (name, value, scope) in cases.items():
        changes = classify(query).settings
        assert [(c.name, c.value, c.scope) for c in changes] == [(name, value, scope)], query
        assert classify(query).is_relevant
    assert classify("SET work_mem = '1GB'").settings == ()


def test_superuser_grants_and_event_trigger_actions() -> None:
    assert classify("CREATE ROLE x LOGIN SUPERUSER").statements[0].grants_superuser
    assert classify("ALTER USER x WITH SUPERUSER").statements[0].grants_superuser
    assert classify("GRANT pg_execute_server_program TO x").statements[0].grants_superuser
    assert not classify("ALTER ROLE x NOSUPERUSER").statements[0].grants_superuser
    assert not classify("GRANT pg_read_all_data TO x").statements[0].grants_superuser
    et = classify("ALTER EVENT TRIGGER a ENABLE ALWAYS").statements[0].event_trigger
    assert et is not None and et.action == "enable always"
    et = classify("DROP EVENT TRIGGER IF EXISTS a, b").statements[0].event_trigger
    assert et is not None and et.names == ("a", "b") and et.action == "drop"


def test_object_names_for_timeline() -> None:
    assert "s.orders" in classify("ALTER TABLE s.orders RENAME TO orders_old").statements[0].objects
    assert (
        "s.orders_old"
        in classify("ALTER TABLE s.orders RENAME TO orders_old").statements[0].objects
    )
    assert "orders" in classify("DROP TABLE orders CASCADE").statements[0].objects
    assert "ix" in classify("CREATE INDEX ix ON t (a)").statements[0].objects


def test_unparsable_text_is_conservatively_ddl() -> None:
    c = classify("CREATE TABLE broken (")
    assert c.parse_error is not None and c.is_ddl
    c = classify("SELEC 1")
    assert c.parse_error is not None and not c.is_ddl


def test_statement_texts_split_with_non_ascii() -> None:
    c = classify('CREATE TABLE "tëst" (x int); CREATE TABLE b (y int)')
    assert [s.text for s in c.statements] == [
        'CREATE TABLE "tëst" (x int)',
        "CREATE TABLE b (y int)",
    ]
