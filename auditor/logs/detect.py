"""Tell a log's format and ``log_line_prefix`` from its first bytes.

The format is read from the content, not the name: a jsonlog line is a JSON
object with a ``timestamp``, a csvlog record is a CSV row of 22+ columns that
starts with a timestamp, anything else is stderr.  For stderr the prefix is
best taken from the server (``SHOW log_line_prefix``) or the command line;
otherwise the common prefixes of :data:`~auditor.logs.prefix.COMMON_PREFIXES`
are tried on the first lines and the one that reads the most lines wins.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from datetime import datetime

import orjson

from auditor.logs.prefix import COMMON_PREFIXES, CompiledPrefix, compile_prefix
from auditor.logs.times import parse_time

_CSV_START = re.compile(rb"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)? [^,\n]*,")
_TIMESTAMP = re.compile(rb"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?(?: [A-Za-z0-9+-]+)?")


def _first_lines(head: bytes, count: int) -> list[bytes]:
    lines = head.split(b"\n")
    if len(lines) > 1:
        lines = lines[:-1]  # the last piece may be cut in the middle
    return [ln for ln in lines if ln.strip()][:count]


def detect_format(head: bytes, hint: str | None = None) -> str:
    """``stderr``, ``csvlog`` or ``jsonlog`` from the first bytes of a log.

    >>> detect_format(b'{"timestamp":"2026-11-26 03:15:04.434 UTC","pid":1}\\n')
    'jsonlog'
    >>> detect_format(b"2026-11-26 03:15:04.434 UTC [9798] LOG:  starting\\n")
    'stderr'
    >>> detect_format(b"", "csvlog")
    'csvlog'
    """
    lines = _first_lines(head, 5)
    if not lines:
        return hint or "stderr"
    first = lines[0].lstrip(b"\xef\xbb\xbf")
    if first.startswith(b"{"):
        try:
            obj = orjson.loads(first)
        except orjson.JSONDecodeError:
            obj = None
        if isinstance(obj, dict) and ("timestamp" in obj or "error_severity" in obj):
            return "jsonlog"
    if _CSV_START.match(first):
        text = head.decode("utf-8", "replace")
        try:
            row = next(csv.reader(io.StringIO(text)))
        except (csv.Error, StopIteration):
            row = []
        if len(row) >= 22:
            return "csvlog"
    return "stderr"


def first_time(head: bytes, fmt: str, log_timezone: str | None = None) -> datetime | None:
    """The time of the first record, to order rotated files (None if it cannot be placed)."""
    for line in _first_lines(head, 20):
        if fmt == "jsonlog":
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if isinstance(obj, dict) and isinstance(obj.get("timestamp"), str):
                return parse_time(obj["timestamp"], log_timezone)
            continue
        m = _TIMESTAMP.search(line[:200])
        if m:
            return parse_time(m.group().decode("ascii", "replace"), log_timezone)
    return None


def prefix_score(prefix: CompiledPrefix, lines: Sequence[bytes]) -> int:
    """How many of the (non-continuation) lines the prefix reads."""
    return sum(1 for ln in lines if not ln.startswith(b"\t") and prefix.match(ln) is not None)


def detect_prefix(
    head: bytes, candidates: Sequence[str] = COMMON_PREFIXES
) -> tuple[CompiledPrefix | None, bytes | None]:
    """The candidate prefix that reads the most of the first lines.

    Returns ``(prefix, None)``, or ``(None, first_line)`` when none reads a line.

    >>> p, _ = detect_prefix(b"2026-11-26 03:15:04.434 UTC [9798] LOG:  starting\\n")
    >>> p.text
    '%m [%p] '
    """
    lines = [ln for ln in _first_lines(head, 200) if not ln.startswith(b"\t")]
    if not lines:
        return compile_prefix(candidates[0]), None
    best: tuple[int, int, CompiledPrefix] | None = None
    for index, text in enumerate(candidates):
        compiled = compile_prefix(text)
        score = prefix_score(compiled, lines)
        key = (score, -index)  # on a tie the earlier (more common) prefix wins
        if score and (best is None or key > best[:2]):
            best = (score, -index, compiled)
    if best is None:
        return None, lines[0]
    return best[2], None
