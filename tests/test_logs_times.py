"""Log times as instants: the resolution rules on every zone of the tz database, and the
readers on a log a real server wrote across the America/New_York fall-back.

``fixtures/ny_fold`` was captured by ``fixtures/capture.py`` from a PostgreSQL 15
server running under libfaketime with ``log_timezone = 'America/New_York'`` and
Debian's prefix: the first half of the workload ran before 2026-11-01 06:00 UTC
(01:59 EDT), the second after it (01:00 EST), so the log's wall times go back an
hour.  (The postmaster's own lines written from its signal handlers, such as
"ready to accept connections" and the reload lines, show the real clock: libfaketime
does not fake calls made while the postmaster waits in its interposed ``select()``.)
"""

from __future__ import annotations

import os
import subprocess
import sys
import zoneinfo
from datetime import UTC, datetime, timedelta

import pytest
from logs_helpers import files, meta, read, read_fixture

from auditor.errors import ConfigError
from auditor.logs import scan as scan_mod
from auditor.logs.times import (
    LogClock,
    load_zone,
    resolve,
    tzif_periods,
    zone_file,
    zone_names,
)
from auditor.model import LogRecord, ReadWarning, SourceLocation

NY = zoneinfo.ZoneInfo("America/New_York")
FOLD = datetime.fromisoformat(meta("ny_fold")["fold"])


def _printed(instant: datetime, zone: zoneinfo.ZoneInfo) -> tuple[datetime, str]:
    """What PostgreSQL prints for ``instant`` in ``zone``: the wall time and ``%Z``."""
    local = instant.astimezone(zone)
    return local.replace(tzinfo=None), str(local.tzname())


# -- every zone of the tz database --------------------------------------------------------


def test_every_zone_of_the_tz_database_places_its_own_times_exactly() -> None:
    """Around every transition from 2000 to 2037 of every zone (DST, changes of standard
    time, numeric abbreviations, half-hour and 45-minute zones, Lord Howe's 30-minute DST),
    the printed wall time and abbreviation place the instant exactly through the zone.
    The only exception is a wall time the zone shows twice with the same abbreviation
    (Moscow's 2014 change, MSK on both sides): it is not placed, and says why.  Without
    the zone, an abbreviation that is placed is never placed wrong."""
    lo = int(datetime(2000, 1, 1, tzinfo=UTC).timestamp())
    hi = int(datetime(2038, 1, 1, tzinfo=UTC).timestamp())
    checked = repeated = alone = 0
    names = zone_names()
    assert len(names) > 400
    for name in names:
        data = zone_file(name)
        assert data is not None, name
        info, zone = zoneinfo.ZoneInfo(name), load_zone(name)
        starts = {start for start, _, _, _ in tzif_periods(data) if lo <= start < hi}
        starts.add(int(datetime(2026, 7, 15, 12, tzinfo=UTC).timestamp()))
        for start in starts:
            for delta in (-1801, -1, 0, 1, 1799):
                instant = datetime.fromtimestamp(start + delta, UTC)
                wall, abbr = _printed(instant, info)
                got, issue = resolve(wall, abbr, zone)
                checked += 1
                if got is None:
                    assert issue is not None and "repeated" in issue.cause, (name, instant, abbr)
                    # Really ambiguous: another instant prints the same.
                    twins = [
                        instant + timedelta(minutes=m)
                        for m in range(-120, 121, 15)
                        if m and _printed(instant + timedelta(minutes=m), info) == (wall, abbr)
                    ]
                    assert twins, (name, instant, abbr)
                    repeated += 1
                else:
                    assert got == instant and issue is None, (name, instant, abbr, got)
                placed, _ = resolve(wall, abbr, None)
                if placed is not None:
                    assert placed == instant, (name, instant, abbr, placed)
                    alone += 1
    assert checked > 50_000 and 0 < repeated < 100 and alone > checked // 2


