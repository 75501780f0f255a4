"""The real-world workload matrix: workloads nobody here wrote, under real log setups.

A *cell* is one ``log_line_prefix`` x ``log_timezone`` x log format x PostgreSQL
major.  One cluster per (major, prefix, zone) logs stderr, csvlog and jsonlog at
once; the workloads (PostgreSQL's own regression SQL, pgbench, pg_dump/pg_restore,
Django's migrate) and then the demo's scripted day run on it, and each format is
reconciled on its own and judged (:mod:`realworld.judge`).  ``scripts/matrix``
runs the whole matrix; ``tests/test_realworld.py`` a CI slice of it.

Layout: :mod:`realworld.cells` (the dimensions and where each major's binaries
are), :mod:`realworld.workloads` (what runs), :mod:`realworld.judge` (what counts
as a false alarm), :mod:`realworld.matrix` (the runner and the markdown table),
``regress/`` (the vendored regression SQL, its licence and origin) and
``djangoapp/`` (a small Django project whose migrations the Django workload runs).
"""
