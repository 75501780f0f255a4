"""The columnar scan engine gives exactly what the row readers give (a differential test).

Every log file under ``fixtures/`` (captured from real clusters, pgBadger's
sample logs included) is read twice, with ``AUDITOR_SCAN_ENGINE=row`` and
``=columnar``, through :func:`auditor.logs.scan.scan` and through
:class:`~auditor.logs.reader.SourceRead` with windows small enough to put
boundaries inside records: records (every field, with file, offset and line),
warnings and the per-file statistics must be equal.  Windows the columnar
reader cannot read exactly are handed to the row reader (every csvlog fixture
plants one: a forged row inside a message, bytes that are not UTF-8, a cut
row); the test also checks that the columnar reader did read the small windows
without them, so that it cannot pass by handing everything back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from logs_helpers import FIXTURES

pytest.importorskip("pyarrow")

import contextlib

from auditor.logs import columnar
from auditor.logs.reader import SourceRead
from auditor.logs.scan import scan
from auditor.logs.sources import open_sources
from auditor.model import LogRecord, ReadWarning

_NOT_LOGS = {"sent.json", "README.md", "LICENSE"}
LOG_FILES = sorted(
    str(p.relative_to(FIXTURES))
    for p in FIXTURES.rglob("*")
    if p.is_file() and p.name not in _NOT_LOGS and p.suffix != ".py"
)


def _meta(path: Path) -> dict[str, Any]:
    sent = path.parent / "sent.json"
    if not sent.exists():
        return {}
    import json

    return dict(json.loads(sent.read_text()))


def _scan(path: str, engine: str, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, ...]:
    monkeypatch.setenv("AUDITOR_SCAN_ENGINE", engine)
    full = FIXTURES / path
    m = _meta(full)
    kw: dict[str, Any] = {"jobs": 1}
    tz = m.get("settings", {}).get("log_timezone")
    if tz:
        kw["log_timezone"] = tz
    try:
        stream = scan([str(full)], **kw)
        items = list(stream)
    except Exception as exc:  # the same error either way
        return ("error", type(exc).__name__, str(exc))
    return (
        [i for i in items if isinstance(i, LogRecord)],
        [i for i in items if isinstance(i, ReadWarning)],
        stream.sources,
    )


@pytest.mark.parametrize("path", LOG_FILES)
def test_scan_identical(path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    row = _scan(path, "row", monkeypatch)
    col = _scan(path, "columnar", monkeypatch)
    assert col == row


def _windows(path: Path, engine: str, window: int, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("AUDITOR_SCAN_ENGINE", engine)
    (src,) = open_sources([str(path)], dsn=None, fmt="csvlog")
    tz = _meta(path).get("settings", {}).get("log_timezone")
    read = SourceRead(src, fmt="csvlog", window=window, log_timezone=tz)
    items = list(read)
    return items, read.stats


CSV_FILES = sorted(str(p.relative_to(FIXTURES)) for p in FIXTURES.glob("*/postgresql*.csv"))


@pytest.mark.parametrize("path", CSV_FILES)
@pytest.mark.parametrize("window", [997, 4096, 65536])
def test_csvlog_windows_identical(path: str, window: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Small windows: boundaries inside multi-line rows, the carry between windows."""
    full = FIXTURES / path
    before = columnar.WINDOWS["columnar"]
    assert _windows(full, "columnar", window, monkeypatch) == _windows(
        full, "row", window, monkeypatch
    )
    if window <= 4096:  # a bigger window holds the fixture's planted oddity: rows read it
        assert columnar.WINDOWS["columnar"] > before, "no window read by the columnar engine"


