"""csvlog windows as Arrow batches: boundaries by quote parity in numpy, hit rows by pyarrow.

What the row reader (:class:`auditor.logs.csvlog.CsvlogReader` driven by
:func:`auditor.logs.reader.scan_window`) does per hit, this does per window:

* record boundaries: a newline ends a record exactly when the number of quotes
  before it in the window is even (numpy over the whole window);
* the records holding a token hit (the same :class:`~auditor.logs.prefilter.Finder`
  events) are cut out, joined and read by ``pyarrow.csv`` into string columns in
  one call;
* each of those rows becomes a :class:`~auditor.model.LogRecord` through the same
  :func:`~auditor.logs.message.build_record` with the same arguments, so kinds,
  classification and the shared strings are the row reader's.

Any window the row reader would treat specially (see :mod:`auditor.logs.columnar`)
returns None and is read by the row reader.
"""

from __future__ import annotations

import io
import re
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from auditor.logs.columnar import WINDOWS
from auditor.logs.csvlog import (
    _COLUMN_COUNTS,
    _RESYNC_AFTER,
    ROW_START,
    CsvlogReader,
    _int,
    raw_fields,
)
from auditor.logs.message import build_record, split_host_port
from auditor.logs.prefilter import HIT, ODD_LINE
from auditor.logs.reader import _last_time, _Window
from auditor.model import LogRecord, MessageKind, ReadWarning, SourceLocation

#: One row as PostgreSQL writes it: fields quoted with doubled quotes inside, or bare.
_STRICT_ROW = re.compile(
    rb'(?:"(?:[^"]+|"")*"|[^,"\r\n]*)(?:,(?:"(?:[^"]+|"")*"|[^,"\r\n]*))*\r?\n'
)
#: The columns a record is built from (the row reader's indexes).
_USED = (0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 18, 19, 22, 23)


