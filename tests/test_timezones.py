"""Log times on real servers whose ``log_timezone`` is not UTC, and reconcile on them.

For each zone (west of UTC with DST, east, half-hour, 45-minute, Berlin's CET/CEST
and UTC) a throwaway cluster with the auditor installed runs the same DDL; the
times the readers give for each statement, in every log format the server
writes, must be the audit row's ``statement_timestamp()`` within the log's
millisecond precision, and reconcile must pair every statement.  A cluster under
libfaketime crosses the America/New_York fall-back with Debian's prefix (no
``%c``: pairing falls back to pid, time and text, so the times must be right).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import zoneinfo
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from auditor import capture
from auditor.cluster import TempCluster
from auditor.config import load_config
from auditor.logs.scan import scan
from auditor.model import LogRecord, MessageKind, ReadWarning
from auditor.reconcile import ReconcileResult, reconcile

ZONES = (
    "America/New_York",
    "Europe/Moscow",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Europe/Berlin",
    "UTC",
)
#: What the zone's abbreviations allow without knowing the zone (see auditor/logs/times.py).
ALONE = {
    "America/New_York": "placed",  # EST/EDT: one offset each in the tz database
    "Europe/Moscow": "placed",  # MSK
    "Europe/Berlin": "placed",  # CET/CEST
    "Asia/Kolkata": "unplaced",  # IST is also Dublin's and Jerusalem's
    "Asia/Kathmandu": "exact",  # +0545
    "UTC": "exact",
}
EXT = {"stderr": "log", "csvlog": "csv", "jsonlog": "json"}
FORMATS = ("stderr", "csvlog", "jsonlog")
DEBIAN_PREFIX = "%m [%p] %q%u@%d "
LIBFAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")
WORKLOAD = (
    ("tz-create", "CREATE TABLE tz_t (id int)"),
    ("tz-multi", "CREATE TABLE tz_a (id int); ALTER TABLE tz_a ADD COLUMN v text"),
    ("tz-index", "CREATE INDEX tz_i ON tz_t (id)"),
    ("tz-view", "CREATE VIEW tz_v AS SELECT * FROM tz_t"),
    ("tz-drop", "DROP VIEW tz_v"),
)


@dataclass
class Zoned:
    cluster: TempCluster
    zone: str
    db: str
    since: datetime
    #: (application, query, statement_time) of every audit row, in id order.
    rows: list[tuple[str, str, datetime]]

    def files(self, fmt: str) -> list[str]:
        return sorted(str(p) for p in self.cluster.log_dir.glob(f"*.{EXT[fmt]}"))

    def reconcile(self, out: Path, **opts: Any) -> ReconcileResult:
        flags: dict[str, Any] = {
            "dsn": self.cluster.dsn(self.db),
            "since": self.since.isoformat(),
            "databases": [self.db],
            "out": str(out),
        }
        flags.update(opts)
        return reconcile(load_config(flags, environ={}))


def _rows(cluster: TempCluster, db: str) -> list[tuple[str, str, datetime]]:
    return [
        (str(app), str(query), when)
        for app, query, when in cluster.execute(
            "SELECT application_name, query, statement_time FROM auditor.events ORDER BY id",
            dbname=db,
        )
    ]


def _play(cluster: TempCluster, db: str) -> None:
    for app, query in WORKLOAD:
        cluster.execute(query, dbname=db, application_name=app)
    with psycopg.connect(cluster.dsn(db, application_name="tz-extended"), autocommit=True) as conn:
        conn.execute("CREATE TABLE tz_ext (id int)", prepare=True)  # extended protocol


@pytest.fixture(scope="module", params=ZONES)
def zoned(request: pytest.FixtureRequest) -> Iterator[Zoned]:
    zone = str(request.param)
    with TempCluster(settings={"log_timezone": zone}) as cluster:
        cluster.execute("CREATE DATABASE tzdb")
        capture.install(cluster.dsn("tzdb"), databases=["tzdb"])
        time.sleep(0.01)
        since = datetime.now(UTC)
        _play(cluster, "tzdb")
        cluster.flush_logs()
        yield Zoned(cluster, zone, "tzdb", since, _rows(cluster, "tzdb"))


def _formats(cluster: TempCluster) -> list[str]:
    return [f for f in FORMATS if f != "jsonlog" or cluster.major >= 15]


def _read(
    specs: list[str], fmt: str, prefix: str, **kw: Any
) -> tuple[list[LogRecord], list[ReadWarning]]:
    items = list(scan(specs, fmt=fmt, prefix=prefix if fmt == "stderr" else None, jobs=1, **kw))
    return (
        [i for i in items if isinstance(i, LogRecord)],
        [i for i in items if isinstance(i, ReadWarning)],
    )


def _ddl(records: list[LogRecord], prefix: str = "tz-") -> dict[tuple[str, str], LogRecord]:
    """The workload's statement records by (application, text); each is logged once."""
    out: dict[tuple[str, str], LogRecord] = {}
    for r in records:
        kind = r.kind in (MessageKind.STATEMENT, MessageKind.EXECUTE)
        if kind and r.is_ddl and (r.application or "").startswith(prefix) and r.statement:
            assert (r.application, r.statement) not in out
            out[(str(r.application), r.statement)] = r
    return out


