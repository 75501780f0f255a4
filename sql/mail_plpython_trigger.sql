-- mail_plpython_trigger.sql: the deferred trigger that mails at commit (in-database mode).
--
-- A constraint trigger, DEFERRABLE INITIALLY DEFERRED: it fires when the transaction
-- commits, once per audit row, so send_mails() sees every row of every statement of
-- the transaction, and a rolled-back DDL is never mailed.  ENABLE ALWAYS, like the
-- audit triggers, so session_replication_role = replica does not silence it.
-- (SET CONSTRAINTS ALL IMMEDIATE makes it fire per row: more mails, none lost.)
-- Placeholder: {{schema}}.
DROP TRIGGER IF EXISTS events_mail ON {schema}.events;
CREATE CONSTRAINT TRIGGER events_mail
    AFTER INSERT ON {schema}.events
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION {schema}.mail_on_commit();
ALTER TABLE {schema}.events ENABLE ALWAYS TRIGGER events_mail;
