"""The byte pre-filter never drops a statement that holds DDL or changes a watched setting.

The pre-filter may skip a record only when it provably cannot hold DDL; these
tests hold it to that on a corpus of tricky statements, as text and as real
log bytes written by a server with ``log_statement = 'all'`` in all three
formats, and check that the fast classifier agrees with the full one.
"""

from __future__ import annotations

import contextlib
from typing import Any

import psycopg
import pytest
from logs_helpers import FIXTURE_NAMES, files, identity, meta, read

import auditor.logs.prefilter as prefilter
from auditor.classify import classify
from auditor.logs.reader import read_source
from auditor.logs.sources import open_sources
from auditor.model import LogRecord, MessageKind

#: Statements that hold DDL or change a watched setting, written the awkward ways.
RELEVANT = (
    "BEGIN; CREATE TABLE pf_c1 (id int); COMMIT",
    "select 1 as a into pf_c2",
    "SELECT * INTO TEMP pf_c3 FROM pg_class",
    "WITH x AS (SELECT 1 AS a) SELECT * INTO pf_c4 FROM x",
    "create table pf_c5 as select 1 as a",
    "/* migration */ CREATE INDEX pf_c5_i ON pf_c5 (a)",
    "-- leading comment\nALTER TABLE pf_c5 ADD COLUMN b int",
    "explain analyze create table pf_c6 as select 1",
    "EXPLAIN (ANALYZE) SELECT 1 AS a INTO pf_c7",
    "PREPARE pf_into AS SELECT 1 AS a INTO pf_c8",
    "CREATE TABLE pf_c9 AS EXECUTE pf_sel",
    "GRANT SELECT ON pf_c5 TO PUBLIC",
    "REVOKE ALL ON pf_c5 FROM PUBLIC",
    "COMMENT ON TABLE pf_c5 IS 'x'",
    "SECURITY LABEL FOR nobody ON TABLE pf_c5 IS 'x'",
    "ALTER SYSTEM SET log_min_messages = 'warning'",
    "ALTER SYSTEM RESET log_min_messages",
    "CLUSTER pf_c5",
    "REFRESH MATERIALIZED VIEW pf_mv",
    "IMPORT FOREIGN SCHEMA s FROM SERVER nosuch INTO public",
    "REASSIGN OWNED BY pf_nobody TO postgres",
    "DROP OWNED BY pf_nobody",
    "REINDEX TABLE pf_c5",
    "SET session_replication_role = replica",
    "RESET session_replication_role",
    "SELECT set_config('log_min_error_statement', 'error', false)",
    'SET "log_min_messages" = warning',
    'SET U&"log\\005fmin_messages" = warning',
    "set LOCAL log_statement = 'all'",
    "CrEaTe TaBlE pf_c10 (id int)",
    "DO $$ BEGIN END $$; CREATE TABLE pf_c11 ()",
    "SELECT 1; DROP TABLE IF EXISTS pf_c11",
    "CREATE TABLE pf_c12 (id int) -- trailing comment",
    "create\ttable pf_c13 (id int)",
    "INSERT INTO pf_c5 (a) SELECT 1; CREATE TABLE pf_c14 ()",
    "select insert into pf_c15 from (select 1 as insert) s",
    "select 1 as a\ninto pf_c16",
    'CREATE TABLE "pf_ünïcode" ("ä" int)',
)

#: Statements that hold neither, some of them with DDL-looking words in them.
IRRELEVANT = (
    "SELECT 1",
    "INSERT INTO pf_c5 (a) VALUES (1)",
    "insert into pf_c5 (a) values (2)",
    "UPDATE pf_c5 SET a = a + 1",
    "DELETE FROM pf_c5 WHERE a < 0",
    "BEGIN",
    "COMMIT",
    "VACUUM pf_c5",
    "TRUNCATE pf_c5",
    "SHOW log_statement",
    "SET search_path = public",
    "EXPLAIN SELECT 1",
    "DO $$ BEGIN EXECUTE 'CREATE TABLE pf_dyn ()'; END $$",
    "SELECT 'create table is just text'",
    "LOCK TABLE pf_c5",
    "PREPARE pf_sel AS SELECT 1 AS a",
    "EXECUTE pf_sel",
    "SELECT pg_reload_conf()",
)


