"""Where logs come from: compression, rotation, globs, stdin, SQL, offsets, pieces."""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import zstandard
from logs_helpers import EXT, files, identity, meta, read

import auditor.logs.scan as scan_mod
from auditor.errors import LogInputError
from auditor.logs.prefix import compile_prefix
from auditor.logs.reader import read_source
from auditor.logs.render import one_row_per_statement
from auditor.logs.sources import open_sources
from auditor.model import LogRecord, MessageKind, ReadWarning

FORMATS = ("stderr", "csvlog", "jsonlog")
PREFIX = meta("workload")["log_line_prefix"]


def _concat(fmt: str, target: Path) -> Path:
    """The workload's rotated files of one format, as one plain file."""
    target.write_bytes(b"".join(Path(p).read_bytes() for p in files("workload", fmt)))
    return target


def _ids(records: list[LogRecord]) -> list[tuple[object, ...]]:
    return [identity(r) for r in records]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("compression", ["gz", "bz2", "xz", "zst"])
def test_compressed_logs_give_the_same_records(tmp_path: Path, fmt: str, compression: str) -> None:
    plain = _concat(fmt, tmp_path / f"all.{EXT[fmt]}")
    data = plain.read_bytes()
    packed = {
        "gz": gzip.compress,
        "bz2": bz2.compress,
        "xz": lzma.compress,
        "zst": lambda d: zstandard.ZstdCompressor().compress(d),
    }[compression](data)
    target = tmp_path / f"packed.{EXT[fmt]}.{compression}"
    target.write_bytes(packed)
    want, _, want_src = read([str(plain)], fmt=fmt, prefix=PREFIX)
    got, _, got_src = read([str(target)], prefix=PREFIX)  # format detected through the codec
    assert _ids(got) == _ids(want) and len(got) > 20
    assert [r.source.line for r in got] == [r.source.line for r in want]
    assert got_src[0].end_offset == len(data) and got_src[0].compression is not None
    assert got_src[0].records == want_src[0].records


@pytest.mark.parametrize("fmt", FORMATS)
def test_rotated_files_in_a_directory_read_in_time_order(tmp_path: Path, fmt: str) -> None:
    whole, _, _ = read([str(_concat(fmt, tmp_path / f"all.{EXT[fmt]}"))], fmt=fmt, prefix=PREFIX)
    logdir = tmp_path / "logs"
    logdir.mkdir()
    # Names that sort the wrong way round: order must come from the records' times.
    first, second = files("workload", fmt)
    shutil.copyfile(second, logdir / f"a-newer.{EXT[fmt]}")
    shutil.copyfile(first, logdir / f"b-older.{EXT[fmt]}")
    got, _, sources = read([str(logdir)], fmt=fmt, prefix=PREFIX)
    assert [Path(s.source).name for s in sources] == [f"b-older.{EXT[fmt]}", f"a-newer.{EXT[fmt]}"]
    assert _ids(got) == _ids(whole)
    globbed, _, _ = read([str(logdir / "*")], fmt=fmt, prefix=PREFIX)
    assert _ids(globbed) == _ids(whole)


