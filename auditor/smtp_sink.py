"""A real, local SMTP server that keeps every message as a ``.eml`` file (demo, tests, bench).

Built on aiosmtpd: it speaks real SMTP on 127.0.0.1 (optionally STARTTLS or
implicit TLS, optionally with a required login), so the code under test talks
to it exactly as to a production server.  :meth:`SmtpSink.stop` and
:meth:`SmtpSink.start` take it down and bring it back on the same port (an SMTP
outage); :attr:`SmtpSink.reject` makes it answer every message with an error reply.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import ssl
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from types import TracebackType
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from auditor.cluster import free_port


@dataclass(frozen=True)
class Received:
    """One accepted message: where it was written and when the server accepted it."""

    path: Path
    accepted_at: float  # time.time() when the 250 reply was about to be sent
    message_id: str | None


class _Controller(Controller):
    def factory(self) -> Any:
        with warnings.catch_warnings():
            # "AUTH without requiring TLS": with implicit TLS the whole session is TLS,
            # which aiosmtpd (it only knows STARTTLS) cannot tell.
            warnings.simplefilter("ignore", UserWarning)
            return super().factory()  # type: ignore[no-untyped-call]


class _Handler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.sink.delay:
            await asyncio.sleep(self.sink.delay)
        return self.sink._store(envelope)


class SmtpSink:
    """``with SmtpSink(directory) as sink:`` a listening SMTP server; ``sink.port``.

    ``security`` is ``none``, ``starttls`` or ``tls`` (then ``certfile``/``keyfile``
    are needed); ``login`` a ``(user, password)`` pair the server requires.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        port: int | None = None,
        security: str = "none",
        certfile: str | os.PathLike[str] | None = None,
        keyfile: str | os.PathLike[str] | None = None,
        login: tuple[str, str] | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.security = security
        self.login = login
        self._context: ssl.SSLContext | None = None
        if security != "none":
            if not certfile:
                raise ValueError(f"security {security!r} needs a certfile")
            self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self._context.load_cert_chain(str(certfile), str(keyfile) if keyfile else None)
        #: When set (e.g. ``"451 4.3.0 try again later"``), every message gets this reply.
        self.reject: str | None = None
        #: Seconds the server thinks before answering the end of each message (a slow relay).
        self.delay = 0.0
        #: Called with each accepted message's path (the bench uses it for timings).
        self.on_message: Callable[[Received], None] | None = None
        self.received: list[Received] = []
        self._lock = threading.Lock()
        existing = [int(p.stem) for p in self.directory.glob("*.eml") if p.stem.isdigit()]
        self._counter = itertools.count(max(existing, default=0) + 1)
        self._controller: Controller | None = None

    # -- lifecycle -----------------------------------------------------------------
    def start(self) -> None:
        """Listen (again) on :attr:`port`."""
        if self._controller is not None:
            return
        kwargs: dict[str, Any] = {}
        if self.security == "starttls":
            kwargs.update(tls_context=self._context, require_starttls=True)
        elif self.security == "tls":
            kwargs.update(ssl_context=self._context)
        if self.login is not None:
            kwargs.update(
                authenticator=self._authenticate,
                auth_required=True,
                # aiosmtpd only knows about STARTTLS; implicit TLS is encrypted anyway
                auth_require_tls=self.security == "starttls",
            )
        deadline = time.monotonic() + 10
        while True:
            controller = _Controller(
                _Handler(self),
                hostname="127.0.0.1",
                port=self.port,
                server_hostname="localhost",
                **kwargs,
            )
            try:
                controller.start()
                break
            except (OSError, RuntimeError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)  # the port may still be in TIME_WAIT after stop()
        self._controller = controller

    def stop(self) -> None:
        """Stop listening (clients now get 'connection refused')."""
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    @property
    def running(self) -> bool:
        return self._controller is not None

    def __enter__(self) -> SmtpSink:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- messages ------------------------------------------------------------------
    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = (
            self.login is not None
            and isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == self.login[0]
            and auth_data.password.decode() == self.login[1]
        )
        return AuthResult(success=ok, handled=False)

    def _store(self, envelope: Any) -> str:
        if self.reject:
            return self.reject
        content: bytes = envelope.original_content or envelope.content
        with self._lock:
            n = next(self._counter)
        path = self.directory / f"{n:06d}.eml"
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(content)
        tmp.rename(path)
        message_id = BytesParser(policy=policy.default).parsebytes(content, headersonly=True)[
            "Message-ID"
        ]
        received = Received(path, time.time(), str(message_id) if message_id else None)
        with self._lock:
            self.received.append(received)
        if self.on_message is not None:
            self.on_message(received)
        return "250 2.0.0 Message accepted for delivery"

    def paths(self) -> list[Path]:
        """The ``.eml`` files, in arrival order."""
        return sorted(self.directory.glob("*.eml"))

    def messages(self) -> list[EmailMessage]:
        """Every message received so far, parsed, in arrival order."""
        parser = BytesParser(policy=policy.default)
        out: list[EmailMessage] = []
        for path in self.paths():
            msg = parser.parsebytes(path.read_bytes())
            assert isinstance(msg, EmailMessage)
            out.append(msg)
        return out

    def wait_for(self, count: int, timeout: float = 30.0) -> list[EmailMessage]:
        """Wait until at least ``count`` messages arrived; return them all."""
        deadline = time.monotonic() + timeout
        while len(self.paths()) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.messages()
