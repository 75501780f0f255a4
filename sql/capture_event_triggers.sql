-- capture_event_triggers.sql: the auditor's event triggers, created last by `auditor install`.
--
-- Created after capture_install.sql in the same transaction (the old ones were dropped
-- first), owned by the installing superuser, and ENABLE ALWAYS so that
-- session_replication_role = replica does not silence them.  table_rewrite is kept
-- for forensics: it names a table whose storage was rewritten (ALTER COLUMN TYPE, SET
-- LOGGED, ...) and why (pg_event_trigger_table_rewrite_reason()).
-- Placeholders: {{schema}}, {{ddl_command_end_trigger}}, {{sql_drop_trigger}},
-- {{table_rewrite_trigger}} (identifiers).

CREATE EVENT TRIGGER {ddl_command_end_trigger} ON ddl_command_end
    EXECUTE FUNCTION {schema}.record_event();
ALTER EVENT TRIGGER {ddl_command_end_trigger} ENABLE ALWAYS;

CREATE EVENT TRIGGER {sql_drop_trigger} ON sql_drop
    EXECUTE FUNCTION {schema}.record_event();
ALTER EVENT TRIGGER {sql_drop_trigger} ENABLE ALWAYS;

CREATE EVENT TRIGGER {table_rewrite_trigger} ON table_rewrite
    EXECUTE FUNCTION {schema}.record_event();
ALTER EVENT TRIGGER {table_rewrite_trigger} ENABLE ALWAYS;
