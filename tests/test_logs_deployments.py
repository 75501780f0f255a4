"""Logs that real deployments write, from pgBadger's public test logs (``fixtures/pgbadger``).

Every file is read with no ``--log-line-prefix`` and no ``--log-format``: the
format and the prefix come from the file.  The statement counts are checked
against an independent count of the raw text (a regular expression over the
decompressed bytes), the DDL counts against the statements listed by hand
from the files.
"""

from __future__ import annotations

import bz2
import gzip
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from logs_helpers import FIXTURES, files, meta, read

from auditor.errors import LogInputError
from auditor.logs.sources import open_sources
from auditor.model import MessageKind

PGB = FIXTURES / "pgbadger"
#: file -> (format, log_line_prefix the file was written with, DDL statements in it)
SERVER_LOGS: dict[str, tuple[str, str | None, int]] = {
    "anonymize.log": ("csvlog", None, 0),
    "weeknumber.log": ("csvlog", None, 0),
    "csv_statement_without_duration.log": ("csvlog", None, 0),
    "begin_end.log": ("stderr", "%t [%p]: db=%d,user=%u,app=%a,client=%h ", 0),
    "multiline_param.log": ("stderr", "%m [%p] user=%u,db=%d ", 0),
    "postgresql_param_range.log": ("stderr", "%t [%p]: [%l-1] [%x] usr=%u,db=%d,appli=%a ", 0),
    "tempfile_only.log.gz": ("stderr", "%t [%p]: [%l-1] user=%u,db=%d ", 0),
    "pg_vacuums.log.gz": ("stderr", "%t [%p]: [%l-1] user=%u,db=%d,host=%h,app=%a ", 0),
    "pg_vacuums.json.gz": ("jsonlog", None, 0),
    "queryid.log.gz": ("stderr", "%m [%p] [queryid=%Q] %u@%d ", 0),
    "light.postgres.log.bz2": ("stderr", "%t [%p]: [%l-1] user=%u,db=%d,app=%a,client=%h ", 0),
    "stmt_type.log": ("stderr", "%m [%p] ", 1),
    "pg_rawcsv.log": ("stderr", "%m [%p] %q%u@%d ", 0),
    "rds.log.bz2": ("stderr", "%t:%r:%u@%d:[%p]:", 0),
    "pg-timezones.log": ("stderr", "%t:%r:%u@%d:[%p]:", 0),
    "pg-syslog.1.bz2": ("syslog", "db=%d,user=%u,app=%a,client=%h ", 0),
    "pg-syslog.2.gz": ("syslog", "db=%d,user=%u,app=%a,client=%h ", 0),
    "logplex.gz": ("logplex", " sql_error_code = %e ", 0),
    "cloudsql.log.gz": ("cloudsql", "[%p]: [%l-1] db=%d,user=%u ", 0),
    "cnpg.log.gz": ("cnpg", None, 10),
}
#: Lines that are not server log lines in the files themselves (pg_ctl's output, a
#: query pasted with its TABs expanded to spaces, blank lines).
GARBAGE = {"pg_rawcsv.log": 2, "queryid.log.gz": 7}
#: A statement or execute record as the server writes it, in any format.
_STATEMENT = re.compile(
    rb"(?:LOG|\"):? {0,2}(?:duration: [\d.]+ ms {1,2})?(?:statement|execute [^:\n]*): "
)


def _raw(path: Path) -> bytes:
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        return gzip.decompress(data)
    if data[:3] == b"BZh":
        return bz2.decompress(data)
    return data


def _scan(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "auditor", "scan", *args],
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.parametrize("name", sorted(SERVER_LOGS))
def test_each_server_log_is_read_in_its_format_with_its_prefix(name: str) -> None:
    fmt, prefix, ddl = SERVER_LOGS[name]
    records, warnings, sources = read([str(PGB / name)], all_records=True, log_timezone="UTC")
    (stats,) = sources
    assert stats.format == fmt
    assert stats.prefix == prefix
    statements = [r for r in records if r.kind in (MessageKind.STATEMENT, MessageKind.EXECUTE)]
    assert len(statements) == len(_STATEMENT.findall(_raw(PGB / name)))
    assert stats.ddl_statements == ddl == sum(1 for r in statements if r.is_ddl)
    unread = [w for w in warnings if "not a log line" in w.message or "not a " in w.message]
    assert len(unread) == GARBAGE.get(name, 0), [str(w) for w in unread]
    assert all(r.time is not None for r in records)


def test_a_user_name_is_not_what_the_prefix_left_over() -> None:
    records, _, _ = read([str(PGB / "queryid.log.gz")], all_records=True)
    assert {r.user for r in records} == {"postgres"}
    assert {r.database for r in records} == {"stackoverflow"}