def _floor_ms(t: datetime) -> datetime:
    return t.replace(microsecond=t.microsecond // 1000 * 1000)


def assert_same_instant(logged: datetime | None, statement_time: datetime) -> None:
    """The log line is written when the statement starts, after statement_timestamp(),
    and ``%m``/csv/json print milliseconds, truncated."""
    assert logged is not None
    assert _floor_ms(statement_time) <= logged < statement_time + timedelta(seconds=1), (
        logged.isoformat(),
        statement_time.isoformat(),
    )


@pytest.mark.parametrize("fmt", FORMATS)
def test_reader_times_are_the_audit_rows_statement_times(zoned: Zoned, fmt: str) -> None:
    if fmt not in _formats(zoned.cluster):
        pytest.skip("jsonlog exists from PostgreSQL 15 on")
    records, warnings = _read(
        zoned.files(fmt), fmt, zoned.cluster.log_line_prefix, log_timezone=zoned.zone
    )
    assert not [w for w in warnings if w.cause], warnings
    logged = _ddl(records)
    assert len(logged) == len(WORKLOAD) + 1
    zone = zoneinfo.ZoneInfo(zoned.zone)
    for app, query, statement_time in zoned.rows:
        rec = logged[(app, query)]
        assert_same_instant(rec.time, statement_time)
        assert rec.time is not None and rec.time.utcoffset() == zone.utcoffset(
            rec.time.replace(tzinfo=None)
        )


@pytest.mark.parametrize("fmt", FORMATS)
def test_without_the_zone_what_the_abbreviation_allows(zoned: Zoned, fmt: str) -> None:
    if fmt not in _formats(zoned.cluster):
        pytest.skip("jsonlog exists from PostgreSQL 15 on")
    prefix = zoned.cluster.log_line_prefix
    known, _ = _read(zoned.files(fmt), fmt, prefix, log_timezone=zoned.zone)
    alone, warnings = _read(zoned.files(fmt), fmt, prefix)
    timed = [w for w in warnings if w.cause]
    expect = ALONE[zoned.zone]
    if expect == "exact":
        assert not timed
        assert [r.time for r in alone] == [r.time for r in known]
    elif expect == "placed":
        assert [r.time for r in alone] == [r.time for r in known]
        assert timed and all("placed without log_timezone" in str(w.cause) for w in timed)
        assert len({(w.source.file, w.cause) for w in timed}) == len(timed)  # one per file
        assert all("the only offset the tz database gives" in w.message for w in timed)
    else:
        assert all(r.time is None for r in alone) and alone
        files = {r.source.file for r in alone}
        assert sorted(w.source.file for w in timed) == sorted(files)  # one warning per file
        for w in timed:
            assert w.cause == "abbreviation IST cannot be placed"
            assert "UTC+05:30" in w.message and "the record's time is left out" in w.message
            mine = [r for r in alone if r.source.file == w.source.file]
            assert w.source == mine[0].source and w.count >= len(mine)


@pytest.mark.parametrize("fmt", FORMATS)
def test_reconcile_with_the_zone_from_the_server_matches_every_statement(
    zoned: Zoned, fmt: str, tmp_path: Path
) -> None:
    if fmt not in _formats(zoned.cluster):
        pytest.skip("jsonlog exists from PostgreSQL 15 on")
    result = zoned.reconcile(tmp_path, logs=zoned.files(fmt), log_format=fmt)
    doc = result.document
    assert doc.findings == (), [(f.cls, f.explanation) for f in doc.findings]
    assert doc.summary.logged_ddl == doc.summary.matched == len(WORKLOAD) + 1
    assert doc.summary.matched_audit_rows == len(zoned.rows)
    assert result.exit_code == 0


def test_a_window_without_an_offset_is_read_in_log_timezone(zoned: Zoned, tmp_path: Path) -> None:
    # The DBA types the wall-clock times the log shows.
    wall = zoned.since.astimezone(zoneinfo.ZoneInfo(zoned.zone)).replace(tzinfo=None)
    later = (wall + timedelta(hours=1)).isoformat(sep=" ")
    result = zoned.reconcile(
        tmp_path, logs=zoned.files("csvlog"), since=wall.isoformat(sep=" "), until=later
    )
    doc = result.document
    assert doc.since == zoned.since
    assert doc.findings == () and doc.summary.matched == len(WORKLOAD) + 1


def test_scan_with_log_timezone_needs_no_server(zoned: Zoned) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "auditor", "scan", "--log", *zoned.files("stderr"),
         "--log-line-prefix", zoned.cluster.log_line_prefix,
         "--log-timezone", zoned.zone, "--format", "json"],
        capture_output=True, text=True, timeout=120,
        env={k: v for k, v in os.environ.items() if not k.startswith("AUDITOR_")},
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    rows = {(r["application"], r["statement"]): r for r in json.loads(run.stdout)}
    for app, query, statement_time in zoned.rows:
        assert_same_instant(datetime.fromisoformat(rows[(app, query)]["time"]), statement_time)
    assert f"log times placed in log_timezone {zoned.zone}" in run.stderr
    assert "log_timezone" not in "".join(
        ln for ln in run.stderr.splitlines() if ln.startswith("auditor: warning")
    )


