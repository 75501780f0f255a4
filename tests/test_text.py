"""Statement text compares equal across the channels, whatever bytes it holds.

Real clients (psycopg over the simple and the extended protocol, psql) send
statements with NUL, CR, CRLF, TAB after a newline, control characters, line
and paragraph separators, quotes, backslashes, characters outside the BMP, and
non-UTF-8 bytes in LATIN1, WIN1252 and SQL_ASCII databases; each log format is
reconciled on its own and every statement must be matched.  A NUL in a log line
(which no server writes) is damage: a LOG_GAP, never a critical.
"""

from __future__ import annotations

import itertools
import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from auditor import capture
from auditor.cluster import TempCluster
from auditor.config import load_config
from auditor.model import FindingClass
from auditor.reconcile import reconcile

C = FindingClass
EXT = {"stderr": ".log", "csvlog": ".csv", "jsonlog": ".json"}
PSQL = shutil.which("psql", path="/usr/lib/postgresql/15/bin") or shutil.which("psql")
_n = itertools.count(1)

#: (name, query): sent by psycopg, simple protocol and extended protocol.
UTF8_CASES = [
    ("nul", "CREATE TABLE {t} (x int) -- cut here\x00 the server never sees this"),
    ("cr", "CREATE TABLE \"{t}\r\" (x text DEFAULT 'c\rd')"),
    ("crlf", "CREATE TABLE {t} (\r\n x int\r\n)\r\n"),
    ("tab", "CREATE TABLE {t} (\n\tx int,\n\t\ty int\n)"),
    ("trailing newlines", "CREATE TABLE {t} (x int)\n\n"),
    ("blanks", "\n  CREATE TABLE {t} (x int)  \t"),
    ("controls", "CREATE TABLE {t} (x text DEFAULT E'\\x01\\x1b[31m') -- \x01\x1b[31m\x7f"),
    ("separators", "CREATE TABLE {t} (x int) -- \x0c\x0b\x1c\x1d\x1e\x85 \u2028 \u2029"),
    ("quotes", 'CREATE TABLE "{t}""q" (x text DEFAULT \'a,"b\'\'c\')'),
    ("backslashes", "CREATE TABLE {t} (x text DEFAULT E'\\\\u0000 \\\\n \\\\\"')"),
    ("non-bmp", 'CREATE TABLE "{t}_😀" (x int); CREATE TABLE "{t}_é" (y int)'),
]


@pytest.fixture(scope="module")
def tc() -> Iterator[TempCluster]:
    with TempCluster() as c:
        c.execute("CREATE DATABASE utf")
        c.execute("CREATE DATABASE lat TEMPLATE template0 ENCODING 'LATIN1' LOCALE 'C'")
        c.execute("CREATE DATABASE win TEMPLATE template0 ENCODING 'WIN1252' LOCALE 'C'")
        c.execute("CREATE DATABASE raw TEMPLATE template0 ENCODING 'SQL_ASCII' LOCALE 'C'")
        for db in ("utf", "lat", "win", "raw"):
            capture.install(c.dsn(db), databases=[db])  # connected to each, SQL_ASCII too
        yield c


def _reconcile(tc: TempCluster, db: str, since: datetime, fmt: str, out: Path) -> Any:
    tc.flush_logs()
    logs = [str(p) for p in tc.log_dir.iterdir() if p.suffix == EXT[fmt]]
    flags = {"dsn": tc.dsn(db), "logs": logs, "databases": [db], "since": since.isoformat(),
             "out": str(out / f"{db}-{fmt}")}  # fmt: skip
    return reconcile(load_config(flags, environ={}))


def _simple(tc: TempCluster, db: str, query: str | bytes, **params: str) -> None:
    with psycopg.connect(tc.dsn(db, **params), autocommit=True) as conn:
        psycopg.ClientCursor(conn).execute(query)


def _extended(tc: TempCluster, db: str, query: str) -> None:
    with psycopg.connect(tc.dsn(db), autocommit=True) as conn:
        conn.execute(query)  # PQsendQueryParams: 'execute <unnamed>: ...'


def _formats(tc: TempCluster) -> tuple[str, ...]:
    return ("stderr", "csvlog", "jsonlog") if tc.major >= 15 else ("stderr", "csvlog")


def _assert_all_matched(result: Any, statements: int, fmt: str) -> None:
    findings = [(f.cls.value, f.severity.value, f.statement) for f in result.document.findings]
    assert findings == [], fmt
    assert result.document.summary.matched == statements, fmt
    assert result.exit_code == 0


