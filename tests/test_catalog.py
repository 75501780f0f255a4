"""The catalog channel on real clusters: what it catches, and ordinary work it must not flag.

Each test gets a fresh database with the auditor installed (its baseline
snapshot) in a cluster of this module: the tests edit the catalog, disable
triggers and stop the server for single-user mode, so they do not share the
session cluster.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from auditor import capture
from auditor.cluster import TempCluster
from auditor.config import load_config
from auditor.model import Finding, FindingClass, Severity
from auditor.reconcile import ReconcileResult, reconcile

C = FindingClass
_n = itertools.count(1)
CLIENT_BIN = Path("/usr/lib/postgresql/15/bin")


@pytest.fixture(scope="module")
def cc() -> Iterator[TempCluster]:
    with TempCluster() as c:
        yield c


@dataclass
class Audited:
    cluster: TempCluster
    name: str
    out: Path

    def run(self, query: str, *, app: str = "cat-test", user: str | None = None) -> Any:
        return self.cluster.execute(query, dbname=self.name, user=user, application_name=app)

    def session(self, *statements: str) -> None:
        """One session, one statement per round trip (a SET then holds for the rest)."""
        with self.cluster.connect(self.name, application_name="cat-session") as conn:
            for stmt in statements:
                conn.execute(stmt)

    def reconcile(self, **opts: Any) -> ReconcileResult:
        self.cluster.flush_logs()
        flags: dict[str, Any] = {
            "dsn": self.cluster.dsn(self.name),
            "logs": [str(self.cluster.log_dir)],
            "databases": [self.name],
            "out": str(self.out),
        }
        flags.update(opts)
        return reconcile(load_config(flags, environ={}))


@pytest.fixture
def adb(cc: TempCluster, tmp_path: Path) -> Iterator[Audited]:
    name = f"cat{next(_n)}"
    cc.execute(f"CREATE DATABASE {name}")
    capture.install(cc.dsn(name), databases=[name])
    handle = Audited(cc, name, tmp_path / "out")
    try:
        yield handle
    finally:
        cc.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def silent(result: ReconcileResult) -> list[Finding]:
    return [f for f in result.document.findings if f.cls == C.SILENT_SCHEMA_CHANGE]


def naming(result: ReconcileResult, text: str) -> Finding:
    found = [f for f in silent(result) if text in f.explanation]
    assert len(found) == 1, [f.explanation for f in silent(result)]
    return found[0]


def catalog_objects(f: Finding) -> list[dict[str, Any]]:
    ev = f.evidence["catalog"]
    assert isinstance(ev, dict)
    objs = ev["objects"]
    assert isinstance(objs, list)
    return objs


def assert_accounts(result: ReconcileResult) -> None:
    doc = result.document
    s = doc.summary
    assert s.logged_ddl == s.matched + sum(f.accounts_logged_ddl for f in doc.findings)
    rows = {(f.database, i) for f in doc.findings for i in f.audit_event_ids}
    assert s.audit_rows == s.matched_audit_rows + len(rows)
    for f in silent(result):
        assert f.accounts_logged_ddl == 0 and f.audit_event_ids == ()


# ----------------------------------------------------------------------------- caught


def test_catalog_dml_is_a_silent_schema_change(adb: Audited) -> None:
    adb.run("CREATE TABLE orders (id int PRIMARY KEY); CREATE ROLE cat_bob")
    try:
        first = adb.reconcile()
        assert silent(first) == []
        adb.run("UPDATE pg_class SET relname = 'orders_old' WHERE relname = 'orders'")
        # A space at the end keeps the audit function working: only its body's hash moves.
        adb.run("UPDATE pg_proc SET prosrc = prosrc || ' ' WHERE proname = 'record_event'")
        adb.run("UPDATE pg_proc SET prosrc = 'int4pl' WHERE proname = 'int4mi'")
        adb.run("UPDATE pg_authid SET rolsuper = true WHERE rolname = 'cat_bob'")
        result = adb.reconcile()
    finally:
        adb.run("DROP ROLE IF EXISTS cat_bob")
    renamed = naming(result, "public.orders_old")
    assert renamed.severity == Severity.CRITICAL and renamed.database == adb.name
    (obj,) = [o for o in catalog_objects(renamed) if o["catalog"] == "pg_class"]
    assert obj["action"] == "changed" and "name: 'orders' -> 'orders_old'" in obj["changes"]
    assert obj["xmin"]["old"] != obj["xmin"]["new"]
    interval = renamed.evidence["catalog"]["interval"]  # type: ignore[index]
    assert interval["from_snapshot"] < interval["to_snapshot"]
    assert f"snapshot #{interval['from_snapshot']}" in renamed.explanation
    audit_fn = naming(result, "auditor.record_event()")
    assert "body:" in audit_fn.explanation and audit_fn.severity == Severity.CRITICAL
    builtin = naming(result, "pg_catalog.int4mi(integer,integer)")
    assert "body:" in builtin.explanation
    role = naming(result, "pg_authid cat_bob")
    assert role.database is None and "superuser: 'false' -> 'true'" in role.explanation
    assert len(silent(result)) == 4
    assert_accounts(result)
    assert result.exit_code == 1
    # All three reports carry it.
    data = json.loads(result.paths["json"].read_text(encoding="utf-8"))
    assert sum(f["class"] == "SILENT_SCHEMA_CHANGE" for f in data["findings"]) == 4
    assert "orders_old" in result.paths["csv"].read_text(encoding="utf-8")
    assert "orders_old" in result.paths["html"].read_text(encoding="utf-8")
    # Reported once: the next run compares with the snapshot this one stored.
    assert silent(adb.reconcile()) == []


def test_both_channels_silenced_at_once(adb: Audited) -> None:
    adb.reconcile()
    adb.session(
        "SET log_statement = 'none'",
        "ALTER EVENT TRIGGER auditor_ddl_command_end DISABLE",
        "CREATE TABLE hidden (id int PRIMARY KEY)",
        "ALTER EVENT TRIGGER auditor_ddl_command_end ENABLE ALWAYS",
    )
    result = adb.reconcile()
    hidden = naming(result, "public.hidden ")
    assert hidden.severity == Severity.CRITICAL
    actions = {(o["catalog"], o["identity"], o["action"]) for o in catalog_objects(hidden)}
    assert ("pg_class", "public.hidden", "created") in actions
    assert ("pg_constraint", "hidden_pkey on public.hidden", "created") in actions
    # The trigger was disabled and enabled again: same content, its row rewritten.
    trigger = naming(result, "pg_event_trigger auditor_ddl_command_end")
    assert "rewritten" in trigger.explanation
    assert_accounts(result)


def test_single_user_mode(adb: Audited) -> None:
    adb.reconcile()
    out = adb.cluster.single_user(adb.name, "CREATE TABLE t_single_user(id int);\n")
    assert "FATAL" not in out and "ERROR" not in out
    result = adb.reconcile()
    f = naming(result, "public.t_single_user")
    assert f.severity == Severity.CRITICAL
    assert f.database == adb.name and "was created" in f.explanation
    # Neither channel saw the statement: it is nowhere else in the report.
    others = [
        x for x in result.document.findings if x is not f and "t_single_user" in x.explanation
    ]
    assert others == []


def test_an_interval_the_logs_do_not_cover_is_high_not_critical(adb: Audited) -> None:
    adb.reconcile()
    adb.session("SET log_statement = 'none'", "CREATE TABLE unseen (id int)")
    # Mute the audit row too: the catalog is the only witness left.
    adb.run(
        "ALTER TABLE auditor.events DISABLE TRIGGER events_append_only;"
        "DELETE FROM auditor.events WHERE query LIKE 'CREATE TABLE unseen%';"
        "ALTER TABLE auditor.events ENABLE ALWAYS TRIGGER events_append_only"
    )
    time.sleep(1.1)
    newest = adb.cluster.rotate_logs()
    time.sleep(0.2)
    result = adb.reconcile(logs=[str(p) for p in newest.values()])
    f = naming(result, "public.unseen")
    assert f.severity == Severity.HIGH
    assert "do not cover all of the interval" in f.explanation


def test_state_file_keeps_the_previous_snapshot(adb: Audited, tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    first = adb.reconcile(state=str(state))
    assert silent(first) == []
    saved = json.loads(state.read_text(encoding="utf-8"))["catalog"]
    assert adb.name in saved["databases"] and saved["blobs"]
    adb.session(
        "SET log_statement = 'none'",
        "CREATE FUNCTION sneaky() RETURNS int LANGUAGE sql AS 'SELECT 1'",
    )
    adb.run("UPDATE pg_proc SET prosecdef = true WHERE proname = 'sneaky'")
    second = adb.reconcile(state=str(state))
    # Its audit row names it, but a later transaction without one wrote its row.
    f = naming(second, "public.sneaky()")
    assert f.severity == Severity.CRITICAL and "was created" in f.explanation
    assert any(x.cls == C.UNLOGGED_DDL for x in second.document.findings)
    third = adb.reconcile(state=str(state))
    assert silent(third) == []
    # The state file is the trustworthy copy: an edited snapshot row is found out.
    last = json.loads(state.read_text(encoding="utf-8"))["catalog"]["databases"]
    saved_id = last[adb.name]["id"]
    adb.run(
        "ALTER TABLE auditor.catalog_snapshots DISABLE TRIGGER catalog_snapshots_append_only;"
        f"UPDATE auditor.catalog_snapshots SET database_digest = 'forged' WHERE id = {saved_id};"
        "ALTER TABLE auditor.catalog_snapshots ENABLE ALWAYS TRIGGER catalog_snapshots_append_only"
    )
    fourth = adb.reconcile(state=str(state))
    (drift,) = [
        f
        for f in fourth.document.findings
        if f.cls == C.CONFIG_DRIFT and f"snapshot #{saved_id}" in f.explanation
    ]
    assert drift.severity == Severity.CRITICAL and "edited" in drift.explanation
    assert silent(fourth) == []


def test_the_reader_role_takes_snapshots_it_could_not_write(
    cc: TempCluster, tmp_path: Path
) -> None:
    name = f"cat{next(_n)}"
    cc.execute(f"CREATE DATABASE {name}")
    try:
        capture.install(cc.dsn(name), databases=[name], reader_role="cat_reader")
        cc.execute("CREATE ROLE cat_login LOGIN IN ROLE cat_reader")
        handle = Audited(cc, name, tmp_path / "out")
        handle.run("CREATE TABLE reader_t (id int)")
        reader = {"dsn": cc.dsn(name, "cat_login"), "reader_role": "cat_reader"}
        assert silent(handle.reconcile(**reader)) == []
        handle.run("UPDATE pg_class SET relname = 'reader_t2' WHERE relname = 'reader_t'")
        result = handle.reconcile(**reader)
        assert not [n for n in result.document.notes if "catalog" in n], result.document.notes
        f = naming(result, "public.reader_t2")
        assert f.severity == Severity.CRITICAL
        # The reader cannot write the snapshot table itself.
        with pytest.raises(Exception, match="permission denied"):
            cc.execute(
                "SET ROLE cat_reader; DELETE FROM auditor.catalog_snapshots",
                dbname=name,
                user="cat_login",
            )
    finally:
        cc.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        cc.execute("DROP ROLE IF EXISTS cat_login")
        cc.execute("DROP ROLE IF EXISTS cat_reader")


def test_status_shows_the_latest_snapshot_and_its_age(adb: Audited) -> None:
    report = capture.status(adb.cluster.dsn(adb.name), databases=[adb.name])
    (db,) = report.databases
    assert db.catalog is not None and db.catalog.snapshots == 1
    text = capture.format_status(report)
    assert "catalog snapshots: 1, latest #1 (install)" in text
    adb.reconcile()
    text = capture.format_status(capture.status(adb.cluster.dsn(adb.name), databases=[adb.name]))
    assert "catalog snapshots: 2, latest #2 (reconcile)" in text


# ----------------------------------------------------------------------------- ordinary work


def test_ordinary_work_of_every_kind_is_explained(adb: Audited, tmp_path: Path) -> None:
    adb.reconcile()
    for q in (
        "CREATE TABLE t (id serial PRIMARY KEY, v text, n int)",
        "INSERT INTO t (v, n) SELECT repeat('x', 3000), g FROM generate_series(1, 500) AS g",
        "CREATE INDEX t_n ON t (n)",
        "CREATE MATERIALIZED VIEW mv AS SELECT id, n FROM t",
        "CREATE TABLE parted (id int) PARTITION BY RANGE (id)",
        "CREATE TABLE parted_1 PARTITION OF parted FOR VALUES FROM (0) TO (100)",
        "CREATE TABLE par (id int); CREATE TABLE chi () INHERITS (par)",
        "ALTER TABLE par ADD COLUMN extra text",
        "CREATE TABLE child_fk (id int REFERENCES t (id))",
        "CREATE SEQUENCE s",
        "CREATE EXTENSION pg_trgm",
        "CREATE FUNCTION mk() RETURNS void LANGUAGE plpgsql AS "
        "$$ BEGIN EXECUTE 'CREATE TABLE from_function (a int)'; END $$",
        "SELECT mk()",
        "DO $$ BEGIN CREATE TABLE from_do (a int); ALTER TABLE from_do ADD COLUMN b int; END $$",
        "CREATE SCHEMA app; CREATE TABLE app.moved (id int)",
        "ALTER TABLE app.moved SET SCHEMA public",
        "ALTER SCHEMA app RENAME TO app2",
        "CREATE ROLE cat_worker; GRANT SELECT ON t TO cat_worker",
        "GRANT SELECT ON ALL TABLES IN SCHEMA public TO cat_worker",
        "ALTER ROLE cat_worker RENAME TO cat_worker2",
        "ALTER TABLE t ENABLE ROW LEVEL SECURITY; CREATE POLICY p ON t USING (n > 0)",
        "CREATE VIEW v AS SELECT * FROM t; CREATE RULE r AS ON INSERT TO v DO INSTEAD NOTHING",
        "ALTER DATABASE " + adb.name + " SET work_mem = '8MB'",
        "CREATE TABLE doomed (id int); DROP TABLE doomed",
        "DROP VIEW v",
    ):
        adb.run(q)
    # Work that is not DDL at all (or not logged under 'ddl') but touches the catalog rows.
    for q in (
        "ANALYZE",
        "VACUUM",
        "VACUUM (FREEZE, ANALYZE)",
        "VACUUM FULL t",
        "TRUNCATE child_fk, t",
        "COPY t (v, n) FROM PROGRAM 'printf \"a,1\\nb,2\\n\"' WITH (FORMAT csv)",
        "REFRESH MATERIALIZED VIEW mv",
        "CREATE INDEX CONCURRENTLY t_v ON t (v)",
        "REINDEX TABLE t",
        "REINDEX INDEX CONCURRENTLY t_n",
        "CLUSTER t USING t_pkey",
        "SELECT nextval('s'), setval('s', 100), nextval('t_id_seq')",
        "DROP TABLE chi",
        "ANALYZE par",
        "CREATE TEMP TABLE tmp (id serial PRIMARY KEY, x text); INSERT INTO tmp (x) VALUES ('a')",
        "REASSIGN OWNED BY cat_worker2 TO postgres",
        "DROP OWNED BY cat_worker2",
    ):
        adb.run(q)
    pgbench = CLIENT_BIN / "pgbench"
    env = {"PGHOST": "127.0.0.1", "PGPORT": str(adb.cluster.port), "PGUSER": "postgres"}
    subprocess.run(
        [str(pgbench), "-i", "-q", "-s", "1", adb.name], check=True, env=env, capture_output=True
    )
    subprocess.run(
        [str(pgbench), "-t", "50", "-c", "2", adb.name], check=True, env=env, capture_output=True
    )
    if adb.cluster.major <= 15:  # Debian's pg_dump 15 cannot dump a newer server
        dump = tmp_path / "src.dump"
        adb.cluster.execute("DROP DATABASE IF EXISTS cat_src")
        adb.cluster.execute("CREATE DATABASE cat_src")
        adb.cluster.execute(
            "CREATE TABLE restored (id serial PRIMARY KEY, v text); CREATE VIEW restored_v AS "
            "SELECT * FROM restored; CREATE FUNCTION restored_f() RETURNS int LANGUAGE sql "
            "AS 'SELECT 1'",
            dbname="cat_src",
        )
        subprocess.run(
            [str(CLIENT_BIN / "pg_dump"), "-Fc", "-f", str(dump), "cat_src"],
            check=True,
            env=env,
            capture_output=True,
        )
        subprocess.run(
            [str(CLIENT_BIN / "pg_restore"), "-d", adb.name, str(dump)],
            check=True,
            env=env,
            capture_output=True,
        )
        adb.cluster.execute("DROP DATABASE cat_src")
    try:
        result = adb.reconcile()
    finally:
        adb.run("DROP OWNED BY cat_worker2; DROP ROLE cat_worker2")
    assert silent(result) == [], [f.explanation for f in silent(result)]
    assert not any("first snapshot" in n for n in result.document.notes)
    assert_accounts(result)


def test_no_snapshot_without_the_catalog_function_is_a_note(adb: Audited) -> None:
    adb.run("DROP FUNCTION auditor.catalog_snapshot(text)")
    result = adb.reconcile()
    assert silent(result) == []
    # status names the missing function (a weakened install), reconcile goes on without it.
    assert any("catalog_snapshot" in f.explanation for f in result.document.findings)


def test_a_rerun_over_a_reconciled_window_reports_the_silent_change_again(adb: Audited) -> None:
    """An incident re-run of last night must not depend on last night's run having happened."""
    adb.reconcile()
    time.sleep(1.1)
    start = datetime.now(UTC)
    time.sleep(1.1)
    adb.session(
        "SET log_statement = 'none'",
        "ALTER EVENT TRIGGER auditor_ddl_command_end DISABLE",
        "CREATE TABLE hidden_twice (id int)",
        "ALTER EVENT TRIGGER auditor_ddl_command_end ENABLE ALWAYS",
    )
    nightly = naming(adb.reconcile(), "public.hidden_twice ")
    assert nightly.severity == Severity.CRITICAL
    # The next ordinary run compares with the snapshot the nightly run stored: reported once.
    assert silent(adb.reconcile()) == []
    # A re-run over the window (--since before the change) finds it again, as the same
    # finding, from the stored snapshots; and nothing before the window comes back.
    rerun = adb.reconcile(since=start.isoformat())
    again = naming(rerun, "public.hidden_twice ")
    assert again.id == nightly.id and again.severity == Severity.CRITICAL
    assert again.evidence["catalog"] == nightly.evidence["catalog"]
    assert "reported again because the window asked for starts before it" in again.explanation
    assert "reported again" not in nightly.explanation
    assert len(silent(rerun)) == len(silent(adb.reconcile(since=start.isoformat())))
    assert_accounts(rerun)
    # A window that starts after the change does not report it.
    time.sleep(1.1)
    late = datetime.now(UTC)
    time.sleep(1.1)
    assert [f for f in silent(adb.reconcile(since=late.isoformat()))] == []