# -- a DST fold on a real server ------------------------------------------------------------

#: America/New_York falls back at 06:00 UTC: 01:59:59 EDT is followed by 01:00:00 EST.
FOLD = datetime(2026, 11, 1, 6, 0, 0, tzinfo=UTC)


@dataclass
class Folded:
    cluster: TempCluster
    since: datetime
    rows: list[tuple[str, str, datetime]]


@pytest.fixture(scope="module")
def folded() -> Iterator[Folded]:
    """Debian's prefix in America/New_York, the server's clock (libfaketime) crossing the fold."""
    if not LIBFAKETIME.exists():
        pytest.skip(f"{LIBFAKETIME} missing (scripts/bootstrap installs Debian's faketime)")
    with TempCluster(
        log_line_prefix=DEBIAN_PREFIX, settings={"log_timezone": "America/New_York"}
    ) as cluster:
        cluster.execute("CREATE DATABASE folddb")
        capture.install(cluster.dsn("folddb"), databases=["folddb"])
        # Restart with the clock 4 s before the fold (a relative offset: pg_ctl and every
        # server process share it; monotonic clocks stay real for the server's timeouts).
        offset = int(FOLD.timestamp() - 4 - time.time())
        cluster.server_env = {
            "LD_PRELOAD": str(LIBFAKETIME),
            "FAKETIME": f"{offset:+d}",
            "DONT_FAKE_MONOTONIC": "1",
        }
        cluster.restart()
        ((since,),) = cluster.execute("SELECT now()")
        assert since < FOLD, "the server did not start before the fold"
        n = 0
        while True:
            ((now,),) = cluster.execute("SELECT now()")
            if now > FOLD + timedelta(seconds=2):
                break
            n += 1
            cluster.execute(
                f"CREATE TABLE fold_{n} (id int)", dbname="folddb", application_name="tz-fold"
            )
            time.sleep(0.3)
        cluster.execute("DROP TABLE fold_1", dbname="folddb", application_name="tz-fold")
        cluster.flush_logs()
        yield Folded(cluster, since, _rows(cluster, "folddb"))


def test_across_the_fold_log_times_are_the_statement_times(folded: Folded) -> None:
    files = sorted(str(p) for p in folded.cluster.log_dir.glob("*.log"))
    records, warnings = _read(files, "stderr", DEBIAN_PREFIX, log_timezone="America/New_York")
    assert not [w for w in warnings if w.cause]
    # The install ran before the restart, on the real clock (weeks later): not in the window.
    logged = [
        r
        for r in records
        if r.kind == MessageKind.STATEMENT and r.is_ddl and r.database == "folddb"
        if r.time is not None and folded.since <= r.time < FOLD + timedelta(minutes=2)
    ]
    statements = list(dict.fromkeys((q, t) for _, q, t in folded.rows))  # DROP: two rows
    assert [r.statement for r in logged] == [q for q, _ in statements]
    for rec, (_, statement_time) in zip(logged, statements, strict=True):
        assert_same_instant(rec.time, statement_time)
    offsets = [r.time.utcoffset() for r in logged if r.time is not None]
    assert timedelta(hours=-4) in offsets and timedelta(hours=-5) in offsets


