"""A dump and restore of an audited database, on a real cluster with real pg_dump/psql.

The auditor is installed in ``template1`` (as ``install --all-databases`` does), so a
database created for the restore already has it: the dump's statements on the
auditor's own objects then fail, or succeed restating what install left.  Into a
database created from ``template0`` the dump builds a copy of the auditor.  The
dump's ``setval()`` sets the audit sequence back; DDL afterwards must still work.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from auditor import capture
from auditor.cluster import TempCluster
from auditor.config import load_config
from auditor.model import Finding, FindingClass, Severity
from auditor.reconcile import ReconcileResult, reconcile

C = FindingClass
_n = itertools.count(1)
DEBIAN_BIN = Path("/usr/lib/postgresql/15/bin")


def _clients(cluster: TempCluster) -> Path:
    """pg_dump, pg_restore and psql of the server's major when it has them, else Debian's 15
    (which can dump servers up to 15; PG 13's cache has no client tools)."""
    own = cluster.bindir
    if (own / "pg_dump").is_file() and (own / "psql").is_file():
        return own
    if cluster.major > 15:
        pytest.skip(f"no pg_dump for PostgreSQL {cluster.major} on this machine")
    return DEBIAN_BIN


@pytest.fixture(scope="module")
def rs() -> Iterator[TempCluster]:
    with TempCluster() as c:
        capture.install(c.dsn("template1"), databases=["template1"])
        yield c


@dataclass
class Restore:
    cluster: TempCluster
    work: Path
    t0: datetime
    source: str
    target: str = ""

    def tool(self, name: str, *args: str, stdin: Path | None = None) -> str:
        env = dict(os.environ)
        env.update(
            PGHOST=str(self.cluster.socket_dir),
            PGPORT=str(self.cluster.port),
            PGUSER=self.cluster.superuser,
            PGAPPNAME=name,
        )
        with open(stdin or os.devnull, "rb") as fin:
            proc = subprocess.run(
                [str(_clients(self.cluster) / name), *args],
                stdin=fin,
                capture_output=True,
                text=True,
                env=env,
                check=False,
                timeout=300,
            )
        return proc.stdout + proc.stderr

    def run(self, query: str, db: str | None = None, app: str = "restore-test") -> Any:
        return self.cluster.execute(query, dbname=db or self.target, application_name=app)

    def reconcile(self, *databases: str) -> ReconcileResult:
        self.cluster.flush_logs()
        flags = {
            "dsn": self.cluster.dsn(self.source),
            "logs": [str(self.cluster.log_dir)],
            "since": self.t0.isoformat(),
            "databases": list(databases or (self.source, self.target)),
            "out": str(self.work / "out"),
        }
        return reconcile(load_config(flags, environ={}))


@pytest.fixture
def restore(rs: TempCluster, tmp_path: Path) -> Iterator[Restore]:
    """A source database with some audited DDL and rows, dumped by the test."""
    n = next(_n)
    t0 = datetime.now(UTC)
    time.sleep(0.01)
    source = f"src{n}"
    rs.execute(f"CREATE DATABASE {source}")
    r = Restore(rs, tmp_path, t0, source, f"dst{n}")
    for i in range(6):  # more rows than the target's own restore statements leave
        r.run(f"CREATE TABLE t{i} (id int PRIMARY KEY, v text)", db=source)
    r.run("CREATE SEQUENCE invoice_no; COMMENT ON TABLE t0 IS 'orders'", db=source)
    try:
        yield r
    finally:
        for db in (source, r.target):
            rs.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


def _bad(result: ReconcileResult) -> list[Finding]:
    return [f for f in result.document.findings if f.severity in (Severity.CRITICAL, Severity.HIGH)]


def _show(findings: list[Finding]) -> str:
    return "\n".join(f"{f.severity} {f.cls} {f.database} {f.explanation[:300]}" for f in findings)


def _ids(r: Restore, db: str) -> list[int]:
    return [int(x[0]) for x in r.run("SELECT id FROM auditor.events ORDER BY id", db=db)]


@pytest.mark.parametrize("how", ["plain", "custom"])
def test_a_restore_into_a_database_with_the_auditor_is_ordinary_work(
    restore: Restore, how: str
) -> None:
    r = restore
    r.run(f"CREATE DATABASE {r.target}", db="postgres")
    if how == "plain":
        dump = r.work / "src.sql"
        dump.write_text(r.tool("pg_dump", "-Fp", r.source))
        out = r.tool("psql", "-X", "-q", "-d", r.target, "-f", str(dump))
    else:
        dump = r.work / "src.dump"
        r.tool("pg_dump", "-Fc", "-f", str(dump), r.source)
        out = r.tool("pg_restore", "-d", r.target, str(dump))
    # The dump's own tables and keys are there: no DDL was refused by a rewound sequence.
    # One collision on the audit table: the COPY of the source's rows (the copy, not DDL).
    assert out.count('violates unique constraint "events_pkey"') == 1, out
    assert "ERROR:  auditor:" not in out, out
    keys = r.run("SELECT count(*) FROM pg_constraint WHERE conname ~ '^t[0-5]_pkey$'")
    assert keys == [(6,)]
    # DDL after the restore works, and its row is new (nothing written over).
    before = _ids(r, r.target)
    r.run("CREATE TABLE after_restore (id int)")
    after = _ids(r, r.target)
    assert len(after) == len(set(after)) == len(before) + 1 and after[-1] > max(before)

    result = r.reconcile()
    bad = _bad(result)
    assert not bad, _show(bad)
    info = [
        f
        for f in result.document.findings
        if f.cls == C.CONFIG_DRIFT and "restated the installed state" in f.explanation
    ]
    assert info and all(f.severity == Severity.INFO for f in info), _show(info)
    # The rewound sequence is evidence: said, as a restore's (medium), not hidden.
    rewound = [
        f
        for f in result.document.findings
        if f.cls == C.CONFIG_DRIFT and "behind" in f.evidence and f.database == r.target
    ]
    assert rewound and all(f.severity == Severity.MEDIUM for f in rewound), _show(
        result.document.findings
    )
