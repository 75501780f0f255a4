"""The throwaway-cluster helper: real logs in three formats, and nothing left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from proc_helpers import processes_mentioning

from auditor.cluster import TempCluster, find_bindir


def _live_pids_using(path: Path) -> list[int]:
    return sorted(processes_mentioning(path))


def _postmaster_pid(cluster: TempCluster) -> int:
    return int((cluster.data_dir / "postmaster.pid").read_text().splitlines()[0])


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_ddl_shows_up_in_all_three_logs(db, logs) -> None:
    mark = logs.mark()
    db.run("CREATE TABLE harness_probe (id int)", app="harness-probe")
    got = logs.since(mark)

    stderr = [e for e in got.stderr if "statement: CREATE TABLE harness_probe" in e]
    csvrows = [
        r for r in got.csvlog if r["message"] == "statement: CREATE TABLE harness_probe (id int)"
    ]
    jsonobjs = [
        o
        for o in got.jsonlog
        if o.get("message") == "statement: CREATE TABLE harness_probe (id int)"
    ]
    # jsonlog exists from PostgreSQL 15 on; before, the cluster logs stderr and csvlog only.
    has_json = db.cluster.major >= 15
    assert len(stderr) == 1 and len(csvrows) == 1 and len(jsonobjs) == (1 if has_json else 0)

    # The same message, the same session and transaction, in every format.
    row = csvrows[0]
    assert f" {row['session_id']} " in stderr[0]
    assert f" {row['virtual_transaction_id']} " in stderr[0]
    assert row["application_name"] == "harness-probe" and "app=harness-probe" in stderr[0]
    assert (row["database_name"], row["user_name"]) == (db.name, "postgres")
    if not has_json:
        assert "jsonlog" not in db.cluster.log_destination
        assert not [p for p in db.cluster.log_dir.iterdir() if p.suffix == ".json"]
        return
    obj = jsonobjs[0]
    assert row["session_id"] == obj["session_id"]
    assert row["virtual_transaction_id"] == obj["vxid"]
    assert obj["application_name"] == "harness-probe"
    assert obj["dbname"] == db.name and obj["user"] == "postgres"


def test_cluster_exposes_what_the_product_needs(cluster) -> None:
    assert cluster.version_num >= 130000
    assert cluster.log_dir.is_dir()
    settings = dict(
        cluster.execute(
            "SELECT name, setting FROM pg_settings WHERE name IN "
            "('log_statement', 'logging_collector', 'log_destination', 'log_line_prefix')"
        )
    )
    assert settings["log_statement"] == "ddl"
    assert settings["logging_collector"] == "on"
    assert "csvlog" in settings["log_destination"]
    assert "%c" in settings["log_line_prefix"] and "%v" in settings["log_line_prefix"]
    assert isinstance(cluster.has_plpython, bool)
    if os.geteuid() == 0:
        owner = cluster.data_dir.stat().st_uid
        assert owner != 0, "the server must not run as root"


def test_nothing_left_behind_when_the_body_fails() -> None:
    with pytest.raises(RuntimeError, match="boom"), TempCluster() as c:
        root, pid = c.root, _postmaster_pid(c)
        assert _alive(pid)
        raise RuntimeError("boom")
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid)
    assert root is not None and not root.exists()
    assert _live_pids_using(root) == []


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_nothing_left_behind_on_ctrl_c_or_kill(tmp_path: Path, sig: signal.Signals) -> None:
    # Ctrl-C as a terminal delivers it: a suite started in the background by a shell
    # without job control (CI, nohup, `cmd &` in a script) inherits SIGINT ignored, and
    # Python keeps an inherited SIG_IGN, so the child would sleep through the signal.
    script = textwrap.dedent(
        """
        import signal, sys, time
        signal.signal(signal.SIGINT, signal.default_int_handler)
        from auditor.cluster import TempCluster, sigterm_as_exit
        with sigterm_as_exit(), TempCluster() as c:
            print(c.root, flush=True)
            time.sleep(120)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    root = Path(proc.stdout.readline().strip())
    assert root.exists()
    proc.send_signal(sig)
    proc.wait(timeout=60)
    assert not root.exists()
    assert _live_pids_using(root) == []


def test_binaries_found_from_pg_bin(monkeypatch: pytest.MonkeyPatch) -> None:
    real = find_bindir()
    monkeypatch.setenv("PG_BIN", str(real))
    assert find_bindir() == real
