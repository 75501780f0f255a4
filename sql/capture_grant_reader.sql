-- capture_grant_reader.sql: the optional read-only role for reconcile: USAGE and SELECT, nothing else.
--
-- It can read the audit tables and recompute digests in SQL; it cannot write,
-- cannot fire or alter triggers.  Placeholders: {{schema}}, {{reader_role}} (identifiers).
GRANT USAGE ON SCHEMA {schema} TO {reader_role};
GRANT SELECT ON {schema}.events, {schema}.installs, {schema}.settings TO {reader_role};
GRANT EXECUTE ON FUNCTION {schema}.row_digest({schema}.events),
    {schema}.canon_text(text) TO {reader_role};