def test_across_the_fold_reconcile_pairs_every_statement(folded: Folded, tmp_path: Path) -> None:
    result = reconcile(
        load_config(
            {
                "dsn": folded.cluster.dsn("folddb"),
                "logs": [str(folded.cluster.log_dir)],
                "log_format": "stderr",
                "since": folded.since.isoformat(),
                "until": (FOLD + timedelta(minutes=2)).isoformat(),
                "databases": ["folddb"],
                "out": str(tmp_path),
            },
            environ={},
        )
    )
    doc = result.document
    classes = {f.cls.value for f in doc.findings}
    assert not classes & {"UNLOGGED_DDL", "UNREPORTED_DDL", "LOG_GAP"}, doc.findings
    assert doc.findings == ()
    assert doc.summary.logged_ddl == doc.summary.matched == len({t for _, _, t in folded.rows})
    assert doc.summary.matched_audit_rows == len(folded.rows)


# -- a zone nobody knows --------------------------------------------------------------------


@pytest.fixture(scope="module")
def unknown_zone() -> Iterator[Zoned]:
    """A POSIX log_timezone whose abbreviation no zone of the tz database uses."""
    with TempCluster(settings={"log_timezone": "XYZ-3"}) as cluster:
        cluster.execute("CREATE DATABASE tzdb")
        capture.install(cluster.dsn("tzdb"), databases=["tzdb"])
        time.sleep(0.01)
        since = datetime.now(UTC)
        _play(cluster, "tzdb")
        cluster.flush_logs()
        yield Zoned(cluster, "XYZ-3", "tzdb", since, _rows(cluster, "tzdb"))


def test_an_unknown_abbreviation_is_one_warning_per_file_and_no_time(unknown_zone: Zoned) -> None:
    files = unknown_zone.files("csvlog")
    run = subprocess.run(
        [sys.executable, "-m", "auditor", "scan", "--log", *files, "--format", "json"],
        capture_output=True, text=True, timeout=120,
        env={k: v for k, v in os.environ.items() if not k.startswith("AUDITOR_")},
    )  # fmt: skip
    assert run.returncode == 0, run.stderr  # the records were read
    assert "Traceback" not in run.stderr
    rows = json.loads(run.stdout)
    assert rows and all(r["time"] is None for r in rows)
    warnings = [ln for ln in run.stderr.splitlines() if "XYZ" in ln]
    assert len(warnings) == len(files)
    first = min(rows, key=lambda r: (r["file"], r["line"]))
    assert warnings[0].startswith(f"auditor: warning: {first['file']}:")
    assert "no zone of the tz database uses 'XYZ'" in warnings[0]
    assert "give --log-timezone, or --dsn to ask the server" in warnings[0]
    # Over --dsn the server says log_timezone = 'XYZ-3' (UTC+03:00): every time is placed.
    run = subprocess.run(
        [sys.executable, "-m", "auditor", "scan", "--log", *files, "--format", "json",
         "--dsn", unknown_zone.cluster.dsn()],
        capture_output=True, text=True, timeout=120,
        env={k: v for k, v in os.environ.items() if not k.startswith("AUDITOR_")},
    )  # fmt: skip
    assert run.returncode == 0 and "XYZ" not in "".join(
        ln for ln in run.stderr.splitlines() if "warning" in ln
    )
    by_text = {(r["application"], r["statement"]): r for r in json.loads(run.stdout)}
    for app, query, statement_time in unknown_zone.rows:
        assert_same_instant(datetime.fromisoformat(by_text[(app, query)]["time"]), statement_time)


def test_reconcile_of_a_log_whose_times_cannot_be_placed(
    unknown_zone: Zoned, tmp_path: Path
) -> None:
    with_server = unknown_zone.reconcile(tmp_path / "a", logs=unknown_zone.files("stderr"))
    assert with_server.document.findings == ()
    assert with_server.document.summary.matched == len(WORKLOAD) + 1
    # The log alone: no traceback, the records are judged without a time and the
    # report says why.
    alone = reconcile(
        load_config({"logs": unknown_zone.files("stderr"), "out": str(tmp_path / "b")}, environ={})
    )
    notes = " ".join(alone.document.notes)
    assert "have no time that could be placed" in notes
    (summary,) = alone.document.logs
    assert any("no zone of the tz database uses 'XYZ'" in w for w in summary.warnings)
