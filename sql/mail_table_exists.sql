-- mail_table_exists.sql: whether a table of the audit schema exists.  Parameters: %(schema)s, %(table)s.
SELECT pg_catalog.to_regclass(pg_catalog.quote_ident(%(schema)s) || '.'
                              || pg_catalog.quote_ident(%(table)s)) IS NOT NULL AS present;
