"""The real-world matrix's CI slice: Debian's PostgreSQL 15, two prefixes, two zones, all formats.

Each group's cluster runs the workloads of ``tests/realworld`` (a subset of the
regression files, to stay near two minutes) and the demo's day; each format is
reconciled on its own.  The assertions are the matrix's judgement, unchanged:
no critical finding, no high finding the workload did not call for, the
accounting adds up, the demo's evasions are found with the demo's classes.
``scripts/matrix`` runs the whole matrix (every major, prefix and zone).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from realworld.cells import Cell, Group, available
from realworld.judge import Verdict
from realworld.matrix import GroupResult, run_group

#: DDL-rich regression files that keep the slice short: SET SESSION AUTHORIZATION
#: (privileges, foreign_data), CONCURRENTLY (create_index), event triggers, roles.
CI_REGRESS = (
    "test_setup", "create_table", "create_index", "create_view", "privileges", "matview",
    "create_role", "foreign_data", "domain", "sequence", "event_trigger",
)  # fmt: skip
GROUPS = [
    Group(15, prefix, zone)
    for prefix in ("readme", "debian")
    for zone in ("America/New_York", "Asia/Kolkata")
]
CELLS = [cell for g in GROUPS for cell in g.cells()]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def group_run(tmp_path_factory: pytest.TempPathFactory) -> Callable[[Group], GroupResult]:
    """Run each group once (all its cells come from one cluster), on first use."""
    done: dict[Group, GroupResult] = {}

    def get(group: Group) -> GroupResult:
        if not available(group.major):
            pytest.skip(f"PostgreSQL {group.major} binaries are not installed")
        if group not in done:
            work = tmp_path_factory.mktemp(f"matrix-{group.prefix}-{group.zone.replace('/', '-')}")
            done[group] = run_group(group, Path(work), regress_files=CI_REGRESS)
        return done[group]

    return get


def _cell(result: GroupResult, cell: Cell) -> tuple[Verdict, Verdict | None]:
    (found,) = [c for c in result.cells if c.cell == cell]
    return found.workloads, found.demo


def _describe(verdict: Verdict, limit: int = 25) -> str:
    """The false alarms, one line per (class, step) with a count and one example."""
    kinds: dict[tuple[str, str], list[Any]] = {}
    for a in verdict.false_alarms:
        kinds.setdefault((f"{a.finding.cls.value}/{a.finding.severity.value}", a.traced_to),
                         []).append(a)  # fmt: skip
    lines = [f"{len(verdict.false_alarms)} false alarms: {dict(verdict.false_by_class())}"]
    for (cls, where), alarms in sorted(kinds.items(), key=lambda kv: -len(kv[1]))[:limit]:
        f = alarms[0].finding
        lines.append(
            f"  {len(alarms)} x {cls} [{where}] e.g. {(f.statement or '')[:90]!r}: "
            f"{f.explanation[-160:]}"
        )
    return "\n".join(lines)


@pytest.mark.parametrize("group", GROUPS, ids=str)
def test_workloads_ran(group_run: Callable[[Group], GroupResult], group: Group) -> None:
    """Every workload really ran: the tools exited as they do on any server."""
    result = group_run(group)
    assert result.skipped == {}
    apps = {r.app: r.returncode for r in result.runs}
    assert {a for a in apps if a.startswith("pg_regress/")} == {
        f"pg_regress/{f}" for f in CI_REGRESS
    }
    # psql without ON_ERROR_STOP exits 0 whatever the statements do; the tools must not crash.
    for app in ("pg_regress/create_table", "pgbench-init", "pg_dump-plain", "pg_dump-custom",
                "psql-restore", "django-migrate", "django-migrate-zero", "django-migrate-again"):  # fmt: skip
        assert apps[app] == 0, (app, result.runs)
    # A statement the server ran but the auditor's parser cannot read or calls non-DDL.
    # (One that failed on the server too, like create_table's PARTITION BY MAGIC, changed
    # nothing; the matrix's report lists those as well.)
    wrong = [m for m in result.misclassified if not m.failed]
    assert wrong == [], wrong


@pytest.mark.parametrize("cell", CELLS, ids=str)
def test_no_false_alarm(group_run: Callable[[Group], GroupResult], cell: Cell) -> None:
    """No critical finding, and no high finding the workload did not call for."""
    workloads, _demo = _cell(group_run(cell.group), cell)
    assert workloads.false_alarms == [], _describe(workloads)


@pytest.mark.parametrize("cell", CELLS, ids=str)
def test_accounting(group_run: Callable[[Group], GroupResult], cell: Cell) -> None:
    """Every logged DDL and every audit row is matched or in exactly one finding."""
    workloads, demo = _cell(group_run(cell.group), cell)
    assert workloads.accounting == []
    assert demo is not None and demo.accounting == []


@pytest.mark.parametrize("cell", CELLS, ids=str)
def test_demo_evasions_found(group_run: Callable[[Group], GroupResult], cell: Cell) -> None:
    """The demo's scripted evasions, in this cell's log setup, with the demo's classes."""
    _workloads, demo = _cell(group_run(cell.group), cell)
    assert demo is not None
    assert demo.demo == [], (demo.demo, demo.demo_untied)
