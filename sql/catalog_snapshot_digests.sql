-- catalog_snapshot_digests.sql: what the audit schema holds for one snapshot id, and its last id.
--
-- Reconcile compares it with the state file's copy of the previous snapshot: the same
-- id and time with other digests means the stored row was edited.  Placeholder:
-- {{schema}}.  Parameter: %(id)s.
SELECT s.taken_at, s.database_digest, s.builtin_digest, s.cluster_digest,
       (SELECT pg_catalog.max(m.id) FROM {schema}.catalog_snapshots AS m) AS last_id
  FROM (SELECT 1) AS one
  LEFT JOIN {schema}.catalog_snapshots AS s ON s.id = %(id)s::bigint;
