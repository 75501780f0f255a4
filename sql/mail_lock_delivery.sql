-- mail_lock_delivery.sql: takes one undelivered mail for sending (skipped if another worker has it).
--
-- Run in the transaction that marks it delivered; the row lock is held while the
-- message goes to the SMTP server.  Placeholder: {{schema}}.  Parameter: $1 delivery id.
SELECT d.id FROM {schema}.deliveries AS d
 WHERE d.id = $1 AND d.status <> 'delivered'
   FOR UPDATE SKIP LOCKED;
