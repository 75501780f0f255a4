"""``auditor scan``: how a DBA checks that the auditor reads their logs right."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from logs_helpers import files, meta

from auditor.logs.render import COLUMNS

PREFIX = meta("workload")["log_line_prefix"]


def _scan(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "auditor", "scan", *args],
        capture_output=True,
        text=True,
        input=stdin.decode() if stdin is not None else None,
    )


def test_table_lists_the_ddl_with_session_vxid_user_and_error_state() -> None:
    out = _scan("--log", files("workload", "stderr")[0], "--log-line-prefix", PREFIX)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split()[:5] == ["TIME", "FILE:LINE", "SESSION_ID", "VXID", "USER"]
    dup = next(
        line for line in lines if "CREATE TABLE t_plain (id int)" in line and "ERROR" in line
    )
    assert " ERROR " in dup  # this prefix has no %e: the SQLSTATE is in csvlog/jsonlog only
    assert "postgres" in dup and "dupfail" in dup
    # format, prefix and counts go to standard error
    assert "format stderr" in out.stderr and repr(PREFIX) in out.stderr
    assert "DDL statements" in out.stderr


def test_json_is_one_array_on_stdout_and_the_rest_on_stderr() -> None:
    out = _scan("--log", files("workload", "jsonlog")[1], "--format", "json")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert isinstance(rows, list) and rows
    assert set(rows[0]) == set(COLUMNS)
    bad = next(r for r in rows if r["application"] == "badbytes")
    assert bad["statement"] == 'CREATE TABLE "caf\udce9" (id int)' and bad["is_ddl"]
    assert "warning" in out.stderr and "UTF-8" in out.stderr and "format jsonlog" in out.stderr
    ext = next(r for r in rows if r["statement"] == "CREATE TABLE t_ext (id int)" and r["error"])
    assert ext["kind"] == "execute" and ext["error"].startswith("ERROR 42P07")


def test_csv_output_and_all_records() -> None:
    default = _scan("--log", files("workload", "csvlog")[0], "--format", "csv")
    everything = _scan("--log", files("workload", "csvlog")[0], "--format", "csv", "--all")
    assert default.returncode == everything.returncode == 0
    rows = list(csv.DictReader(io.StringIO(default.stdout)))
    all_rows = list(csv.DictReader(io.StringIO(everything.stdout)))
    assert list(rows[0]) == list(COLUMNS)
    assert len(all_rows) > len(rows) > 10
    assert any(r["statement"] == "SELECT count(*) FROM t_plain" for r in all_rows)
    assert not any(r["statement"] == "SELECT count(*) FROM t_plain" for r in rows)


def test_passwords_are_masked_in_every_output_format() -> None:
    for fmt in ("table", "csv", "json"):
        out = _scan("--log", files("workload", "csvlog")[0], "--format", fmt)
        assert out.returncode == 0
        assert "hunter2-secret" not in out.stdout + out.stderr
        assert "PASSWORD '*****'" in out.stdout


def test_a_log_of_garbage_only_is_exit_2(tmp_path: Path) -> None:
    junk = tmp_path / "junk.json"
    junk.write_text("not json at all\nstill not json\n")
    out = _scan("--log", str(junk), "--log-format", "jsonlog")
    assert out.returncode == 2
    assert out.stderr.splitlines()[-1].startswith("auditor: error: no log record could be read")


def test_no_progress_bar_when_stderr_is_not_a_terminal() -> None:
    out = _scan("--log", files("workload", "jsonlog")[0])
    assert out.returncode == 0
    assert "reading logs" not in out.stderr and "\x1b[" not in out.stderr


def test_options_come_from_the_config_file(tmp_path: Path) -> None:
    cfg = tmp_path / "auditor.yaml"
    cfg.write_text(
        json.dumps({"logs": files("workload", "stderr"), "log_line_prefix": PREFIX, "jobs": 1})
    )
    out = _scan("--config", str(cfg), "--format", "json")
    assert out.returncode == 0, out.stderr
    assert any(r["application"] == "forged" for r in json.loads(out.stdout))


def _rows(out: subprocess.CompletedProcess[str]) -> list[str]:
    """The table's data rows (the header dropped)."""
    return out.stdout.splitlines()[1:]


