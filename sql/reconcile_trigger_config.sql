-- reconcile_trigger_config.sql: the settings <schema>.record_event() fixes in its SET clause.
--
-- A function's SET clause wins over the caller's settings while it runs, so a
-- setting pinned here cannot hide or shorten the markers the audit trigger raises
-- (auditor.weakening judges settings changes with it).  Catalog-only.
-- Parameter: %(schema)s, the audit schema's name.
SELECT coalesce(p.proconfig, '{}'::text[]) AS config
  FROM pg_catalog.pg_proc AS p
  JOIN pg_catalog.pg_namespace AS n ON n.oid = p.pronamespace
 WHERE n.nspname = %(schema)s AND p.proname = 'record_event';
