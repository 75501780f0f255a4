"""Log times as instants: what ``%m``/``%t``/``%n``, csvlog and jsonlog print, on the time line.

PostgreSQL prints ``%m``, ``%t``, csvlog ``log_time``/``session_start_time`` and
jsonlog ``timestamp``/``session_start`` as a wall-clock time in ``log_timezone``
followed by that zone's abbreviation (``pg_strftime``'s ``%Z``): ``EST``/``EDT``,
``CET``/``CEST``, ``MSK``, ``IST``, or a number where the tz database has no
name (``+0545``, ``-03``, Lord Howe's ``+1030``/``+11``).  An abbreviation alone
is not an offset: ``IST`` is +05:30 in Kolkata, +01:00 in Dublin and +02:00 in
Jerusalem, and with the POSIX zone ``UTC+3`` the server prints ``UTC`` for a
time three hours behind UTC.  So a printed time is placed through the zone:

1. the zone known (``--log-timezone``, or the server's ``SHOW log_timezone``):
   the instant at which that zone shows this wall time with this
   abbreviation.  The repeated hour of a DST change is settled by the
   abbreviation (``01:30 EDT`` is four hours behind UTC, ``01:30 EST`` five);
2. a numeric abbreviation, ``UTC`` or ``GMT`` that the zone (if known) does not
   use at that time: that offset;
3. otherwise the abbreviation alone, when the tz database gives it exactly one
   UTC offset around that date: placed there, with a warning that says so;
4. otherwise the time is not placed: the record keeps every other field, its
   time is None, and a warning says why.

``%n`` is seconds since the epoch and needs none of this.  Resolution is
cached per distinct (second, abbreviation) text: a night's log holds a
million records but only tens of thousands of distinct seconds, so a record
costs one dictionary look-up and a ``replace(microsecond=...)``.
"""

from __future__ import annotations

import os
import re
import struct
import zoneinfo
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from functools import lru_cache
from importlib import resources

from auditor.errors import ConfigError

#: Abbreviations that name UTC itself (``-00`` is the tz database's "Factory" zone).
_UTC_NAMES = frozenset({"UTC", "GMT", "UCT", "UT", "Z", "-00", "+00", "-0000", "+0000"})
_NUMERIC = re.compile(r"([+-])(\d\d)(?::?(\d\d))?(?::?(\d\d))?")
_WALL = re.compile(r"(\d{4})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)")
_POSIX_NAME = r"<[A-Za-z0-9+-]+>|[A-Za-z]{3,}"
_POSIX_OFFSET = r"[+-]?\d{1,3}(?::\d{1,2}){0,2}"
_POSIX = re.compile(
    rf"(?P<std>{_POSIX_NAME})(?P<soff>{_POSIX_OFFSET})"
    rf"(?:(?P<dst>{_POSIX_NAME})(?P<doff>{_POSIX_OFFSET})?(?:,.*)?)?"
)
#: Entries of a clock's per-second cache before it starts again (a day has 86,400 seconds).
_CACHE_MAX = 200_000


@dataclass(frozen=True, slots=True)
class TimeIssue:
    """Why a printed time was not placed exactly; ``cause`` is the same for every
    record with the same problem in a file (one warning per file and cause)."""

    cause: str
    message: str


def utc_label(offset: timedelta) -> str:
    """``UTC+05:45``, ``UTC-03:00``, ``UTC``.

    >>> [utc_label(timedelta(hours=h)) for h in (5.75, -3, 0)]
    ['UTC+05:45', 'UTC-03:00', 'UTC']
    """
    seconds = int(offset.total_seconds())
    if seconds == 0:
        return "UTC"
    sign = "-" if seconds < 0 else "+"
    h, rest = divmod(abs(seconds), 3600)
    m, s = divmod(rest, 60)
    return f"UTC{sign}{h:02d}:{m:02d}" + (f":{s:02d}" if s else "")


