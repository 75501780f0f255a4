"""The SQL files must reach an installed package, not only this checkout."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_ships_every_sql_file(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "-q", "-w", str(tmp_path), str(ROOT)],
        check=True, capture_output=True,
    )  # fmt: skip
    wheel = next(tmp_path.glob("auditor-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {f"auditor/sql/{p.name}" for p in (ROOT / "sql").glob("*.sql")}
    assert expected, "sql/ holds no .sql files"
    assert expected <= names, sorted(expected - names)
    assert "auditor/py.typed" in names
    templates = {f"auditor/templates/{p.name}" for p in (ROOT / "auditor" / "templates").iterdir()}
    assert {"auditor/templates/report.html.j2", "auditor/templates/report.css"} <= templates
    assert templates <= names, sorted(templates - names)


def test_sql_loads_through_importlib_resources() -> None:
    from auditor.db import sql_text

    for path in (ROOT / "sql").glob("*.sql"):
        text = sql_text(path.name)
        assert text == path.read_text(encoding="utf-8")
        assert text.startswith("--"), f"{path.name} needs a header comment"
