-- mail_prepare.sql: before capture_install.sql, removes the in-database mode's trigger and functions.
--
-- Runs in every mode; the plpython mode creates them again (mail_plpython.sql,
-- mail_plpython_trigger.sql).  IF EXISTS throughout: on a first install nothing exists
-- yet (PostgreSQL only notices the missing schema).  Placeholder: {{schema}}.
DROP TRIGGER IF EXISTS events_mail ON {schema}.events;
DROP FUNCTION IF EXISTS {schema}.mail_on_commit();
DROP FUNCTION IF EXISTS {schema}.send_mails(bigint, bigint);