def numeric_offset(abbr: str) -> timedelta | None:
    """The offset an abbreviation states by itself (``+0545``, ``-03``, ``+05:30``, ``UTC``).

    >>> [utc_label(numeric_offset(a)) for a in ("+0545", "-03", "+05:30", "GMT")]
    ['UTC+05:45', 'UTC-03:00', 'UTC+05:30', 'UTC']
    >>> numeric_offset("EST") is None
    True
    """
    if abbr in _UTC_NAMES:
        return timedelta(0)
    m = _NUMERIC.fullmatch(abbr)
    if m is None:
        return None
    sign = -1 if m.group(1) == "-" else 1
    hours, minutes, seconds = int(m.group(2)), int(m.group(3) or 0), int(m.group(4) or 0)
    if hours > 24 or minutes > 59 or seconds > 59:
        return None
    return sign * timedelta(hours=hours, minutes=minutes, seconds=seconds)


# -- zones -------------------------------------------------------------------------------


class Zone:
    """A ``log_timezone``: which UTC offsets show a wall time with an abbreviation."""

    name: str

    def offsets(self, wall: datetime, abbr: str) -> list[timedelta]:
        """The offsets at which this zone shows ``wall`` (naive) as ``abbr``."""
        raise NotImplementedError


class IanaZone(Zone):
    """A zone of the tz database, through :mod:`zoneinfo`."""

    def __init__(self, name: str, zone: zoneinfo.ZoneInfo) -> None:
        self.name = name
        self.zone = zone

    def offsets(self, wall: datetime, abbr: str) -> list[timedelta]:
        out: list[timedelta] = []
        for fold in (0, 1):
            local = wall.replace(tzinfo=self.zone, fold=fold)
            if local.tzname() != abbr:
                continue
            off = local.utcoffset()
            if off is None or off in out:
                continue
            # A wall time skipped by a change to DST is not one the zone shows.
            back = (wall - off).replace(tzinfo=UTC).astimezone(self.zone)
            if back.replace(tzinfo=None) == wall and back.tzname() == abbr:
                out.append(off)
        return out


class PosixZone(Zone):
    """A POSIX TZ string such as ``UTC+3`` or ``<+0545>-5:45`` (PostgreSQL accepts
    them as ``log_timezone``): the abbreviation alone says standard or DST time."""

    def __init__(self, name: str, std: str, std_offset: timedelta, dst: str | None,
                 dst_offset: timedelta | None) -> None:  # fmt: skip
        self.name = name
        self.std, self.std_offset, self.dst, self.dst_offset = std, std_offset, dst, dst_offset

    def offsets(self, wall: datetime, abbr: str) -> list[timedelta]:
        out = []
        if abbr == self.std:
            out.append(self.std_offset)
        if abbr == self.dst and self.dst_offset is not None and self.dst_offset not in out:
            out.append(self.dst_offset)
        return out


def _posix_offset(text: str) -> timedelta:
    """A POSIX TZ offset: hours west of UTC, so ``5`` is UTC-05:00 and ``-5:45`` UTC+05:45."""
    sign = -1
    if text[0] in "+-":
        sign = 1 if text[0] == "-" else -1
        text = text[1:]
    parts = [int(p) for p in text.split(":")] + [0, 0]
    return sign * timedelta(hours=parts[0], minutes=parts[1], seconds=parts[2])


def parse_posix(text: str) -> PosixZone | None:
    """A POSIX TZ string (``EST5EDT,M3.2.0,M11.1.0``, ``UTC+3``, ``<+1030>-10:30<+11>-11,...``).

    >>> z = parse_posix("UTC+3")
    >>> z.std, utc_label(z.std_offset), z.dst
    ('UTC', 'UTC-03:00', None)
    >>> z = parse_posix("<+1030>-10:30<+11>-11,M10.1.0,M4.1.0")
    >>> z.std, utc_label(z.std_offset), z.dst, utc_label(z.dst_offset)
    ('+1030', 'UTC+10:30', '+11', 'UTC+11:00')
    >>> utc_label(parse_posix("CET-1CEST,M3.5.0,M10.5.0/3").dst_offset)
    'UTC+02:00'
    >>> parse_posix("America/New_York") is None
    True
    """
    m = _POSIX.fullmatch(text)
    if m is None:
        return None
    std = m["std"].strip("<>")
    std_offset = _posix_offset(m["soff"])
    dst = m["dst"].strip("<>") if m["dst"] else None
    dst_offset = None
    if dst is not None:
        dst_offset = _posix_offset(m["doff"]) if m["doff"] else std_offset + timedelta(hours=1)
    return PosixZone(text, std, std_offset, dst, dst_offset)


