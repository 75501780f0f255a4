"""The runner: one cluster per (major, prefix, zone), every format reconciled and judged.

Why one cluster per group rather than one per major with a reload between
prefixes and zones: a cluster costs about 3 s to create here and a group's
workloads about a minute, and a fresh cluster keeps each group's regression
roles, databases and audit rows from leaking into the next group's window.

A group runs, in order: the demo's roles and databases, ``auditor install
--all-databases`` (``scratch`` uninstalled again: the demo needs it
unmonitored), the workloads (window 1), the demo's scripted day (window 2);
then each format's files are reconciled on their own for each window, as a DBA
whose server writes only that format would (``--dsn`` and ``--log``, nothing
else), and judged.  Statements the server logged as DDL that the auditor's
classifier does not call DDL, or cannot parse, are listed per group.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from auditor import capture
from auditor.classify import classify
from auditor.cluster import TempCluster
from auditor.config import load_config
from auditor.demo import Step, _setup_sql, steps
from auditor.model import LogRecord, MessageKind
from auditor.reconcile import reconcile
from realworld import workloads as W
from realworld.cells import (
    MAJORS,
    PREFIXES,
    SUFFIX,
    ZONES,
    Cell,
    Group,
    available,
    client_bindir,
    server_bindir,
)
from realworld.judge import Verdict, judge_demo, judge_workloads, norm


@dataclass(frozen=True)
class Misclassified:
    """A statement the server logged under log_statement = 'ddl' that classify() gets wrong."""

    app: str | None
    statement: str
    problem: str  # "pglast cannot parse: ..." or "not DDL to the auditor (tags ...)"
    where: str
    failed: bool  # the server raised an error for it (so it changed nothing)


@dataclass
class CellResult:
    cell: Cell
    workloads: Verdict
    demo: Verdict | None
    seconds: float
    notes: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    out: Path | None = None


@dataclass
class GroupResult:
    group: Group
    cells: list[CellResult] = field(default_factory=list)
    runs: list[W.StepRun] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    misclassified: list[Misclassified] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    error: str | None = None


def whole_second() -> datetime:
    """Wait for the next whole second and return it: the windows' edges.

    A DBA's ``--since``/``--until`` are whole seconds (dates, cron times); a ``%t``
    prefix prints whole seconds too, so a window edge inside a second would cut a
    statement's log line (printed at the second before) from its audit row (at the
    microsecond).  That edge case is real for ``--state`` runs and is reported on
    its own (bench/README.md); the matrix's windows do not exercise it.
    """
    now = datetime.now(UTC)
    edge = now.replace(microsecond=0) + timedelta(seconds=1)
    time.sleep((edge - now).total_seconds())
    return edge


def _reconcile(
    cluster: TempCluster, cell: Cell, since: datetime, until: datetime, out: Path
) -> Any:
    cfg = load_config(
        {
            "dsn": cluster.dsn("postgres"),
            "logs": [str(cluster.log_dir / f"*{SUFFIX[cell.fmt]}")],
            "since": since.isoformat(),
            "until": until.isoformat(),
            "out": str(out),
        },
        environ={},
        search_default=False,
    )
    return reconcile(cfg)


def _run_demo(cluster: TempCluster, day: Sequence[Step]) -> dict[str, W.StepRun]:
    """The demo's steps as auditor.demo plays them; a pause before a step that repeats an
    earlier step's statement, so that a %t log (whole seconds) still tells them apart."""
    runs: dict[str, W.StepRun] = {}
    seen: set[str] = set()
    for step in day:
        if any(norm(q) in seen for q in step.sql):
            time.sleep(1.2)
        started = datetime.now(UTC)
        rc = 0
        with psycopg.connect(
            cluster.dsn(step.database, step.user, application_name=step.app), autocommit=True
        ) as conn:
            cur = psycopg.ClientCursor(conn)
            for stmt in step.sql:
                try:
                    cur.execute(stmt)
                except psycopg.Error:
                    rc = 1
                    if not step.may_fail:
                        raise
        runs[step.app] = W.StepRun("demo", step.app, "; ".join(step.sql), rc, started,
                                   datetime.now(UTC))  # fmt: skip
        seen.update(norm(q) for q in step.sql)
    return runs