def test_cut_and_garbled_csvlog(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real csvlog with a row cut short, a garbage line, a NUL and bad UTF-8 in it:
    those windows go to the row reader, and the result is the row reader's."""
    src = sorted(FIXTURES.glob("workload/postgresql*.csv"))[0].read_bytes()
    lines = src.split(b"\n")
    third = len(lines) // 3
    damaged = b"\n".join(
        [
            *lines[:third],
            lines[third][: len(lines[third]) // 2],  # a row cut short
            b"garbage that is no csv row",
            *lines[third + 1 : 2 * third],
            b"\x00" + lines[2 * third],
            lines[2 * third + 1].replace(b"statement: ", b"statement: \xff"),
            *lines[2 * third + 2 :],
        ]
    )
    path = tmp_path / "postgresql.csv"
    path.write_bytes(damaged)
    for window in (4096, 65536, len(damaged) + 1):
        row = _windows(path, "row", window, monkeypatch)
        assert any(isinstance(i, ReadWarning) for i in row[0])
        assert _windows(path, "columnar", window, monkeypatch) == row


def test_pure_python_fallback_without_pyarrow() -> None:
    """Where the wheels are missing the row readers run, and ``--version`` says why."""
    import subprocess
    import sys

    path = sorted(FIXTURES.glob("workload/postgresql*.csv"))[0]
    code = (
        "import sys; sys.modules['pyarrow'] = None\n"
        "from auditor.logs import columnar\n"
        "from auditor.logs.scan import scan\n"
        "print(columnar.describe())\n"
        f"print(sum(1 for _ in scan([{str(path)!r}], jobs=1)))\n"
        "print(dict(columnar.WINDOWS))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out[0] == "log scan engine: rows (pyarrow is not installed: pure-Python fallback)"
    assert int(out[1]) > 0
    assert out[2] == "{}"


# ------------------------------------------------------------------ reconcile, both engines


@pytest.mark.slow
def test_reconcile_findings_identical(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real cluster's csvlog, ordinary DDL and the evasions the matcher must find
    (trigger disabled, log_statement off, a deleted and an altered audit row, failed and
    rolled-back DDL, a setting changed): reconcile gives the same findings (every field, ids
    included) and summary with both engines."""
    from datetime import UTC, datetime

    from auditor import capture
    from auditor.cluster import TempCluster
    from auditor.config import load_config
    from auditor.reconcile import reconcile

    with TempCluster() as c:
        c.execute("CREATE DATABASE diff")
        capture.install(c.dsn("diff"), databases=["diff"])
        t0 = datetime.now(UTC)

        def run(q: str, app: str = "diff-test") -> None:
            c.execute(q, dbname="diff", application_name=app)

        run("CREATE TABLE orders (id serial PRIMARY KEY, placed timestamptz)")
        run("CREATE INDEX orders_placed ON orders (placed); ALTER TABLE orders ADD COLUMN n text")
        run("CREATE TABLE multi (\n  id int,\n  note text DEFAULT 'a\nb'\n)")
        run("COMMENT ON TABLE orders IS 'it''s \"quoted\", with, commas'")
        for q in ("CREATE TABLE orders (id int)", "BEGIN; CREATE TABLE rb (id int); ROLLBACK"):
            with contextlib.suppress(Exception):
                run(q)
        run("SET log_statement = 'none'; CREATE TABLE unlogged_t (id int)")
        run(
            "ALTER EVENT TRIGGER auditor_ddl_command_end DISABLE; CREATE TABLE hidden (id int);"
            "ALTER EVENT TRIGGER auditor_ddl_command_end ENABLE ALWAYS",
            app="evader",
        )
        run("CREATE TABLE victim (id int)")
        run(
            "ALTER TABLE auditor.events DISABLE TRIGGER events_append_only;"
            "DELETE FROM auditor.events WHERE id = (SELECT max(id) FROM auditor.events);"
            "UPDATE auditor.events SET client_addr = '10.9.9.9' WHERE id = "
            "(SELECT min(id) FROM auditor.events);"
            "ALTER TABLE auditor.events ENABLE ALWAYS TRIGGER events_append_only",
            app="forger",
        )
        c.flush_logs()

        def findings(engine: str) -> tuple[Any, Any]:
            monkeypatch.setenv("AUDITOR_SCAN_ENGINE", engine)
            flags = {
                "dsn": c.dsn("diff"),
                "logs": [str(c.log_dir / "*.csv")],
                "since": t0.isoformat(),
                "databases": ["diff"],
                "out": str(tmp_path / engine),
            }
            doc = reconcile(load_config(flags, environ={})).document
            return doc.findings, doc.summary

        before = columnar.WINDOWS["columnar"]
        row = findings("row")
        col = findings("columnar")
        assert columnar.WINDOWS["columnar"] > before
        assert col == row
        classes = {f.cls.name for f in row[0]}
        # The comparison is about findings that exist (not two empty lists).
        assert {"UNREPORTED_DDL", "AUDIT_ROW_ALTERED", "FAILED_DDL", "ROLLED_BACK_DDL"} <= classes
        assert len({f.id for f in row[0]}) == len(row[0])


@pytest.mark.parametrize("path", LOG_FILES)
def test_line_tracker_arrow_and_python_identical(
    path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The line tracker numbers its keys with Arrow where pyarrow is installed and in
    Python elsewhere: every session's numbers and every break, identical."""
    from auditor.logs import sequence

    arrow = _scan(path, "columnar", monkeypatch)
    monkeypatch.setattr(sequence, "_pa", None)
    python = _scan(path, "columnar", monkeypatch)
    assert arrow == python
    if not isinstance(arrow[0], str):
        assert [s.sequence for s in arrow[2]] == [s.sequence for s in python[2]]


def test_line_tracker_csv_field_regex_is_the_reference() -> None:
    """The csv tracker's field regex is ``(?:[^"]|"")*`` unrolled: on generated rows
    (quotes doubled, unbalanced, commas and newlines inside fields, forged rows), the
    same matches, spans and groups as the reference written the plain way."""
    import random
    import re

    from auditor.logs import sequence

    q = rb'(?:"(?:[^"]|"")*"|[^,"\n]*)'
    body = (
        rb"[0-9]{4}-[0-9][0-9]-[0-9][0-9] [^,\n]*," + q + b"," + q + rb',"?[0-9]*"?,' + q
        + b',"?(' + sequence._SESSION + rb')"?,"?([0-9]{1,18})"?,'
    )  # fmt: skip
    ref, ref_head = re.compile(rb"\n" + body), re.compile(body)
    rnd = random.Random(15)
    bits = [b'"', b'""', b",", b"\n", b"a", b"1", b"ab.c1", b"7", b".", b" "]
    usual = [
        [b'"u"', b"u", b"", b'"a""b"', b'"a,b"', b'"a\nb"'],
        [b'"d"', b"d", b"", b'"x"""'],
        [b"12", b"", b'"12"'],
        [b'"[local]"', b"", b'"h:1"'],
        [b"ab.1", b'"ab.1"', b"0.f"],
        [b"1", b'"22"', b"123"],
    ]

    def odd() -> bytes:
        return b"".join(rnd.choice(bits) for _ in range(rnd.randint(0, 6)))

    matched = 0
    for _ in range(40_000):
        rows = []
        for _ in range(rnd.randint(1, 3)):
            fields = [rnd.choice(c) if rnd.random() < 0.8 else odd() for c in usual]
            fields += [odd() for _ in range(rnd.randint(0, 3))]
            head = b"2026-01-01 t" + rnd.choice([b"", b'"', b"x"]) + b","
            rows.append(head + b",".join(fields))
        buf = b"\n" + b"\n".join(rows)
        want = [(m.span(), m.groups()) for m in ref.finditer(buf)]
        assert [(m.span(), m.groups()) for m in sequence._CSV.finditer(buf)] == want, buf
        a, b = sequence._CSV_HEAD.match(buf, 1), ref_head.match(buf, 1)
        assert (a and (a.span(), a.groups())) == (b and (b.span(), b.groups())), buf
        matched += len(want)
    assert matched > 10_000  # the generator does make rows the tracker reads
