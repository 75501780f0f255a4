"""Columnar window readers: one window of a log file read as one Arrow batch.

The row readers (:mod:`auditor.logs.reader`) find the records worth parsing
with one byte pass and then parse each one in Python.  Here a whole window's
record boundaries come from array operations (numpy) and the records holding
a hit are parsed together by Arrow's C++ CSV reader into columns; Python
objects are built only for the records that become :class:`~auditor.model.LogRecord`.

A columnar reader handles only windows it can read *exactly* as the row
reader does (no NUL, no garbled or foreign line, no broken quote parity, no
row-like line inside a message, every hit row strict CSV in UTF-8, the
file's column count); for anything else it returns None and the row reader
reads that window, so the output is always the row reader's.  The
differential test (``tests/test_columnar.py``) runs both on every fixture.

The engine is chosen by ``AUDITOR_SCAN_ENGINE``: ``row`` (the row readers
alone), ``columnar`` or ``auto`` (the default: columnar where pyarrow and
numpy are installed).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from auditor.logs.reader import FormatReader, _Window

#: Formats with a columnar window reader.
FORMATS = ("csvlog",)

WindowReader = Callable[..., "_Window | None"]


def available() -> str | None:
    """Why the columnar engine cannot run here (a missing wheel), or None."""
    try:
        import numpy  # noqa: F401
        import pyarrow
        import pyarrow.csv  # noqa: F401
    except ImportError as exc:  # pragma: no cover - depends on the installed wheels
        return f"{exc.name} is not installed"
    return None


#: What ``auto`` means.
DEFAULT = "columnar"
#: Windows read by each engine in this process (the differential test checks that
#: the columnar engine did read windows, not only hand them to the row reader).
WINDOWS: Counter[str] = Counter()


def engine() -> str:
    """The scan engine in use: ``columnar`` or ``row`` (see the module docstring)."""
    wanted = os.environ.get("AUDITOR_SCAN_ENGINE", "auto").strip().lower() or "auto"
    if wanted == "auto":
        wanted = DEFAULT
    if wanted == "columnar" and available() is None:
        return "columnar"
    return "row"


def describe() -> str:
    """One line for ``auditor --version``: the scan engine and, for the row engine, why.

    >>> describe().startswith("log scan engine: ")
    True
    """
    missing = available()
    used = engine()
    if used == "columnar":
        return f"log scan engine: columnar for {', '.join(FORMATS)} (pyarrow), rows elsewhere"
    why = f"{missing}: pure-Python fallback" if missing else "AUDITOR_SCAN_ENGINE=row"
    return f"log scan engine: rows ({why})"


def window_reader(reader: FormatReader) -> WindowReader | None:
    """The columnar window reader for ``reader``'s format, or None (the row reader reads)."""
    if engine() != "columnar" or reader.fmt not in FORMATS:
        return None
    from auditor.logs.columnar.csvlog import scan_window_csvlog

    fn: Any = scan_window_csvlog
    return fn  # type: ignore[no-any-return]