# ------------------------------------------- publications, foreign servers, default ACLs, ...

#: A way out of the database, or future grants: what a hostile superuser adds quietly.
_EXITS = (
    "CREATE TABLE pub_t (id int PRIMARY KEY); CREATE TABLE pub_t2 (id int PRIMARY KEY)",
    "CREATE ROLE cat_eve",
    "CREATE PUBLICATION pub_one FOR TABLE pub_t",
    "ALTER PUBLICATION pub_one ADD TABLE pub_t2",
    "CREATE PUBLICATION pub_all FOR ALL TABLES",
    "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO cat_eve",
    "ALTER DEFAULT PRIVILEGES GRANT USAGE ON SEQUENCES TO cat_eve",
    "CREATE FOREIGN DATA WRAPPER cat_fdw",
    "CREATE SERVER cat_srv FOREIGN DATA WRAPPER cat_fdw OPTIONS (host 'elsewhere')",
    "CREATE USER MAPPING FOR cat_eve SERVER cat_srv OPTIONS (password 'secret')",
    "ALTER SERVER cat_srv OPTIONS (SET host 'further')",
    "CREATE FUNCTION pub_cast(pub_t) RETURNS int LANGUAGE sql AS 'SELECT 1'",
    "CREATE CAST (pub_t AS int) WITH FUNCTION pub_cast(pub_t)",
    "CREATE LANGUAGE cat_pl HANDLER plpgsql_call_handler",
    "CREATE SUBSCRIPTION cat_sub CONNECTION 'dbname=nowhere' PUBLICATION pub_all "
    "WITH (connect = false)",
)


