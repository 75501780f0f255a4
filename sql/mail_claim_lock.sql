-- mail_claim_lock.sql: one claimer at a time per audit schema (auditor notify instances may overlap).
--
-- Transaction-level advisory lock, taken at the start of a claim transaction; a
-- second worker (a cron --once next to the daemon) skips claiming while it is held.
-- Parameter: $1 the lock name ('<schema>.notify').
SELECT pg_catalog.pg_try_advisory_xact_lock(pg_catalog.hashtext($1)) AS locked;