def test_utf8_texts_from_psycopg_and_psql(tc: TempCluster, tmp_path: Path) -> None:
    since = datetime.now(UTC)
    time.sleep(0.01)
    sent = 0
    for _name, query in UTF8_CASES:
        t = f"u{next(_n)}"
        _simple(tc, "utf", query.format(t=t))
        sent += 1
        if ";" not in query:  # the extended protocol takes one statement
            _extended(tc, "utf", query.format(t=t + "x"))
            sent += 1
    if PSQL:
        script = (
            "".join(
                q.format(t=f"p{next(_n)}").replace("\x00", "") + "\n;\n"
                for _, q in UTF8_CASES
                if "\r\n" not in q
            )
            + "CREATE TABLE pcrlf (\r\n x int\r\n);\r\n"
        )
        proc = subprocess.run(
            [PSQL, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", tc.dsn("utf")],
            input=script.encode(), capture_output=True, timeout=60,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        # psql sends each statement of a line on its own
        sent += sum(q.count("; ") + 1 for _, q in UTF8_CASES if "\r\n" not in q) + 1
    for fmt in _formats(tc):
        _assert_all_matched(_reconcile(tc, "utf", since, fmt, tmp_path), sent, fmt)


def test_a_nul_never_reaches_the_server(tc: TempCluster) -> None:
    """libpq ends the string at the NUL; a raw protocol message with one is refused."""
    _simple(tc, "utf", "CREATE TABLE nul_cut (x int) -- \x00 DROP TABLE nul_cut")
    assert tc.execute("SELECT count(*) FROM pg_class WHERE relname = 'nul_cut'", dbname="utf") == [
        (1,)
    ]


@pytest.mark.parametrize(
    ("db", "text", "client_encoding"),
    [
        ("lat", "CREATE TABLE \"café_ÿ\" (x text DEFAULT 'café ÿ')", None),
        ("lat", "CREATE TABLE \"café_u\" (x text DEFAULT 'ü')", "UTF8"),
        ("win", "CREATE TABLE \"euro_€\" (x text DEFAULT '€ „quoted“')", None),
        ("raw", "CREATE TABLE \"utf8_in_sql_ascii_é\" (x text DEFAULT 'café')", None),
    ],
)
def test_databases_in_other_encodings(
    tc: TempCluster, tmp_path: Path, db: str, text: str, client_encoding: str | None
) -> None:
    since = datetime.now(UTC)
    time.sleep(0.01)
    params = {"client_encoding": client_encoding} if client_encoding else {}
    query: str | bytes = text.encode() if db == "raw" else text
    _simple(tc, db, query, **params)
    for fmt in _formats(tc):
        result = _reconcile(tc, db, since, fmt, tmp_path)
        _assert_all_matched(result, 1, fmt)


def test_bytes_that_are_not_utf8_in_a_sql_ascii_database(tc: TempCluster, tmp_path: Path) -> None:
    """The audit trigger's digest wants UTF-8: the DDL is refused (fail closed), and both
    channels agree that it failed."""
    since = datetime.now(UTC)
    time.sleep(0.01)
    with pytest.raises(psycopg.Error, match="invalid byte sequence"):
        _simple(tc, "raw", b"CREATE TABLE raw_bytes (x text DEFAULT '\xff\xfe')")
    for fmt in _formats(tc):
        result = _reconcile(tc, "raw", since, fmt, tmp_path)
        assert [f.cls for f in result.document.findings] == [C.FAILED_DDL], fmt
        assert (
            result.document.findings[0].statement
            == "CREATE TABLE raw_bytes (x text DEFAULT '\udcff\udcfe')"
        )


@pytest.mark.parametrize("fmt", ["stderr", "csvlog", "jsonlog"])
def test_a_nul_in_a_log_line_is_damage_not_a_critical(
    tc: TempCluster, tmp_path: Path, fmt: str
) -> None:
    if fmt not in _formats(tc):
        pytest.skip(f"PostgreSQL {tc.major} has no jsonlog (15+)")
    since = datetime.now(UTC)
    time.sleep(0.01)
    table = f"damaged_{fmt}"
    _simple(tc, "utf", f"CREATE TABLE {table} (id int)")
    tc.flush_logs()
    copy = tmp_path / f"copy{EXT[fmt]}"
    source = max(
        (p for p in tc.log_dir.iterdir() if p.suffix == EXT[fmt]), key=lambda p: p.stat().st_mtime
    )
    data = source.read_bytes()
    needle = f"CREATE TABLE {table} (".encode()
    at = data.index(needle) + len(b"CREATE TABLE ")
    nul = b"\\u0000" if fmt == "jsonlog" else b"\x00"
    copy.write_bytes(data[:at] + nul + data[at:])
    flags = {"dsn": tc.dsn("utf"), "logs": [str(copy)], "databases": ["utf"],
             "since": since.isoformat(), "out": str(tmp_path / "out")}  # fmt: skip
    result = reconcile(load_config(flags, environ={}))
    classes = [f.cls for f in result.document.findings]
    assert classes == [C.LOG_GAP], [(f.cls, f.explanation) for f in result.document.findings]
    (gap,) = result.document.findings
    assert "NUL byte" in gap.explanation and len(gap.audit_event_ids) == 1
