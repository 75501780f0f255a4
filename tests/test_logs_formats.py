"""The three readers on logs that real clusters wrote in all three formats at once.

Every fixture under ``fixtures/`` was captured by ``fixtures/capture.py``
from a throwaway cluster writing stderr (with the fixture's
``log_line_prefix``), csvlog and jsonlog for the same workload.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

import pytest
from logs_helpers import (
    COMMON_FIELDS,
    FIXTURE_NAMES,
    PREFIX_FIELDS,
    files,
    meta,
    printed,
    read,
    read_fixture,
)

from auditor.encoding import parseable
from auditor.errors import PrefixMismatch
from auditor.marker import parse_marker
from auditor.model import LogRecord, MessageKind, Protocol


def test_at_least_six_prefixes_were_captured() -> None:
    prefixes = {meta(n)["log_line_prefix"] for n in FIXTURE_NAMES}
    assert len(prefixes) >= 6
    assert "%m [%p] " in prefixes  # PostgreSQL's default
    assert any("%t" in p for p in prefixes) and any("%n" in p for p in prefixes)
    assert any("%c" not in p and "%v" not in p for p in prefixes)
    assert any("%q" in p and "%-" in p for p in prefixes)
    assert "%t:%r:%u@%d:[%p]: " in prefixes


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_three_formats_give_the_same_records_field_for_field(name: str) -> None:
    prefix = meta(name)["log_line_prefix"]
    by_fmt = {fmt: read_fixture(name, fmt)[0] for fmt in ("stderr", "csvlog", "jsonlog")}
    stderr, csvlog, jsonlog = by_fmt["stderr"], by_fmt["csvlog"], by_fmt["jsonlog"]
    assert len(stderr) == len(csvlog) == len(jsonlog) > 10
    ddl = [r for r in csvlog if r.is_ddl and r.kind in (MessageKind.STATEMENT, MessageKind.EXECUTE)]
    assert len(ddl) >= 15
    for s, c, j in zip(stderr, csvlog, jsonlog, strict=True):
        for field in COMMON_FIELDS:
            assert getattr(s, field) == getattr(c, field) == getattr(j, field), (field, c)
        session = s.kind != MessageKind.OTHER  # postmaster lines stop at %q
        for field, escapes in PREFIX_FIELDS:
            assert getattr(c, field) == getattr(j, field), (field, c)
            if printed(prefix, escapes, session):
                assert getattr(s, field) == getattr(c, field), (field, s, c)
        assert c.time == j.time
        if "%m" in prefix or "%n" in prefix:
            assert s.time == c.time
        else:  # %t is time(NULL) in whole seconds, read just before csv's clock
            assert s.time is not None and c.time is not None
            assert timedelta(0) <= c.time - s.time < timedelta(seconds=2)
        # Errors point at the same statement in each format.
        assert (s.failed_statement is None) == (c.failed_statement is None)
        assert (c.failed_statement is None) == (j.failed_statement is None)


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_ddl_records_are_what_the_workload_sent(name: str) -> None:
    sent = [s for s in meta(name)["sent"] if s["ddl"]]
    for fmt in ("stderr", "csvlog", "jsonlog"):
        records, _, sources = read_fixture(name, fmt)
        # sent.json writes a byte that is not UTF-8 as U+FFFD (as readers showed it when
        # the fixtures were captured); readers now keep the byte itself, a lone surrogate
        # (test_logs_badinput checks which): compare as the parser sees both.
        logged = [
            parseable(r.statement or "")
            for r in records
            if r.kind in (MessageKind.STATEMENT, MessageKind.EXECUTE) and r.is_ddl
        ]
        assert logged == [s["query"] for s in sent], fmt
        assert sum(s.ddl_statements for s in sources) == len(sent)


def _by_app(records: list[LogRecord], app: str) -> list[LogRecord]:
    return [r for r in records if r.application == app]


@pytest.mark.parametrize("fmt", ["stderr", "csvlog", "jsonlog"])
def test_failed_ddl_error_points_at_its_statement(fmt: str) -> None:
    records, _, _ = read_fixture("workload", fmt)
    stmt, err = _by_app(records, "dupfail")
    assert stmt.kind == MessageKind.STATEMENT and stmt.statement == "CREATE TABLE t_plain (id int)"
    assert err.kind == MessageKind.ERROR and err.statement == stmt.statement
    assert err.failed_statement == stmt.source
    assert err.message == 'relation "t_plain" already exists' and err.is_ddl
    # The extended-protocol failure is linked too.
    ext = [
        r
        for r in _by_app(records, "extended")
        if r.statement == "CREATE TABLE t_ext (id int)" and r.kind != MessageKind.MARKER
    ]
    assert [r.kind for r in ext] == [MessageKind.EXECUTE, MessageKind.EXECUTE, MessageKind.ERROR]
    assert ext[2].failed_statement == ext[1].source


@pytest.mark.parametrize("fmt", ["stderr", "csvlog", "jsonlog"])
def test_syntax_errors_and_non_ddl_errors_only_with_all(fmt: str) -> None:
    default, _, _ = read_fixture("workload", fmt)
    assert not _by_app(default, "syntaxerr")
    everything, _, _ = read_fixture("workload", fmt, all_records=True)
    (typo,) = _by_app(everything, "syntaxerr")
    assert typo.kind == MessageKind.ERROR and typo.failed_statement is None
    assert typo.statement == "CREAT TABLE t_typo (id int)" and not typo.is_ddl
    # BEGIN; SELECT 1/0; CREATE ...: the string holds DDL, so its error is kept.
    aborted = _by_app(default, "aborted")
    assert [r.kind for r in aborted] == [MessageKind.STATEMENT, MessageKind.ERROR]
    assert aborted[1].failed_statement == aborted[0].source


@pytest.mark.parametrize("fmt", ["stderr", "csvlog", "jsonlog"])
def test_extended_protocol_names_and_parameters(fmt: str) -> None:
    records, _, _ = read_fixture("workload", fmt, all_records=True)
    ext = _by_app(records, "extended")
    create = next(r for r in ext if r.statement == "CREATE TABLE t_ext (id int)")
    assert create.kind == MessageKind.EXECUTE and create.protocol == Protocol.EXTENDED
    assert create.prepared_name is None and create.is_ddl
    insert = next(r for r in ext if r.statement == "INSERT INTO t_ext VALUES ($1), ($2)")
    assert insert.parameters == (("$1", "42"), ("$2", None)) and not insert.is_ddl
    named = [r for r in ext if r.statement == "SELECT id FROM t_ext WHERE id = $1"]
    assert [r.parameters for r in named] == [(("$1", "42"),), (("$1", "43"),)]
    assert all(r.prepared_name and r.prepared_name.startswith("_pg3_") for r in named)
    prep = next(r for r in ext if r.statement == "CREATE TABLE t_ext_prep (id int, v text)")
    assert prep.prepared_name is not None and prep.is_ddl
    quoted = next(r for r in ext if r.statement == "SELECT $1::text")
    assert quoted.parameters == (("$1", "it's"),)


@pytest.mark.parametrize("fmt", ["stderr", "csvlog", "jsonlog"])
def test_multiline_multistatement_nonascii_and_execute_prepare(fmt: str) -> None:
    records, _, _ = read_fixture("workload", fmt)
    (multi,) = _by_app(records, "multiline")
    assert (
        multi.statement
        == "CREATE TABLE t_multi (\n  id int PRIMARY KEY,\n\tnote text DEFAULT 'a\tb'\n)"
    )
    assert (
        _by_app(records, "multistmt")[0].statement
        == "BEGIN; CREATE TABLE t_in_xact (id int); COMMIT"
    )
    assert _by_app(records, "selectinto")[0].is_ddl
    assert (
        _by_app(records, "nonascii")[0].statement == 'CREATE TABLE "tëst_ü" ("ä" int, "名前" text)'
    )
    assert _by_app(records, "commenton")[0].statement == "COMMENT ON TABLE t_plain IS 'two\nlines'"
    # SET log_statement is relevant (it weakens the log channel) though not DDL.
    (setting,) = _by_app(records, "setting")
    assert setting.is_relevant and not setting.is_ddl


@pytest.mark.parametrize("fmt", ["stderr", "csvlog", "jsonlog"])
def test_markers_keep_the_top_level_statement(fmt: str) -> None:
    records, _, _ = read_fixture("workload", fmt)
    markers = [r for r in records if r.kind == MessageKind.MARKER]
    assert len(markers) >= 3
    from_do = next(m for m in markers if m.application == "do_marker")
    assert parse_marker(from_do.message) is not None
    assert from_do.statement is not None and from_do.statement.startswith("DO $$")
    marked = next(m for m in markers if m.application == "marked")
    parsed = parse_marker(marked.message)
    assert parsed is not None and parsed.tag == "CREATE TABLE"
    assert marked.statement == "CREATE TABLE t_marked (id int)"
    assert marked.context and "fixture_marker" in marked.context


@pytest.mark.parametrize("fmt", ["stderr", "csvlog", "jsonlog"])
def test_server_messages_reconcile_needs_are_kept(fmt: str) -> None:
    records, _, _ = read_fixture("workload", fmt)
    messages = [r.message for r in records if r.kind == MessageKind.OTHER]
    assert "received SIGHUP, reloading configuration files" in messages
    assert 'parameter "work_mem" changed to "8MB"' in messages
    assert "database system is ready to accept connections" in messages
    assert not any(m.startswith("checkpoint") for m in messages)


def test_duration_lines_of_non_ddl_statements() -> None:
    for fmt in ("stderr", "csvlog", "jsonlog"):
        records, _, _ = read_fixture("pgdefault", fmt, all_records=True)
        dml = next(r for r in records if r.statement == "SELECT count(*) FROM t_plain")
        assert dml.kind == MessageKind.STATEMENT and dml.duration_ms is not None
        assert dml.message.startswith("duration: ") and not dml.is_ddl


def test_verbose_errors_carry_the_sqlstate_in_stderr() -> None:
    records, _, _ = read_fixture("syslog_style", "stderr")
    err = next(r for r in records if r.kind == MessageKind.ERROR and "t_plain" in r.message)
    assert err.application is None  # not in this prefix
    assert err.sqlstate == "42P07"
    assert err.message == 'relation "t_plain" already exists'
    stmt = next(r for r in records if r.source == err.failed_statement)
    assert stmt.client == "127.0.0.1" and stmt.client_port is not None


def test_prefix_without_session_id_links_by_pid() -> None:
    records, _, _ = read_fixture("no_session", "stderr")
    err = next(r for r in records if r.kind == MessageKind.ERROR and r.user == "postgres")
    assert err.session_id is None
    stmt = next(r for r in records if r.source == err.failed_statement)
    assert stmt.pid == err.pid and stmt.statement == err.statement


def test_padded_fields_and_q() -> None:
    records, _, _ = read_fixture("q_padded", "stderr", all_records=True)
    plain = next(r for r in records if r.statement == "CREATE TABLE t_plain (id int)")
    assert (plain.user, plain.database, plain.application) == ("postgres", "postgres", "plain")
    assert plain.vxid is not None and plain.session_id is not None
    # The postmaster stops at %q: its lines carry only the time.
    start = next(r for r in records if r.message.startswith("starting PostgreSQL"))
    assert start.time is not None and start.pid is None and start.user is None


@pytest.mark.parametrize("name", ["workload", "pgdefault", "t_prefix"])
def test_common_prefixes_are_detected(name: str) -> None:
    given, _, _ = read_fixture(name, "stderr")
    detected, _, sources = read_fixture(name, "stderr", prefix=False)
    assert sources[0].prefix == meta(name)["log_line_prefix"]
    assert given == detected


def test_a_prefix_that_matches_nothing_is_one_clear_error() -> None:
    with pytest.raises(PrefixMismatch) as info:
        read(files("pgdefault", "stderr"), prefix="%t [%p]: user=%u ", fmt="stderr")
    message = str(info.value)
    assert "'%t [%p]: user=%u '" in message and "postgresql.log:1" in message
    assert "starting PostgreSQL" in message
    out = subprocess.run(
        [sys.executable, "-m", "auditor", "scan", "--log", files("pgdefault", "stderr")[0],
         "--log-line-prefix", "%t [%p]: user=%u "],
        capture_output=True, text=True,
    )  # fmt: skip
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "matches no line" in out.stderr
    assert "Traceback" not in out.stderr
