"""Every bad input of issue 14, each with its exact message and exit code.

Damaged files start from a real log (``fixtures/workload``) and damage a copy: a
compressed file cut short, garbage after a gzip member, a csvlog row cut by a
crash (at every row, at several places), a stray quote.  Exit codes: 0 nothing
to report, 1 findings, 2 input that could not be read (said on one line with
file and line; the rest is still read).
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import zstandard
from logs_helpers import files, identity, meta, read

from auditor.model import LogRecord

PREFIX = meta("workload")["log_line_prefix"]
NOBODY = 65534
COMPRESS = {
    "gz": gzip.compress,
    "bz2": bz2.compress,
    "xz": lzma.compress,
    "zst": lambda d: zstandard.ZstdCompressor().compress(d),
}
NAMES = {"gz": "gzip", "bz2": "bzip2", "xz": "xz", "zst": "zstd"}


def _auditor(
    *args: str, cwd: Path | None = None, user: int | None = None
) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "auditor", *args]
    if user is not None:
        cmd = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *cmd]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUDITOR_", "PG"))}
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=env, timeout=600)


def _plain(fmt: str = "stderr") -> bytes:
    return b"".join(Path(p).read_bytes() for p in files("workload", fmt))


def _ids(records: list[LogRecord]) -> list[tuple[object, ...]]:
    return [identity(r)[:-1] for r in records]


def _recoverable(kind: str, blob: bytes) -> bytes:
    """What a decompressor object gives back from a cut file (independently of auditor)."""
    if kind == "gz":
        return zlib.decompressobj(31).decompress(blob)
    if kind == "bz2":
        return bz2.BZ2Decompressor().decompress(blob)
    if kind == "xz":
        return lzma.LZMADecompressor().decompress(blob)
    return zstandard.ZstdDecompressor().decompressobj().decompress(blob)


@pytest.mark.parametrize("kind", sorted(COMPRESS))
def test_a_compressed_log_cut_short(tmp_path: Path, kind: str) -> None:
    data = _plain() * 20  # several zstd blocks: what is before the cut one is recovered
    packed = COMPRESS[kind](data)
    cut = packed[: len(packed) * 2 // 3]
    path = tmp_path / f"postgresql.log.{kind}"
    path.write_bytes(cut)
    got = _recoverable(kind, cut)
    out = _auditor("scan", "--log", str(path), "--log-line-prefix", PREFIX, "--format", "json")
    assert out.returncode == 2
    assert "Traceback" not in out.stderr and "Aborted" not in out.stderr
    records, _, sources = read([str(path)], prefix=PREFIX, all_records=True)
    end = sources[0].end_offset
    line = got[:end].count(b"\n") + 1
    assert (
        f"auditor: warning: {path}:{line}: the {NAMES[kind]} data ends early (the file is cut "
        "short: copied or compressed while it was written, or damaged) after "
        f"{len(cut)} compressed bytes\n"
    ) in out.stderr
    # Everything before the damage is read: up to the last message whose end can be
    # seen (gzip and xz give back every byte before the cut; bzip2 and zstd lose the
    # block the cut is in, here all of it).
    assert sources[0].damaged and end <= len(got)
    assert got[:end] == data[:end]
    tail = [ln for ln in got[end:].split(b"\n") if ln and not ln.startswith(b"\t")]
    assert len([ln for ln in tail if b" LOG:  " in ln or b" ERROR:  " in ln]) <= 1
    if kind in ("gz", "xz"):
        assert len(records) > 20 and all(r.source.offset < end for r in records)


def test_garbage_after_a_gzip_member(tmp_path: Path) -> None:
    data = _plain()
    path = tmp_path / "postgresql.log.gz"
    path.write_bytes(gzip.compress(data) + b"this is not gzip data\n" * 3)
    out = _auditor("scan", "--log", str(path), "--log-line-prefix", PREFIX)
    assert out.returncode == 0, out.stderr
    line = data.count(b"\n") + 1
    assert (
        f"auditor: warning: {path}:{line}: bytes after the end of the gzip data are not gzip "
        "data (ignored; everything before them was read)\n"
    ) in out.stderr
    got, _, sources = read([str(path)], prefix=PREFIX, all_records=True)
    want, _, _ = read([str(_write(tmp_path, "plain.log", data))], prefix=PREFIX, all_records=True)
    assert _ids(got) == _ids(want) and not sources[0].damaged


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.fixture
def shared(tmp_path: Path) -> Iterator[Path]:
    """A directory other users can reach (pytest's tmp_path is root's alone)."""
    path = Path(tempfile.mkdtemp(prefix="auditor-bad-", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_an_unreadable_log_directory(shared: Path) -> None:
    tmp_path = shared
    logdir = tmp_path / "pg_log"
    logdir.mkdir()
    _write(logdir, "postgresql.log", _plain())
    logdir.chmod(0o700)  # root's; the command runs as nobody
    tmp_path.chmod(0o755)
    out = _auditor("scan", "--log", str(logdir), user=NOBODY, cwd=Path("/"))
    assert out.returncode == 2
    assert (
        out.stderr == f"auditor: error: {logdir}: cannot list the directory (Permission denied)\n"
    )


def test_an_unreadable_file_in_a_directory_does_not_stop_the_others(shared: Path) -> None:
    tmp_path = shared
    logdir = tmp_path / "pg_log"
    logdir.mkdir()
    first, second = files("workload", "stderr")
    _write(logdir, "a.log", Path(first).read_bytes()).chmod(0o600)
    _write(logdir, "b.log", Path(second).read_bytes()).chmod(0o644)
    tmp_path.chmod(0o755)
    out = _auditor(
        "scan", "--log", str(logdir), "--log-line-prefix", PREFIX, user=NOBODY, cwd=Path("/")
    )
    assert out.returncode == 2
    assert f"auditor: error: {logdir / 'a.log'}: cannot read (Permission denied)\n" in out.stderr
    assert f"{logdir / 'b.log'}: format stderr" in out.stderr
    assert "CREATE TABLE t_ext" in out.stdout  # b.log's statements are printed


def test_state_in_a_missing_directory(tmp_path: Path) -> None:
    state = tmp_path / "no" / "such" / "state.json"
    out = _auditor(
        "reconcile", "--log", files("workload", "csvlog")[0], "--state", str(state),
        "--out", str(tmp_path / "out"),
    )  # fmt: skip
    assert out.returncode == 2
    assert out.stderr == (
        f"auditor: error: --state {state}: directory {state.parent} does not exist; "
        "create it first\n"
    )
    assert not (tmp_path / "out").exists()  # stopped before reading or writing anything


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (("--until", "9999-12-31"), 1),
        (("--since", "0001-01-01"), 1),
        (("--since", "0001-01-01", "--until", "9999-12-31"), 1),
    ],
)
def test_the_ends_of_the_calendar_mean_no_bound(
    tmp_path: Path, args: tuple[str, ...], code: int
) -> None:
    out = _auditor(
        "reconcile", "--log", files("workload", "csvlog")[0], "--out", str(tmp_path), *args
    )
    assert out.returncode == code, out.stderr
    assert "Traceback" not in out.stderr
    assert re.search(r"^logged DDL \d+, ", out.stdout, re.M)
    assert (tmp_path / "report.html").exists()


def test_since_after_until_is_an_empty_window(tmp_path: Path) -> None:
    for command in ("reconcile", "scan"):
        out = _auditor(
            command, "--log", files("workload", "csvlog")[0], "--since", "2026-11-27T00:00Z",
            "--until", "2026-11-26T00:00Z", *(("--out", str(tmp_path)) if command == "reconcile" else ()),
        )  # fmt: skip
        assert out.returncode == 2
        assert out.stderr == (
            "auditor: error: --since 2026-11-27T00:00:00+00:00 is not before --until "
            "2026-11-26T00:00:00+00:00: the window is empty\n"
        )


def test_demo_out_naming_a_file(tmp_path: Path) -> None:
    target = _write(tmp_path, "report.txt", b"x")
    out = _auditor("demo", "--out", str(target))
    assert out.returncode == 2
    assert out.stderr == f"auditor: error: --out {target}: exists and is not a directory\n"


def _csv_starts(data: bytes) -> list[int]:
    path = Path("/dev/shm") / f"auditor-bad-{os.getpid()}.csv"
    path.write_bytes(data)
    try:
        records, _, _ = read([str(path)], fmt="csvlog", all_records=True)
    finally:
        path.unlink()
    return [r.source.offset for r in records] + [len(data)]


@pytest.mark.parametrize("all_records", [False, True])
def test_a_csv_row_cut_anywhere_loses_nothing_else(tmp_path: Path, all_records: bool) -> None:
    """As after a crash: the start of a row, a newline, then the row written again.
    Wherever the cut falls (inside a quoted field, between fields, in a multi-line
    message), the cut row is a warning at its line and every record is read."""
    data = _plain("csvlog")
    starts = _csv_starts(data)
    clean, _, _ = read(
        [str(_write(tmp_path, "clean.csv", data))], fmt="csvlog", all_records=all_records
    )
    for i in range(len(starts) - 1):
        row = data[starts[i] : starts[i + 1]]
        for frac in (0.05, 0.3, 0.6, 0.9):
            cut = row[: int(len(row) * frac)]
            damaged = _write(
                tmp_path, "cut.csv", data[: starts[i]] + cut + b"\n" + data[starts[i] :]
            )
            got, warnings, _ = read([str(damaged)], fmt="csvlog", all_records=all_records)
            assert _ids(got) == _ids(clean), (i, frac)
            if all_records:  # without --all a cut row that cannot matter is not parsed
                line = data[: starts[i]].count(b"\n") + 1
                assert any(w.source.line == line for w in warnings), (i, frac)


@pytest.mark.parametrize("all_records", [False, True])
def test_a_stray_quote_loses_no_other_row(tmp_path: Path, all_records: bool) -> None:
    data = _plain("csvlog")
    starts = _csv_starts(data)
    clean, _, _ = read(
        [str(_write(tmp_path, "clean.csv", data))], fmt="csvlog", all_records=all_records
    )
    for i in range(len(starts) - 1):
        for frac in (0.2, 0.5, 0.8):
            at = starts[i] + int((starts[i + 1] - starts[i]) * frac)
            damaged = _write(tmp_path, "quote.csv", data[:at] + b'"' + data[at:])
            got, warnings, _ = read([str(damaged)], fmt="csvlog", all_records=all_records)
            others = [
                x for r, x in zip(clean, _ids(clean), strict=True) if r.source.offset != starts[i]
            ]
            mine = [x for r, x in zip(got, _ids(got), strict=True) if r.source.offset != starts[i]]
            assert [x for x in others if x not in mine] == [], (i, frac)
            assert warnings or not all_records, (i, frac)


def test_the_issues_crash_cut_keeps_the_next_ddl(tmp_path: Path) -> None:
    """The issue's case: a row cut mid-field by a crash, then the server's next rows;
    the DDL right after the cut (there: CREATE DATABASE) is read, and the cut is said."""
    data = _plain("csvlog")
    at = data.index(b'"statement: CREATE DATABASE')
    start = data.rfind(b"\n", 0, at) + 1
    prev = data.rfind(b"\n", 0, start - 1) + 1
    damaged = data[: start - 1][: prev + (start - prev) // 2] + b"\n" + data[start:]
    path = _write(tmp_path, "crash.csv", damaged)
    out = _auditor("scan", "--all", "--log", str(path), "--format", "csv")
    assert out.returncode == 0, out.stderr
    assert "CREATE DATABASE" in out.stdout and "latin" in out.stdout
    assert re.search(
        rf"auditor: warning: {re.escape(str(path))}:\d+: (not a csvlog row|csvlog row with)",
        out.stderr,
    )
