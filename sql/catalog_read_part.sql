-- catalog_read_part.sql: the latest stored copy of one snapshot part with this digest.
--
-- Placeholders: {{schema}}, {{objects}} and {{digest}} (the part's two columns,
-- identifiers).  Parameter: %(digest)s.
SELECT s.{objects}::text
  FROM {schema}.catalog_snapshots AS s
 WHERE s.{digest} = %(digest)s AND s.{objects} IS NOT NULL
 ORDER BY s.id DESC
 LIMIT 1;
