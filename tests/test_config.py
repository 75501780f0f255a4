"""Configuration precedence: flag > environment > YAML file > default."""

from __future__ import annotations

import pytest

from auditor.config import load_config
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
