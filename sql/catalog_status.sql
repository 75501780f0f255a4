-- catalog_status.sql: how many catalog snapshots a database holds and when the latest was taken.
--
-- For `auditor status` (snapshot age).  Run only when the table exists.  Placeholder:
-- {{schema}}.
SELECT pg_catalog.count(*), pg_catalog.max(s.id),
       (SELECT l.taken_at FROM {schema}.catalog_snapshots AS l ORDER BY l.id DESC LIMIT 1),
       (SELECT l.reason FROM {schema}.catalog_snapshots AS l ORDER BY l.id DESC LIMIT 1)
  FROM {schema}.catalog_snapshots AS s;
