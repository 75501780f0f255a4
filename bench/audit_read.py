"""Time of reading audit rows (``capture.read_audit_events``), per row, in-process.

Reads the rows of a held ``bench/reconcile --hold`` input (or any ``--dsn``) the way
reconcile does, digest recomputed per row, and prints CPU and wall time per row for
each reader (``row`` = one psycopg fetch and one AuditEvent per row, ``copy`` = COPY
into columns in this process, ``worker`` = COPY, columns and digests in a worker
process, this one building the AuditEvents from its Arrow batches; CPU is this
process's only, which is what the log stream and the matcher share).  With more than one reader it checks that
every reader returned the same AuditEvents, field for field (digests included).

Usage (from the repository root, a held input first):

    bench/reconcile --sizes 100k --formats csvlog --hold &
    .venv/bin/python bench/audit_read.py --size 100k --readers row,copy,worker --repeat 3
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from auditor import capture  # noqa: E402
from auditor.db import connect  # noqa: E402

HOLD = HERE / "out" / "reconcile" / "hold.json"


def read_once(dsn: str, reader: str, since: datetime | None, until: datetime | None) -> Any:
    """One read: (rows, cpu s, wall s)."""
    os.environ["AUDITOR_AUDIT_READ"] = "row" if reader == "row" else "copy"
    worker = (dsn, None) if reader == "worker" else None
    with connect(dsn, application_name="bench audit_read") as conn:
        gc.disable()  # as reconcile reads them (reconcile._gc_paused)
        c0, w0 = time.process_time(), time.perf_counter()
        rows = list(
            capture.read_audit_events(conn, "auditor", since=since, until=until, worker=worker)
        )
        cpu, wall = time.process_time() - c0, time.perf_counter() - w0
        gc.enable()
        return rows, cpu, wall


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--size", default="100k", help="entry of hold.json (10k real, 100k, ...)")
    ap.add_argument("--dsn", help="instead of hold.json: read every row of this database")
    ap.add_argument("--readers", default="row,copy,worker")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    since = until = None
    if args.dsn:
        dsn = args.dsn
    else:
        held = {h["size"]: h for h in json.loads(HOLD.read_text())}[args.size]
        dsn = held["dsn"]
        since = datetime.fromisoformat(held["since"])
        until = datetime.fromisoformat(held["until"])
    readers = [r.strip() for r in args.readers.split(",") if r.strip()]
    results: dict[str, dict[str, list[float]]] = {r: {"cpu": [], "wall": []} for r in readers}
    first: dict[str, list[Any]] = {}
    for _ in range(args.repeat):
        for r in readers:  # interleaved, so that load moves both alike
            rows, cpu, wall = read_once(dsn, r, since, until)
            results[r]["cpu"].append(cpu)
            results[r]["wall"].append(wall)
            first.setdefault(r, rows)
            del rows
    n = len(next(iter(first.values())))
    print(f"{n} audit rows, load {os.getloadavg()[0]:.2f}")
    for r in readers:
        cpu = statistics.median(results[r]["cpu"])
        wall = statistics.median(results[r]["wall"])
        print(
            f"{r:>5}: CPU {cpu:6.2f} s ({cpu / n * 1e6:5.1f} us/row), "
            f"wall {wall:6.2f} s ({wall / n * 1e6:5.1f} us/row)  "
            f"[cpu {', '.join(f'{x:.2f}' for x in results[r]['cpu'])}; "
            f"wall {', '.join(f'{x:.2f}' for x in results[r]['wall'])}]"
        )
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    base = readers[0]
    for r in readers[1:]:
        same = first[r] == first[base]
        reprs = same and [repr(e) for e in first[r]] == [repr(e) for e in first[base]]
        print(f"{r} == {base}: {'identical' if reprs else 'DIFFERENT'} ({len(first[r])} rows)")
        if not reprs:
            for a, b in zip(first[base], first[r], strict=False):
                if repr(a) != repr(b):
                    print(f"first difference:\n  {a!r}\n  {b!r}")
                    break
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
