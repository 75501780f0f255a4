-- catalog_interval_events.sql: the audit rows of the transactions that committed between
-- two catalog snapshots (invisible to the first, visible to the second).
--
-- Visibility is exact (pg_visible_in_snapshot on the row's xid); the time bounds only
-- let the BRIN index on statement_time skip the rest.  An altered row with a negative
-- xid or a non-array objects value is read as having no objects, an odd objid or
-- identity as none, never an error.
-- Placeholder: {{schema}}.  Parameters: %(since)s, %(until)s, %(before)s and %(after)s
-- (the snapshots' pg_current_snapshot() text).
SELECT e.id, e.xid, e.xmin::text::bigint AS row_xmin, e.command_tag, e.statement_time,
       (SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_array(
                   CASE WHEN (o ->> 'objid') ~ '^[0-9]{{1,10}}$' THEN (o ->> 'objid')::bigint END,
                   CASE WHEN pg_catalog.jsonb_typeof(o -> 'object_identity') = 'string'
                        THEN o ->> 'object_identity' END))
          FROM pg_catalog.jsonb_array_elements(
                   CASE pg_catalog.jsonb_typeof(e.objects) WHEN 'array' THEN e.objects
                        ELSE '[]'::jsonb END) AS o)::text AS objects
  FROM {schema}.events AS e
 WHERE e.statement_time >= %(since)s::timestamptz
   AND e.statement_time <= %(until)s::timestamptz
   AND e.xid >= 0
   AND NOT pg_catalog.pg_visible_in_snapshot(e.xid::text::xid8, %(before)s::pg_snapshot)
   AND pg_catalog.pg_visible_in_snapshot(e.xid::text::xid8, %(after)s::pg_snapshot)
 ORDER BY e.id;
