-- capture_revoke_reader.sql: takes the audit schema's rights away from a former reader role.
--
-- Used when a re-install names another reader role than the previous install did.
-- Placeholders: {{schema}}, {{reader_role}} (identifiers).
REVOKE ALL ON ALL TABLES IN SCHEMA {schema} FROM {reader_role};
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA {schema} FROM {reader_role};
REVOKE ALL ON SCHEMA {schema} FROM {reader_role};
