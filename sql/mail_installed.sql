-- mail_installed.sql: whether the connected database holds an auditor schema with the mail tables.
--
-- Parameter: %(schema)s.
SELECT pg_catalog.to_regclass(pg_catalog.quote_ident(%(schema)s) || '.deliveries') IS NOT NULL
   AND pg_catalog.to_regclass(pg_catalog.quote_ident(%(schema)s) || '.settings') IS NOT NULL AS installed;
