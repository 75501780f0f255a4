-- capture_install_info.sql: the latest install record and the settings row of an installed schema.
--
-- Run only when both tables exist (see capture_state.sql).  Placeholder: {{schema}}.
SELECT pg_catalog.jsonb_build_object(
    'install', (SELECT pg_catalog.to_jsonb(i) FROM {schema}.installs AS i ORDER BY i.id DESC LIMIT 1),
    'installs', (SELECT pg_catalog.count(*) FROM {schema}.installs),
    'settings', (SELECT pg_catalog.to_jsonb(s) FROM {schema}.settings AS s WHERE s.id = 1),
    'events', (SELECT pg_catalog.count(*) FROM {schema}.events)
) AS info;