@pytest.mark.parametrize(
    ("zone", "printed", "utc"),
    [
        # The America/New_York fall-back: 01:30 happens twice, told apart by EDT/EST.
        ("America/New_York", "2026-11-01 01:30:00.250 EDT", "2026-11-01T05:30:00.250000+00:00"),
        ("America/New_York", "2026-11-01 01:30:00.250 EST", "2026-11-01T06:30:00.250000+00:00"),
        # Europe/Berlin's fall-back (CEST -> CET at 03:00).
        ("Europe/Berlin", "2026-10-25 02:30:00 CEST", "2026-10-25T00:30:00+00:00"),
        ("Europe/Berlin", "2026-10-25 02:30:00 CET", "2026-10-25T01:30:00+00:00"),
        # Lord Howe: DST is 30 minutes, abbreviations are numbers.
        ("Australia/Lord_Howe", "2026-04-05 01:45:00 +11", "2026-04-04T14:45:00+00:00"),
        ("Australia/Lord_Howe", "2026-04-05 01:45:00 +1030", "2026-04-04T15:15:00+00:00"),
        # Half-hour and 45-minute zones.
        ("Asia/Kolkata", "2026-11-26 09:00:00.001 IST", "2026-11-26T03:30:00.001000+00:00"),
        ("Asia/Kathmandu", "2026-11-26 09:00:00 +0545", "2026-11-26T03:15:00+00:00"),
        ("Europe/Dublin", "2026-07-01 12:00:00 IST", "2026-07-01T11:00:00+00:00"),
        ("Europe/Moscow", "2026-11-26 09:00:00 MSK", "2026-11-26T06:00:00+00:00"),
        ("America/Sao_Paulo", "2026-11-26 09:00:00 -03", "2026-11-26T12:00:00+00:00"),
        ("UTC", "2026-11-26 09:00:00.999 UTC", "2026-11-26T09:00:00.999000+00:00"),
        # POSIX TZ strings PostgreSQL accepts as log_timezone: "UTC" three hours behind.
        ("UTC+3", "2026-12-03 06:11:18.880 UTC", "2026-12-03T09:11:18.880000+00:00"),
        ("<+0545>-5:45", "2026-12-03 14:56:19 +0545", "2026-12-03T09:11:19+00:00"),
    ],
)
def test_printed_times_are_placed_through_the_zone(zone: str, printed: str, utc: str) -> None:
    got, issue = LogClock(zone).parse(printed)
    assert issue is None
    assert got is not None and got.astimezone(UTC).isoformat() == utc
    # The record keeps the offset the log printed in (what a DBA compares with the log).
    assert got.replace(tzinfo=None) == datetime.fromisoformat(printed.rsplit(" ", 1)[0])


def test_a_wall_time_shown_twice_with_the_same_abbreviation_is_not_placed() -> None:
    got, issue = LogClock("Europe/Moscow").parse("2014-10-26 01:30:00 MSK")
    assert got is None and issue is not None
    assert "twice" in issue.message and "UTC+04:00 or UTC+03:00" in issue.message


def test_an_abbreviation_the_zone_does_not_use_then_is_placed_by_the_tz_database() -> None:
    # Logs written before log_timezone was changed from Europe/Berlin to America/New_York.
    got, issue = LogClock("America/New_York").parse("2026-11-26 10:00:00 CET")
    assert got is not None and got.astimezone(UTC) == datetime(2026, 11, 26, 9, tzinfo=UTC)
    assert issue is not None and "America/New_York" in issue.message
    assert "the only offset the tz database gives 'CET'" in issue.message
    # A wall time the zone skips (the spring-forward hour) is not one it shows.
    got, issue = LogClock("America/New_York").parse("2026-03-08 02:30:00 EST")
    assert got is not None and got.utcoffset() == timedelta(hours=-5)
    assert issue is not None and "does not show 'EST' at this time" in issue.message


def test_without_a_zone_only_abbreviations_with_one_offset_are_placed() -> None:
    clock = LogClock()
    got, issue = clock.parse("2026-11-26 10:00:00.5 CET")
    assert got is not None and got.astimezone(UTC) == datetime(2026, 11, 26, 9, 0, 0, 500000, UTC)
    assert issue is not None and "read without a known log_timezone" in issue.message
    for abbr, offsets in (("IST", "UTC+05:30, UTC+02:00 or UTC+01:00"), ("CST", "UTC+08:00")):
        got, issue = clock.parse(f"2026-11-26 10:00:00 {abbr}")
        assert got is None and issue is not None and offsets in issue.message, issue
        assert "the record's time is left out" in issue.message
    got, issue = clock.parse("2026-11-26 10:00:00 XYZ")
    assert got is None and issue is not None
    assert "no zone of the tz database uses 'XYZ'" in issue.message
    # Numbers, UTC and GMT need no zone.
    for text in ("2026-11-26 15:45:00 +0545", "2026-11-26 10:00:00 UTC", "2026-11-26 10:00:00 GMT"):
        got, issue = clock.parse(text)
        assert issue is None and got is not None
    assert clock.parse("2026-13-26 10:00:00 UTC") == (None, None)  # not a time at all


def test_a_bad_log_timezone_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="Mars/Olympus"):
        LogClock("Mars/Olympus")
    with pytest.raises(ConfigError, match="Mars/Olympus"):
        scan_mod.scan(files("ny_fold", "stderr"), log_timezone="Mars/Olympus")


# -- a real server across the fall-back -----------------------------------------------------


def _session(records: list[LogRecord]) -> list[LogRecord]:
    """The backends' records (the postmaster's reload lines show libfaketime's gaps)."""
    return [r for r in records if r.user is not None]


