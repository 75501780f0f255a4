"""The command line: every command documented, errors as one line and exit code 2,
and nothing an attacker wrote into a log or a catalog drives the DBA's terminal."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from typer.testing import CliRunner

from auditor import capture
from auditor.cli import app
from auditor.terminal import unsafe_pattern

runner = CliRunner()


def _commands() -> list[str]:
    import typer.main

    group = typer.main.get_command(app)
    return sorted(group.commands)  # type: ignore[attr-defined]


def test_help_lists_every_command_with_help_text() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    names = _commands()
    assert "demo" in names
    for name in names:
        assert name in result.output
        sub = runner.invoke(app, [name, "--help"])
        assert sub.exit_code == 0, sub.output
        # The first line of the docstring is the help text: it must say something.
        first = [line for line in sub.output.splitlines() if line.strip()][1]
        assert len(first.strip()) > 15, (name, first)


def test_python_dash_m_runs_the_same_app() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "auditor", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.startswith("auditor ")


def test_bad_config_is_one_line_and_exit_2(tmp_path) -> None:
    bad = tmp_path / "auditor.yaml"
    bad.write_text("smtp:\n  port: [1, 2\n")
    out = subprocess.run(
        [sys.executable, "-m", "auditor", "status", "--config", str(bad)],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1, out.stderr
    assert str(bad) in out.stderr and "Traceback" not in out.stderr


# -- terminal safety ---------------------------------------------------------------------


#: A name that clears the screen, retitles the window (OSC ... BEL), reverses the
#: text after it (U+202E), hides a character (U+200B), sends a C1 CSI (U+009B) and
#: returns the carriage.
EVIL = "x\x1b[2J\x1b]0;pwned\x07\u202egnp\u200b\x9b31m\r"
FORMULA = '=HYPERLINK("http://evil.example/","click")'


def test_every_control_and_format_character_is_unsafe() -> None:
    pattern = unsafe_pattern()
    missed = [
        f"U+{cp:04X}"
        for cp in range(0x110000)
        if unicodedata.category(chr(cp)) in {"Cc", "Cf", "Cs", "Zl", "Zp"}
        and not pattern.match(chr(cp))
    ]
    assert missed == []
    assert not pattern.search("plain ASCII, café, 日本, ünïcödé")


def test_the_ascii_shortcuts_find_what_the_full_pattern_finds() -> None:
    """visible() and json_text() test ASCII text with str.isprintable() and a pattern
    of the ranges below U+0080: for every ASCII character, alone and in text, with each
    keep set in use, they must answer as the whole pattern does."""
    from auditor.terminal import _plain, json_text, visible

    for keep in ("", "\n\t", "\n\t\r"):
        full, small = unsafe_pattern(keep), unsafe_pattern(keep, ascii_only=True)
        for cp in range(0x80):
            text = f"CREATE TABLE t{chr(cp)}x (id int)"
            assert bool(small.search(text)) == bool(full.search(text)), (keep, cp)
            if _plain(text):
                assert full.search(text) is None, cp
            assert visible(text, keep) == full.sub(lambda m: f"<U+{ord(m.group()):04X}>", text)
    for cp in (0x7F, 0x1B, 0x85, 0x202E, 0xD800):
        raw = json.dumps({"s": f"a{chr(cp)}b"}, ensure_ascii=False)
        assert unsafe_pattern("\n\t\r").search(json_text(raw)) is None, cp
        assert json.loads(json_text(raw)) == {"s": f"a{chr(cp)}b"}


def assert_clean(text: str) -> None:
    """Nothing in ``text`` can drive a terminal (newline and tab aside)."""
    found = unsafe_pattern("\n\t").search(text)
    assert found is None, f"raw U+{ord(found.group()):04X} in output: {text[:2000]!r}"


@dataclass
class Hostile:
    """A database whose name, table names, an application name and a failed
    login's user and database names were chosen by an attacker."""

    cluster: Any
    database: str
    since: datetime

    def dsn(self, database: str | None = None) -> str:
        return str(self.cluster.dsn(database or self.database))

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        self.cluster.flush_logs()
        out = subprocess.run(
            [sys.executable, "-m", "auditor", *args],
            capture_output=True,
            text=True,
            errors="surrogateescape",
            env={**os.environ, "COLUMNS": "120"},
        )
        assert "Traceback" not in out.stderr, out.stderr
        assert_clean(out.stdout)
        assert_clean(out.stderr)
        return out

    def log_args(self) -> list[str]:
        return ["--log", str(self.cluster.log_dir), "--since", self.since.isoformat()]


