"""Every record's per-process line number, to tell whether a log was cut or added to.

PostgreSQL numbers the lines each process writes: stderr's ``%l`` counts
every prefixed physical line (ERROR, DETAIL, CONTEXT, STATEMENT ... each get
one), csvlog's ``session_line_num`` and jsonlog's ``line_num`` count messages
(``pg-facts.md`` section 3).  With the logging collector nothing is lost, so
in file order each session's numbers run 1, 2, 3, ... with no gap and no
repeat.  A removed line leaves a gap; a line written by anyone else than the
server (appended to a csv/json file, or sent through the collector's pipe into
the stderr file) repeats a number, goes backwards, or claims a session it
cannot belong to.

The readers parse only the few records that matter (:mod:`auditor.logs.prefilter`),
so the numbers of all the others are read here in one C-speed regex pass per
window that builds no record: ``findall`` of the session id and the number
(jsonlog: the two keys, which no value can hold unescaped; stderr: the
prefix up to ``%l`` at each line start, which a continuation line never
matches; csvlog: the two columns at each line start, kept only outside quoted
fields).  The sequences are checked with numpy per window and stitched across
windows, pieces and files (:meth:`LineTrack.then`): per session, the first and
last number and the count, and every break found with where it is.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import numpy as np

try:  # Arrow splits and numbers the pairs in C (the pure-Python path does the same)
    import pyarrow as _pa
    import pyarrow.compute as _pc
except ImportError:  # pragma: no cover - depends on the installed wheels
    _pa = None

from auditor.logs.prefix import CompiledPrefix, session_line_regex

_SESSION = rb"[0-9a-f]{1,16}\.[0-9a-f]{1,8}"
_JSON_SEP = b'","line_num":'
_JSON = re.compile(rb'"session_id":"(' + _SESSION + _JSON_SEP + rb"[0-9]{1,18})")
#: A field: the server quotes text; anyone else may not.  ``[^"]*(?:""[^"]*)*`` is
#: ``(?:[^"]|"")*`` unrolled (the same strings, twice as fast in ``re``: one class run
#: instead of an alternation per byte; a test compares both on generated rows).
_Q = rb'(?:"[^"]*(?:""[^"]*)*"|[^,"\n]*)'
_CSV_BODY = (
    rb"[0-9]{4}-[0-9][0-9]-[0-9][0-9] [^,\n]*," + _Q + b"," + _Q + rb',"?[0-9]*"?,' + _Q
    + b',"?(' + _SESSION + rb')"?,"?([0-9]{1,18})"?,'
)  # fmt: skip
_CSV = re.compile(rb"\n" + _CSV_BODY)
_CSV_HEAD = re.compile(_CSV_BODY)

#: Breaks kept per source with their location (more are only counted).
MAX_BREAKS = 200


@dataclass(frozen=True, slots=True)
class Break:
    """A place where a process's line numbers do not run on by one.

    ``kind``: ``gap`` (numbers skipped: lines removed), ``repeat`` (a number
    again: a line added, or the same log read twice), ``back`` (a number lower
    than the one before: a line added).  ``prev`` is the number before (None at
    the start of what was read); ``line`` the number of the record that shows
    the break, at ``offset`` (``phys_line``, ``time`` when known) of ``file``.
    ``boundary``: found where two windows, pieces or files meet (then the
    record's place may be known only roughly).
    """

    file: str
    key: str
    kind: str
    prev: int | None
    line: int
    offset: int | None
    phys_line: int | None = None
    time: datetime | None = None
    prev_file: str | None = None
    boundary: str | None = None


@dataclass
class LineTrack:
    """What a source (or a piece of it) says about its processes' line numbers.

    ``sessions`` maps a key (``%c`` session id, or ``pid:N`` when the prefix has
    only ``%p``) to ``(first, last, count)``; ``firsts`` where the first record of
    each key was seen (byte offset, window) for the breaks found when pieces meet.
    """

    fmt: str
    file: str
    key: str = "c"
    sessions: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    firsts: dict[str, int] = field(default_factory=dict)
    breaks: list[Break] = field(default_factory=list)
    dropped: int = 0
    records: int = 0

    def add_break(self, brk: Break) -> None:
        if len(self.breaks) < MAX_BREAKS:
            self.breaks.append(brk)
        else:
            self.dropped += 1

    def shifted(self, lines: int) -> LineTrack:
        """The same track with its breaks' physical lines moved (a piece counts from 1)."""
        if not lines:
            return self
        out = LineTrack(self.fmt, self.file, self.key, self.sessions, self.firsts)
        out.dropped, out.records = self.dropped, self.records
        out.breaks = [
            b if b.phys_line is None else replace(b, phys_line=b.phys_line + lines)
            for b in self.breaks
        ]
        return out

    def then(self, later: LineTrack, boundary: str) -> LineTrack:
        """This track followed by ``later`` (the next piece or file of the same log)."""
        out = LineTrack(self.fmt, later.file, self.key, dict(self.sessions), dict(self.firsts))
        out.breaks = [*self.breaks]
        out.dropped = self.dropped + later.dropped
        out.records = self.records + later.records
        for key, (first, last, count) in later.sessions.items():
            seen = out.sessions.get(key)
            if seen is None:
                out.sessions[key] = (first, last, count)
                out.firsts.setdefault(key, later.firsts.get(key, 0))
                continue
            expected = seen[1] + 1
            if first != expected and not (self.key == "p" and first == 1):
                out.add_break(
                    Break(
                        later.file,
                        key,
                        _kind(seen[1], first),
                        seen[1],
                        first,
                        later.firsts.get(key),
                        prev_file=self.file,
                        boundary=boundary,
                    )
                )
            out.sessions[key] = (seen[0], last, seen[2] + count)
        for brk in later.breaks:
            out.add_break(brk)
        return out


def _kind(prev: int, line: int) -> str:
    return "gap" if line > prev + 1 else "repeat" if line == prev else "back"


class LineTracker:
    """Reads the line numbers of every record of one source, window by window."""

    def __init__(self, fmt: str, file: str, prefix: CompiledPrefix | None) -> None:
        self.fmt = fmt
        self.head: re.Pattern[bytes] | None = None
        self.body: re.Pattern[bytes] | None = None
        self.positions = fmt == "csvlog"  # quoted fields: each hit's place is checked
        #: The regexes' one group holds key, ``sep`` and number (None: two groups).
        self.sep: bytes | None = None
        key = "c"
        if fmt == "jsonlog":
            self.body, self.sep = _JSON, _JSON_SEP
        elif fmt == "csvlog":
            self.head, self.body = _CSV_HEAD, _CSV
        elif fmt == "stderr" and prefix is not None:  # cnpg's JSON: not tracked yet
            found = session_line_regex(prefix.text, joint=True)
            if found is not None:
                self.sep = b" "
            else:
                found = session_line_regex(prefix.text)
            if found is not None:
                rx, key = found
                self.head = re.compile(rx)
                self.body = re.compile(b"\n" + rx)
        self.track = LineTrack(fmt, file, key)
        self._last: dict[str, int] = {}

    @property
    def enabled(self) -> bool:
        return self.body is not None

    def feed(
        self,
        buf: bytes,
        end: int,
        base_offset: int,
        base_line: int,
        when: Callable[[bytes, int], datetime | None],
    ) -> None:
        """Read the records of ``buf[:end]`` (which starts at a record boundary)."""
        if self.body is None or end <= 0:
            return
        inv, names, lines, where = self._columns(buf, end)
        n = len(inv)
        if not n:
            return
        track = self.track
        track.records += n
        order = np.argsort(inv, kind="stable")
        grouped = inv[order]
        sorted_lines = lines[order]
        starts = np.flatnonzero(np.r_[True, grouped[1:] != grouped[:-1]])
        ends = np.r_[starts[1:], len(grouped)] - 1
        step = np.diff(sorted_lines)
        same = grouped[1:] == grouped[:-1]
        by_pid = track.key == "p"
        bad = same & (step != 1)
        if by_pid:
            bad &= sorted_lines[1:] != 1  # a new process with a reused pid starts at 1
        located: list[int] | None = where

        def place(index: int) -> tuple[int, int, datetime | None]:
            nonlocal located
            if located is None:
                located = self._positions(buf, end)
            pos = located[index] if index < len(located) else 0
            ls = buf.rfind(b"\n", 0, pos) + 1  # the record's line
            return base_offset + ls, base_line + buf.count(b"\n", 0, ls), when(buf, ls)

        for b in np.flatnonzero(bad)[: MAX_BREAKS + 1].tolist():
            prev, line = int(sorted_lines[b]), int(sorted_lines[b + 1])
            offset, phys, t = place(int(order[b + 1]))
            key = names[int(grouped[b])]
            track.add_break(Break(track.file, key, _kind(prev, line), prev, line, offset, phys, t))
        sessions = track.sessions
        for j, name in enumerate(names):
            first = int(sorted_lines[starts[j]])
            last = int(sorted_lines[ends[j]])
            count = int(ends[j] - starts[j] + 1)
            seen = sessions.get(name)
            if seen is None:
                sessions[name] = (first, last, count)
                if where is not None:
                    track.firsts[name] = base_offset + where[int(order[starts[j]])]
                else:
                    track.firsts[name] = base_offset
                continue
            if first != seen[1] + 1 and not (by_pid and first == 1):
                offset, phys, t = place(int(order[starts[j]]))
                track.add_break(
                    Break(track.file, name, _kind(seen[1], first), seen[1], first, offset, phys, t)
                )
            sessions[name] = (seen[0], last, seen[2] + count)

    def _columns(self, buf: bytes, end: int) -> tuple[Any, list[str], Any, list[int] | None]:
        """Per record of a window, in file order: its key's code (keys numbered in order of
        first appearance), the keys by code, the line numbers and, for csvlog, where each
        record starts."""
        if not self.positions and self.sep is not None and _pa is not None:
            found = self.body.findall(buf, 0, end) if self.body is not None else []
            if self.head is not None:
                m = self.head.match(buf, 0, end)
                if m is not None:
                    found.insert(0, m.group(1))
            return (*_split_pairs(found, self.sep), None)
        keys, nums, where = self._extract(buf, end)
        n = len(keys)
        lines = np.fromiter(map(int, nums), dtype=np.int64, count=n)
        codes: dict[bytes, int] = {}
        add = codes.setdefault
        inv = np.fromiter((add(k, len(codes)) for k in keys), dtype=np.int64, count=n)
        names = [u.decode("ascii", "replace") for u in codes]  # code order
        return inv, names, lines, where

    def _extract(self, buf: bytes, end: int) -> tuple[tuple[Any, ...], tuple[Any, ...], Any]:
        """Keys, numbers (as bytes) and, for csvlog, the places of the records of a window."""
        assert self.body is not None
        if not self.positions and self.sep is not None:
            found = self.body.findall(buf, 0, end)
            if self.head is not None:
                m = self.head.match(buf, 0, end)
                if m is not None:
                    found.insert(0, m.group(1))
            if not found:
                return (), (), None
            parts = self.sep.join(found).split(self.sep)  # the key holds no separator
            return tuple(parts[0::2]), tuple(parts[1::2]), None
        if not self.positions:
            pairs = self.body.findall(buf, 0, end)
            if self.head is not None:
                m = self.head.match(buf, 0, end)
                if m is not None:
                    pairs.insert(0, (m.group(1), m.group(2)))
            if not pairs:
                return (), (), None
            keys, nums = zip(*pairs, strict=True)
            return keys, nums, None
        hits: list[tuple[int, bytes, bytes]] = []
        if self.head is not None:
            m = self.head.match(buf, 0, end)
            if m is not None:
                hits.append((0, m.group(1), m.group(2)))
        hits.extend(
            (m.start() + 1, m.group(1), m.group(2)) for m in self.body.finditer(buf, 0, end)
        )
        if not hits:
            return (), (), None
        places = np.array([h[0] for h in hits], dtype=np.int64)
        quotes = np.flatnonzero(np.frombuffer(buf, dtype=np.uint8, count=end) == 34)
        # A line start is a row start only outside quoted fields: after an even number
        # of quotes since the window's start (a row boundary).
        outside = (np.searchsorted(quotes, places) % 2 == 0).tolist()
        kept = [h for h, ok in zip(hits, outside, strict=True) if ok]
        if not kept:
            return (), (), None
        where, keys, nums = zip(*kept, strict=True)
        return keys, nums, list(where)

    def _positions(self, buf: bytes, end: int) -> list[int]:
        """Where each record's match starts (only when a break needs a place)."""
        assert self.body is not None
        out: list[int] = []
        if self.head is not None and self.head.match(buf, 0, end) is not None:
            out.append(0)
        shift = 1 if self.head is not None else 0
        out.extend(m.start() + shift for m in self.body.finditer(buf, 0, end))
        return out


def _split_pairs(found: list[bytes], sep: bytes) -> tuple[Any, list[str], Any]:
    """``key + sep + number`` strings as :meth:`LineTracker._columns` returns them, by Arrow:
    codes in order of first appearance (``dictionary_encode`` numbers values so), the
    keys (decoded as ASCII, as the Python path does), the numbers.

    >>> codes, names, lines = _split_pairs([b"a.1 7", b"b.2 1", b"a.1 8"], b" ")
    >>> codes.tolist(), names, lines.tolist()
    ([0, 1, 0], ['a.1', 'b.2'], [7, 1, 8])
    """
    assert _pa is not None
    if not found:
        return np.zeros(0, dtype=np.int64), [], np.zeros(0, dtype=np.int64)
    parts = _pc.split_pattern(_pa.array(found, _pa.binary()), sep, max_splits=1)
    keys = _pc.dictionary_encode(_pc.list_element(parts, 0))
    # The numbers are 1 to 18 digits (the regexes say so): int64, as int() reads them.
    nums = _pc.cast(_pc.cast(_pc.list_element(parts, 1), _pa.string()), _pa.int64())
    names = [k.decode("ascii", "replace") for k in keys.dictionary.to_pylist()]
    return keys.indices.to_numpy().astype(np.int64), names, nums.to_numpy()
