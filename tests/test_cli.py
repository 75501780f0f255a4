"""The command line: every command documented, errors as one line and exit code 2."""

from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

from auditor.cli import app

runner = CliRunner()


def _commands() -> list[str]:
    import typer.main

    group = typer.main.get_command(app)
    return sorted(group.commands)  # type: ignore[attr-defined]


def test_help_lists_every_command_with_help_text() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    names = _commands()
    assert "demo" in names
    for name in names:
        assert name in result.output
        sub = runner.invoke(app, [name, "--help"])
        assert sub.exit_code == 0, sub.output
        # The first line of the docstring is the help text: it must say something.
        first = [line for line in sub.output.splitlines() if line.strip()][1]
        assert len(first.strip()) > 15, (name, first)


def test_python_dash_m_runs_the_same_app() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "auditor", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.startswith("auditor ")


def test_bad_config_is_one_line_and_exit_2(tmp_path) -> None:
    bad = tmp_path / "auditor.yaml"
    bad.write_text("smtp:\n  port: [1, 2\n")
    out = subprocess.run(
        [sys.executable, "-m", "auditor", "status", "--config", str(bad)],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1, out.stderr
    assert str(bad) in out.stderr and "Traceback" not in out.stderr
