"""syslog read back as the server wrote it: a real rsyslogd received the fixtures' messages.

``fixtures/syslog`` and ``fixtures/syslog_nosplit`` were captured by
``fixtures/capture.py`` with ``log_destination = 'stderr,csvlog,jsonlog,syslog'``
and Debian's rsyslog listening on ``/dev/log``: the same messages are in the
stderr file (the same text with the same prefix) and the csvlog file (exact
times), which are the ground truth here.  ``syslog`` has PostgreSQL's
defaults (numbered messages split into parts of at most 900 bytes, one part per
physical line) and a prefix without a time; ``syslog_nosplit`` whole messages
with their newlines as ``#012``.  Each is in rsyslog's traditional format
(``Dec  3 12:40:13``, no year) and in RSYSLOG_FileFormat (RFC 3339).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from logs_helpers import FIXTURES, files, meta, read

from auditor.model import LogRecord, MessageKind

CASES = [(name, kind) for name in ("syslog", "syslog_nosplit") for kind in ("bsd", "iso")]
KINDS = (MessageKind.STATEMENT, MessageKind.EXECUTE, MessageKind.ERROR, MessageKind.MARKER)


def _view(rec: LogRecord) -> tuple[object, ...]:
    """What a record says (the pid aside: the syslog header has it, a prefix may not)."""
    return (
        rec.kind, rec.severity, rec.message, rec.statement, rec.detail, rec.hint, rec.context,
        rec.user, rec.database, rec.session_id, rec.vxid, rec.application, rec.is_ddl,
        rec.failed_statement is not None,
    )  # fmt: skip


def _syslog(name: str, kind: str) -> str:
    return str(FIXTURES / name / f"syslog-{kind}.log")


@pytest.mark.parametrize(("name", "kind"), CASES)
def test_syslog_gives_the_records_of_the_csvlog_file(name: str, kind: str) -> None:
    want, _, _ = read(files(name, "stderr"), all_records=True, prefix=meta(name)["log_line_prefix"])
    csv, _, _ = read(files(name, "csvlog"), all_records=True)
    got, warnings, sources = read([_syslog(name, kind)], all_records=True, log_timezone="UTC")
    (stats,) = sources
    assert stats.format == "syslog" and stats.prefix == meta(name)["log_line_prefix"]
    assert [_view(r) for r in got if r.kind in KINDS] == [_view(r) for r in want if r.kind in KINDS]
    # What the server wrote before its collector started is in syslog only.
    assert {r.message for r in got} >= {r.message for r in want}
    unexpected = [w for w in warnings if "UTF-8" not in w.message and w.cause != "syslog-time"]
    assert not unexpected, [str(w) for w in unexpected]
    # Times: the prefix's own (%m) when it has one, else the syslog header's; the pid:
    # the syslog header's.
    mine = [r for r in got if r.kind in KINDS]
    truth = [r for r in csv if r.kind in KINDS]
    assert [r.pid for r in mine] == [r.pid for r in truth]
    for rec, real in zip(mine, truth, strict=True):
        assert rec.time is not None and real.time is not None
        if "%m" in meta(name)["log_line_prefix"]:
            assert rec.time == real.time
        else:
            assert abs((rec.time - real.time).total_seconds()) < 1.5


@pytest.mark.parametrize(("name", "kind"), CASES)
def test_lines_longer_than_a_syslog_part_come_back_whole(name: str, kind: str) -> None:
    sent = [s["query"] for s in meta(name)["sent"] if s["app"] == "longline"]
    assert len(sent) == 3 and all(len(q.encode()) > 900 for q in sent)
    got, _, _ = read([_syslog(name, kind)], log_timezone="UTC")
    stmts = [r.statement for r in got if r.kind == MessageKind.STATEMENT and r.statement in sent]
    assert stmts == sent


def test_a_statement_holding_log_lines_stays_one_record() -> None:
    got, _, _ = read([_syslog("syslog", "bsd")], all_records=True, log_timezone="UTC")
    (forged,) = [r for r in got if r.application == "forged" and r.kind == MessageKind.STATEMENT]
    assert forged.statement is not None and "DROP TABLE forged_stderr" in forged.statement
    assert not any((r.statement or "").startswith("DROP TABLE forged") for r in got)


def test_parts_interleaved_with_other_processes_lines(tmp_path: Path) -> None:
    """syslog() calls of several backends interleave: move another process's line
    between the parts of a split message and read the same records."""
    data = Path(_syslog("syslog", "bsd")).read_bytes().splitlines(keepends=True)
    at = next(i for i, ln in enumerate(data) if b"]: [" in ln and b"-2] " in ln)
    pid = data[at].split(b"[", 1)[1].split(b"]", 1)[0]
    other = next(
        i
        for i, ln in enumerate(data)
        if i > at + 3 and b"[" + pid + b"]" not in ln and b"-1] " in ln
    )
    moved = [*data[:at], data[other], *data[at:other], *data[other + 1 :]]
    path = tmp_path / "interleaved.log"
    path.write_bytes(b"".join(moved))
    want, _, _ = read([_syslog("syslog", "bsd")], all_records=True, log_timezone="UTC")
    got, warnings, _ = read([str(path)], all_records=True, log_timezone="UTC")
    assert sorted(map(repr, map(_view, got))) == sorted(map(repr, map(_view, want)))
    assert not [w for w in warnings if "part of a message" in w.message]


def test_the_prefix_given_reads_the_same() -> None:
    detected, _, _ = read([_syslog("syslog", "iso")], all_records=True)
    given, _, sources = read(
        [_syslog("syslog", "iso")], all_records=True, prefix=meta("syslog")["log_line_prefix"]
    )
    assert sources[0].prefix_how == "given"
    assert [_view(r) for r in given] == [_view(r) for r in detected]


def test_a_resumed_read_starts_at_a_line(tmp_path: Path) -> None:
    """Incremental runs resume after the last complete line of a growing syslog file."""
    data = Path(_syslog("syslog_nosplit", "iso")).read_bytes()
    path = tmp_path / "growing.log"
    cut = data.index(b"\n", len(data) // 2) + 5
    path.write_bytes(data[:cut])
    first, warnings, sources = read([str(path)], all_records=True)
    assert sources[0].truncated and "incomplete last record" in warnings[-1].message
    path.write_bytes(data)
    from auditor.logs.scan import scan

    rest = scan(
        [str(path)],
        all_records=True,
        jobs=1,
        starts={sources[0].source: (sources[0].end_offset, sources[0].end_line)},
    )
    second = [r for r in rest if isinstance(r, LogRecord)]
    whole, _, _ = read([_syslog("syslog_nosplit", "iso")], all_records=True)
    assert [(_view(r)[:-1], r.source.line) for r in first + second] == [
        (_view(r)[:-1], r.source.line) for r in whole
    ]
