-- capture_owner_rights.sql: what a role that is not a superuser lacks to run the audit function.
--
-- <schema>.record_event() is SECURITY DEFINER: it runs with its owner's rights.  Owned by
-- a role without these rights (install grants them to nobody), every firing fails
-- (ERROR: permission denied for schema ...; or, for DDL of another role's session, a
-- NULL session id), and so every DDL of the database.
-- Parameters: %(role)s the owner, %(schema)s the audit schema.
WITH s AS (SELECT pg_catalog.quote_ident(%(schema)s::text) AS q),
     need(n, what, ok) AS (
    SELECT 1, 'USAGE on schema ' || s.q,
           pg_catalog.has_schema_privilege(%(role)s::name, %(schema)s::text, 'USAGE') FROM s
    UNION ALL
    SELECT 2, 'INSERT and SELECT on table ' || s.q || '.events',
           pg_catalog.has_table_privilege(%(role)s::name, s.q || '.events', 'INSERT, SELECT')
      FROM s
    UNION ALL
    SELECT 3, 'USAGE on sequence ' || s.q || '.events_id_seq',
           pg_catalog.has_sequence_privilege(%(role)s::name, s.q || '.events_id_seq', 'USAGE')
      FROM s
    UNION ALL
    SELECT 4, 'SELECT on table ' || s.q || '.settings',
           pg_catalog.has_table_privilege(%(role)s::name, s.q || '.settings', 'SELECT') FROM s
    UNION ALL
    SELECT 5, 'EXECUTE on the functions it calls (' || s.q || '.after_event, row_digest, canon_text)',
           pg_catalog.has_function_privilege(%(role)s::name,
                                             s.q || '.after_event(' || s.q || '.events)', 'EXECUTE')
       AND pg_catalog.has_function_privilege(%(role)s::name,
                                             s.q || '.row_digest(' || s.q || '.events)', 'EXECUTE')
       AND pg_catalog.has_function_privilege(%(role)s::name, s.q || '.canon_text(text)', 'EXECUTE')
      FROM s
    UNION ALL
    -- pg_stat_get_activity() hides another role's session start (the row's session id)
    SELECT 6, 'membership in pg_read_all_stats (the session of another role''s DDL)',
           pg_catalog.pg_has_role(%(role)s::name, 'pg_read_all_stats', 'USAGE')
)
SELECT pg_catalog.array_agg(need.what ORDER BY need.n) FILTER (WHERE NOT need.ok) AS lacks
  FROM need;
