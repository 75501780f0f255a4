"""`auditor demo` end to end, as a new user runs it: every scripted step explained."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from proc_helpers import processes_mentioning

from auditor.demo import steps


def _processes_under(directory: Path) -> list[str]:
    """Command lines of live processes that mention ``directory`` (the cluster's servers)."""
    return list(processes_mentioning(directory).values())


def test_demo_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    # The cluster's directory goes here; the server's OS user must be able to enter it.
    tmp = Path(tempfile.mkdtemp(prefix="auditor-demo-test-"))
    tmp.chmod(0o755)
    proc = subprocess.run(
        [sys.executable, "-m", "auditor", "demo", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TMPDIR": str(tmp)},
    )
    # The demo exits as the reconcile inside it, whose exit line it prints: 1, the
    # scripted evasions are findings that need a human.
    assert proc.returncode == 1, proc.stderr
    assert "report.html" in proc.stdout and "Traceback" not in proc.stderr
    assert "exit 1:" in proc.stdout

    data = json.loads((out / "findings.json").read_text())

    def owner(f: dict[str, Any]) -> str:
        # A catalog finding names no session: it belongs to the step whose object it names.
        if f["class"] == "SILENT_SCHEMA_CHANGE":
            (step,) = [s for s in steps() if any(n in f["explanation"] for n in s.silent)]
            return step.app
        return str(f["application"] or "")

    by_app: dict[str, Counter[str]] = {}
    for f in data["findings"]:
        by_app.setdefault(owner(f), Counter())[f["class"]] += 1
    for step in steps():
        got = by_app.get(step.app, Counter())
        assert got == Counter(c.value for c in step.expect), (step.key, got)
        for f in data["findings"]:
            if owner(f) == step.app:
                assert f["allowed"] == step.allowed, step.key
    # Live state and reloads: the downgraded trigger, the reload to log_statement none
    # (the reload back to ddl weakens nothing: no finding).
    untied = Counter(f["class"] for f in data["findings"] if not owner(f))
    assert untied == Counter({"CONFIG_DRIFT": 2})
    (dark,) = [f for f in data["findings"] if f["class"] == "SILENT_SCHEMA_CHANGE"]
    assert dark["severity"] == "critical" and dark["database"] == "shop"
    assert "public.mallory_dark" in dark["explanation"] and "was created" in dark["explanation"]

    s = data["summary"]
    assert s["logged_ddl"] == s["matched"] + sum(f["accounts_logged_ddl"] for f in data["findings"])
    rows = {(f["database"], i) for f in data["findings"] for i in f["audit_event_ids"]}
    assert s["audit_rows"] == s["matched_audit_rows"] + len(rows)
    assert s["matched"] >= 8

    # The password of the new superuser never reaches an output.
    for name in ("findings.json", "findings.csv", "report.html", "README.txt"):
        assert "hunter2" not in (out / name).read_text(), name

    mails = sorted((out / "mails").glob("*.eml"))
    assert len(mails) >= 15
    texts = [m.read_text(errors="replace") for m in mails]
    assert any("CREATE EXTENSION" in t for t in texts)
    assert sum("CREATE EXTENSION" in t.split("\n\n", 1)[0] for t in texts) == 1  # one mail
    assert not any("hunter2" in t for t in texts)

    readme = (out / "README.txt").read_text()
    for step in steps():
        assert step.key in readme
    from auditor.cluster import find_bindir, server_major

    jsonlog = server_major(find_bindir()) >= 15  # jsonlog exists from PostgreSQL 15 on
    assert {p.suffix for p in (out / "logs").iterdir()} == {".log", ".csv"} | (
        {".json"} if jsonlog else set()
    )
    written = "stderr, csvlog and jsonlog" if jsonlog else "stderr and csvlog"
    assert f"logs/ (the server's {written} files)" in readme

    # Nothing left behind: no server process, no cluster directory.
    assert _processes_under(tmp) == []
    assert not any(p.name.startswith("auditor-cluster-") for p in tmp.iterdir())
    tmp.rmdir()
