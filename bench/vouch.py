"""Cost of verifying, on every ``--state`` run, every audit row earlier runs vouched for.

An incremental reconcile judges each audit row once; ``auditor.capture.vouch``
keeps, in the state file, one hash per block of 1,000 ids over every row (id,
xmin, the text of its columns) and the snapshot they were seen in, and the next
run recomputes them for exactly those rows.  This measures, on a throwaway
cluster with N audit rows shaped like real ones (a CREATE TABLE's objects JSON,
query text, addresses):

* ``vouch (first)``: the first run of a state file (hashes only);
* ``vouch (verify)``: every later run (verify what was vouched for, vouch anew);
* ``vouch (1 row altered)``: the same, after one row was rewritten (it finds it);
* ``read rows``: ``read_audit_events`` over the same rows, what re-checking each
  row's digest in Python would cost at the least (without the markers to check
  against, which old logs no longer hold);
* the size of the state file's part, and the ``id_gaps`` query over the ids.

    .venv/bin/python bench/vouch.py 100000 1000000 [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from typing import Any

from auditor import capture
from auditor.cluster import TempCluster
from auditor.db import connect

#: Rows shaped like a CREATE TABLE's ddl_command_end row from a migration tool.
FILL = """
INSERT INTO auditor.events (event, command_tag, objects, query, caller_context, statement_time,
    clock_time, session_user_name, current_user_name, login_user_name, database_name,
    client_addr, client_port, server_addr, server_port, application_name, backend_pid,
    session_id, vxid, xid)
SELECT 'ddl_command_end', 'CREATE TABLE',
       jsonb_build_array(jsonb_build_object('objid', 16384 + g, 'classid', 1259, 'objsubid', 0,
           'command_tag', 'CREATE TABLE', 'object_type', 'table', 'schema_name', 'public',
           'in_extension', false, 'object_identity', 'public.orders_' || g)),
       'CREATE TABLE orders_' || g || ' (id bigserial PRIMARY KEY, placed timestamptz, note text)',
       NULL, t, t + interval '2 ms', 'migrator', 'migrator', 'migrator', current_database(),
       '10.1.2.3', 40000 + g %% 20000, '10.1.2.1', 5432, 'flyway', 1000 + g %% 500,
       to_hex(1700000000 + g / 50) || '.' || to_hex(1000 + g %% 500), (g %% 90) || '/' || g,
       txid_current()
  FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS g,
       LATERAL (SELECT timestamptz '2026-11-25 00:00:00+00' + g * interval '50 ms' AS t) AS s
"""


def timed(fn: Any, repeat: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("sizes", nargs="*", type=int, default=[100_000, 1_000_000])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    rows_out = []
    with TempCluster(settings={"shared_buffers": "256MB"}) as c:
        c.execute("CREATE DATABASE vbench")
        capture.install(c.dsn("vbench"), databases=["vbench"])
        dsn = c.dsn("vbench")
        have = 0
        for size in sorted(args.sizes):
            with connect(dsn) as conn:
                t0 = time.perf_counter()
                conn.execute(FILL, {"first": have + 1, "last": size})
                conn.execute("VACUUM ANALYZE auditor.events")
                fill_s = time.perf_counter() - t0
                have = size
                (table_mb,) = conn.execute(
                    "SELECT pg_total_relation_size('auditor.events') / 1e6"
                ).fetchone()
                first_s, (_, vouched) = timed(
                    lambda conn=conn: capture.vouch(conn, "auditor", None), args.repeat
                )
                verify_s, (breaches, _) = timed(
                    lambda conn=conn, v=vouched: capture.vouch(conn, "auditor", v), args.repeat
                )
                assert breaches == [], breaches
                gaps_s, gaps = timed(
                    lambda conn=conn, size=size: capture.id_gaps(conn, "auditor", 1, size),
                    args.repeat,
                )
                assert gaps == []
                read_s, n = timed(
                    lambda conn=conn: sum(1 for _ in capture.read_audit_events(conn)), 1
                )
                assert n == size
            # One row rewritten behind the protections' back (a catalog edit), then verified.
            c.execute(
                "UPDATE pg_trigger SET tgenabled = 'D' WHERE tgname = 'events_append_only'",
                dbname="vbench",
            )
            c.execute(
                f"UPDATE auditor.events SET session_user_name = 'x' WHERE id = {size // 2}",
                dbname="vbench",
            )
            c.execute(
                "UPDATE pg_trigger SET tgenabled = 'A' WHERE tgname = 'events_append_only'",
                dbname="vbench",
            )
            with connect(dsn) as conn:
                breach_s, (breaches, _) = timed(
                    lambda conn=conn, v=vouched: capture.vouch(conn, "auditor", v), 1
                )
                c.execute(
                    "UPDATE pg_trigger SET tgenabled = 'D' WHERE tgname = 'events_append_only';",
                    dbname="vbench",
                )
                c.execute(
                    "UPDATE auditor.events SET session_user_name = 'migrator' "
                    f"WHERE id = {size // 2}",
                    dbname="vbench",
                )
                c.execute(
                    "UPDATE pg_trigger SET tgenabled = 'A' WHERE tgname = 'events_append_only'",
                    dbname="vbench",
                )
            found = [(b.first_id, b.last_id) for b in breaches]
            state_kb = len(json.dumps(vouched.to_json())) / 1000
            row = {
                "rows": size,
                "table MB": round(table_mb),
                "fill s": round(fill_s, 1),
                "vouch (first) s": round(first_s, 2),
                "vouch (verify) s": round(verify_s, 2),
                "vouch (1 row altered) s": round(breach_s, 2),
                "found": found,
                "id_gaps s": round(gaps_s, 2),
                "read rows s": round(read_s, 2),
                "state kB": round(state_kb, 1),
                "load": os.getloadavg()[0],
            }
            print(json.dumps(row), flush=True)
            rows_out.append(row)
    keys = list(rows_out[0])
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for r in rows_out:
        print("| " + " | ".join(str(r[k]) for k in keys) + " |")


if __name__ == "__main__":
    main()
