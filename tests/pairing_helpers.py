"""Shared helpers of the pairing tests: real clients against a throwaway cluster, and the
accounting every reconcile must satisfy."""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from auditor import capture
from auditor.cluster import TempCluster
from auditor.config import load_config
from auditor.model import Finding, FindingClass, Severity
from auditor.reconcile import ReconcileResult, reconcile

#: Debian's client tools (psql 15 talks to servers 13 to 18; PG 13's build has none).
DEBIAN_BIN = Path("/usr/lib/postgresql/15/bin")


def client_tool(cluster: TempCluster, name: str) -> Path:
    """The server's own client program when it has one (pg_dump must not be older than
    the server it dumps), else Debian's."""
    own = cluster.bindir / name
    return own if own.is_file() else DEBIAN_BIN / name


def client_env(cluster: TempCluster, app: str, user: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(
        PGHOST="127.0.0.1",
        PGPORT=str(cluster.port),
        PGUSER=user or cluster.superuser,
        PGAPPNAME=app,
    )
    return env


def psql(
    cluster: TempCluster,
    database: str,
    script: str,
    *,
    app: str = "psql",
    user: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a script through Debian's psql, as a DBA would (-X, errors do not stop it)."""
    return subprocess.run(
        [str(DEBIAN_BIN / "psql"), "-X", "-q", "-d", database],
        input=script,
        text=True,
        capture_output=True,
        env=client_env(cluster, app, user),
        timeout=300,
        check=False,
    )


def tool(cluster: TempCluster, name: str, *args: str, app: str | None = None) -> None:
    """pg_dump, pg_restore, pgbench..., failing the test when the program does."""
    proc = subprocess.run(
        [str(client_tool(cluster, name)), *args],
        text=True,
        capture_output=True,
        env=client_env(cluster, app or name),
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, (name, proc.stderr[-2000:])


@dataclass
class Watched:
    """A fresh database with the auditor installed, and the window that starts after it."""

    cluster: TempCluster
    name: str
    out: Path
    t0: datetime

    @classmethod
    def create(cls, cluster: TempCluster, name: str, out: Path) -> Watched:
        cluster.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        cluster.execute(f"CREATE DATABASE {name}")
        capture.install(cluster.dsn(name), databases=[name])
        time.sleep(0.01)
        t0 = datetime.now(UTC)
        # %t prints whole seconds: what the test does starts in the next second, so no
        # line of it can be mistaken for one written before the window.
        time.sleep(1.05 - t0.microsecond / 1e6)
        return cls(cluster, name, out, t0)

    def run(self, query: str, *, app: str = "pairing-test", user: str | None = None) -> Any:
        return self.cluster.execute(query, dbname=self.name, user=user, application_name=app)

    def reconcile(self, fmt: str = "stderr", **opts: Any) -> ReconcileResult:
        self.cluster.flush_logs()
        pattern = {"stderr": "*.log", "csvlog": "*.csv", "jsonlog": "*.json"}[fmt]
        flags: dict[str, Any] = {
            "dsn": self.cluster.dsn(self.name),
            "logs": [str(self.cluster.log_dir / pattern)],
            "since": self.t0.isoformat(),
            "databases": [self.name],
            "out": str(self.out / fmt),
        }
        if fmt == "stderr":
            flags["log_line_prefix"] = self.cluster.log_line_prefix
        flags.update(opts)
        return reconcile(load_config(flags, environ={}))

    def drop(self) -> None:
        self.cluster.execute(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")


def only(result: ReconcileResult, cls: FindingClass) -> list[Finding]:
    return [f for f in result.document.findings if f.cls == cls]


def criticals(result: ReconcileResult) -> list[tuple[str, str | None, str]]:
    return [
        (f.cls.value, f.statement, f.explanation)
        for f in result.document.findings
        if f.severity == Severity.CRITICAL
    ]


def assert_accounts(result: ReconcileResult) -> None:
    """logged DDL = matched + findings' share; audit rows = matched rows + rows in findings."""
    doc = result.document
    s = doc.summary
    assert s.logged_ddl == s.matched + sum(f.accounts_logged_ddl for f in doc.findings)
    rows = {(f.database, i) for f in doc.findings for i in f.audit_event_ids}
    assert s.audit_rows == s.matched_audit_rows + len(rows)
    assert sum(s.by_class.values()) == len(doc.findings)
    data = json.loads((result.paths["json"]).read_text())
    assert data["summary"]["logged_ddl"] == s.logged_ddl
