-- capture_create_reader.sql: creates the read-only reconcile role (cluster-wide, NOLOGIN).
--
-- The comment marks it as the auditor's, so `auditor uninstall` drops only a role it
-- created, and only once no database still grants it anything.  Give it LOGIN or
-- GRANT it to a login role yourself.  Placeholders: {{reader_role}} (identifier),
-- {{comment}} (literal).
CREATE ROLE {reader_role} NOLOGIN;
COMMENT ON ROLE {reader_role} IS {comment};
