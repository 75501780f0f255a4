"""Throwaway PostgreSQL clusters for the demo and the tests.

A :class:`TempCluster` runs ``initdb`` into a temporary directory, picks a
free port and its own socket directory, and starts the server with the
logging this product depends on (``logging_collector``, stderr + csvlog +
jsonlog, ``log_statement = 'ddl'``, a prefix carrying ``%c`` and ``%v``).
``initdb``, ``pg_ctl`` and ``postgres`` refuse to run as root, so when we are
root they run as an unprivileged OS user (``postgres`` by default, or
``AUDITOR_CLUSTER_USER``).  The cluster is stopped and its directory removed
on exit, on Ctrl-C, on SIGTERM (via the caller's handler) and at interpreter
exit, whichever comes first.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import psycopg
from psycopg import sql

from auditor.errors import ClusterError

#: The prefix the throwaway clusters log with: every field reconcile pairs on.
DEFAULT_LOG_LINE_PREFIX = "%m [%p] %q%c %l %v %x %u@%d app=%a client=%h "
DEFAULT_SUPERUSER = "postgres"


def find_bindir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Locate the server binaries: argument, ``PG_BIN``, ``pg_config``, newest Debian dir, PATH."""
    candidates: list[Path] = []
    if explicit:
        candidates.append(Path(explicit))
    if os.environ.get("PG_BIN"):
        candidates.append(Path(os.environ["PG_BIN"]))
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()
            if out:
                candidates.append(Path(out))
    debian = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: [int(x) if x.isdigit() else 0 for x in re.split(r"[./]", p)],
        reverse=True,
    )
    candidates.extend(Path(p) for p in debian)
    pg_ctl = shutil.which("pg_ctl")
    if pg_ctl:
        candidates.append(Path(pg_ctl).parent)
    for cand in candidates:
        if (cand / "pg_ctl").is_file() and (cand / "postgres").is_file():
            return cand
    tried = ", ".join(str(c) for c in candidates) or "nothing found"
    raise ClusterError(
        "PostgreSQL server binaries (pg_ctl, postgres) not found; set PG_BIN to their "
        f"directory or install postgresql (tried: {tried})"
    )


def server_major(bindir: Path) -> int:
    """Major version of the binaries in ``bindir`` (``postgres --version``)."""
    try:
        out = subprocess.run(
            [str(bindir / "postgres"), "--version"], capture_output=True, text=True, timeout=30
        ).stdout
    except OSError as exc:
        raise ClusterError(f"{bindir / 'postgres'}: cannot run ({exc.strerror})") from None
    m = re.search(r"\(PostgreSQL\)\s+(\d+)", out)
    if not m:
        raise ClusterError(f"{bindir / 'postgres'}: unexpected --version output {out!r}")
    return int(m.group(1))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _os_user_for_server() -> pwd.struct_passwd | None:
    """The unprivileged account to run the server as, or None when not root."""
    if os.geteuid() != 0:
        return None
    name = os.environ.get("AUDITOR_CLUSTER_USER", "postgres")
    try:
        return pwd.getpwnam(name)
    except KeyError:
        raise ClusterError(
            f"running as root: PostgreSQL refuses to run as root and the OS user {name!r} "
            "does not exist; create it (useradd --system postgres) or set AUDITOR_CLUSTER_USER"
        ) from None


def _quote_conf(value: str) -> str:
    """Quote a value for postgresql.conf.

    >>> _quote_conf("it's")
    "'it''s'"
    """
    return "'" + value.replace("'", "''") + "'"


_LIVE: set[TempCluster] = set()


@atexit.register
def _stop_leftovers() -> None:
    for cluster in list(_LIVE):
        cluster.stop()