def test_a_directory_of_three_formats_is_read_once(tmp_path: Path) -> None:
    for path in (Path(files("workload", f)[0]) for f in FORMATS):
        shutil.copyfile(path, tmp_path / path.name)
    got, _, sources = read([str(tmp_path)], prefix=PREFIX)
    assert [s.format for s in sources] == ["jsonlog"]
    want, _, _ = read([files("workload", "jsonlog")[0]])
    assert _ids(got) == _ids(want)
    _, _, stderr_only = read([str(tmp_path)], fmt="stderr", prefix=PREFIX)
    assert [s.format for s in stderr_only] == ["stderr"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_stdin_gives_the_same_records(tmp_path: Path, fmt: str) -> None:
    plain = _concat(fmt, tmp_path / f"all.{EXT[fmt]}")
    want, _, _ = read([str(plain)], prefix=PREFIX)
    got, _, _ = read(["-"], prefix=PREFIX, stdin=io.BytesIO(plain.read_bytes()))
    assert _ids(got) == _ids(want)
    gz, _, _ = read(["-"], prefix=PREFIX, stdin=io.BytesIO(gzip.compress(plain.read_bytes())))
    assert _ids(gz) == _ids(want)
    out = subprocess.run(
        [sys.executable, "-m", "auditor", "scan", "--log", "-", "--format", "json",
         "--log-line-prefix", PREFIX],
        input=plain.read_bytes(), capture_output=True, check=True,
    )  # fmt: skip
    rows = json.loads(out.stdout)
    # One row per statement (an error shows on its statement's row; markers and
    # server messages only with --all).
    assert len(rows) == len([r for r in want if one_row_per_statement(r)]) > 10


def test_missing_file_and_empty_glob_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(LogInputError, match="no such file"):
        open_sources([str(tmp_path / "nope.log")])
    with pytest.raises(LogInputError, match="no file matches"):
        open_sources([str(tmp_path / "*.log")])
    with pytest.raises(LogInputError, match="--dsn"):
        open_sources(["sql:"])
    out = subprocess.run(
        [sys.executable, "-m", "auditor", "scan", "--log", str(tmp_path / "nope.log")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert out.returncode == 2
    assert out.stderr.startswith("auditor: error: ") and out.stderr.count("\n") == 1


@pytest.mark.parametrize("fmt", FORMATS)
def test_incremental_reads_resume_after_the_last_complete_record(tmp_path: Path, fmt: str) -> None:
    data = _concat(fmt, tmp_path / "src").read_bytes()
    whole, _, _ = read([str(tmp_path / "src")], fmt=fmt, prefix=PREFIX, all_records=True)
    cut = len(data) * 2 // 3
    cut = data.index(b"\n", cut) + 10  # in the middle of a line: a file still being written
    growing = tmp_path / f"growing.{EXT[fmt]}"
    growing.write_bytes(data[:cut])
    (source,) = open_sources([str(growing)])
    first = read_source(source, fmt=fmt, prefix=PREFIX, all_records=True)
    part1 = list(first)
    assert first.stats is not None
    stats = first.stats
    assert stats.truncated and stats.end_offset < cut
    assert data[stats.end_offset - 1 : stats.end_offset] == b"\n"
    warning = [w for w in part1 if isinstance(w, ReadWarning)]
    assert warning and "incomplete last record" in warning[-1].message
    assert warning[-1].source.offset == stats.end_offset
    assert stats.inode == growing.stat().st_ino and stats.size == cut and stats.head_hash
    growing.write_bytes(data)  # the server wrote the rest
    (source,) = open_sources([str(growing)])
    second = read_source(
        source,
        fmt=fmt,
        prefix=PREFIX,
        all_records=True,
        start_offset=stats.end_offset,
        start_line=stats.end_line,
    )
    part2 = list(second)
    assert second.stats is not None and not second.stats.truncated
    records = [r for r in part1 + part2 if isinstance(r, LogRecord)]
    # Same records, same line numbers; only the error linking needs both halves.
    assert [(identity(r)[:-1], r.source.line) for r in records] == [
        (identity(r)[:-1], r.source.line) for r in whole
    ]
    assert second.stats.end_offset == len(data)
    assert stats.first_time is not None and second.stats.last_time is not None
    assert stats.first_time < second.stats.last_time


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("all_records", [False, True])
def test_pieces_on_two_workers_give_the_same_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str, all_records: bool
) -> None:
    plain = _concat(fmt, tmp_path / f"all.{EXT[fmt]}")
    want, _, want_src = read([str(plain)], fmt=fmt, prefix=PREFIX, all_records=all_records)
    monkeypatch.setattr(scan_mod, "PIECE", 2048)
    monkeypatch.setattr(scan_mod, "PIECE_ALL", 2048)
    (source,) = open_sources([str(plain)])
    prefix = compile_prefix(PREFIX) if fmt == "stderr" else None
    assert len(scan_mod._split_points(source, fmt, prefix, 2048)) > 3
    got, _, got_src = read([str(plain)], fmt=fmt, prefix=PREFIX, all_records=all_records, jobs=2)
    assert _ids(got) == _ids(want)
    assert [r.source for r in got] == [r.source for r in want]
    assert [r.failed_statement for r in got] == [r.failed_statement for r in want]
    for field in ("lines", "records", "ddl_statements", "end_offset", "end_line", "last_time"):
        assert getattr(got_src[0], field) == getattr(want_src[0], field), field


def test_a_csv_piece_that_starts_inside_a_quoted_field_is_redone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = _concat("csvlog", tmp_path / "all.csv")
    data = plain.read_bytes()
    forged = data.index(b"\n2026-01-01 00:00:00.000 UTC,") + 1  # a row inside a quoted field
    want, _, _ = read([str(plain)], fmt="csvlog", all_records=True)
    monkeypatch.setattr(scan_mod, "_split_points", lambda *a: [0, forged])
    got, warnings, _ = read([str(plain)], fmt="csvlog", all_records=True, jobs=2)
    assert _ids(got) == _ids(want) and not [w for w in warnings if "row" in w.message]
    assert not any((r.statement or "").startswith("DROP TABLE forged") for r in got)


def test_sql_source_reads_the_servers_log_directory(db, logs) -> None:  # type: ignore[no-untyped-def]
    db.run("CREATE TABLE sql_source_probe (id int)", app="sql-source")
    logs.mark()  # flushes the log
    dsn = db.cluster.dsn()
    formats = [("csvlog", "csv"), ("jsonlog", "json"), ("stderr", "log")]
    if db.cluster.major < 15:  # no jsonlog before PostgreSQL 15
        formats.remove(("jsonlog", "json"))
    for fmt, ext in formats:
        local, _, _ = read([str(db.cluster.log_dir / f"*.{ext}")], fmt=fmt)
        remote, _, sources = read([f"sql:*.{ext}"], fmt=fmt, dsn=dsn)
        assert all(s.source.startswith("sql:") for s in sources)
        assert _ids(remote) == _ids(local)
        probe = [r for r in remote if r.application == "sql-source"]
        assert [r.statement for r in probe] == ["CREATE TABLE sql_source_probe (id int)"]


def test_scan_over_sql_reads_the_prefix_from_the_server(db, logs) -> None:  # type: ignore[no-untyped-def]
    db.run("CREATE TABLE sql_prefix_probe (id int)", app="sql-prefix")
    logs.mark()
    stream = scan_mod.scan(["sql:*.log"], dsn=db.cluster.dsn(), jobs=1)
    records = [r for r in stream if isinstance(r, LogRecord)]
    assert stream.server is not None
    assert stream.server.log_line_prefix == db.cluster.log_line_prefix
    assert all(s.prefix == db.cluster.log_line_prefix for s in stream.sources)
    (probe,) = [r for r in records if r.application == "sql-prefix"]
    assert probe.kind == MessageKind.STATEMENT and probe.session_id and probe.vxid


def test_scan_resumes_each_source_where_the_last_run_stopped(tmp_path: Path) -> None:
    data = _concat("jsonlog", tmp_path / "src").read_bytes()
    path = tmp_path / "growing.json"
    path.write_bytes(data[: len(data) // 2 + 7])
    first = scan_mod.scan([str(path)], all_records=True, jobs=1)
    part1 = [r for r in first if isinstance(r, LogRecord)]
    (stats,) = first.sources
    path.write_bytes(data)
    second = scan_mod.scan(
        [str(path)],
        all_records=True,
        jobs=2,
        starts={stats.source: (stats.end_offset, stats.end_line)},
    )
    part2 = [r for r in second if isinstance(r, LogRecord)]
    whole, _, _ = read([str(tmp_path / "src")], fmt="jsonlog", all_records=True)
    assert [(identity(r)[:-1], r.source.line) for r in part1 + part2] == [
        (identity(r)[:-1], r.source.line) for r in whole
    ]
    assert second.sources[0].start_offset == stats.end_offset
    assert second.sources[0].end_offset == len(data)
    assert second.sources[0].end_line == whole[-1].source.line + 1
