"""``auditor demo``: the whole product on a throwaway cluster.

Until the reconcile and mail pieces land this plays a short scripted set of
DDL on a throwaway cluster and leaves its logs (all three formats) in the
output directory, so the end-to-end path that exists can be seen working.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from auditor.cluster import TempCluster

SCRIPT = (
    "CREATE TABLE demo_orders (id serial PRIMARY KEY, placed timestamptz DEFAULT now())",
    "CREATE INDEX demo_orders_placed ON demo_orders (placed)",
    "ALTER TABLE demo_orders ADD COLUMN note text",
    "CREATE VIEW demo_recent AS SELECT * FROM demo_orders WHERE placed > now() - interval '1 day'",
    "DROP VIEW demo_recent",
)


@dataclass(frozen=True)
class DemoResult:
    out: Path
    logs: tuple[Path, ...]
    summary: str


def run_demo(out: Path, echo: Callable[[str], None] = print) -> DemoResult:
    """Start a cluster, play the script, copy the logs to ``out``; always clean up."""
    out.mkdir(parents=True, exist_ok=True)
    logs_out = out / "logs"
    logs_out.mkdir(exist_ok=True)
    with TempCluster() as cluster:
        echo(f"throwaway PostgreSQL {cluster.version_num} on port {cluster.port}")
        for stmt in SCRIPT:
            cluster.execute(stmt, application_name="auditor-demo")
            echo(f"  ran: {stmt}")
        cluster.flush_logs()
        copied = []
        for path in cluster.log_files():
            target = logs_out / path.name
            shutil.copyfile(path, target)
            copied.append(target)
    summary = f"{len(SCRIPT)} DDL statements played; logs in {logs_out}"
    return DemoResult(out=out, logs=tuple(copied), summary=summary)
