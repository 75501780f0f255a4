"""The judgement of one cell: false alarms, accounting, the demo's evasions.

A cell passes when its reconcile has no critical finding, no high finding the
workload did not really call for, accounts for every logged DDL and audit row
exactly once, and (in the demo's window) finds each scripted evasion with the
demo's own classes.  Findings are traced to the workload step that caused them
by ``application_name`` where the log or the audit row has one, else by the
step's wall-clock interval, else by statement text: prefixes without ``%a``
(Debian's, RDS's) leave log-only findings without an application.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from auditor.demo import Step
from auditor.model import Finding, FindingClass, FindingsDocument, Severity
from auditor.redact import mask
from realworld.workloads import StepRun, Workload

C = FindingClass

#: UNAUDITABLE_DDL may be high for these (role, database and system DDL).
ROLE_DATABASE_TAGS = frozenset(
    {"CREATE ROLE", "ALTER ROLE", "DROP ROLE", "GRANT ROLE", "REVOKE ROLE",
     "CREATE DATABASE", "ALTER DATABASE", "DROP DATABASE", "ALTER SYSTEM"}
)  # fmt: skip

#: A %t log time is whole seconds: a finding's time may be this much before its step.
SLACK = timedelta(seconds=1.5)


@dataclass(frozen=True)
class FalseAlarm:
    """A finding this cell should not have, with why it is judged false."""

    finding: Finding
    reason: str
    traced_to: str  # "regress pg_regress/create_table", "demo 09-...", "untraced"


@dataclass(frozen=True)
class DemoMismatch:
    step: str
    expected: dict[str, int]
    got: dict[str, int]


@dataclass
class Verdict:
    """Everything judged about one cell."""

    findings: int
    by_class: dict[str, int]
    false_alarms: list[FalseAlarm] = field(default_factory=list)
    accounting: list[str] = field(default_factory=list)  # empty when the counts add up
    demo: list[DemoMismatch] = field(default_factory=list)
    demo_untied: dict[str, int] = field(default_factory=dict)
    called_for: dict[str, int] = field(default_factory=dict)  # high findings that were right

    @property
    def ok(self) -> bool:
        return not self.false_alarms and not self.accounting and not self.demo

    def false_by_class(self) -> Counter[str]:
        return Counter(
            f"{a.finding.cls.value}/{a.finding.severity.value}" for a in self.false_alarms
        )


def norm(text: str | None) -> str:
    """Statement text with whitespace collapsed, for comparing the channels' copies.

    >>> norm("  CREATE  TABLE t\\n (x int) ")
    'CREATE TABLE t (x int)'
    """
    return re.sub(r"\s+", " ", text or "").strip()


def accounting_problems(doc: FindingsDocument) -> list[str]:
    """The accounting of tests/test_reconcile.py's assert_accounts, plus 'exactly one finding'."""
    s = doc.summary
    problems = []
    shared = s.matched + sum(f.accounts_logged_ddl for f in doc.findings)
    if s.logged_ddl != shared:
        problems.append(
            f"logged_ddl {s.logged_ddl} != matched {s.matched} + findings' {shared - s.matched}"
        )
    ids = [(f.database, i) for f in doc.findings for i in f.audit_event_ids]
    rows = set(ids)
    if s.matched_audit_rows is None or s.audit_rows != s.matched_audit_rows + len(rows):
        problems.append(
            f"audit_rows {s.audit_rows} != matched rows {s.matched_audit_rows} + rows in findings {len(rows)}"
        )
    if len(ids) != len(rows):
        twice = [k for k, n in Counter(ids).items() if n > 1]
        problems.append(f"{len(twice)} audit rows in more than one finding, e.g. {twice[:3]}")
    if sum(s.by_class.values()) != len(doc.findings):
        problems.append(
            f"by_class sums to {sum(s.by_class.values())}, {len(doc.findings)} findings"
        )
    return problems


# -- tracing a finding to what caused it -------------------------------------------


def _in_run(t: datetime | None, run: StepRun, slack: timedelta = SLACK) -> bool:
    return t is not None and run.started - slack <= t <= run.ended + slack


def _evidence_apps(f: Finding) -> list[str]:
    """application_name of the audit rows behind a finding (the log may not print %a)."""
    audit = f.evidence.get("audit") if isinstance(f.evidence, dict) else None
    apps = []
    for row in audit or ():
        if isinstance(row, dict) and row.get("application"):
            apps.append(str(row["application"]))
    return apps


def _by_time(t: datetime | None, runs: Sequence[StepRun]) -> StepRun | None:
    """The step running at ``t``; a %t time is truncated to the second, so up to 1 s early."""
    if t is None:
        return None
    exact = [r for r in runs if r.started <= t <= r.ended]
    if exact:
        return exact[0]
    near = [r for r in runs if _in_run(t, r, timedelta(seconds=1.05))]
    return min(near, key=lambda r: abs((r.started - t).total_seconds())) if near else None


def trace_workload(
    f: Finding, runs: Sequence[StepRun], workloads: Iterable[Workload]
) -> tuple[Workload | None, StepRun | None]:
    """The workload and step behind a finding: application name (the log's, else the
    audit rows'), else the step running at the finding's time."""
    by_name = {w.name: w for w in workloads}
    for app in [f.application or "", *_evidence_apps(f)]:
        if not app:
            continue
        for run in runs:
            if run.app == app:
                return by_name.get(run.workload), run
        for w in by_name.values():
            if w.owns(app):
                return w, None
    run = _by_time(f.time, runs)
    if run is not None:
        return by_name.get(run.workload), run
    return None, None


