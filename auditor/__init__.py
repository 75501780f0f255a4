"""auditor: a forensic auditor for PostgreSQL schema changes.

Two independent channels record every DDL (event triggers writing an
append-only table, and the server log with ``log_statement = 'ddl'``);
``reconcile`` pairs them and explains every difference.  The package is a
library first: ``auditor.cli`` is a thin Typer layer over it.
"""

__version__ = "0.1.0"
