-- mail_note.sql: keeps a note on a delivered mail (the recipients the server refused).
--
-- Placeholder: {{schema}}.  Parameters: $1 delivery id, $2 note.
UPDATE {schema}.deliveries SET last_error = $2 WHERE id = $1;
