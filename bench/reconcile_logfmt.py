"""The server's three log formats, written from one csvlog record (for ``bench/reconcile``).

A PostgreSQL 15 server with ``log_destination = 'stderr,csvlog,jsonlog'`` writes
every message three times.  ``bench/reconcile`` reads the real csvlog of a real
workload into :class:`Row` values (26 columns, remembering which text fields were
quoted: csvlog writes ``""`` for an empty string and nothing for NULL), changes
some values to clone the workload, and writes the rows back in all three formats
with :func:`csv_line`, :func:`json_line` and :class:`StderrWriter`, which follow
``src/backend/utils/error/{csvlog,jsonlog,elog}.c``.  The bench checks them on the
real files first: fed the unchanged rows, they must give the real csvlog, jsonlog
and stderr files back byte for byte (:func:`roundtrip`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

#: csvlog columns of PostgreSQL 14+ (csvlog.c), and which ones are written quoted.
COLUMNS = (
    "log_time", "user_name", "database_name", "process_id", "connection_from",
    "session_id", "session_line_num", "command_tag", "session_start_time",
    "virtual_transaction_id", "transaction_id", "error_severity", "sql_state_code",
    "message", "detail", "hint", "internal_query", "internal_query_pos", "context",
    "query", "query_pos", "location", "application_name", "backend_type",
    "leader_pid", "query_id",
)  # fmt: skip
QUOTED = frozenset(
    {
        "user_name", "database_name", "connection_from", "command_tag", "message",
        "detail", "hint", "internal_query", "context", "query", "location",
        "application_name", "backend_type",
    }
)  # fmt: skip
IX = {name: i for i, name in enumerate(COLUMNS)}
_QUOTED_IX = tuple(name in QUOTED for name in COLUMNS)

Row = list[str | None]  # 26 values; None = empty, not quoted (NULL)


def parse_csv(data: bytes) -> Iterator[Row]:
    """csvlog rows; a quoted empty field is ``""``, an unquoted empty one None."""
    text = data.decode("utf-8")
    n = len(text)
    i = 0
    while i < n:
        row: Row = []
        while True:
            if text[i] == '"':
                j = i + 1
                parts = []
                while True:
                    k = text.index('"', j)
                    parts.append(text[j:k])
                    if k + 1 < n and text[k + 1] == '"':
                        parts.append('"')
                        j = k + 2
                        continue
                    i = k + 1
                    break
                row.append("".join(parts))
            else:
                j = i
                while j < n and text[j] not in ",\n":
                    j += 1
                row.append(text[i:j] if j > i else None)
                i = j
            if i >= n or text[i] == "\n":
                i += 1
                break
            i += 1  # the comma
        if len(row) != len(COLUMNS):
            raise ValueError(f"csvlog row with {len(row)} columns: {row[:3]}")
        yield row


def _csv_quote(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


def csv_line(row: Row) -> str:
    out = []
    for value, quoted in zip(row, _QUOTED_IX, strict=True):
        if value is None:
            out.append("")
        elif quoted:
            out.append(_csv_quote(value))
        else:
            out.append(value)
    return ",".join(out) + "\n"


_JSON_ESC = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
}


def _json_str(value: str) -> str:
    """escape_json() of PostgreSQL: control characters as \\u00XX, nothing else escaped."""
    if not any(c in _JSON_ESC or c < " " for c in value):
        return '"' + value + '"'
    out = []
    for c in value:
        e = _JSON_ESC.get(c)
        if e is not None:
            out.append(e)
        elif c < " ":
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


def json_line(row: Row) -> str:
    """The jsonlog line of a message (jsonlog.c of PostgreSQL 15)."""
    g = row.__getitem__
    parts = [f'"timestamp":{_json_str(g(0) or "")}']
    if g(1) is not None:
        parts.append(f'"user":{_json_str(g(1) or "")}')
    if g(2) is not None:
        parts.append(f'"dbname":{_json_str(g(2) or "")}')
    parts.append(f'"pid":{g(3)}')
    conn = g(4)
    if conn is not None:
        host, sep, port = conn.rpartition(":") if not conn.startswith("[local]") else (conn, "", "")
        if not sep:
            host, port = conn, ""
        parts.append(f'"remote_host":{_json_str(host)}')
        if port:
            parts.append(f'"remote_port":{port}')
    parts.append(f'"session_id":{_json_str(g(5) or "")}')
    parts.append(f'"line_num":{g(6)}')
    if g(7) is not None:
        parts.append(f'"ps":{_json_str(g(7) or "")}')
    parts.append(f'"session_start":{_json_str(g(8) or "")}')
    if g(9) is not None:
        parts.append(f'"vxid":{_json_str(g(9) or "")}')
    parts.append(f'"txid":{g(10)}')
    parts.append(f'"error_severity":{_json_str(g(11) or "")}')
    if g(12) is not None and g(12) != "00000":
        parts.append(f'"state_code":{_json_str(g(12) or "")}')
    for ix, key in ((13, "message"), (14, "detail"), (15, "hint"), (16, "internal_query")):
        if g(ix) is not None:
            parts.append(f'"{key}":{_json_str(g(ix) or "")}')
    if g(17) is not None:
        parts.append(f'"internal_position":{g(17)}')
    for ix, key in ((18, "context"), (19, "statement")):
        if g(ix) is not None:
            parts.append(f'"{key}":{_json_str(g(ix) or "")}')
    if g(20) is not None:
        parts.append(f'"cursor_position":{g(20)}')
    if g(22):
        parts.append(f'"application_name":{_json_str(g(22) or "")}')
    if g(23) is not None:
        parts.append(f'"backend_type":{_json_str(g(23) or "")}')
    if g(24) is not None:
        parts.append(f'"leader_pid":{g(24)}')
    parts.append(f'"query_id":{g(25) or 0}')
    return "{" + ",".join(parts) + "}\n"


class StderrWriter:
    """stderr lines with the throwaway clusters' prefix ``%m [%p] %q%c %l %v %x %u@%d app=%a client=%h ``.

    ``%l`` counts prefixed lines per process (elog.c's log_line_number), not
    messages as csvlog's session_line_num does, so the writer keeps a count per
    session id.
    """

    def __init__(self) -> None:
        self.lines: dict[str, int] = defaultdict(int)

    def prefix(self, row: Row) -> str:
        session = row[5] or ""
        self.lines[session] += 1
        head = f"{row[0]} [{row[3]}] "
        if row[23] != "client backend" and row[1] is None:
            # %q: a process without a session stops the prefix here.
            return head
        conn = row[4] or ""
        host = conn.rpartition(":")[0] if ":" in conn and not conn.startswith("[local]") else conn
        return (
            f"{head}{session} {self.lines[session]} {row[9] or ''} {row[10]} "
            f"{row[1] or '[unknown]'}@{row[2] or '[unknown]'} app={row[22] or '[unknown]'} "
            f"client={host or '[unknown]'} "
        )

    def lines_of(self, row: Row) -> str:
        out = [self.prefix(row) + f"{row[11]}:  " + _tab(row[13] or "")]
        for ix, word in ((14, "DETAIL"), (15, "HINT"), (16, "QUERY"), (18, "CONTEXT")):
            if row[ix] is not None:
                out.append(self.prefix(row) + f"{word}:  " + _tab(row[ix] or ""))
        if row[19] is not None:
            out.append(self.prefix(row) + "STATEMENT:  " + _tab(row[19] or ""))
        return "\n".join(out) + "\n"


def _tab(text: str) -> str:
    return text.replace("\n", "\n\t")


@dataclass
class Roundtrip:
    fmt: str
    sessions: int
    records: int
    identical: bool
    first_difference: str = ""


def _stderr_session(line: str) -> str | None:
    # "2026-11-26 05:47:55.005 UTC [6192] 6b07c80b.1830 1 ..." -> the 4th token
    parts = line.split(" ", 5)
    if len(parts) > 4 and "." in parts[4] and parts[3].startswith("["):
        return parts[4]
    return None


def roundtrip(csv_data: bytes, json_data: bytes, stderr_data: bytes) -> list[Roundtrip]:
    """Write the real csvlog's rows in all three formats and compare with the real files.

    The logger writes each format from its own pipe chunks, so messages of
    different processes may be interleaved differently in each file: the files
    are compared per session (``%c``), each session's lines in order.
    """
    rows = list(parse_csv(csv_data))
    by_session: dict[str, list[Row]] = defaultdict(list)
    for r in rows:
        by_session[r[5] or ""].append(r)
    out = []
    # csvlog
    mine_csv: dict[str, list[str]] = {k: [csv_line(r) for r in v] for k, v in by_session.items()}
    out.append(_compare("csvlog", _split_csv_real(csv_data), mine_csv))
    # jsonlog
    real_json: dict[str, list[str]] = defaultdict(list)
    import json as _json

    for line in json_data.decode("utf-8").splitlines(keepends=True):
        real_json[_json.loads(line).get("session_id", "")].append(line)
    mine_json = {k: [json_line(r) for r in v] for k, v in by_session.items()}
    out.append(_compare("jsonlog", real_json, mine_json))
    # stderr: only client sessions (background processes print no %c after %q)
    writer = StderrWriter()
    mine_err: dict[str, list[str]] = {}
    for k, v in by_session.items():
        if any(r[1] is None for r in v):
            continue
        mine_err[k] = [writer.lines_of(r) for r in v]
    real_err: dict[str, list[str]] = defaultdict(list)
    current: str | None = None
    for line in stderr_data.decode("utf-8").splitlines(keepends=True):
        if line.startswith("\t"):
            if current is not None:
                real_err[current][-1] += line
            continue
        current = _stderr_session(line)
        if current is not None:
            real_err[current].append(line)
    real_err_msgs = {k: ["".join(v)] for k, v in real_err.items() if k in mine_err}
    mine_err_msgs = {k: ["".join(v)] for k, v in mine_err.items()}
    check = _compare("stderr", real_err_msgs, mine_err_msgs)
    check.records = sum(len(v) for v in mine_err.values())
    out.append(check)
    return out


def _split_csv_real(data: bytes) -> dict[str, list[str]]:
    """The real csvlog's rows as text, per session, cut at the same boundaries as parse_csv."""
    text = data.decode("utf-8")
    out: dict[str, list[str]] = defaultdict(list)
    start = 0
    quotes = 0
    for i, c in enumerate(text):
        if c == '"':
            quotes += 1
        elif c == "\n" and quotes % 2 == 0:
            line = text[start : i + 1]
            out[line.split(",", 6)[5]].append(line)
            start = i + 1
            quotes = 0
    return out


def _compare(fmt: str, real: dict[str, list[str]], mine: dict[str, list[str]]) -> Roundtrip:
    records = sum(len(v) for v in mine.values())
    for key in sorted(set(real) | set(mine)):
        a, b = real.get(key, []), mine.get(key, [])
        if a != b:
            for x, y in zip(a, b, strict=False):
                if x != y:
                    return Roundtrip(fmt, len(mine), records, False, f"real {x!r}\nmine {y!r}")
            return Roundtrip(
                fmt, len(mine), records, False, f"session {key}: {len(a)} real, {len(b)} written"
            )
    return Roundtrip(fmt, len(mine), records, True)


def write_all(rows: Iterable[Row], csv_fh: object, json_fh: object, err_fh: object) -> int:
    """Write rows in the three formats to open text files; the number written."""
    writer = StderrWriter()
    n = 0
    cw, jw, ew = csv_fh.write, json_fh.write, err_fh.write  # type: ignore[attr-defined]
    for r in rows:
        cw(csv_line(r))
        jw(json_line(r))
        ew(writer.lines_of(r))
        n += 1
    return n
