"""SQL files of auditor, shipped inside the package as ``auditor.sql``.

The files live at the repository's top level in ``sql/`` and are mapped into
the installed package by ``[tool.setuptools] package-dir`` in pyproject.toml;
:func:`auditor.db.sql_text` loads them with :mod:`importlib.resources`.
"""