@pytest.fixture(scope="module")
def hostile(cluster: Any) -> Iterator[Hostile]:
    name = "db" + EVIL
    with cluster.connect() as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        capture.install(cluster.dsn(name), databases=[name])
        since = datetime.now(UTC)
        with cluster.connect(name, application_name=FORMULA) as conn:
            conn.execute(sql.SQL("CREATE TABLE {} (id int)").format(sql.Identifier("t" + EVIL)))
            conn.execute(
                sql.SQL("COMMENT ON TABLE {} IS {}").format(
                    sql.Identifier("t" + EVIL), sql.Literal("bidi \u202edrop\u202c here")
                )
            )
        # Before authentication: the log prints the user and database a client asked for.
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(cluster.dsn("nodb" + EVIL, "nouser" + EVIL)).close()
        cluster.flush_logs()
        yield Hostile(cluster, name, since)
    finally:
        with cluster.connect() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def test_scan_shows_hostile_names_as_tags_in_every_format(hostile: Hostile) -> None:
    table = hostile.run("scan", *hostile.log_args())
    assert table.returncode == 0, table.stderr
    assert '"tx<U+001B>[2J<U+001B>]0;pwned<U+0007><U+202E>gnp<U+200B><U+009B>31m<U+000D>"' in (
        table.stdout
    )
    # --all: the failed login's user and database, before any authentication.
    everything = hostile.run("scan", *hostile.log_args(), "--all")
    fatal = next(line for line in everything.stdout.splitlines() if "FATAL" in line)
    assert 'role "nouserx<U+001B>[2J' in fatal and "nouserx<U+0" in fatal
    assert "<U+202E>drop<U+202C>" in everything.stdout
    # CSV: formula cells defused as in findings.csv, controls shown.
    csv_out = hostile.run("scan", *hostile.log_args(), "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(csv_out.stdout)))
    created = next(r for r in rows if (r["statement"] or "").startswith("CREATE TABLE"))
    assert created["application"] == "'" + FORMULA
    assert "<U+001B>" in created["statement"] and "<U+001B>" in created["database"]
    # JSON: the exact values, written with \u escapes.
    as_json = hostile.run("scan", *hostile.log_args(), "--format", "json", "--all")
    values = json.loads(as_json.stdout)
    assert any(r["statement"] == f'CREATE TABLE "t{EVIL}" (id int)' for r in values)
    assert any(r["user"] == "nouser" + EVIL for r in values)
    assert any(r["application"] == FORMULA for r in values)


def test_timeline_shows_hostile_names_as_tags_in_every_format(hostile: Hostile) -> None:
    args = ["timeline", "--dsn", hostile.dsn(), *hostile.log_args()]
    table = hostile.run(*args)
    assert table.returncode == 0, table.stderr
    assert "<U+202E>" in table.stdout and "<U+001B>" in table.stdout
    csv_out = hostile.run(*args, "--format", "csv")
    apps = {r["application"] for r in csv.DictReader(io.StringIO(csv_out.stdout))}
    assert "'" + FORMULA in apps
    steps = json.loads(hostile.run(*args, "--format", "json").stdout)
    assert any(
        s["log"] and s["log"]["statement"] == f'CREATE TABLE "t{EVIL}" (id int)' for s in steps
    )
    # Without a connection, the names parsed from the statements.
    bare = hostile.run("timeline", *hostile.log_args(), "--object", f'"t{EVIL}"')
    # Its two steps: the CREATE TABLE and the COMMENT ON TABLE (the statement names it).
    flat = " ".join(bare.stdout.split())
    assert "2 step(s)" in flat and "COMMENT ON TABLE" in flat and "<U+001B>" in bare.stdout


def test_status_install_uninstall_notify_show_hostile_database_names_as_tags(
    hostile: Hostile,
) -> None:
    tagged = "dbx<U+001B>[2J<U+001B>]0;pwned<U+0007><U+202E>gnp<U+200B><U+009B>31m<U+000D>"
    status = hostile.run("status", "--dsn", hostile.dsn(), "--database", hostile.database)
    assert status.returncode == 0, status.stdout + status.stderr
    assert f"database {tagged}: auditor" in status.stdout
    as_json = hostile.run("status", "--dsn", hostile.dsn(), "--database", hostile.database,
                          "--format", "json")  # fmt: skip
    assert json.loads(as_json.stdout)["databases"][0]["name"] == hostile.database
    again = hostile.run("install", "--dsn", hostile.dsn(), "--database", hostile.database)
    assert again.returncode == 0 and f"{tagged}: " in again.stdout
    dry = hostile.run("uninstall", "--dsn", hostile.dsn(), "--database", hostile.database,
                      "--dry-run")  # fmt: skip
    assert dry.returncode == 0 and f"-- database {tagged}" in dry.stdout
    notify = hostile.run("notify", "--once", "--dsn", hostile.dsn(), "--database",
                         hostile.database, "--mail-to", "dba@example.org",
                         "--smtp-host", "127.0.0.1", "--smtp-port", "9")  # fmt: skip
    assert tagged in notify.stdout + notify.stderr


def test_reconcile_and_report_print_nothing_raw(hostile: Hostile, tmp_path: Path) -> None:
    out = tmp_path / "out"
    rec = hostile.run("reconcile", "--dsn", hostile.dsn(), "--database", hostile.database,
                      *hostile.log_args(), "--out", str(out))  # fmt: skip
    assert rec.returncode in (0, 1), rec.stderr
    assert "logged DDL" in rec.stdout
    again = hostile.run("report", str(out / "findings.json"), "--html", str(tmp_path / "r.html"))
    assert again.returncode == 0 and "wrote" in again.stdout


def test_errors_name_a_hostile_server_side_name_on_one_line(hostile: Hostile) -> None:
    out = hostile.run("status", "--dsn", hostile.dsn("nodb" + EVIL))
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1
    assert 'database "nodbx<U+001B>[2J' in out.stderr and "does not exist" in out.stderr


# -- colour and progress on a real terminal ----------------------------------------------


def _on_terminal(args: list[str], *, stream: str, env: dict[str, str]) -> str:
    """Run the CLI with ``stream`` (stdout or stderr) on a pseudo-terminal; what it wrote
    there (the other stream goes nowhere)."""
    import pty

    master, slave = pty.openpty()
    target = {"stdout": slave, "stderr": subprocess.DEVNULL}
    if stream == "stderr":
        target = {"stdout": subprocess.DEVNULL, "stderr": slave}
    proc = subprocess.Popen(
        [sys.executable, "-m", "auditor", *args], env={**os.environ, **env}, **target
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    assert proc.wait(timeout=120) in (0, 1)
    return b"".join(chunks).decode("utf-8", "replace")


def test_colour_only_on_a_terminal_and_never_with_no_color(hostile: Hostile) -> None:
    args = ["timeline", "--dsn", hostile.dsn(), *hostile.log_args()]
    plain_env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    coloured = _on_terminal(args, stream="stdout", env={**plain_env, "NO_COLOR": ""})
    assert "\x1b[" in coloured and "CREATE TABLE" in coloured
    for value in ("1", "yes"):
        bare = _on_terminal(args, stream="stdout", env={"NO_COLOR": value})
        assert "CREATE TABLE" in bare and "\x1b[" not in bare


def test_reconcile_shows_progress_on_a_terminal_only(hostile: Hostile, tmp_path: Path) -> None:
    args = ["reconcile", "--dsn", hostile.dsn(), "--database", hostile.database,
            *hostile.log_args(), "--out", str(tmp_path / "out")]  # fmt: skip
    hostile.cluster.flush_logs()
    assert "reading logs" in _on_terminal(args, stream="stderr", env={})
    piped = hostile.run(*args)
    assert "reading logs" not in piped.stderr and "\x1b[" not in piped.stderr


# -- demo --------------------------------------------------------------------------------


def test_demo_out_naming_a_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    target = tmp_path / "not-a-dir"
    target.write_text("precious\n")
    out = subprocess.run(
        [sys.executable, "-m", "auditor", "demo", "--out", str(target)],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.count("\n") == 1 and str(target) in out.stderr
    assert "not a directory" in out.stderr and "Traceback" not in out.stderr
    assert target.read_text() == "precious\n"
