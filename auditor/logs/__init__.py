"""The log channel: read PostgreSQL server logs into :class:`~auditor.model.LogRecord`.

Entry points:

* :func:`open_sources` turns ``--log`` specs (files, globs, directories, ``-``,
  ``sql:``) into :class:`LogSource` objects, rotated files in time order;
* :func:`read_source` reads one source (an iterator of records and warnings,
  with :class:`SourceStats` once exhausted: what ``reconcile --state`` keeps);
* :func:`auditor.logs.scan.scan` reads many sources on every core and links
  each ERROR to the statement it belongs to; ``auditor scan`` prints its result
  (not re-exported here: the name would hide the module).

Modules: :mod:`.sources` (where bytes come from), :mod:`.detect` (format and
prefix), :mod:`.prefix` (``log_line_prefix`` to regex), :mod:`.stderr`,
:mod:`.csvlog`, :mod:`.jsonlog` (the readers), :mod:`.message` (what a message
says), :mod:`.prefilter` (the byte search that skips what cannot be DDL),
:mod:`.link` (errors to statements, what to keep), :mod:`.reader` (windows
and statistics), :mod:`.scan` (parallel scan), :mod:`.render` (scan output rows).
"""

from __future__ import annotations

from auditor.logs.link import Linker
from auditor.logs.prefix import CompiledPrefix, compile_prefix
from auditor.logs.reader import SourceRead, SourceStats, read_source
from auditor.logs.scan import ScanStream, ServerLogSettings, server_log_settings
from auditor.logs.sources import LogSource, open_sources

__all__ = [
    "CompiledPrefix",
    "Linker",
    "LogSource",
    "ScanStream",
    "ServerLogSettings",
    "SourceRead",
    "SourceStats",
    "compile_prefix",
    "open_sources",
    "read_source",
    "server_log_settings",
]
