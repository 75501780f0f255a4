-- catalog_baseline.sql: the catalog channel's first snapshot, last step of `auditor install`.
--
-- Taken inside the install's transaction, after its event triggers are back, so the
-- baseline holds the install itself; every later reconcile compares its snapshot with
-- the previous one (see catalog_install.sql).  Placeholder: {{schema}} (identifier).
SELECT {schema}.catalog_snapshot('install');