class TempCluster:
    """A throwaway PostgreSQL cluster; use it as a context manager.

    ``settings`` are extra ``postgresql.conf`` lines (they win over the
    defaults).  Logs go to ``<tmp>/log``; ``log_dir`` exposes it.
    """

    def __init__(
        self,
        *,
        bindir: str | os.PathLike[str] | None = None,
        log_line_prefix: str = DEFAULT_LOG_LINE_PREFIX,
        log_statement: str = "ddl",
        log_destination: str | None = None,
        settings: Mapping[str, str | int | float | bool] | None = None,
        base_dir: str | os.PathLike[str] | None = None,
        superuser: str = DEFAULT_SUPERUSER,
        start_timeout: float = 60.0,
        server_env: Mapping[str, str] | None = None,
    ) -> None:
        self.bindir = find_bindir(bindir)
        self.major = server_major(self.bindir)
        self.superuser = superuser
        self.log_line_prefix = log_line_prefix
        self.log_statement = log_statement
        self.log_destination = log_destination or (
            "stderr,csvlog,jsonlog" if self.major >= 15 else "stderr,csvlog"
        )
        self.extra_settings = dict(settings or {})
        self.base_dir = Path(base_dir) if base_dir else None
        self.start_timeout = start_timeout
        #: Extra environment of ``pg_ctl`` and the server it starts (opt-in; e.g. a test
        #: runs the server under libfaketime with ``LD_PRELOAD`` and ``FAKETIME``).
        self.server_env = dict(server_env or {})
        self.os_user = _os_user_for_server()
        self.root: Path | None = None
        self.port = 0
        self.version_num = 0
        self._running = False

    # -- paths ---------------------------------------------------------------
    def _path(self, name: str) -> Path:
        if self.root is None:
            raise ClusterError("the cluster has not been created yet")
        return self.root / name

    @property
    def data_dir(self) -> Path:
        return self._path("data")

    @property
    def log_dir(self) -> Path:
        return self._path("log")

    @property
    def socket_dir(self) -> Path:
        return self._path("sock")

    # -- lifecycle -----------------------------------------------------------
    def __enter__(self) -> TempCluster:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(
        self,
        args: Sequence[str],
        *,
        timeout: float = 120.0,
        check: bool = True,
        server: bool = False,
    ) -> subprocess.CompletedProcess[str]:
        """Run a server binary, as the unprivileged OS user when we are root.

        ``server``: the command starts or controls the server (``pg_ctl``), which
        gets ``server_env`` too.
        """
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(LC_ALL="C.UTF-8", LANG="C.UTF-8", TZ="UTC")
        if server:
            env.update(self.server_env)
        kwargs: dict[str, Any] = {}
        if self.os_user is not None:
            kwargs.update(user=self.os_user.pw_uid, group=self.os_user.pw_gid, extra_groups=[])
            env.update(HOME=str(self.root), USER=self.os_user.pw_name)
        try:
            proc = subprocess.run(
                list(args),
                capture_output=True,
                text=True,
                timeout=timeout,
                env=env,
                cwd=str(self.root),
                start_new_session=True,  # Ctrl-C in our terminal must not reach the server
                **kwargs,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ClusterError(f"{args[0]}: {exc}") from None
        if check and proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            raise ClusterError(f"{Path(args[0]).name} failed: {' | '.join(tail)}")
        return proc

    def _write_config(self) -> None:
        settings: dict[str, str | int | float | bool] = {
            "port": self.port,
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": str(self.socket_dir),
            "logging_collector": True,
            "log_destination": self.log_destination,
            "log_directory": str(self.log_dir),
            "log_filename": "postgresql-%Y%m%d-%H%M%S.log",
            "log_file_mode": "0640",
            "log_rotation_age": "1d",
            "log_rotation_size": "1GB",
            "log_truncate_on_rotation": False,
            "log_statement": self.log_statement,
            "log_line_prefix": self.log_line_prefix,
            "log_timezone": "UTC",
            "timezone": "UTC",
            "lc_messages": "C",
            "fsync": False,
            "synchronous_commit": False,
            "full_page_writes": False,
            "shared_buffers": "64MB",
            "max_connections": 100,
        }
        settings.update(self.extra_settings)
        lines = ["# written by auditor.cluster for a throwaway cluster"]
        for key, value in settings.items():
            if isinstance(value, bool):
                text = "on" if value else "off"
            elif isinstance(value, (int, float)):
                text = str(value)
            else:
                text = _quote_conf(str(value))
            lines.append(f"{key} = {text}")
        with open(self.data_dir / "postgresql.conf", "a", encoding="utf-8") as fh:
            fh.write("\n" + "\n".join(lines) + "\n")
        hba = (
            "# throwaway cluster: trust on the socket and loopback only\n"
            "local all all trust\n"
            "host all all 127.0.0.1/32 trust\n"
            "host all all ::1/128 trust\n"
        )
        (self.data_dir / "pg_hba.conf").write_text(hba, encoding="utf-8")

    def start(self) -> None:
        """Create and start the cluster; on any failure clean up and raise."""
        if self._running:
            return
        parent = str(self.base_dir) if self.base_dir else None
        self.root = Path(tempfile.mkdtemp(prefix="auditor-cluster-", dir=parent))
        _LIVE.add(self)
        try:
            self.root.chmod(0o755)
            for sub in ("log", "sock"):
                (self.root / sub).mkdir()
            if self.os_user is not None:
                for p in (self.root, self.log_dir, self.socket_dir):
                    os.chown(p, self.os_user.pw_uid, self.os_user.pw_gid)
            self._run(
                [
                    str(self.bindir / "initdb"),
                    "-D", str(self.data_dir),
                    "-U", self.superuser,
                    "-A", "trust",
                    "-E", "UTF8",
                    "--locale=C.UTF-8",
                    "--no-sync",
                    # --no-instructions exists from PostgreSQL 14 on.
                    *(["--no-instructions"] if self.major >= 14 else []),
                ],
                timeout=300,
            )  # fmt: skip
            last_error: ClusterError | None = None
            for _attempt in range(3):
                self.port = free_port()
                self._write_config()
                proc = self._run(
                    [
                        str(self.bindir / "pg_ctl"), "-D", str(self.data_dir),
                        "-l", str(self.root / "startup.log"),
                        "-w", "-t", str(int(self.start_timeout)), "start",
                    ],
                    check=False,
                    timeout=self.start_timeout + 30,
                    server=True,
                )  # fmt: skip
                if proc.returncode == 0:
                    last_error = None
                    break
                startup = self.root / "startup.log"
                detail = startup.read_text(errors="replace")[-500:] if startup.exists() else ""
                last_error = ClusterError(f"pg_ctl start failed on port {self.port}: {detail}")
            if last_error is not None:
                raise last_error
            self._running = True
            with self.connect() as conn:
                row = conn.execute("SHOW server_version_num").fetchone()
                self.version_num = int(row[0]) if row else 0
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the server (fast, then immediate, then kill) and remove its directory."""
        if self.root is None:
            _LIVE.discard(self)
            return
        pidfile = self.root / "data" / "postmaster.pid"
        if pidfile.exists():
            for mode in ("fast", "immediate"):
                with contextlib.suppress(ClusterError):
                    proc = self._run(
                        [str(self.bindir / "pg_ctl"), "-D", str(self.data_dir),
                         "-m", mode, "-w", "-t", "30", "stop"],
                        check=False, timeout=60, server=True,
                    )  # fmt: skip
                    if proc.returncode == 0:
                        break
            self._kill_postmaster(pidfile)
        self._running = False
        shutil.rmtree(self.root, ignore_errors=True)
        self.root = None
        _LIVE.discard(self)

    @staticmethod
    def _kill_postmaster(pidfile: Path) -> None:
        """Last resort: SIGKILL the postmaster's process group if it is still there."""
        try:
            pid = int(pidfile.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return
        for _ in range(50):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            except PermissionError:
                break
            time.sleep(0.1)
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)

    @property
    def running(self) -> bool:
        return self._running

    def restart(self) -> None:
        """Restart the server in place (same port, same data, logs kept)."""
        self._run(
            [str(self.bindir / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast",
             "-l", str(self._path("startup.log")), "-w", "-t", "60", "restart"],
            timeout=120, server=True,
        )  # fmt: skip

    def single_user(self, dbname: str, commands: str) -> str:
        """Stop the server, run ``commands`` in single-user mode (``postgres --single``, as
        the server's OS user), start it again; returns what the backend printed.

        Single-user mode fires no event trigger and writes nothing to the collector's
        log: it is how a superuser with shell access changes the schema unseen.
        """
        self._run(
            [str(self.bindir / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast",
             "-w", "-t", "60", "stop"],
            timeout=120,
        )  # fmt: skip
        try:
            env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
            env.update(LC_ALL="C.UTF-8", LANG="C.UTF-8", TZ="UTC")
            kwargs: dict[str, Any] = {}
            if self.os_user is not None:
                kwargs.update(user=self.os_user.pw_uid, group=self.os_user.pw_gid, extra_groups=[])
                env.update(HOME=str(self.root), USER=self.os_user.pw_name)
            proc = subprocess.run(
                [str(self.bindir / "postgres"), "--single", "-D", str(self.data_dir), dbname],
                input=commands,
                capture_output=True,
                text=True,
                timeout=120,
                env=env,
                cwd=str(self.root),
                start_new_session=True,
                **kwargs,
            )
            if proc.returncode != 0:
                raise ClusterError(f"postgres --single failed: {proc.stderr.strip()[-300:]}")
            return str(proc.stdout) + str(proc.stderr)
        finally:
            self._run(
                [str(self.bindir / "pg_ctl"), "-D", str(self.data_dir),
                 "-l", str(self._path("startup.log")), "-w", "-t", "60", "start"],
                timeout=120,
            )  # fmt: skip

    # -- connections -----------------------------------------------------------
    def dsn(
        self,
        dbname: str = "postgres",
        user: str | None = None,
        *,
        tcp: bool = True,
        **params: str,
    ) -> str:
        """A libpq DSN; TCP on 127.0.0.1 by default so client address fields are filled."""
        parts = {
            "host": "127.0.0.1" if tcp else str(self.socket_dir),
            "port": str(self.port),
            "dbname": dbname,
            "user": user or self.superuser,
        }
        parts.update(params)
        return psycopg.conninfo.make_conninfo(**parts)

    def connect(
        self,
        dbname: str = "postgres",
        user: str | None = None,
        *,
        application_name: str | None = None,
        autocommit: bool = True,
        tcp: bool = True,
    ) -> psycopg.Connection[Any]:
        """Connect to the cluster (autocommit by default, like psql)."""
        params = {"application_name": application_name} if application_name else {}
        return psycopg.connect(
            self.dsn(dbname, user, tcp=tcp, **params), autocommit=autocommit, connect_timeout=10
        )

    def execute(
        self,
        query: str,
        *,
        dbname: str = "postgres",
        user: str | None = None,
        application_name: str | None = None,
    ) -> list[tuple[Any, ...]]:
        """Run one query string over the simple protocol (like psql); rows of the last result."""
        with self.connect(dbname, user, application_name=application_name) as conn:
            cur = psycopg.ClientCursor(conn)
            cur.execute(query)
            return cur.fetchall() if cur.description else []

    @property
    def has_plpython(self) -> bool:
        """Whether ``plpython3u`` can be created here (its package is installed)."""
        with self.connect() as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_available_extensions WHERE name = 'plpython3u'"
            ).fetchone()
        return bool(row and row[0])

    # -- logs ------------------------------------------------------------------
    def current_logfiles(self) -> dict[str, Path]:
        """Current log file per destination, from ``pg_current_logfile()``."""
        files: dict[str, Path] = {}
        with self.connect() as conn:
            for dest in self.log_destination.split(","):
                dest = dest.strip()
                row = conn.execute("SELECT pg_current_logfile(%s)", [dest]).fetchone()
                if row and row[0]:
                    p = Path(row[0])
                    files[dest] = p if p.is_absolute() else self.data_dir / p
        return files

    def rotate_logs(self) -> dict[str, Path]:
        """Rotate and wait until the collector has opened the new files.

        File names have one-second resolution: a rotation in the same second as
        the current file's creation reopens the same name, so retry a second later.
        """
        before = self.current_logfiles()
        for _attempt in range(4):
            with self.connect() as conn:
                conn.execute("SELECT pg_rotate_logfile()")
            deadline = time.monotonic() + 1.5
            while time.monotonic() < deadline:
                time.sleep(0.05)
                now = self.current_logfiles()
                if all(now.get(k) != v for k, v in before.items()):
                    return now
        raise ClusterError("log rotation did not happen within 6 s")

    def flush_logs(self, timeout: float = 15.0) -> str:
        """Wait until everything logged so far is in every log file.

        Writes a unique ``RAISE LOG`` sentinel and waits for it in each current
        file: the collector writes in order, so earlier lines are there too.
        """
        token = f"auditor-flush-{uuid.uuid4().hex}"
        with self.connect(application_name="auditor-flush") as conn:
            conn.execute(
                sql.SQL("DO $auditor_flush$ BEGIN RAISE LOG {}; END $auditor_flush$").format(
                    sql.Literal(token)
                )
            )
        files = list(self.current_logfiles().values())
        deadline = time.monotonic() + timeout
        pending = set(files)
        needle = token.encode()
        while pending and time.monotonic() < deadline:
            for path in list(pending):
                with contextlib.suppress(OSError), open(path, "rb") as fh:
                    fh.seek(max(0, path.stat().st_size - 1_000_000))
                    if needle in fh.read():
                        pending.discard(path)
            if pending:
                time.sleep(0.02)
        if pending:
            raise ClusterError(f"log sentinel not seen in {sorted(map(str, pending))}")
        return token

    def log_files(self) -> Iterator[Path]:
        """Every file in the log directory, oldest first."""
        yield from sorted(self.log_dir.iterdir(), key=lambda p: (p.stat().st_mtime, p.name))


@contextlib.contextmanager
def sigterm_as_exit() -> Iterator[None]:
    """Turn SIGTERM into SystemExit for the duration, so ``with`` blocks clean up.

    Long-running commands (demo) use it: a ``kill`` must not leave a cluster behind.
    """

    def _handler(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    try:
        previous = signal.signal(signal.SIGTERM, _handler)
    except ValueError:  # not the main thread: nothing to install
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
