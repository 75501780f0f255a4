"""Cost of the report outputs as the number of findings grows.

Writes findings.json, findings.csv and report.html for synthetic documents of
N findings (every class and severity, realistic evidence) and prints the time
and the file sizes; with ``--browser`` it also opens each report.html in
headless chromium (the test suite's DevTools driver) and times the load, a
class filter and a reset.

    .venv/bin/python bench/report_render.py 100 1000 10000 --browser
"""

from __future__ import annotations

import argparse
import importlib.util
import tempfile
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

from auditor.model import Finding, FindingClass, FindingsDocument, Severity, Summary
from auditor.report import write_reports

ROOT = Path(__file__).resolve().parents[1]
TZ = timezone(timedelta(hours=2))
T0 = datetime(2024, 5, 1, tzinfo=TZ)


def document(n: int) -> FindingsDocument:
    findings = []
    for i in range(n):
        when = T0 + timedelta(seconds=86400 * i / max(n, 1))
        stmt = f"ALTER TABLE public.orders_{i % 97} ADD COLUMN note_{i} text DEFAULT 'x'"
        findings.append(
            Finding(
                id=f"F{i:06d}",
                cls=list(FindingClass)[i % len(FindingClass)],
                severity=list(Severity)[i % len(Severity)],
                time=when,
                database=f"db{i % 5}",
                user=f"user{i % 11}",
                application="psql",
                client=f"10.0.{i % 250}.{i % 200}:5{i % 9999:04d}",
                session_id=f"6631a2b4.{i:x}",
                vxid=f"3/{i}",
                command_tags=("ALTER TABLE",),
                statement=stmt,
                audit_event_ids=(i,),
                log_file="/var/log/postgresql/postgresql.csv",
                log_line=i * 3,
                explanation="The statement is in the log but no audit row or marker exists.",
                evidence={
                    "log": {"file": "postgresql.csv", "line": i * 3, "time": when.isoformat(),
                            "kind": "statement", "message": "statement: " + stmt},
                    "audit": [{"id": i, "event": "ddl_command_end", "command_tag": "ALTER TABLE",
                               "objects": [{"type": "table", "identity": f"public.orders_{i % 97}"}]}],
                },
            )
        )  # fmt: skip
    return FindingsDocument(
        auditor_version="bench",
        generated_at=T0 + timedelta(days=1, hours=7),
        since=T0,
        until=T0 + timedelta(days=1),
        logs=(),
        databases=(),
        summary=Summary(
            logged_ddl=n,
            audit_rows=n,
            matched=0,
            by_class=dict(Counter(f.cls.value for f in findings)),
            by_severity=dict(Counter(f.severity.value for f in findings)),
            matched_audit_rows=0,
        ),
        findings=tuple(findings),
    )


def _browser_module():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("report_tests", ROOT / "tests" / "test_report.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sizes", nargs="*", type=int, default=[100, 1000, 10000])
    parser.add_argument("--browser", action="store_true", help="also time chromium")
    args = parser.parse_args()
    tests = _browser_module() if args.browser else None
    print(
        "| findings | write all three (s) | json MB | csv MB | html MB |"
        + (" chromium load (s) | filter (s) | reset (s) |" if tests else "")
    )
    print("|---:|---:|---:|---:|---:|" + ("---:|---:|---:|" if tests else ""))
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            doc = document(n)
            start = time.perf_counter()
            paths = write_reports(doc, Path(tmp) / str(n))
            took = time.perf_counter() - start
            mb = {k: p.stat().st_size / 1e6 for k, p in paths.items()}
            row = f"| {n} | {took:.2f} | {mb['json']:.1f} | {mb['csv']:.1f} | {mb['html']:.1f} |"
            if tests is not None:
                work = Path(tmp) / f"chromium-{n}"
                work.mkdir()
                browser = tests.Browser("chromium", work)
                try:
                    t = time.perf_counter()
                    browser.open(paths["html"].as_uri())
                    load = time.perf_counter() - t
                    t = time.perf_counter()
                    tests._select(browser, "f-class", "LOG_GAP")
                    browser.js(f"{tests.VISIBLE_ROWS}.length")
                    filt = time.perf_counter() - t
                    t = time.perf_counter()
                    browser.click("#reset")
                    browser.js(f"{tests.VISIBLE_ROWS}.length")
                    reset = time.perf_counter() - t
                    assert browser.errors() == [], browser.errors()
                finally:
                    browser.close()
                row += f" {load:.2f} | {filt:.2f} | {reset:.2f} |"
            print(row, flush=True)


if __name__ == "__main__":
    main()
