"""Fuzz: damaged real logs through every reader, for a fixed time, never a traceback.

Each case takes a captured log of one format (stderr, csvlog, jsonlog,
CloudNativePG, Cloud SQL, syslog, Heroku logplex), damages it (random bytes,
random truncation, inserted quotes, TABs and newlines, deleted or repeated
stretches, pure noise), sometimes compresses it and damages the compressed bytes,
and reads it with the format detected and forced, with and without ``--all``.
The only error allowed is :class:`~auditor.errors.AuditorError` (one line, exit
2); anything else fails with the seed and the case, so it can be replayed.
``AUDITOR_FUZZ_SECONDS`` sets the time (default 25 s), ``AUDITOR_FUZZ_SEED`` the seed.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import zstandard
from logs_helpers import FIXTURES, files, read

from auditor.errors import AuditorError

SECONDS = float(os.environ.get("AUDITOR_FUZZ_SECONDS", "25"))
SEED = int(os.environ.get("AUDITOR_FUZZ_SEED", "20261203"))
SOURCES = {
    "stderr": files("workload", "stderr")[0],
    "csvlog": files("workload", "csvlog")[0],
    "jsonlog": files("workload", "jsonlog")[0],
    "syslog": str(FIXTURES / "syslog" / "syslog-bsd.log"),
    "syslog-iso": str(FIXTURES / "syslog_nosplit" / "syslog-iso.log"),
    "cnpg": str(FIXTURES / "pgbadger" / "cnpg.log.gz"),
    "cloudsql": str(FIXTURES / "pgbadger" / "cloudsql.log.gz"),
    "logplex": str(FIXTURES / "pgbadger" / "logplex.gz"),
}
FORCED = ("auto", "stderr", "csvlog", "jsonlog", "cnpg", "syslog", "logplex", "cloudsql")
NOISE = (b'"', b"\n", b"\t", b",", b"\r", b"\x00", b"\xff", b"{", b"}", b"#012", b"[1-2] ")


def _plain(path: str) -> bytes:
    data = Path(path).read_bytes()
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def _damage(rng: random.Random, data: bytes) -> bytes:
    data = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        if not data:
            break
        at = rng.randrange(len(data))
        op = rng.randrange(7)
        if op == 0:
            data[at] = rng.randrange(256)
        elif op == 1:
            data[at:at] = rng.choice(NOISE) * rng.randint(1, 3)
        elif op == 2:
            del data[at : at + rng.randint(1, 400)]
        elif op == 3:
            del data[at:]
        elif op == 4:
            data[at:at] = data[max(0, at - 300) : at]
        elif op == 5:
            data[at:at] = rng.randbytes(rng.randint(1, 64))
        else:
            nl = data.find(b"\n", at)
            data[at : nl if nl > 0 else at] = b""
    return bytes(data)


def _pack(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    kind = rng.choice(("plain", "plain", "gz", "bz2", "xz", "zst"))
    packed = {
        "plain": lambda d: d,
        "gz": gzip.compress,
        "bz2": bz2.compress,
        "xz": lzma.compress,
        "zst": lambda d: zstandard.ZstdCompressor().compress(d),
    }[kind](data)
    if kind != "plain" and rng.random() < 0.6:
        packed = _damage(rng, packed)
    return packed, kind


def test_damaged_logs_never_crash_a_reader(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    originals = {name: _plain(path) for name, path in SOURCES.items()}
    deadline = time.monotonic() + SECONDS
    cases = 0
    errors = 0
    while time.monotonic() < deadline or cases < 50:
        name = rng.choice(sorted(originals))
        data = originals[name]
        noise = rng.random() < 0.08
        data = rng.randbytes(rng.randint(0, 4096)) if noise else _damage(rng, data)
        blob, kind = _pack(rng, data)
        path = tmp_path / f"case.{kind}"
        path.write_bytes(blob)
        fmt = rng.choice(FORCED)
        all_records = rng.random() < 0.5
        case = f"seed {SEED} case {cases}: {name} {kind} --log-format {fmt} all={all_records}"
        try:
            read([str(path)], fmt=fmt, all_records=all_records, log_timezone="UTC")
        except AuditorError as exc:
            errors += 1
            assert "\n" not in str(exc), case
        except Exception as exc:  # anything else is a bug: show how to replay it
            (tmp_path / "failing").write_bytes(blob)
            raise AssertionError(f"{case}: {type(exc).__name__}: {exc}") from exc
        cases += 1
    assert cases >= 50 and errors < cases  # most damaged logs are still read


def test_damaged_logs_through_the_command_line(tmp_path: Path) -> None:
    rng = random.Random(SEED + 1)
    for i, (name, path) in enumerate(sorted(SOURCES.items())):
        blob, kind = _pack(rng, _damage(rng, _plain(path)))
        target = tmp_path / f"{i}-{name}.{kind}"
        target.write_bytes(blob)
        for args in ((), ("--all", "--format", "json"), ("--format", "csv")):
            out = subprocess.run(
                [sys.executable, "-m", "auditor", "scan", "--log", str(target), *args],
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert out.returncode in (0, 2), (name, kind, args, out.stderr[-2000:])
            assert "Traceback" not in out.stderr and "Aborted" not in out.stderr, (name, args)
            if out.returncode == 2:
                errors = [ln for ln in out.stderr.splitlines() if ln.startswith("auditor: error:")]
                assert errors or "warning" in out.stderr, out.stderr[-2000:]
