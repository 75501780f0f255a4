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
    print(_show([f for f in result.document.findings if f.cls.value != "FAILED_DDL"]))
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


@pytest.mark.parametrize(
    "change",
    [
        "ALTER TABLE auditor.events OWNER TO {role}",
        "ALTER SCHEMA auditor OWNER TO {role}",
        "ALTER EVENT TRIGGER auditor_ddl_command_end DISABLE",
        "ALTER EVENT TRIGGER auditor_ddl_command_end OWNER TO {superuser}",
        "GRANT DELETE ON TABLE auditor.events TO {role}",
        "COMMENT ON TABLE auditor.events IS 'nothing to see'",
        "ALTER FUNCTION auditor.record_event() SET search_path = public",
    ],
)
def test_a_statement_that_changes_the_auditor_stays_critical(restore: Restore, change: str) -> None:
    """The same statements a dump holds, with another effect: tampering, critical."""
    r = restore
    r.target = r.source
    role, superuser = f"mallory{next(_n)}", f"other_su{next(_n)}"
    r.run(f"CREATE ROLE {role}; CREATE ROLE {superuser} SUPERUSER", db="postgres")
    try:
        r.run(change.format(role=role, superuser=superuser), app="intruder")
        result = r.reconcile(r.source)
        hits = [
            f
            for f in result.document.findings
            if f.statement
            and f.statement.startswith(change.split(" {")[0].split(" TO")[0])
            and f.cls in (C.CONFIG_DRIFT, C.EVENT_TRIGGER_DDL)
        ]
        assert hits and all(f.severity == Severity.CRITICAL for f in hits), _show(
            list(result.document.findings)
        )
    finally:
        r.run(f"DROP DATABASE {r.source} WITH (FORCE)", db="postgres")
        r.run(f"DROP ROLE {role}; DROP ROLE {superuser}", db="postgres")


def test_a_sequence_set_back_by_hand_breaks_no_ddl_and_is_high(restore: Restore) -> None:
    r = restore
    r.target = r.source
    before = _ids(r, r.source)
    r.run("SELECT setval('auditor.events_id_seq', 2)", app="intruder")
    r.run("CREATE TABLE after_rewind (id int)", app="intruder")
    after = _ids(r, r.source)
    # Nothing written over: the old rows are intact and the new one is past them all.
    assert after[:-1] == before and after[-1] > max(before)
    result = r.reconcile(r.source)
    rewound = [f for f in result.document.findings if "behind" in f.evidence]
    assert [(f.cls, f.severity) for f in rewound] == [(C.CONFIG_DRIFT, Severity.HIGH)], _show(
        list(result.document.findings)
    )
    assert f"it gave id 3, which a row already held, while rows held ids up to {max(before)}" in (
        rewound[0].explanation
    )


def test_a_restore_into_a_database_without_the_auditor(restore: Restore) -> None:
    """From template0: the dump builds a copy of the auditor, rows and history included."""
    r = restore
    r.run(f"CREATE DATABASE {r.target} TEMPLATE template0", db="postgres")
    dump = r.work / "src.sql"
    dump.write_text(r.tool("pg_dump", "-Fp", r.source))
    out = r.tool("psql", "-X", "-q", "-d", r.target, "-f", str(dump))
    assert "ERROR" not in out, out
    r.run("CREATE TABLE after_restore (id int)")
    copied = r.run(f"SELECT count(*) FROM auditor.events WHERE database_name = '{r.source}'")
    own = r.run(f"SELECT count(*) FROM auditor.events WHERE database_name = '{r.target}'")
    assert copied[0][0] > 0 and own[0][0] >= 1
    # status: the copy is an installed, healthy auditor, whose first rows are src's.
    st = capture.status(r.cluster.dsn(r.target), databases=[r.target])
    (db,) = st.databases
    assert st.exit_code == 0 and db.copied_from == r.source, st
    assert any(r.source in p.message and not p.weakens for p in db.problems)
    result = r.reconcile()
    bad = _bad(result)
    assert not bad, _show(bad)
    found = result.document.findings
    # The copied rows are src's evidence, vouched for by src's markers: info.
    copies = [f for f in found if f.cls == C.ATTRIBUTION_MISMATCH and f.database == r.target]
    assert [f.severity for f in copies] == [Severity.INFO], _show(copies)
    assert set(copies[0].audit_event_ids) == set(range(1, int(copied[0][0]) + 1))
    # The dump's DDL before its event triggers existed: no row expected, info.
    early = [f for f in found if f.cls == C.UNMONITORED_DATABASE and f.database == r.target]
    assert early and all(f.severity == Severity.INFO for f in early)
    assert any(f.statement and "CREATE TABLE public.t5" in f.statement for f in early)
    # ...and the DDL after it is matched, not reported.
    assert not [f for f in found if f.statement and "after_restore" in f.statement]