def _drop_exits(adb: Audited) -> None:
    adb.run(
        "DROP OWNED BY cat_eve; DROP ROLE IF EXISTS cat_eve",
    )


def test_publications_servers_mappings_default_privileges_casts_languages_explained(
    adb: Audited,
) -> None:
    adb.reconcile()
    try:
        for q in _EXITS:
            adb.run(q)
        if adb.cluster.major >= 15:
            adb.run("CREATE SCHEMA pubs; CREATE PUBLICATION pub_schema FOR TABLES IN SCHEMA pubs")
        adb.run("ALTER SUBSCRIPTION cat_sub SET (slot_name = NONE); DROP SUBSCRIPTION cat_sub")
        adb.run("ALTER USER MAPPING FOR cat_eve SERVER cat_srv OPTIONS (SET password 'other')")
        adb.run("DROP CAST (pub_t AS int); DROP LANGUAGE cat_pl")
        result = adb.reconcile()
    finally:
        _drop_exits(adb)
    assert silent(result) == [], [f.explanation for f in silent(result)]
    assert_accounts(result)


def test_quiet_ways_out_are_silent_schema_changes(adb: Audited) -> None:
    adb.run("CREATE TABLE pub_t (id int PRIMARY KEY); CREATE ROLE cat_eve")
    adb.reconcile()
    try:
        adb.session(
            "SET log_statement = 'none'",
            "ALTER EVENT TRIGGER auditor_ddl_command_end DISABLE",
            "CREATE PUBLICATION leak FOR ALL TABLES",
            "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO cat_eve",
            "CREATE FOREIGN DATA WRAPPER quiet_fdw",
            "CREATE SERVER quiet_srv FOREIGN DATA WRAPPER quiet_fdw",
            "CREATE USER MAPPING FOR cat_eve SERVER quiet_srv OPTIONS (password 'x')",
            "CREATE FUNCTION quiet_cast(pub_t) RETURNS int LANGUAGE sql AS 'SELECT 1'",
            "CREATE CAST (pub_t AS int) WITH FUNCTION quiet_cast(pub_t) AS IMPLICIT",
            "CREATE LANGUAGE quiet_pl HANDLER plpgsql_call_handler",
            "CREATE SUBSCRIPTION quiet_sub CONNECTION 'dbname=nowhere' PUBLICATION leak "
            "WITH (connect = false)",
            "ALTER EVENT TRIGGER auditor_ddl_command_end ENABLE ALWAYS",
        )
        result = adb.reconcile()
        adb.run("ALTER SUBSCRIPTION quiet_sub SET (slot_name = NONE); DROP SUBSCRIPTION quiet_sub")
    finally:
        _drop_exits(adb)
    catalogs = {o["catalog"] for f in silent(result) for o in catalog_objects(f)}
    for catalog in (
        "pg_publication", "pg_default_acl", "pg_foreign_data_wrapper", "pg_foreign_server",
        "pg_user_mapping", "pg_cast", "pg_language", "pg_subscription",
    ):  # fmt: skip
        assert catalog in catalogs, (catalog, [f.explanation for f in silent(result)])
    assert all(f.severity == Severity.CRITICAL for f in silent(result))
    assert "secret" not in result.paths["json"].read_text(encoding="utf-8")
    assert_accounts(result)


