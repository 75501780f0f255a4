-- reconcile_installs.sql: one database's install history and the time of its first audit row.
--
-- reconcile recognises the auditor's own installs and upgrades in the log against
-- these rows (who and when), and takes DDL logged before the first sign of the
-- auditor as outside the trigger's coverage (auditor.installs).  Rows as jsonb, so
-- that an older schema version (fewer columns) reads the same way.
-- Placeholder: {{schema}}.
SELECT pg_catalog.jsonb_build_object(
    'installs', (SELECT pg_catalog.jsonb_agg(pg_catalog.to_jsonb(i) ORDER BY i.id)
                   FROM {schema}.installs AS i),
    'first_event', (SELECT e.statement_time FROM {schema}.events AS e ORDER BY e.id LIMIT 1),
    -- another database's name: rows copied in (a template, a restore of its dump)
    'first_event_database', (SELECT e.database_name FROM {schema}.events AS e ORDER BY e.id LIMIT 1)
) AS history;
