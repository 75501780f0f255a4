"""The SQL files must reach an installed package, not only this checkout."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Built from a copy without build/: setuptools would otherwise reuse the
    # checkout's build/lib, where files from an older configuration linger.
    src = tmp_path_factory.mktemp("src") / "auditor-src"
    shutil.copytree(
        ROOT,
        src,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", "bench", "fixtures",
            "test-artifacts", ".mypy_cache", ".ruff_cache", ".pytest_cache",
        ),
    )  # fmt: skip
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "-q", "-w", str(out), str(src)],
        check=True, capture_output=True,
    )  # fmt: skip
    return next(out.glob("auditor-*.whl"))


def test_wheel_ships_every_module(wheel: Path) -> None:
    # The tests run against an editable install, which finds every module in the
    # checkout; a package left out of pyproject.toml only fails in a real install.
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "auditor").rglob("*.py")}
    assert modules, "no modules found"
    assert modules <= names, sorted(modules - names)


def test_unpacked_wheel_runs_the_cli(wheel: Path, tmp_path: Path) -> None:
    # Only the wheel's own files on the path, and the dependencies from this venv's
    # site-packages without its .pth files (-S): the editable install's finder
    # would otherwise supply whatever the wheel lacks.
    zipfile.ZipFile(wheel).extractall(tmp_path / "site")
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    code = (
        "import auditor, auditor.cli, auditor.logs.scan; from auditor.db import sql_text;"
        "sql_text('capture_read_events.sql'); print(auditor.__file__)"
    )
    proc = subprocess.run(
        [sys.executable, "-S", "-c", code],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "site"), *deps])},
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(tmp_path / "site" / "auditor" / "__init__.py")


def test_wheel_ships_every_sql_file(wheel: Path) -> None:
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


def test_ci_second_major_slice_has_every_version_aware_test_file() -> None:
    """CI runs a slice of the suite on its second major (.ci/run): a test file that asserts
    what a given major does (it reads ``.major``) and is missing from the slice would only
    ever run on PostgreSQL 15 there."""
    root = Path(__file__).resolve().parent.parent
    ci = (root / ".ci" / "run").read_text(encoding="utf-8")
    block = re.search(r"^SLICE=\((.*?)^\)", ci, re.S | re.M)
    assert block is not None, "no SLICE=(...) in .ci/run"
    slice_files = set(block.group(1).split())
    assert all((root / f).is_file() for f in slice_files), slice_files
    aware = {
        f"tests/{p.name}"
        for p in (root / "tests").glob("test_*.py")
        if re.search(r"\w\.major\b", p.read_text(encoding="utf-8"))
    }
    assert aware and aware <= slice_files, sorted(aware - slice_files)