def _read_rows(data: bytes, ncols: int) -> Any:
    """``data`` (whole csv rows) as an Arrow table of string columns, or None if pyarrow
    cannot read it exactly (a column count that varies, bytes that are not UTF-8)."""
    names = [f"c{i}" for i in range(ncols)]
    try:
        return pacsv.read_csv(
            io.BytesIO(data),
            read_options=pacsv.ReadOptions(column_names=names, use_threads=False),
            parse_options=pacsv.ParseOptions(newlines_in_values=True, double_quote=True),
            convert_options=pacsv.ConvertOptions(
                column_types={n: pa.string() for n in names},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
                include_columns=[names[i] for i in _USED if i < ncols],
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None


#: Rows turned into Python objects at a time (bounds the lists beside the Arrow batch).
_CHUNK = 8192


def scan_window_csvlog(
    reader: CsvlogReader,
    buf: bytes,
    *,
    name: str,
    base_offset: int,
    base_line: int,
    final: bool,
    all_records: bool,
) -> _Window | None:
    """The window as :func:`auditor.logs.reader.scan_window` reads it, or None when the
    row reader must read it (see :mod:`auditor.logs.columnar`)."""
    win = _scan(
        reader, buf, name=name, base_offset=base_offset, base_line=base_line, final=final,
        all_records=all_records,
    )  # fmt: skip
    WINDOWS["columnar" if win is not None else "row"] += 1
    return win


def _scan(
    reader: CsvlogReader,
    buf: bytes,
    *,
    name: str,
    base_offset: int,
    base_line: int,
    final: bool,
    all_records: bool,
) -> _Window | None:
    n = len(buf)
    if all_records or n == 0 or b"\x00" in buf or not ROW_START.match(buf, 0):
        return None
    arr = np.frombuffer(buf, dtype=np.uint8)
    quotes = np.flatnonzero(arr == 34)
    nls = np.flatnonzero(arr == 10)
    even = (np.searchsorted(quotes, nls) & 1) == 0
    ends = nls[even] + 1  # record ends (exclusive)
    if len(ends) == 0:
        return None
    hi = int(ends[-1])
    if final and hi != n:
        return None  # an unterminated or unclosed last record: the row reader's case
    if n - hi >= _RESYNC_AFTER:
        return None  # the row reader would resynchronise
    starts = np.empty_like(ends)
    starts[0] = 0
    starts[1:] = ends[:-1]

    events = reader.finder.find(buf)
    ev = np.asarray(events, dtype=np.int64)
    pos = ev >> 2
    kinds = ev & 3
    odd = np.unique(pos[kinds == ODD_LINE] - 1)
    odd = odd[odd < hi]
    # A line that does not start like a row at a record boundary: garbage (warned).
    if len(odd) and np.isin(odd, starts, assume_unique=True).any():
        return None
    # A line inside a quoted field that starts like a row: the row reader checks
    # whether its record is a strict row (a cut row, resynchronised after).
    inner = nls[~even] + 1
    inner = inner[inner < hi]
    if len(inner):
        unflagged = inner[~np.isin(inner, odd, assume_unique=True)]
        for ls in unflagged.tolist():
            if ROW_START.match(buf, ls):
                return None
    hits = pos[kinds == HIT] - 1
    hits = hits[hits < hi]
    rows = np.unique(np.searchsorted(ends, hits, side="right"))
    row_starts = starts[rows].tolist()
    row_ends = ends[rows].tolist()

    out = _Window()
    items: list[LogRecord | ReadWarning] = []
    if row_starts:
        pieces = []
        for rs, re_ in zip(row_starts, row_ends, strict=True):
            if not ROW_START.match(buf, rs) or _STRICT_ROW.fullmatch(buf, rs, re_) is None:
                return None
            pieces.append(buf[rs:re_])
        ncols = len(raw_fields(pieces[0]) or ())
        if ncols not in _COLUMN_COUNTS or (reader.columns and ncols != reader.columns):
            return None
        table = _read_rows(b"".join(pieces), ncols)
        del pieces
        if table is None or table.num_rows != len(row_starts):
            return None
        if reader.columns is None:
            reader.columns = ncols
        lines = (np.searchsorted(nls, starts[rows]) + base_line).tolist()
        for at in range(0, len(row_starts), _CHUNK):
            part = table.slice(at, _CHUNK)
            cols: list[list[str]] = [[] for _ in range(max(_USED) + 1)]
            for k, i in enumerate(i for i in _USED if i < ncols):
                cols[i] = part.column(k).to_pylist()
            _build(
                reader, cols, ncols, row_starts[at : at + _CHUNK], lines[at : at + _CHUNK],
                name, base_offset, items,
            )  # fmt: skip
    out.items = items
    out.consumed = hi
    out.lines = int(np.searchsorted(nls, hi))
    out.records = out.lines - len(odd)
    out.ddl = sum(
        1
        for item in items
        if isinstance(item, LogRecord)
        and item.is_ddl
        and item.kind in (MessageKind.STATEMENT, MessageKind.EXECUTE)
    )
    out.first_time_raw = reader.time_at(buf, 0)
    out.last_time_raw = _last_time(reader, buf, hi)
    return out


def _build(
    reader: CsvlogReader,
    cols: list[list[str]],
    ncols: int,
    row_starts: list[int],
    lines: list[int],
    name: str,
    base_offset: int,
    items: list[LogRecord | ReadWarning],
) -> None:
    """One record (and its warnings) per row, as :meth:`CsvlogReader.parse` builds them."""
    clock = reader.clock
    backend = cols[23] if ncols > 23 else None
    for i, rs in enumerate(row_starts):
        loc = SourceLocation(name, base_offset + rs, lines[i])
        stamp = cols[0][i]
        time, issue = clock.parse(stamp)
        if issue is not None:
            items.append(ReadWarning(loc, issue.message, stamp, issue.cause))
        elif time is None:
            items.append(ReadWarning(loc, "csvlog row without a valid log_time"))
            continue
        client, port = split_host_port(cols[4][i])
        items.append(
            build_record(
                source=loc,
                severity=cols[11][i],
                message=cols[13][i],
                time=time,
                detail=cols[14][i],
                hint=cols[15][i],
                context=cols[18][i],
                statement=cols[19][i] or None,
                session_id=cols[5][i],
                line_num=_int(cols[6][i]),
                vxid=cols[9][i],
                xid=_int(cols[10][i]),
                pid=_int(cols[3][i]),
                user=cols[1][i],
                database=cols[2][i],
                application=cols[22][i],
                client=client,
                client_port=port,
                sqlstate=cols[12][i],
                backend_type=backend[i] if backend is not None else None,
                command_tag=cols[7][i],
            )
        )