@lru_cache(maxsize=64)
def load_zone(name: str) -> Zone:
    """The zone a ``log_timezone`` value names; ConfigError if the tz database has none.

    >>> load_zone("Asia/Kathmandu").name, load_zone("UTC+3").name
    ('Asia/Kathmandu', 'UTC+3')
    >>> load_zone("Mars/Olympus")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    auditor.errors.ConfigError: log_timezone 'Mars/Olympus' is neither a zone of the tz database...
    """
    try:
        return IanaZone(name, zoneinfo.ZoneInfo(name))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        pass
    posix = parse_posix(name)
    if posix is not None:
        return posix
    raise ConfigError(
        f"log_timezone {name!r} is neither a zone of the tz database nor a POSIX TZ string"
    )


# -- the tz database, for abbreviations read without a zone ----------------------------------

_FOREVER = 1 << 62


def zone_names() -> list[str]:
    """Every zone of the tz database this machine has (as :mod:`zoneinfo` finds them)."""
    return sorted(
        n for n in zoneinfo.available_timezones() if not n.startswith(("posix/", "right/"))
    )


def zone_file(name: str) -> bytes | None:
    """The compiled (TZif) file of a zone, where :mod:`zoneinfo` would read it."""
    for base in zoneinfo.TZPATH:
        path = os.path.join(base, name)
        if os.path.isfile(path):
            try:
                with open(path, "rb") as fh:
                    return fh.read()
            except OSError:
                return None
    try:
        return resources.files("tzdata.zoneinfo").joinpath(name).read_bytes()
    except (ModuleNotFoundError, OSError):
        return None


def _zone_files() -> Iterator[bytes]:
    for name in zone_names():
        data = zone_file(name)
        if data is not None:
            yield data


def tzif_periods(data: bytes) -> list[tuple[int, int, int, str]]:
    """``(start, end, utc offset in seconds, abbreviation)`` of one TZif file (RFC 8536),
    the footer's standard and DST time included from the last transition on."""
    if data[:4] != b"TZif" or len(data) < 44:
        return []
    version = data[4]

    def counts(pos: int) -> tuple[int, ...]:
        return struct.unpack(">6l", data[pos + 20 : pos + 44])

    isut, isstd, leap, timecnt, typecnt, charcnt = counts(0)
    pos, size, code = 44, 4, "l"
    if version >= ord("2"):
        pos += timecnt * 5 + typecnt * 6 + charcnt + leap * 8 + isstd + isut
        isut, isstd, leap, timecnt, typecnt, charcnt = counts(pos)
        pos, size, code = pos + 44, 8, "q"
    times = struct.unpack(f">{timecnt}{code}", data[pos : pos + timecnt * size])
    pos += timecnt * size
    kinds = data[pos : pos + timecnt]
    pos += timecnt
    types = [struct.unpack(">lBB", data[pos + 6 * i : pos + 6 * i + 6]) for i in range(typecnt)]
    pos += typecnt * 6
    chars = data[pos : pos + charcnt]
    pos += charcnt + leap * (size + 4) + isstd + isut
    if not types:
        return []

    def abbr(i: int) -> str:
        end = chars.find(b"\0", i)
        return chars[i : end if end >= 0 else len(chars)].decode("ascii", "replace")

    periods = []
    start = -_FOREVER
    current = types[0]
    for t, k in zip(times, kinds, strict=False):
        periods.append((start, t, current[0], abbr(current[2])))
        start, current = t, types[k]
    periods.append((start, _FOREVER, current[0], abbr(current[2])))
    footer = data[pos:].strip(b"\n").decode("ascii", "replace") if version >= ord("2") else ""
    posix = parse_posix(footer) if footer else None
    if posix is not None:
        periods.append((start, _FOREVER, int(posix.std_offset.total_seconds()), posix.std))
        if posix.dst is not None and posix.dst_offset is not None:
            periods.append((start, _FOREVER, int(posix.dst_offset.total_seconds()), posix.dst))
    return periods


