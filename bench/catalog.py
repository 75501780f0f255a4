"""Cost of the catalog channel: snapshot time and size, and the comparison.

Builds a database of N tables on a throwaway cluster (each: a serial primary
key, three more columns, one of them with a default, one index), installs the
auditor (its baseline snapshot), then measures:

* ``snapshot``: ``<schema>.catalog_snapshot()`` in the server (build and store);
* ``read``: reading a snapshot back (``auditor.catalog.take_snapshot`` minus the
  server part) and parsing it;
* ``stored``: what one snapshot takes in the audit schema (TOAST-compressed), per
  part, and what an unchanged one takes (its parts are stored once);
* ``state``: the state file's share (zlib, base64) of one database;
* ``compare``: ``changes_between`` plus explaining every change, with 1 % of the
  tables altered by DDL between two snapshots (explained by their audit rows);
* ``reconcile``: a whole ``auditor reconcile`` of that interval.

    .venv/bin/python bench/catalog.py 1000 10000
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from tempfile import TemporaryDirectory

import psycopg

from auditor import capture, catalog
from auditor.cluster import TempCluster
from auditor.config import load_config
from auditor.reconcile import reconcile


def build(cluster: TempCluster, db: str, n: int) -> None:
    with cluster.connect(db, application_name="bench") as conn:
        cur = psycopg.ClientCursor(conn)
        for start in range(0, n, 250):
            cur.execute(
                ";".join(
                    f"CREATE TABLE t_{i} (id serial PRIMARY KEY, name text NOT NULL, "
                    f"amount numeric(10,2) DEFAULT 0, created timestamptz); "
                    f"CREATE INDEX t_{i}_created ON t_{i} (created)"
                    for i in range(start, min(n, start + 250))
                )
            )


def timed(fn: object, *args: object) -> tuple[float, object]:
    t = time.perf_counter()
    out = fn(*args)  # type: ignore[operator]
    return time.perf_counter() - t, out


def measure(n: int) -> dict[str, object]:
    with TempCluster() as cluster, TemporaryDirectory() as tmp:
        cluster.execute("CREATE DATABASE bench")
        t0 = time.perf_counter()
        build(cluster, "bench", n)
        built = time.perf_counter() - t0
        capture.install(cluster.dsn("bench"), databases=["bench"])
        with cluster.connect("bench") as conn:
            snap_times = []
            for _ in range(3):
                t = time.perf_counter()
                conn.execute("SELECT auditor.catalog_snapshot('bench')")
                snap_times.append(time.perf_counter() - t)
            t = time.perf_counter()
            snap = catalog.take_snapshot(conn, "auditor", "bench")
            take = time.perf_counter() - t
            t = time.perf_counter()
            objs = snap.objects(*catalog.PARTS)
            parse = time.perf_counter() - t
            sizes = conn.execute(
                "SELECT id, pg_column_size(database_objects), pg_column_size(builtin_objects),"
                " pg_column_size(cluster_objects), length(database_objects::text)"
                " FROM auditor.catalog_snapshots ORDER BY id"
            ).fetchall()
            table = conn.execute(
                "SELECT pg_total_relation_size('auditor.catalog_snapshots')"
            ).fetchone()
        blobs: dict[str, str] = {}
        state_entry = snap.to_state(blobs)
        state_bytes = len(json.dumps({"db": state_entry, "blobs": blobs}))
        # 1 % of the tables changed by DDL, then a second snapshot and the comparison.
        changed = max(1, n // 100)
        with cluster.connect("bench") as conn:
            for i in range(changed):
                conn.execute(f"ALTER TABLE t_{i} ADD COLUMN note text")
            after = catalog.take_snapshot(conn, "auditor", "bench")
            events = catalog.interval_events(conn, "auditor", snap, after)
        old, new = snap.objects(*catalog.PARTS), after.objects(*catalog.PARTS)
        t = time.perf_counter()
        changes = catalog.changes_between(old, new)
        index = catalog._Index(old, new, catalog.Roles.of(old), catalog.Roles.of(new))
        schemas = {o.name for o in new.values() if o.classid == 2615 and o.name}
        evidence = catalog.Evidence(events, [])
        unexplained = [
            c for c in changes if not catalog.explain(c, index, evidence, schemas).explained
        ]
        compare = time.perf_counter() - t
        cluster.flush_logs()
        out = Path(tmp) / "out"
        flags = {
            "dsn": cluster.dsn("bench"),
            "logs": [str(cluster.log_dir)],
            "databases": ["bench"],
            "out": str(out),
        }
        t = time.perf_counter()
        result = reconcile(load_config(flags, environ={}))
        whole = time.perf_counter() - t
        silent = [f for f in result.document.findings if f.cls.value == "SILENT_SCHEMA_CHANGE"]
        return {
            "tables": n,
            "build_s": round(built, 1),
            "objects": len(objs),
            "snapshot_s": [round(x, 2) for x in snap_times],
            "take_and_read_s": round(take, 2),
            "parse_s": round(parse, 2),
            "stored_first_bytes": sizes[0][1:4],
            "stored_unchanged_bytes": sizes[1][1:4],
            "database_part_text_bytes": sizes[0][4],
            "table_bytes": table[0] if table else None,
            "state_bytes": state_bytes,
            "changed_tables": changed,
            "changes": len(changes),
            "unexplained": len(unexplained),
            "compare_s": round(compare, 2),
            "reconcile_s": round(whole, 2),
            "silent_findings": len(silent),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tables", nargs="+", type=int)
    args = parser.parse_args()
    for n in args.tables:
        print(json.dumps(measure(n)), flush=True)


if __name__ == "__main__":
    main()
