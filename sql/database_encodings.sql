-- database_encodings.sql: the encoding of every database, as the server names it.
--
-- The server writes each backend's log lines in its database's encoding, unconverted;
-- reconcile decodes each database's log records in it (auditor.encoding) so that they
-- read as the audit rows do.  Catalog-only.
SELECT d.datname::text AS name, pg_catalog.pg_encoding_to_char(d.encoding) AS encoding
  FROM pg_catalog.pg_database AS d;