@lru_cache(maxsize=1)
def _abbreviation_index() -> dict[str, list[tuple[int, int, int]]]:
    index: dict[str, list[tuple[int, int, int]]] = {}
    for data in _zone_files():
        for start, end, offset, abbr in tzif_periods(data):
            index.setdefault(abbr, []).append((start, end, offset))
    return index


@lru_cache(maxsize=4096)
def tzdb_offsets(abbr: str, year: int) -> tuple[timedelta, ...]:
    """The UTC offsets any zone of the tz database gives ``abbr`` in ``year`` (a day either side).

    >>> [[utc_label(o) for o in tzdb_offsets(a, 2026)] for a in ("EST", "CEST", "MSK")]
    [['UTC-05:00'], ['UTC+02:00'], ['UTC+03:00']]
    >>> sorted(utc_label(o) for o in tzdb_offsets("IST", 2026))
    ['UTC+01:00', 'UTC+02:00', 'UTC+05:30']
    >>> tzdb_offsets("XYZT", 2026)
    ()
    """
    lo = int(datetime(year, 1, 1, tzinfo=UTC).timestamp()) - 86400
    hi = int(datetime(year + 1, 1, 1, tzinfo=UTC).timestamp()) + 86400
    found = {
        off for start, end, off in _abbreviation_index().get(abbr, ()) if start < hi and end > lo
    }
    return tuple(timedelta(seconds=s) for s in sorted(found, reverse=True))


# -- placing one printed time ----------------------------------------------------------------


def _labels(offsets: tuple[timedelta, ...] | list[timedelta]) -> str:
    labels = [utc_label(o) for o in offsets]
    return ", ".join(labels[:-1]) + " or " + labels[-1] if len(labels) > 1 else labels[0]


