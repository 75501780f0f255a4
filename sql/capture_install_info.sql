-- capture_install_info.sql: the latest install record and the settings row of an installed schema.
--
-- Run only when both tables exist (see capture_state.sql).  The database the first audit
-- row names tells rows copied in (with a template, or by a restore of another database's
-- dump) from this database's own.  Placeholder: {{schema}}.
SELECT pg_catalog.jsonb_build_object(
    'install', (SELECT pg_catalog.to_jsonb(i) FROM {schema}.installs AS i ORDER BY i.id DESC LIMIT 1),
    'installs', (SELECT pg_catalog.count(*) FROM {schema}.installs),
    'settings', (SELECT pg_catalog.to_jsonb(s) FROM {schema}.settings AS s WHERE s.id = 1),
    'events', (SELECT pg_catalog.count(*) FROM {schema}.events),
    'first_event_database', (SELECT e.database_name FROM {schema}.events AS e ORDER BY e.id LIMIT 1)
) AS info;