def test_rds_and_its_one_space_variant() -> None:
    records, _, _ = read([str(PGB / "rds.log.bz2")], all_records=True)
    sessions = [r for r in records if r.user]
    assert sessions and "[local]" in {r.client for r in sessions}
    assert {r.database for r in sessions} >= {"pgbench", "postgres"}
    spaced, _, _ = read([str(PGB / "pg-timezones.log")], all_records=True)
    assert [(r.user, r.database, r.client, r.pid, r.statement, r.duration_ms) for r in spaced] == [
        ("user", "my_db", "10.1.91.65", 24743, "SELECT * FROM t1;", 0.054),
        ("user", "my_db", "10.1.17.194", 19003, "UPDATE t1 SET c1=1;", 0.060),
    ]


def test_cloudnativepg_ddl_and_failed_ddl() -> None:
    records, warnings, sources = read([str(PGB / "cnpg.log.gz")])
    ddl = [r.statement for r in records if r.kind == MessageKind.STATEMENT and r.is_ddl]
    grant = 'GRANT EXECUTE ON function pg_catalog.{} TO "streaming_replica"'
    assert ddl[:8] == [
        "create table states (id int, name varchar(20));",
        "create table countries (id int, name varchar(20));",
        grant.format("pg_read_binary_file(text, bigint, bigint, boolean)"),
        grant.format("pg_read_binary_file(text)"),
        grant.format("pg_stat_file(text, boolean)"),
        grant.format("pg_ls_dir(text, boolean, boolean)"),
        'ALTER USER "streaming_replica" LOGIN REPLICATION',
        'CREATE USER "streaming_replica" REPLICATION',
    ]
    assert [d.split(" WITH PASSWORD ")[0] for d in ddl[8:]] == [
        'ALTER ROLE "myapp"',
        'ALTER ROLE "postgres"',
    ]
    assert len(ddl) == 10
    failed = [r for r in records if r.kind == MessageKind.ERROR and r.is_ddl]
    assert len(failed) == 3 and all("syntax error" in r.message for r in failed)
    assert all(r.user == "postgres" and r.database == "myapp" for r in failed)
    # The instance manager's own lines are neither records nor warnings.
    assert not warnings and sources[0].records == 1975


def test_syslog_messages_are_put_back_together() -> None:
    records, warnings, sources = read([str(PGB / "pg-syslog.1.bz2")], all_records=True)
    listing = next(r for r in records if r.statement and '"Owner"' in r.statement)
    assert listing.statement is not None
    lines = listing.statement.split("\n")
    assert lines[0] == 'SELECT d.datname as "Name",'
    assert lines[1] == '       pg_catalog.pg_get_userbyid(d.datdba) as "Owner",'
    assert lines[-1] == "ORDER BY 1;" and len(lines) == 8
    assert (listing.user, listing.database, listing.application) == ("postgres", "postgres", "psql")
    hint = next(r for r in records if r.message.startswith("ending log output to stderr"))
    assert hint.hint == 'Future log output will go to log destination "syslog".'
    assert sources[0].foreign_lines == 3  # systemd's lines in the same file
    (year,) = [w for w in warnings if w.cause == "syslog-time"]
    assert "no year and no zone" in year.message


def test_heroku_logplex_messages_and_their_errors() -> None:
    records, _, _ = read([str(PGB / "logplex.gz")], all_records=True)
    deadlock = next(r for r in records if r.message == "deadlock detected")
    assert (
        deadlock.kind == MessageKind.ERROR and deadlock.sqlstate == "40P01" and deadlock.pid == 4849
    )
    assert (
        deadlock.detail is not None and deadlock.detail.count("\n") == 5
    )  # DETAIL and its 5 TAB lines
    assert deadlock.hint == "See server log for query details."
    update = records[-1]
    assert update.kind == MessageKind.EXECUTE and update.statement is not None
    assert update.statement.startswith(
        'UPDATE "checkers" SET redundant_missions_count =\n        (\n'
    )


def test_cloud_sql_entries_take_their_time_from_the_entry() -> None:
    records, _, _ = read([str(PGB / "cloudsql.log.gz")], all_records=True)
    (select,) = [r for r in records if r.kind == MessageKind.STATEMENT]
    assert (select.user, select.database, select.pid) == ("cloudsqladmin", "test", 202)
    assert select.time is not None and select.time.isoformat() == "2020-05-02T13:43:20.415426+00:00"


@pytest.mark.parametrize("name", ["pgbouncer.log.gz", "pgbouncer.1.21.log.gz"])
def test_a_pgbouncer_log_is_refused_with_what_it_is(name: str) -> None:
    out = _scan("--log", str(PGB / name))
    assert out.returncode == 2
    assert out.stderr == (
        f"auditor: error: {PGB / name}: a PgBouncer log ('TIME PID LOG message', no colon "
        "after the level), not a PostgreSQL server log: PgBouncer does not log the statements "
        "it forwards, so there is nothing in it to audit; read the server's own log\n"
    )
    with pytest.raises(LogInputError, match="PgBouncer log"):
        read([str(PGB / name)])


