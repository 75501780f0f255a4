-- capture_grant_reader.sql: the optional read-only role for reconcile: USAGE and SELECT, nothing else.
--
-- It can read the audit tables and recompute digests in SQL, and take a catalog
-- snapshot (the SECURITY DEFINER function writes the row, from the catalog alone); it
-- cannot write, cannot fire or alter triggers.  Placeholders: {{schema}}, {{reader_role}} (identifiers).
GRANT USAGE ON SCHEMA {schema} TO {reader_role};
GRANT SELECT ON {schema}.events, {schema}.installs, {schema}.settings,
    {schema}.catalog_snapshots TO {reader_role};
GRANT EXECUTE ON FUNCTION {schema}.row_digest({schema}.events),
    {schema}.canon_text(text), {schema}.catalog_snapshot(text) TO {reader_role};