def _called_for(f: Finding, wl: Workload | None) -> str | None:
    """Why a high finding is right for this workload, or None."""
    if f.severity != Severity.HIGH:
        return None
    if f.cls == C.UNAUDITABLE_DDL and set(f.command_tags) & ROLE_DATABASE_TAGS:
        return "role/database DDL"
    if wl is None:
        return None
    if f.cls == C.IMPERSONATED_DDL and wl.uses_session_authorization:
        return "SET SESSION AUTHORIZATION"
    if f.cls == C.EVENT_TRIGGER_DDL and wl.creates_event_triggers:
        return "event trigger DDL"
    return None


def judge_workloads(
    doc: FindingsDocument, runs: Sequence[StepRun], workloads: Sequence[Workload]
) -> Verdict:
    """Judge the workloads' window: every critical, and every high not called for, is false."""
    verdict = Verdict(len(doc.findings), dict(Counter(f.cls.value for f in doc.findings)))
    verdict.accounting = accounting_problems(doc)
    called: Counter[str] = Counter()
    for f in doc.findings:
        if f.severity.rank < Severity.HIGH.rank:
            continue
        wl, run = trace_workload(f, runs, workloads)
        where = f"{wl.name} {run.app if run else f.application}" if wl else "untraced"
        why = _called_for(f, wl)
        if f.severity == Severity.CRITICAL:
            verdict.false_alarms.append(FalseAlarm(f, "critical", where))
        elif why is None:
            verdict.false_alarms.append(FalseAlarm(f, "high, not called for", where))
        else:
            called[f"{f.cls.value} ({why})"] += 1
    verdict.called_for = dict(called)
    return verdict


# -- the demo's window --------------------------------------------------------------

#: Step 19's class once IMPERSONATED_DDL lands (SPEC section 5), or the demo's today.
EQUIVALENT = {"19-impersonate": ({C.ATTRIBUTION_MISMATCH}, {C.IMPERSONATED_DDL})}


#: Findings of the demo's window that belong to no step (see judge_demo).
UNTIED_CONFIG_DRIFT = 2


def trace_demo(f: Finding, steps: Sequence[Step], runs: dict[str, StepRun]) -> Step | None:
    """The demo step behind a finding: application name, else statement text and time."""
    for s in steps:
        if s.silent and s.owns(f):  # a catalog finding names its object, not a session
            return s
    apps = [f.application or "", *_evidence_apps(f)]
    for s in steps:
        if s.app in apps:
            return s
    text = norm(f.statement)
    # Findings show statements masked (passwords): compare the steps' text masked too.
    cands = [s for s in steps if text and any(norm(mask(q)) == text for q in s.sql)]
    if len(cands) > 1:
        timed = [s for s in cands if s.app in runs and _in_run(f.time, runs[s.app])]
        cands = timed or cands
    if cands:
        return cands[0]
    timed = [s for s in steps if s.app in runs and _in_run(f.time, runs[s.app])]
    return timed[0] if len(timed) == 1 else None


def judge_demo(
    doc: FindingsDocument,
    steps: Sequence[Step],
    runs: dict[str, StepRun],
) -> Verdict:
    """Each scripted step's findings must be the demo's classes (step 19: either class).

    Every reconcile of the demo's window expects step 22's SILENT_SCHEMA_CHANGE, the
    group's later ones too: with ``--since`` the catalog channel compares the stored
    snapshots back to the window's start, not only the latest one.
    """
    verdict = Verdict(len(doc.findings), dict(Counter(f.cls.value for f in doc.findings)))
    verdict.accounting = accounting_problems(doc)
    got: dict[str, Counter[str]] = {s.key: Counter() for s in steps}
    untied: Counter[str] = Counter()
    for f in doc.findings:
        step = trace_demo(f, steps, runs)
        if step is None:
            untied[f"{f.cls.value}/{f.severity.value}"] += 1
        else:
            got[step.key][f.cls.value] += 1
    for s in steps:
        want = Counter(c.value for c in s.expect)
        have = got[s.key]
        if have != want:
            alts = EQUIVALENT.get(s.key)
            if alts and any(have == Counter(c.value for c in alt) for alt in alts):
                continue
            verdict.demo.append(DemoMismatch(s.key, dict(want), dict(have)))
    verdict.demo_untied = dict(untied)
    # Not tied to a step: the live check of step 10's downgraded trigger and the first
    # reload's 'parameter changed' line (the second reload sets log_statement back to
    # 'ddl', which weakens nothing: tests/test_demo.py asserts the same).
    plain = Counter({k.split("/")[0]: 0 for k in untied})
    for k, n in untied.items():
        plain[k.split("/")[0]] += n
    if +plain != Counter({C.CONFIG_DRIFT.value: UNTIED_CONFIG_DRIFT}):
        verdict.demo.append(
            DemoMismatch("(untied)", {C.CONFIG_DRIFT.value: UNTIED_CONFIG_DRIFT}, dict(+plain))
        )
    return verdict