def test_a_snapshot_of_an_older_install_is_compared_on_what_it_followed(adb: Audited) -> None:
    """An upgrade that follows more catalogs: the objects already there are not 'created'."""
    adb.reconcile()
    # The rows an older install stored do not say which catalogs they follow.
    adb.run(
        "ALTER TABLE auditor.catalog_snapshots DISABLE TRIGGER catalog_snapshots_append_only;"
        "UPDATE auditor.catalog_snapshots SET catalogs = NULL;"
        "ALTER TABLE auditor.catalog_snapshots "
        "ENABLE ALWAYS TRIGGER catalog_snapshots_append_only"
    )
    adb.session(
        "SET log_statement = 'none'",
        "ALTER EVENT TRIGGER auditor_ddl_command_end DISABLE",
        "CREATE PUBLICATION before_upgrade FOR ALL TABLES",
        "ALTER EVENT TRIGGER auditor_ddl_command_end ENABLE ALWAYS",
    )
    first = adb.reconcile()
    assert not [f for f in silent(first) if "before_upgrade" in f.explanation]
    assert any("follows catalogs that snapshot" in n for n in first.document.notes)
    adb.session(
        "SET log_statement = 'none'",
        "ALTER EVENT TRIGGER auditor_ddl_command_end DISABLE",
        "CREATE PUBLICATION after_upgrade FOR ALL TABLES",
        "ALTER EVENT TRIGGER auditor_ddl_command_end ENABLE ALWAYS",
    )
    second = adb.reconcile()
    assert naming(second, "after_upgrade").severity == Severity.CRITICAL
    assert not [f for f in silent(second) if "before_upgrade" in f.explanation]
    assert not any("follows catalogs that snapshot" in n for n in second.document.notes)