def resolve(
    wall: datetime, abbr: str, zone: Zone | None
) -> tuple[datetime | None, TimeIssue | None]:
    """The instant a server printed as ``wall`` (naive) and ``abbr``, in ``zone`` if known.

    The fold of a DST change is settled by the abbreviation:

    >>> ny = load_zone("America/New_York")
    >>> resolve(datetime(2026, 11, 1, 1, 30), "EDT", ny)[0].isoformat()
    '2026-11-01T01:30:00-04:00'
    >>> resolve(datetime(2026, 11, 1, 1, 30), "EST", ny)[0].isoformat()
    '2026-11-01T01:30:00-05:00'

    Numeric abbreviations (zones the tz database gives no name) and half-hour zones:

    >>> resolve(datetime(2026, 11, 26, 9, 0), "+0545", load_zone("Asia/Kathmandu"))[0].isoformat()
    '2026-11-26T09:00:00+05:45'
    >>> resolve(datetime(2026, 11, 26, 9, 0), "IST", load_zone("Asia/Kolkata"))[0].isoformat()
    '2026-11-26T09:00:00+05:30'
    >>> resolve(datetime(2026, 7, 1, 12, 0), "IST", load_zone("Europe/Dublin"))[0].isoformat()
    '2026-07-01T12:00:00+01:00'

    The POSIX zone ``UTC+3`` prints ``UTC`` for a time three hours behind UTC:

    >>> resolve(datetime(2026, 12, 3, 6, 11), "UTC", load_zone("UTC+3"))[0].isoformat()
    '2026-12-03T06:11:00-03:00'

    Without a zone, an abbreviation that has one offset in the tz database is
    placed (with an issue to warn about); one with several is not:

    >>> t, issue = resolve(datetime(2026, 11, 26, 9, 0), "CET", None)
    >>> t.isoformat(), issue.cause
    ('2026-11-26T09:00:00+01:00', 'abbreviation CET placed without log_timezone')
    >>> t, issue = resolve(datetime(2026, 11, 26, 9, 0), "IST", None)
    >>> t, issue.cause
    (None, 'abbreviation IST cannot be placed')
    """
    if zone is not None:
        offsets = zone.offsets(wall, abbr)
        if len(offsets) == 1:
            return wall.replace(tzinfo=_fixed(offsets[0])), None
        if len(offsets) > 1:
            return None, TimeIssue(
                f"abbreviation {abbr} repeated in {zone.name}",
                f"{zone.name} shows this wall time twice as {abbr!r} ({_labels(offsets)}): "
                "the record's time is left out",
            )
    fixed = numeric_offset(abbr)
    if fixed is not None:
        return wall.replace(tzinfo=_fixed(fixed)), None
    candidates = tzdb_offsets(abbr, wall.year)
    if zone is not None:
        why = f"{zone.name} (log_timezone) does not show {abbr!r} at this time"
        hint = "was log_timezone different when this was written?"
        cause = f"abbreviation {abbr} not of {zone.name}"
    else:
        why = f"time zone abbreviation {abbr!r} read without a known log_timezone"
        hint = "give --log-timezone, or --dsn to ask the server"
        cause = f"abbreviation {abbr} placed without log_timezone"
    if len(candidates) == 1:
        return wall.replace(tzinfo=_fixed(candidates[0])), TimeIssue(
            cause,
            f"{why}: placed at {utc_label(candidates[0])}, the only offset the tz database "
            f"gives {abbr!r} in {wall.year} ({hint})",
        )
    if zone is None:
        cause = f"abbreviation {abbr} cannot be placed"
    if candidates:
        means = f"the tz database gives {abbr!r} {len(candidates)} offsets in {wall.year}: "
        means += _labels(candidates)
    else:
        means = f"no zone of the tz database uses {abbr!r} in {wall.year}"
    return None, TimeIssue(cause, f"{why} and {means}: the record's time is left out ({hint})")


@lru_cache(maxsize=512)
def _fixed(offset: timedelta) -> tzinfo:
    return UTC if not offset else timezone(offset)


# -- the per-file clock ----------------------------------------------------------------------


class LogClock:
    """Places the times one log prints (cached per (second, abbreviation) text).

    >>> clock = LogClock("America/New_York")
    >>> t, issue = clock.parse("2026-11-01 01:59:59.999 EDT")
    >>> t.isoformat(), issue
    ('2026-11-01T01:59:59.999000-04:00', None)
    >>> clock.parse("2026-11-01 01:00:00.001 EST")[0].astimezone(UTC).isoformat()
    '2026-11-01T06:00:00.001000+00:00'
    >>> clock.parse("garbage")
    (None, None)
    """

    def __init__(self, zone: str | None = None) -> None:
        self.zone_name = zone
        self.zone = load_zone(zone) if zone else None
        self._seconds: dict[str, tuple[datetime | None, TimeIssue | None]] = {}

    def parse(self, text: str) -> tuple[datetime | None, TimeIssue | None]:
        """``(instant, issue)``; ``(None, None)`` for text that is not a server time."""
        if len(text) > 20 and text[19] == ".":
            space = text.find(" ", 20)
            if space < 0:
                frac, key = text[20:], text[:19]
            else:
                frac, key = text[20:space], text[:19] + text[space:]
        else:
            frac, key = "", text
        got = self._seconds.get(key)
        if got is None:
            got = self._second(key)
        if frac and got[0] is not None:
            if not frac.isdigit():
                return None, None
            return got[0].replace(microsecond=int((frac + "00000")[:6])), got[1]
        return got

    def instant(self, text: str) -> datetime | None:
        """The instant alone (file statistics, ordering rotated files)."""
        return self.parse(text)[0]

    def _second(self, key: str) -> tuple[datetime | None, TimeIssue | None]:
        text = key.strip()
        m = _WALL.match(text)
        got: tuple[datetime | None, TimeIssue | None] = (None, None)
        if m is not None:
            y, mo, d, h, mi, s = (int(g) for g in m.groups())
            abbr = text[m.end() :].strip()
            try:
                wall = datetime(y, mo, d, h, mi, s)
            except ValueError:  # not a time (month 13): not a server time
                wall = None
            if wall is not None and abbr:  # PostgreSQL always prints the abbreviation
                got = resolve(wall, abbr, self.zone)
        if len(self._seconds) >= _CACHE_MAX:
            self._seconds.clear()
        self._seconds[key] = got
        return got