def test_a_directory_of_every_kind_reads_each_file_in_its_own_format(tmp_path: Path) -> None:
    out = _scan("--log", str(PGB), "--log-timezone", "UTC")
    assert out.returncode == 0, out.stderr
    notes = [ln for ln in out.stderr.splitlines() if ln.startswith("auditor: note: skipped ")]
    assert notes == [
        f"auditor: note: skipped {PGB / 'LICENSE'}: not a PostgreSQL server log (no line of its "
        "start holds a message such as 'LOG:  ...'; first line: 'Copyright (c) 2012-2026, "
        "Gilles Darold')",
        f"auditor: note: skipped {PGB / 'README.md'}: not a PostgreSQL server log (no line of "
        "its start holds a message such as 'LOG:  ...'; first line: \"# pgBadger's public test "
        'logs")',
        f"auditor: note: skipped {PGB / 'pgbouncer.1.21.log.gz'}: a PgBouncer log ('TIME PID "
        "LOG message', no colon after the level), not a PostgreSQL server log: PgBouncer does "
        "not log the statements it forwards, so there is nothing in it to audit; read the "
        "server's own log",
        f"auditor: note: skipped {PGB / 'pgbouncer.log.gz'}: a PgBouncer log ('TIME PID LOG "
        "message', no colon after the level), not a PostgreSQL server log: PgBouncer does not "
        "log the statements it forwards, so there is nothing in it to audit; read the server's "
        "own log",
        f"auditor: note: skipped {PGB / 'pg_vacuums.log.gz'}: the same log as "
        f"{PGB / 'pg_vacuums.json.gz'} (read as jsonlog), not read again as stderr",
    ]
    summaries = {
        Path(ln.split(": format ")[0]).name: ln.split(": format ")[1].split(",")[0]
        for ln in out.stderr.splitlines()
        if ": format " in ln
    }
    assert summaries == {n: f for n, (f, _, _) in SERVER_LOGS.items() if n != "pg_vacuums.log.gz"}


def test_a_stderr_log_beside_an_unrelated_csv(tmp_path: Path) -> None:
    logdir = tmp_path / "pg_log"
    logdir.mkdir()
    shutil.copyfile(files("workload", "stderr")[0], logdir / "postgresql-1.log")
    (logdir / "export.csv").write_text("id,name\n1,alice\n2,bob\n")
    shutil.copyfile(PGB / "anonymize.log", logdir / "other-server.csv")
    want, _, _ = read([files("workload", "stderr")[0]])
    got, _, sources = read([str(logdir)])
    assert [s.format for s in sources] == ["csvlog", "stderr"]  # in time order
    assert [r.statement for r in got if r.source.file.endswith(".log")] == [
        r.statement for r in want
    ]
    stream_skips = open_sources([str(logdir)]).skipped
    assert [(Path(s.name).name, s.kind) for s in stream_skips] == [("export.csv", "refused")]
    assert "not a PostgreSQL server log" in stream_skips[0].reason
    out = subprocess.run(
        [sys.executable, "-m", "auditor", "reconcile", "--log", str(logdir),
         "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    logged = sum(
        1 for r in want if r.is_ddl and r.kind in (MessageKind.STATEMENT, MessageKind.EXECUTE)
    )
    assert logged > 10
    assert out.stdout.startswith(f"logged DDL {logged}, "), out.stdout
    doc = json.loads((tmp_path / "out" / "findings.json").read_text())
    assert {Path(s["path"]).name: s["format"] for s in doc["sources"]["logs"]} == {
        "postgresql-1.log": "stderr",
        "other-server.csv": "csvlog",
        "export.csv": "skipped",
    }


def test_a_quiet_night_before_the_first_session_line(tmp_path: Path) -> None:
    """Checkpoints only for thousands of lines, then sessions: the prefix is Debian's,
    which the first lines alone cannot tell from PostgreSQL's default."""
    name = "ny_fold"  # Debian's prefix, '%m [%p] %q%u@%d '
    data = Path(files(name, "stderr")[0]).read_bytes()
    lines = data.splitlines(keepends=True)
    quiet = [ln for ln in lines if re.match(rb"\S+ \S+ \S+ \[\d+\] LOG:  ", ln)]
    assert len(quiet) >= 3
    night = b"".join(quiet * (3000 // len(quiet) + 1))
    path = tmp_path / "postgresql.log"
    path.write_bytes(night + data)
    want, _, _ = read(
        [files(name, "stderr")[0]],
        prefix=meta(name)["log_line_prefix"],
        log_timezone="America/New_York",
    )
    got, _, sources = read([str(path)], log_timezone="America/New_York")
    assert sources[0].prefix == meta(name)["log_line_prefix"]
    assert [(r.user, r.database, r.statement) for r in got if r.statement] == [
        (r.user, r.database, r.statement) for r in want if r.statement
    ]
    assert sum(1 for r in got if r.is_ddl) > 5


def test_forcing_a_format_the_file_does_not_have_is_an_error() -> None:
    log = files("workload", "stderr")[0]
    out = _scan("--log", log, "--log-format", "csvlog")
    assert out.returncode == 2
    assert out.stderr.startswith(
        f"auditor: error: {log}:1: --log-format csvlog was given, but this is a stderr log "
        "(first line: '"
    )
    assert out.stderr.endswith(
        "'); leave --log-format out (each file's format is detected) or give the right one\n"
    )
    assert out.stderr.count("\n") == 1