def misclassified(cluster: TempCluster, since: datetime, until: datetime) -> list[Misclassified]:
    """Logged statements (the server called them DDL) that classify() does not call DDL."""
    from auditor.logs.scan import scan

    records: list[LogRecord] = []
    failed: set[tuple[str, int]] = set()
    stream = scan([str(cluster.log_dir / "*.csv")], dsn=cluster.dsn("postgres"), all_records=True,
                  jobs=1)  # fmt: skip
    for rec in stream:
        if not isinstance(rec, LogRecord) or rec.time is None or not (since <= rec.time <= until):
            continue
        if rec.kind == MessageKind.ERROR and rec.failed_statement is not None:
            failed.add((rec.failed_statement.file, rec.failed_statement.offset))
        elif rec.kind in (MessageKind.STATEMENT, MessageKind.EXECUTE) and rec.statement:
            records.append(rec)
    out: list[Misclassified] = []
    seen: set[str] = set()
    for rec in records:
        text = rec.prepare_text or rec.statement or ""
        if text in seen:
            continue
        seen.add(text)
        c = classify(text, server_version_num=cluster.version_num)
        if c.parse_error:
            problem = f"pglast cannot parse: {c.parse_error}"
        elif not c.is_ddl:
            problem = "not DDL to the auditor: " + ", ".join(s.command_tag for s in c.statements)
        else:
            continue
        err = (rec.source.file, rec.source.offset) in failed
        out.append(Misclassified(rec.application, text, problem, str(rec.source), err))
    return out


def run_group(
    group: Group,
    work: Path,
    *,
    regress_files: Sequence[str] = W.REGRESS_FILES,
    demo: bool = True,
    echo: Callable[[str], None] = lambda _s: None,
) -> GroupResult:
    """Run one group's cluster: workloads, demo, every format reconciled and judged."""
    result = GroupResult(group)
    chosen, result.skipped = W.for_major(group.major)
    if regress_files != W.REGRESS_FILES:
        regress = W.Workload(
            "regress", W.REGRESS.apps, lambda c: W.run_regress(c, regress_files),
            W.REGRESS.uses_session_authorization, W.REGRESS.creates_event_triggers,
            W.REGRESS.what,
        )  # fmt: skip
        chosen = tuple(regress if w.name == "regress" else w for w in chosen)
    work.mkdir(parents=True, exist_ok=True)
    work.chmod(0o755)
    t = time.monotonic()
    with TempCluster(
        bindir=server_bindir(group.major),
        log_line_prefix=group.log_line_prefix,
        settings={"log_timezone": group.zone, "timezone": group.zone},
    ) as cluster:
        result.seconds["cluster"] = time.monotonic() - t
        t = time.monotonic()
        for db, stmt in _setup_sql():
            cluster.execute(stmt, dbname=db, application_name="demo-setup")
        capture.install(cluster.dsn("postgres"), all_databases=True)
        capture.uninstall(cluster.dsn("postgres"), databases=["scratch"])
        result.seconds["install"] = time.monotonic() - t
        ctx = W.Context(cluster, client_bindir(group.major), work)
        t0 = whole_second()
        for wl in chosen:
            t = time.monotonic()
            wl.run(ctx)
            result.seconds[wl.name] = time.monotonic() - t
            echo(f"  {group}: {wl.name} {result.seconds[wl.name]:.0f} s")
        cluster.flush_logs()
        t1 = whole_second()
        result.runs = list(ctx.runs)
        # Window 1 is reconciled before the demo runs: its live checks must see the server
        # as the workloads left it, not as the demo's intruder does.
        first: dict[Cell, tuple[Verdict, Any, float]] = {}
        for cell in group.cells():
            t = time.monotonic()
            r1 = _reconcile(cluster, cell, t0, t1, work / cell.fmt / "workloads")
            first[cell] = (judge_workloads(r1.document, ctx.runs, chosen), r1,
                           time.monotonic() - t)  # fmt: skip
        day = steps()
        demo_runs: dict[str, W.StepRun] = {}
        t2 = t3 = t1
        if demo:
            t2 = whole_second()
            t = time.monotonic()
            demo_runs = _run_demo(cluster, day)
            cluster.flush_logs()
            t3 = whole_second()
            result.seconds["demo"] = time.monotonic() - t
            result.runs.extend(demo_runs.values())
        for cell in group.cells():
            wv, r1, spent = first[cell]
            t = time.monotonic()
            dv = None
            if demo:
                r2 = _reconcile(cluster, cell, t2, t3, work / cell.fmt / "demo")
                dv = judge_demo(r2.document, day, demo_runs)
            result.cells.append(
                CellResult(
                    cell, wv, dv, spent + time.monotonic() - t, r1.document.notes,
                    tuple(w for s in r1.document.logs for w in s.warnings), work / cell.fmt,
                )
            )  # fmt: skip
            echo(f"  {cell}: {len(wv.false_alarms)} false alarms, "
                 f"demo {'ok' if dv is None or not dv.demo else len(dv.demo)}")  # fmt: skip
        t = time.monotonic()
        result.misclassified = misclassified(cluster, t0, t1)
        result.seconds["classify-scan"] = time.monotonic() - t
        for path in cluster.log_files():
            with contextlib.suppress(OSError):
                shutil.copyfile(path, work / path.name)
    return result


