"""Compare two findings.json of ``auditor reconcile`` on the same input, field for field.

Left out of the comparison, and only these: ``generated_at`` (the run's clock) and the
findings of the catalog channel (``SILENT_SCHEMA_CHANGE``), whose interval, time, id
and wording name the catalog snapshots that every reconcile takes itself (a second run
compares a later pair than the first).  Their number per class is still compared (the
summary).  Everything else (every other finding with its id, evidence and explanation,
in order; summary, sources, window, notes) must be equal.

Usage: ``python bench/findings_diff.py BEFORE/findings.json AFTER/findings.json``
(exit 0 identical, 1 different, printing the first difference).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

RUN_DEPENDENT_CLASSES = ("SILENT_SCHEMA_CHANGE",)


def normalised(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(path.read_text())
    doc.pop("generated_at", None)
    doc["findings"] = [f for f in doc["findings"] if f["class"] not in RUN_DEPENDENT_CLASSES]
    return doc


def first_difference(a: Any, b: Any, where: str = "") -> str | None:
    if type(a) is not type(b):
        return f"{where}: {a!r} != {b!r}"
    if isinstance(a, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                return f"{where}.{k}: only in {'after' if k in b else 'before'}"
            got = first_difference(a[k], b[k], f"{where}.{k}")
            if got:
                return got
        return None
    if isinstance(a, list):
        if len(a) != len(b):
            return f"{where}: {len(a)} items != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            got = first_difference(x, y, f"{where}[{i}]")
            if got:
                return got
        return None
    return None if a == b else f"{where}: {a!r} != {b!r}"


def main() -> int:
    before, after = (normalised(Path(p)) for p in sys.argv[1:3])
    diff = first_difference(before, after)
    n = len(before["findings"])
    if diff is None:
        print(f"identical: {n} findings (+ {RUN_DEPENDENT_CLASSES} left out), summary, sources")
        return 0
    print(f"DIFFERENT: {diff}")
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
