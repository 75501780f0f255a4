-- role_settings.sql: per-database and per-role overrides of settings that weaken a channel.
--
-- ALTER ROLE/DATABASE ... SET log_statement = 'none' (or log_min_messages = fatal,
-- event_triggers = off on 17+) silences a channel for some sessions without touching
-- postgresql.conf; `auditor status` and reconcile report them.
SELECT d.datname AS database, r.rolname AS role, split_part(c.setting, '=', 1) AS name,
       substr(c.setting, strpos(c.setting, '=') + 1) AS value
  FROM pg_catalog.pg_db_role_setting AS s
  LEFT JOIN pg_catalog.pg_database AS d ON d.oid = s.setdatabase
  LEFT JOIN pg_catalog.pg_roles AS r ON r.oid = s.setrole
 CROSS JOIN LATERAL pg_catalog.unnest(s.setconfig) AS c(setting)
 WHERE split_part(c.setting, '=', 1) IN ('log_statement', 'log_min_messages', 'event_triggers')
 ORDER BY 1 NULLS FIRST, 2 NULLS FIRST, 3;
