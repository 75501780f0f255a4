-- databases.sql: every database of the cluster and whether it accepts connections.
-- template1 is included on purpose (new databases are copied from it); template0
-- does not accept connections and is reported as skipped.
SELECT d.datname::text AS name, d.datallowconn AS allow_connections, d.datistemplate AS is_template
  FROM pg_catalog.pg_database AS d
 ORDER BY d.datname;
