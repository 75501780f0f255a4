"""The one error hierarchy of auditor.

Every error the user can cause or meet (bad input, an unreachable server, a
missing file) is an :class:`AuditorError` whose message is a single sentence
written for a DBA.  The CLI maps all of them to exit code 2 in one place and
never shows a traceback for them.
"""

from __future__ import annotations


class AuditorError(Exception):
    """Base class: ``str(err)`` is the one-line message shown to the user."""

    exit_code = 2


class ConfigError(AuditorError):
    """An option, environment variable or YAML config value is wrong."""


class ConnectionFailed(AuditorError):
    """The server could not be reached or refused us (the message names it)."""


class LogInputError(AuditorError):
    """A log source could not be read at all (the message names file and line)."""


class PrefixMismatch(LogInputError):
    """A ``log_line_prefix`` matched none of the lines of a stderr log."""


class InstallError(AuditorError):
    """``auditor install``/``uninstall`` refused or failed (e.g. no superuser)."""


class ClusterError(AuditorError):
    """A throwaway cluster could not be created, started or stopped."""


class MailError(AuditorError):
    """Mail could not be built or sent."""


class StateError(AuditorError):
    """The incremental-run state file is unreadable or from another setup."""


class ReportError(AuditorError):
    """A findings.json could not be read, or a report file could not be written."""