def test_one_row_per_statement_with_its_file_and_line() -> None:
    log = files("workload", "stderr")[0]
    table = _scan("--log", log, "--log-line-prefix", PREFIX)
    records = json.loads(
        _scan("--log", log, "--log-line-prefix", PREFIX, "--format", "json").stdout
    )
    assert table.returncode == 0, table.stderr
    rows = _rows(table)
    # Markers and server messages only with --all; every row is a statement.
    assert len(rows) == len(records) and {r["kind"] for r in records} <= {"statement", "execute"}
    assert not any(" marker " in row for row in rows)
    name = Path(log).name
    for row, rec in zip(rows, records, strict=True):
        assert f"{name}:{rec['line']}" in row.split()[2]
    everything = _scan("--log", log, "--log-line-prefix", PREFIX, "--all")
    assert any(" marker " in row for row in _rows(everything))
    assert any(" other " in row for row in _rows(everything))
    # Honest counts: entries in the file, records read, rows shown.
    summary = table.stderr.strip().splitlines()[-1]
    assert f"{len(rows)} shown" in summary and "log entries" in summary
    assert "records read" in summary and "DDL statements" in summary


def test_filters_by_time_user_database_and_application() -> None:
    log = files("workload", "csvlog")[0]
    records = json.loads(_scan("--log", log, "--format", "json").stdout)
    dup = _scan("--log", log, "--application", "dupfail")
    assert dup.returncode == 0, dup.stderr
    (row,) = _rows(dup)
    assert "dupfail" in row and "ERROR 42P07" in row  # the error stays on its statement
    times = sorted({r["time"] for r in records})
    middle = _scan("--log", log, "--since", times[3], "--until", times[6], "--format", "json")
    got = json.loads(middle.stdout)
    assert [r["time"] for r in got] == [
        t for t in (r["time"] for r in records) if times[3] <= t < times[6]
    ]
    assert json.loads(_scan("--log", log, "--user", "nobody", "--format", "json").stdout) == []
    both = _scan("--log", log, "--database", "postgres", "--user", "postgres", "--format", "json")
    assert len(json.loads(both.stdout)) == len(records)
    apps = _scan("--log", log, "--application", "plain", "--application", "alter")
    assert len(_rows(apps)) == 2
    bad = _scan("--log", log, "--since", "yesterday")
    assert bad.returncode == 2 and "--since" in bad.stderr and bad.stderr.count("\n") == 1


def test_a_cut_value_ends_in_an_ellipsis(tmp_path: Path) -> None:
    long_name = tmp_path / (
        "a-rather-long-log-file-name-" + Path(files("workload", "stderr")[0]).name
    )
    shutil.copyfile(files("workload", "stderr")[0], long_name)
    out = _scan("--log", str(long_name), "--log-line-prefix", PREFIX)
    assert out.returncode == 0, out.stderr
    for row in _rows(out):
        where = row.split()[2]
        assert where.startswith("…") and re.search(r":\d+$", where), where
    header = out.stdout.splitlines()[0]
    for row in _rows(out):
        # Fixed columns stay aligned: the statement starts where the header says.
        assert len(row) >= header.index("STATEMENT")


def test_jobs_must_be_positive() -> None:
    for bad in ("-1", "0"):
        out = _scan("--log", files("workload", "jsonlog")[0], "--jobs", bad)
        assert out.returncode == 2
        assert out.stderr.count("\n") == 1 and "jobs must be 1 or more" in out.stderr


def test_help_shows_types_and_choices_a_dba_reads() -> None:
    for command in ("scan", "reconcile", "timeline", "status", "install", "notify", "demo"):
        out = subprocess.run(
            [sys.executable, "-m", "auditor", command, "--help"],
            capture_output=True,
            text=True,
            env={**os.environ, "COLUMNS": "160"},
        )
        assert out.returncode == 0
        text = out.stdout
        assert not re.search(r"<(list\[str\]|str|bool|int|path|float)>", text), (command, text)
    scan_help = subprocess.run(
        [sys.executable, "-m", "auditor", "scan", "--help"],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "160"},
    ).stdout
    for shown in ("[table|csv|json]", "[auto|stderr|csvlog|jsonlog]", "PATH", "FILE", "TIME"):
        assert shown in scan_help, shown
