"""Configuration precedence: flag > environment > YAML file > default."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from auditor.config import load_config, untrusted_reason
from auditor.errors import ConfigError


def test_precedence(tmp_path) -> None:
    f = tmp_path / "auditor.yaml"
    f.write_text("dsn: host=fromfile\nsmtp:\n  host: filehost\n  port: 2500\nfail_on: critical\n")
    env = {"AUDITOR_SMTP_PORT": "2600", "AUDITOR_DSN": "host=fromenv"}
    cfg = load_config({"dsn": "host=fromflag"}, config_file=f, environ=env)
    assert cfg["dsn"] == "host=fromflag"
    assert cfg["smtp.port"] == 2600  # env over file, converted to int
    assert cfg["smtp.host"] == "filehost"
    assert cfg["fail_on"] == "critical"
    assert cfg["schema"] == "auditor"
    assert cfg.origin("smtp.host") == str(f)


def test_unknown_key_names_the_file(tmp_path) -> None:
    f = tmp_path / "auditor.yaml"
    f.write_text("smtp:\n  hots: typo\n")
    with pytest.raises(ConfigError, match=r"auditor\.yaml: unknown option\(s\): smtp\.hots"):
        load_config({}, config_file=f, environ={})


def test_bad_type_from_env() -> None:
    with pytest.raises(ConfigError, match="AUDITOR_SMTP_PORT"):
        load_config({}, environ={"AUDITOR_SMTP_PORT": "twenty-five"})


def test_secrets_are_masked_in_describe() -> None:
    cfg = load_config(
        {"dsn": "host=h user=u password=topsecret", "smtp.password": "hunter2"}, environ={}
    )
    shown = str(cfg.describe())
    assert "topsecret" not in shown and "hunter2" not in shown


def test_the_sample_config_documents_every_option_and_loads() -> None:
    from pathlib import Path

    from auditor.config import OPTIONS, read_config_file
    from auditor.findings import Policy

    sample = Path(__file__).resolve().parents[1] / "auditor.yaml.example"
    values = read_config_file(sample)  # raises on unknown keys or wrong types
    documented = set(values)
    missing = sorted(o.name for o in OPTIONS if o.name not in documented)
    assert missing == [], f"auditor.yaml.example lacks: {missing}"
    policy = Policy.from_config(values["severity"], values["allow"])
    assert len(policy.allow) == 2


# -- which file is read -------------------------------------------------------------------

NOBODY = 65534


def _auditor(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUDITOR_", "PG"))}
    return subprocess.run(
        [sys.executable, "-m", "auditor", *args], capture_output=True, text=True, cwd=cwd, env=env
    )


def _workdir(tmp_path: Path, text: str, *, owner: int | None = None, mode: int = 0o644) -> Path:
    work = tmp_path / "job"
    work.mkdir()
    work.chmod(0o755)
    f = work / "auditor.yaml"
    f.write_text(text)
    f.chmod(mode)
    if owner is not None:
        os.chown(f, owner, owner)
    return work


def test_a_planted_config_file_is_not_read(tmp_path: Path) -> None:
    """An ./auditor.yaml of someone else in the directory a job runs in would hide
    findings with its allow: rules: the job stops and says why."""
    work = _workdir(tmp_path, "allow:\n  - {class: UNREPORTED_DDL}\n", owner=NOBODY)
    out = _auditor(["scan", "--log", "x.log"], work)
    assert out.returncode == 2
    assert out.stderr == (
        f"auditor: error: {work / 'auditor.yaml'}: not read: {work / 'auditor.yaml'} belongs to uid "
        f"{NOBODY}, not to you (uid {os.geteuid()}) or root; a config file found without "
        "--config can hide findings (allow: rules), so it must be yours or root's and "
        "writable by nobody else (or name it with --config)\n"
    )
    # Named on purpose, it is read (and said).
    named = _auditor(["scan", "--config", "auditor.yaml", "--log", "missing.log"], work)
    assert named.stderr.startswith(f"auditor: config {work / 'auditor.yaml'}\n")


def test_a_config_file_others_can_write_is_not_read(tmp_path: Path) -> None:
    work = _workdir(tmp_path, "fail_on: critical\n", mode=0o666)
    out = _auditor(["scan", "--log", "x.log"], work)
    assert out.returncode == 2
    assert f"{work / 'auditor.yaml'} is writable by others" in out.stderr
    assert (
        untrusted_reason(work / "auditor.yaml") == f"{work / 'auditor.yaml'} is writable by others"
    )
    (work / "auditor.yaml").chmod(0o644)
    work.chmod(0o777)
    assert untrusted_reason(work / "auditor.yaml") == f"{work} is writable by others"
    work.chmod(0o1777)  # sticky, as /tmp: others cannot replace the file
    assert untrusted_reason(work / "auditor.yaml") is None


def test_the_file_read_is_always_said(tmp_path: Path) -> None:
    work = _workdir(tmp_path, "log_format: csvlog\n")
    out = _auditor(["scan", "--log", "missing.log"], work)
    assert out.returncode == 2
    assert out.stderr == (
        f"auditor: config {work / 'auditor.yaml'}\n"
        "auditor: error: missing.log: no such file or directory\n"
    )


def test_the_system_file_is_read_when_there_is_none_here(tmp_path: Path, monkeypatch) -> None:
    system = tmp_path / "etc" / "auditor.yaml"
    system.parent.mkdir()
    system.write_text("fail_on: critical\n")
    monkeypatch.chdir(tmp_path)  # no ./auditor.yaml here
    cfg = load_config({}, environ={}, system_file=system)
    assert cfg["fail_on"] == "critical" and cfg.source == system
    (tmp_path / "auditor.yaml").write_text("fail_on: medium\n")
    assert load_config({}, environ={}, system_file=system)["fail_on"] == "medium"
    assert load_config({}, environ={}, system_file=system, search_default=False).source is None


def test_a_latin1_config_file_is_one_error(tmp_path: Path) -> None:
    work = _workdir(tmp_path, "")
    (work / "auditor.yaml").write_bytes(b"# config\nmail:\n  server_name: caf\xe9\n")
    out = _auditor(["scan", "--log", "x.log"], work)
    assert out.returncode == 2
    assert out.stderr == (
        "auditor: error: auditor.yaml:3: not UTF-8 (byte 0xe9); save the config file as UTF-8\n"
    )