# -- the table ------------------------------------------------------------------------


def table(results: Iterable[GroupResult]) -> str:
    """Markdown: one row per cell, false alarms by class, accounting and demo."""
    cells = [c for g in results for c in g.cells]
    classes = sorted({k for c in cells for k in c.workloads.false_by_class()}
                     | {k for c in cells if c.demo for k in c.demo.false_by_class()})  # fmt: skip
    head = ["major", "prefix", "log_timezone", "format", "findings", *classes,
            "accounting", "demo misses"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in cells:
        fa = c.workloads.false_by_class()
        demo = "-" if c.demo is None else (", ".join(m.step for m in c.demo.demo) or "0")
        acct = (
            "ok" if not c.workloads.accounting and not (c.demo and c.demo.accounting) else "BROKEN"
        )
        g = c.cell.group
        row = [str(g.major), g.prefix, g.zone, c.cell.fmt, str(c.workloads.findings),
               *[str(fa.get(k, 0) or "") for k in classes], acct, demo]  # fmt: skip
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def _template(text: str) -> str:
    """An explanation with its particulars (numbers, quoted names) taken out, for grouping.

    >>> _template("audit row 5206 says session_user 'regress_dep_user0'")
    "audit row N says session_user '…'"
    """
    text = re.sub(r"'[^']*'", "'…'", text)
    return re.sub(r"\d+", "N", text)


def reproducers(results: Iterable[GroupResult]) -> str:
    """Markdown: each kind of false alarm once, with the cells it shows in and one example.

    A kind is (class, severity, the tool or regression file that caused it, the
    explanation with its particulars taken out); the example gives the statement,
    the cell and the finding's explanation, so that each line is a reproducer.
    """
    kinds: dict[tuple[str, str, str, str], list[tuple[Cell, Any]]] = {}
    for g in results:
        for c in g.cells:
            for verdict, window in ((c.workloads, "workloads"), (c.demo, "demo")):
                if verdict is None:
                    continue
                for a in verdict.false_alarms:
                    f = a.finding
                    tail = f.explanation.split(". ", 1)[-1] if ". " in f.explanation else ""
                    key = (f.cls.value, f.severity.value, f"{window}: {a.traced_to}",
                           _template(tail)[-220:])  # fmt: skip
                    kinds.setdefault(key, []).append((c.cell, a))
    lines = []
    for (cls, sev, where, _tail), hits in sorted(
        kinds.items(), key=lambda kv: (kv[0][0], -len(kv[1]))
    ):
        cells = sorted({str(cell) for cell, _a in hits})
        cell, a = hits[0]
        f = a.finding
        stmt = (f.statement or "").strip().replace("\n", " ")[:200]
        lines.append(
            f"- **{cls}/{sev}** from {where}: {len(hits)} findings in {len(cells)} cells "
            f"(e.g. {cell}); statement `{stmt}`; explanation: {f.explanation[-300:]}"
        )
    return "\n".join(lines) + "\n"


def details(results: Iterable[GroupResult]) -> dict[str, object]:
    """Everything judged, as JSON: the false alarms with their evidence, demo misses."""
    out: list[dict[str, object]] = []
    for g in results:
        gd: dict[str, object] = {
            "group": str(g.group),
            "seconds": g.seconds,
            "skipped": g.skipped,
            "error": g.error,
            "steps": [
                {"app": r.app, "rc": r.returncode, "seconds": round(r.seconds, 2)} for r in g.runs
            ],
            "misclassified": [m.__dict__ for m in g.misclassified],
            "cells": [],
        }
        for c in g.cells:
            cd = {
                "cell": str(c.cell),
                "reconcile_seconds": round(c.seconds, 2),
                "findings": c.workloads.by_class,
                "called_for": c.workloads.called_for,
                "accounting": c.workloads.accounting + (c.demo.accounting if c.demo else []),
                "notes": list(c.notes),
                "warnings": list(c.warnings)[:20],
                "false_alarms": [
                    {
                        "class": a.finding.cls.value,
                        "severity": a.finding.severity.value,
                        "why": a.reason,
                        "traced_to": a.traced_to,
                        "statement": (a.finding.statement or "")[:300],
                        "time": a.finding.time.isoformat() if a.finding.time else None,
                        "database": a.finding.database,
                        "user": a.finding.user,
                        "application": a.finding.application,
                        "log": f"{a.finding.log_file}:{a.finding.log_line}",
                        "explanation": a.finding.explanation,
                    }
                    for a in c.workloads.false_alarms
                ],
                "demo_misses": [m.__dict__ for m in c.demo.demo] if c.demo else None,
                "demo_untied": c.demo.demo_untied if c.demo else None,
            }
            gd["cells"].append(cd)  # type: ignore[attr-defined]
        out.append(gd)
    return {"groups": out}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="scripts/matrix", description=__doc__.split("\n")[0])
    ap.add_argument("--majors", default=",".join(map(str, MAJORS)))
    ap.add_argument("--prefixes", default=",".join(PREFIXES))
    ap.add_argument("--zones", default=",".join(ZONES))
    ap.add_argument("--regress", default="", help="comma-separated subset of regression files")
    ap.add_argument("--no-demo", action="store_true")
    ap.add_argument("--out", default="matrix-out", help="directory for the table and details")
    ap.add_argument("--keep", action="store_true", help="keep each group's work directory")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    regress = tuple(x for x in args.regress.split(",") if x) or W.REGRESS_FILES
    # Majors vary fastest: a run cut short still covers every major for the first
    # (zone, prefix) pairs.
    groups = [
        Group(int(m), p, z)
        for z in args.zones.split(",")
        for p in args.prefixes.split(",")
        for m in args.majors.split(",")
    ]
    results: list[GroupResult] = []
    started = time.monotonic()
    for g in groups:
        if not available(g.major):
            print(f"{g}: no binaries (scripts/get-postgres {g.major})", file=sys.stderr)
            continue
        work = Path(tempfile.mkdtemp(prefix="matrix-", dir=out))
        t = time.monotonic()
        try:
            res = run_group(g, work, regress_files=regress, demo=not args.no_demo,
                            echo=lambda s: print(s, flush=True))  # fmt: skip
        except Exception as exc:  # one broken group must not lose the others
            res = GroupResult(g, error=f"{type(exc).__name__}: {exc}")
        print(f"{g}: {time.monotonic() - t:.0f} s" + (f" ERROR {res.error}" if res.error else ""),
              flush=True)  # fmt: skip
        results.append(res)
        (out / "matrix.md").write_text(table(results), encoding="utf-8")
        (out / "false-alarms.md").write_text(reproducers(results), encoding="utf-8")
        (out / "matrix.json").write_text(json.dumps(details(results), indent=1, default=str),
                                         encoding="utf-8")  # fmt: skip
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    total = time.monotonic() - started
    print(table(results))
    print(f"{len(results)} groups, {sum(len(r.cells) for r in results)} cells in {total:.0f} s; "
          f"{out / 'matrix.md'}, {out / 'matrix.json'}")  # fmt: skip
    bad = sum(
        1 for r in results for c in r.cells if not c.workloads.ok or (c.demo and not c.demo.ok)
    )
    return 1 if bad or any(r.error for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