@pytest.mark.parametrize("query", RELEVANT)
def test_every_relevant_statement_holds_a_token(query: str) -> None:
    c = classify(query)
    assert c.is_relevant, query  # the corpus is what it claims to be
    assert prefilter.has_token(query)


@pytest.mark.parametrize("query", RELEVANT + IRRELEVANT)
def test_quick_classification_agrees_with_the_full_classifier(query: str) -> None:
    prefilter.quick_classify.cache_clear()
    full = classify(query)
    quick = prefilter.quick_classify(query)
    assert (quick.is_ddl, quick.is_relevant) == (full.is_ddl, full.is_relevant), query


def test_insert_into_at_a_statement_start_is_skipped() -> None:
    assert not prefilter.has_token("INSERT INTO t VALUES (1)")
    assert not prefilter.has_token("UPDATE pgbench_accounts SET abalance = 1 WHERE aid = 2")
    assert prefilter.has_token("WITH a AS (SELECT 1) INSERT INTO t SELECT * FROM a")  # not provable


def _relevant(records: list[LogRecord]) -> list[tuple[Any, ...]]:
    keep = []
    for r in records:
        if r.kind in (MessageKind.STATEMENT, MessageKind.EXECUTE) and r.is_relevant:
            keep.append((r.source.offset, identity(r)))
    return keep


def test_on_real_log_bytes_nothing_relevant_is_skipped(db, logs) -> None:  # type: ignore[no-untyped-def]
    marks = logs.mark().sizes
    with db.connect(application_name="prefilter") as conn:
        conn.execute("SET log_statement = 'all'")
        cur = psycopg.ClientCursor(conn)
        for query in IRRELEVANT[:16] + RELEVANT + IRRELEVANT[16:]:
            with contextlib.suppress(psycopg.Error):
                cur.execute(query)
        # Before PostgreSQL 15, SELECT ... INTO cannot be prepared ("utility statements
        # cannot be prepared"): the PREPARE failed above and there is nothing to execute.
        can_prepare_into = db.cluster.major >= 15
        if can_prepare_into:
            cur.execute("EXECUTE pf_into")  # simple protocol: DETAIL prepare holds the INTO
        for query in ("CREATE TABLE pf_ext (id int)", "select 1 as a into pf_ext2"):
            conn.cursor(binary=True).execute(query)  # extended protocol
        conn.execute("RESET ALL")
    logs.mark()
    checked = 0
    for path in sorted(db.cluster.log_dir.iterdir()):
        (source,) = open_sources([str(path)])
        start = marks.get(path, 0)
        kw: dict[str, Any] = {"start_offset": start, "prefix": db.cluster.log_line_prefix}
        everything = [
            r for r in read_source(source, all_records=True, **kw) if isinstance(r, LogRecord)
        ]
        default = [r for r in read_source(source, **kw) if isinstance(r, LogRecord)]
        mine = [r for r in everything if r.application == "prefilter"]
        if not mine:
            continue
        wanted = _relevant(everything)
        assert len([w for w in wanted if w[1][10] == "prefilter"]) >= len(RELEVANT)
        assert _relevant(default) == wanted, path.suffix
        executes = [r for r in default if r.statement == "EXECUTE pf_into"]
        if can_prepare_into:
            (execute,) = executes
            assert execute.prepare_text and "INTO pf_c8" in execute.prepare_text
            assert execute.is_ddl
        else:
            assert executes == []
            text = next(q for q in RELEVANT if q.startswith("PREPARE pf_into"))
            (prepare,) = [
                r for r in default if r.statement == text and r.kind == MessageKind.STATEMENT
            ]
            assert any(e.failed_statement == prepare.source for e in everything)
        checked += 1
    assert checked == len(db.cluster.log_destination.split(","))


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_hyperscan_and_the_standard_library_find_the_same_records(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefix = meta(name)["log_line_prefix"]
    for fmt in ("stderr", "csvlog", "jsonlog"):
        p = prefix if fmt == "stderr" else None
        fast, _, _ = read(files(name, fmt), fmt=fmt, prefix=p)
        with monkeypatch.context() as m:
            m.setattr(prefilter, "_hs", None)
            prefilter.finder.cache_clear()
            slow, _, slow_src = read(files(name, fmt), fmt=fmt, prefix=p)
            assert slow_src[0].engine == "re"
        prefilter.finder.cache_clear()
        assert [identity(r) for r in slow] == [identity(r) for r in fast]