def parse_epoch(text: str) -> datetime | None:
    """``%n``: seconds since the epoch with milliseconds (an instant already).

    >>> parse_epoch("1795756521.505").isoformat()
    '2026-11-27T05:15:21.505000+00:00'
    """
    secs, _, frac = text.strip().partition(".")
    try:
        dt = datetime.fromtimestamp(int(secs), tz=UTC)
        return dt.replace(microsecond=int((frac + "000000")[:6])) if frac else dt
    except (ValueError, OverflowError, OSError):
        return None


def parse_time(text: str, zone: str | None = None) -> datetime | None:
    """One server time as an instant, or None (no warning: see :class:`LogClock`).

    >>> parse_time("2026-11-26 03:15:21.505 UTC")
    datetime.datetime(2026, 11, 26, 3, 15, 21, 505000, tzinfo=datetime.timezone.utc)
    >>> parse_time("2026-11-26 04:15:21 +01").utcoffset()
    datetime.timedelta(seconds=3600)
    >>> parse_time("2026-11-26 03:15:21 IST") is None  # Kolkata, Dublin or Jerusalem?
    True
    """
    return _clock(zone).instant(text)


@lru_cache(maxsize=16)
def _clock(zone: str | None) -> LogClock:
    return LogClock(zone)


def pick_log_timezone(given: str | None, server: str | None) -> tuple[str | None, list[str]]:
    """The zone log times are placed in, and notes about the choice.

    One given by the user (``--log-timezone``, ``AUDITOR_LOG_TIMEZONE``,
    ``log_timezone:``) wins over the server's ``SHOW log_timezone``, as an
    explicit ``--log-line-prefix`` does: it can describe logs written before
    the setting changed.  A given name the tz database does not know is a
    ConfigError; a server's is a note, and times are then placed by their
    abbreviation alone.

    >>> pick_log_timezone(None, "Europe/Berlin")
    ('Europe/Berlin', [])
    >>> pick_log_timezone("UTC", "Europe/Berlin")[1]
    ["log times are placed in log_timezone 'UTC' as given; the server's is 'Europe/Berlin'"]
    >>> zone, notes = pick_log_timezone(None, "Nowhere/Land")
    >>> zone, notes[0][:60]
    (None, "the server's log_timezone 'Nowhere/Land' is not in this mach")
    """
    notes: list[str] = []
    if given:
        load_zone(given)
        if server and server != given:
            notes.append(
                f"log times are placed in log_timezone {given!r} as given; "
                f"the server's is {server!r}"
            )
        return given, notes
    if server:
        try:
            load_zone(server)
        except ConfigError:
            notes.append(
                f"the server's log_timezone {server!r} is not in this machine's tz database: "
                "log times are placed by their abbreviation alone (give --log-timezone)"
            )
            return None, notes
        return server, notes
    return None, notes


def wall_clock_zone(name: str | None) -> tzinfo | None:
    """The tzinfo a time typed without an offset (``--since 2026-11-25``) is read in:
    the log's zone when known and it has one, else None (this machine's zone).

    >>> wall_clock_zone("America/New_York"), wall_clock_zone(None)
    (zoneinfo.ZoneInfo(key='America/New_York'), None)
    >>> datetime(2026, 12, 3, 6, 11, tzinfo=wall_clock_zone("UTC+3")).isoformat()
    '2026-12-03T06:11:00-03:00'
    """
    if not name:
        return None
    zone = load_zone(name)
    if isinstance(zone, IanaZone):
        return zone.zone
    if isinstance(zone, PosixZone) and zone.dst is None:
        return _fixed(zone.std_offset)
    return None
