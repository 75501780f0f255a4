-- capture_uninstall.sql: removes what `auditor install` created in one database, and nothing else.
--
-- RESTRICT everywhere (the default): if anything that is not the auditor's depends on
-- its objects (a view over the events table, a table someone put into the schema),
-- PostgreSQL refuses, names the dependent object, and the whole transaction rolls
-- back.  Event triggers go first, so that dropping the rest is not refused by the
-- audit trigger itself (it fails closed when its table is gone).
-- Placeholders: {{schema}}, {{ddl_command_end_trigger}}, {{sql_drop_trigger}},
-- {{table_rewrite_trigger}} (identifiers).

DROP EVENT TRIGGER IF EXISTS {ddl_command_end_trigger};
DROP EVENT TRIGGER IF EXISTS {sql_drop_trigger};
DROP EVENT TRIGGER IF EXISTS {table_rewrite_trigger};
DROP TRIGGER IF EXISTS events_mail ON {schema}.events;
DROP FUNCTION IF EXISTS {schema}.mail_on_commit();
DROP FUNCTION IF EXISTS {schema}.send_mails(bigint, bigint);
DROP FUNCTION IF EXISTS {schema}.record_event();
DROP FUNCTION IF EXISTS {schema}.after_event({schema}.events);
DROP FUNCTION IF EXISTS {schema}.row_digest({schema}.events);
DROP FUNCTION IF EXISTS {schema}.canon_text(text);
DROP FUNCTION IF EXISTS {schema}.catalog_snapshot(text);
DROP TABLE IF EXISTS {schema}.delivery_events, {schema}.deliveries, {schema}.mail_state,
    {schema}.mail_config;
DROP TABLE IF EXISTS {schema}.events, {schema}.installs, {schema}.settings,
    {schema}.catalog_snapshots;
DROP FUNCTION IF EXISTS {schema}.refuse_change();
DROP SCHEMA IF EXISTS {schema};
