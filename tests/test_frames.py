"""auditor.frames: what scan and reconcile produce, as pandas DataFrames."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from logs_helpers import files, meta, read

from auditor.frames import FINDING_COLUMNS, RECORD_COLUMNS, findings_frame, scan_frame
from auditor.model import MessageKind
from auditor.report import load_findings_json

PREFIX = meta("workload")["log_line_prefix"]


def test_scan_frame_holds_every_record_scan_reads() -> None:
    logs = files("workload", "csvlog")
    records, _, _ = read(logs, all_records=True)
    warnings: list[str] = []
    df = scan_frame(logs, all_records=True, warnings=warnings)
    assert list(df.columns) == list(RECORD_COLUMNS) and len(df) == len(records) > 50
    assert str(df["time"].dtype) in ("datetime64[ns, UTC]", "datetime64[us, UTC]")
    assert [s if isinstance(s, str) else None for s in df["statement"]] == [
        r.statement.replace("hunter2-secret", "*****") if r.statement else None for r in records
    ]
    ddl = df[df.is_ddl.fillna(False) & df.kind.isin(["statement", "execute"])]
    assert len(ddl) == sum(
        1 for r in records if r.is_ddl and r.kind in (MessageKind.STATEMENT, MessageKind.EXECUTE)
    )
    assert warnings and all(":" in w for w in warnings)  # the server's own bad bytes
    # A notebook's first questions: who ran DDL, from where, and how often.
    per_user = ddl.groupby("user").size().to_dict()
    assert per_user["postgres"] == len(ddl)


def test_findings_frame_from_a_reconcile(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "auditor", "reconcile", "--log", files("workload", "csvlog")[0],
         "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert out.returncode in (0, 1), out.stderr
    doc = load_findings_json(tmp_path / "findings.json")
    df = findings_frame(tmp_path / "findings.json")
    assert list(df.columns) == list(FINDING_COLUMNS) and len(df) == len(doc.findings) > 0
    assert list(df["id"]) == [f.id for f in doc.findings]
    serious = df[df.severity >= "high"]  # an ordered categorical
    raw = json.loads((tmp_path / "findings.json").read_text())["findings"]
    assert len(serious) == sum(1 for f in raw if f["severity"] in ("high", "critical"))
    assert findings_frame(doc).equals(df)
