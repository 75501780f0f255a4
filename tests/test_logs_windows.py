"""Records do not depend on where the reader's window boundaries fall.

The readers read a file in windows (16 MB); a record cut by a window's end is
carried to the next window.  ``bench/reconcile`` found a stderr record split
wrongly when the boundary fell inside the prefix of its CONTEXT line: the LOG
line was taken as a whole record and the CONTEXT line reported as unreadable.
Here every window size that puts a boundary inside a multi-line record of a
real server log (the ``workload`` fixture) must give the records of one big
window, and no warning.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from logs_helpers import files, meta

from auditor.logs.reader import SourceRead
from auditor.logs.sources import open_sources
from auditor.model import LogRecord, ReadWarning


def _read(path: str, fmt: str, window: int) -> tuple[list[tuple[object, ...]], list[str]]:
    (src,) = open_sources([path], dsn=None, fmt=fmt)
    prefix = meta("workload")["log_line_prefix"] if fmt == "stderr" else None
    items = list(SourceRead(src, fmt=fmt, prefix=prefix, window=window))
    records = [
        (r.source.line, r.kind, r.message, r.context, r.statement)
        for r in items
        if isinstance(r, LogRecord)
    ]
    return records, [str(w) for w in items if isinstance(w, ReadWarning)]


@pytest.mark.parametrize("fmt", ["stderr", "csvlog", "jsonlog"])
def test_window_boundaries_inside_multiline_records(fmt: str) -> None:
    path = files("workload", fmt)[0]
    data = Path(path).read_bytes()
    whole, warnings = _read(path, fmt, len(data) + 1)
    assert whole and not warnings
    # Boundaries in and around the first records with a CONTEXT line (markers).
    needle = {"stderr": b"CONTEXT:  ", "csvlog": b'"PL/pgSQL', "jsonlog": b'"context":'}[fmt]
    at = data.find(needle)
    assert at > 0
    start = data.rfind(b"\n", 0, data.rfind(b"\n", 0, at)) + 1
    for window in range(max(1, start - 20), min(len(data), at + 200)):
        got, warned = _read(path, fmt, window)
        assert (got, warned) == (whole, []), window
