-- catalog_read_snapshot.sql: one catalog snapshot row, its parts as jsonb text.
--
-- A part stored as NULL is identical to an earlier row's with the same digest
-- (catalog_read_part.sql reads it).  %(id)s picks a row; else the latest one before
-- %(before)s (NULL: the latest of all).  The catalogs it follows through to_jsonb: an
-- install older than that column still reads.  Placeholder: {{schema}}.
SELECT s.id, s.taken_at, s.database_name, s.server_version_num, s.xid_snapshot,
       s.oldest_xact_start, s.reason, s.database_digest, s.builtin_digest, s.cluster_digest,
       s.database_objects::text, s.builtin_objects::text, s.cluster_objects::text,
       (pg_catalog.to_jsonb(s) -> 'catalogs')::text
  FROM {schema}.catalog_snapshots AS s
 WHERE (%(id)s::bigint IS NULL OR s.id = %(id)s::bigint)
   AND (%(before)s::bigint IS NULL OR s.id < %(before)s::bigint)
 ORDER BY s.id DESC
 LIMIT 1;
