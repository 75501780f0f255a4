"""Cost of ``auditor timeline`` on top of the reconcile analysis it reuses.

Plays a DDL workload on a throwaway cluster (per table: CREATE, ALTER, RENAME,
a DDL from a DO block, DROP; the auditor installed), then, for windows holding
the first N tables, times:

* ``analyse``: reading the logs and the audit table and pairing them (what
  ``reconcile`` does too, without writing reports);
* ``assemble``: what the timeline adds: names, renames, filters, ordering;
  for no filter, ``--object`` (one table, followed across its rename), and
  ``--user``;
* rendering the object's story as table, CSV and JSON.

    .venv/bin/python bench/timeline.py 250 1000 4000
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime

import psycopg

from auditor import capture
from auditor.cluster import TempCluster
from auditor.config import load_config
from auditor.reconcile import analyse
from auditor.timeline import assemble, render_table, to_csv, to_json


def play(cluster: TempCluster, db: str, n: int, marks: list[int]) -> dict[int, datetime]:
    """The workload; returns the time after each mark (number of tables played)."""
    at: dict[int, datetime] = {}
    with cluster.connect(db, application_name="bench") as conn:
        cur = psycopg.ClientCursor(conn)
        for i in range(1, n + 1):
            cur.execute(f"CREATE TABLE t_{i} (id serial PRIMARY KEY, v text)")
            cur.execute(f"ALTER TABLE t_{i} ADD COLUMN w int")
            cur.execute(f"ALTER TABLE t_{i} RENAME TO r_{i}")
            cur.execute(f"DO $$ BEGIN EXECUTE 'ALTER TABLE r_{i} ADD COLUMN x int'; END $$")
            cur.execute(f"DROP TABLE r_{i}")
            if i in marks:
                at[i] = datetime.now(UTC)
    return at


def timed(fn, *args, **kw):  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    out = fn(*args, **kw)
    return out, time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tables", nargs="+", type=int, help="window sizes, in tables played")
    args = parser.parse_args()
    marks = sorted(args.tables)
    with TempCluster() as cluster:
        cluster.execute("CREATE DATABASE bench")
        capture.install(cluster.dsn("bench"), databases=["bench"])
        time.sleep(0.05)
        t0 = datetime.now(UTC)
        started = time.perf_counter()
        at = play(cluster, "bench", marks[-1], marks)
        played = time.perf_counter() - started
        cluster.flush_logs()
        print(f"played {marks[-1]} tables ({5 * marks[-1]} statements) in {played:.1f} s")
        print(
            "| tables | steps | analyse (s) | assemble, no filter (s) | assemble --object (s) "
            "| object steps | assemble --user (s) | table / csv / json (ms) |"
        )
        print("|---:|---:|---:|---:|---:|---:|---:|---|")
        for n in marks:
            cfg = load_config(
                {
                    "dsn": cluster.dsn("bench"),
                    "logs": [str(cluster.log_dir)],
                    "since": t0.isoformat(),
                    "until": at[n].isoformat(),
                    "databases": ["bench"],
                },
                environ={},
            )
            a, t_analyse = timed(analyse, cfg, use_state=False)
            steps, extra, final = a.result.steps, a.extra_findings, a.document.findings
            everything, t_all = timed(assemble, steps, extra, final)
            name = f"r_{max(1, n // 2)}"  # by its later name: the rename is followed back
            story, t_obj = timed(assemble, steps, extra, final, object_name=name)
            _, t_user = timed(assemble, steps, extra, final, user="postgres")
            _, t_table = timed(render_table, story)
            _, t_csv = timed(to_csv, story)
            _, t_json = timed(to_json, story)
            print(
                f"| {n} | {len(everything.steps)} | {t_analyse:.2f} | {t_all:.2f} | "
                f"{t_obj:.2f} | {len(story.steps)} | {t_user:.2f} | "
                f"{t_table * 1000:.0f} / {t_csv * 1000:.1f} / {t_json * 1000:.1f} |"
            )


if __name__ == "__main__":
    main()