@pytest.mark.parametrize("fmt", ["stderr", "csvlog", "jsonlog"])
def test_the_fold_is_settled_by_the_abbreviation(fmt: str) -> None:
    records, warnings, _ = read_fixture("ny_fold", fmt, all_records=True)
    assert not [w for w in warnings if w.cause], warnings
    session = _session(records)
    times = [r.time for r in session]
    assert all(t is not None for t in times)
    # Wall times go back an hour at the fold; the instants keep going forward.
    assert times == sorted(times)  # type: ignore[type-var]
    before = [t for t in times if t is not None and t < FOLD]
    after = [t for t in times if t is not None and t >= FOLD]
    assert len(before) > 10 and len(after) > 5
    assert {t.utcoffset() for t in before} == {timedelta(hours=-4)}
    assert {t.utcoffset() for t in after} == {timedelta(hours=-5)}
    assert before[-1].replace(tzinfo=None) > after[0].replace(tzinfo=None)  # 01:59 EDT, 01:00 EST
    assert after[0] - before[-1] < timedelta(seconds=30)
    for t in times:
        assert t is not None and t.utcoffset() == t.astimezone(NY).utcoffset()


@pytest.mark.parametrize("fmt", ["stderr", "csvlog", "jsonlog"])
def test_without_the_zone_one_warning_per_file_and_abbreviation(fmt: str) -> None:
    known, _, _ = read_fixture("ny_fold", fmt, all_records=True)
    records, warnings, sources = read_fixture("ny_fold", fmt, all_records=True, log_timezone=None)
    # EDT and EST each have one offset in the tz database: same instants, and a warning each.
    assert [r.time for r in records] == [r.time for r in known]
    by_cause = {w.cause: w for w in warnings if w.cause}
    assert set(by_cause) == {
        "abbreviation EDT placed without log_timezone",
        "abbreviation EST placed without log_timezone",
    }
    for abbr in ("EDT", "EST"):
        w = by_cause[f"abbreviation {abbr} placed without log_timezone"]
        mine = [r for r in records if r.time is not None and r.time.astimezone(NY).tzname() == abbr]
        assert w.count == len(mine) > 1
        assert w.source == mine[0].source  # the first record with it: file and line
        text = str(w)
        assert text.startswith(f"{mine[0].source.file}:{mine[0].source.line}: ")
        assert f"'{abbr}' read without a known log_timezone" in text
        assert f"(and {len(mine) - 1} more record(s) of this file)" in text
    assert sum(s.warnings for s in sources) == len(warnings)


def test_pieces_of_a_file_read_in_parallel_give_one_warning_per_cause(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (path,) = files("ny_fold", "stderr")
    prefix = meta("ny_fold")["log_line_prefix"]
    whole, whole_w, _ = read([path], prefix=prefix, all_records=True, jobs=1)
    monkeypatch.setattr(scan_mod, "PIECE_ALL", 1500)  # the 7.8 kB file in 4-5 pieces
    split, split_w, sources = read([path], prefix=prefix, all_records=True, jobs=2)
    assert [r.time for r in split] == [r.time for r in whole]

    def timed(ws: list[ReadWarning]) -> list[tuple[str, SourceLocation, int]]:
        return sorted((w.cause, w.source, w.count) for w in ws if w.cause is not None)

    assert timed(split_w) == timed(whole_w) and len(timed(split_w)) == 2
    assert len(split_w) == len(whole_w) and sources[0].warnings == len(whole_w)


def _scan(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "auditor", "scan", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_scan_prints_times_with_their_offset_and_warns_without_a_zone() -> None:
    (path,) = files("ny_fold", "stderr")
    prefix = meta("ny_fold")["log_line_prefix"]
    given = _scan("--log", path, "--log-line-prefix", prefix, "--log-timezone", "America/New_York")
    assert given.returncode == 0, given.stderr
    # The wall time and offset the log printed: 01:59 EDT, then (after the fold) 01:00 EST.
    assert "2026-11-01 01:59:42.550-04 " in given.stdout
    assert "2026-11-01 01:00:00.123-05 " in given.stdout
    assert "log_timezone" not in "".join(ln for ln in given.stderr.splitlines() if "warning" in ln)
    assert "log times placed in log_timezone America/New_York" in given.stderr
    from_env = _scan(
        "--log", path, "--log-line-prefix", prefix, env={"AUDITOR_LOG_TIMEZONE": "America/New_York"}
    )
    assert from_env.returncode == 0 and from_env.stdout == given.stdout
    alone = _scan("--log", path, "--log-line-prefix", prefix, "--format", "json")
    assert alone.returncode == 0, alone.stderr
    lines = [ln for ln in alone.stderr.splitlines() if "without a known log_timezone" in ln]
    assert len(lines) == 2 and all(ln.startswith(f"auditor: warning: {path}:") for ln in lines)
    assert "no log_timezone known" in alone.stderr
    assert "Traceback" not in alone.stderr


def test_scan_refuses_an_unknown_log_timezone_in_one_line() -> None:
    (path,) = files("ny_fold", "csvlog")
    bad = _scan("--log", path, "--log-timezone", "America/Springfield")
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        "auditor: error: log_timezone 'America/Springfield' is neither a zone of the tz "
        "database nor a POSIX TZ string"
    ]
