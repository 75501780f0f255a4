-- capture_record_install.sql: settings row and install history, last step of `auditor install`.
--
-- The settings row is what the trigger reads at each firing (mail mode, NOTIFY channel);
-- the installs row records who installed which version and the md5 of every function
-- body as installed, which `auditor status` compares with the live functions.
-- Placeholders: {{schema}} (identifier); {{schema_name}}, {{mail_mode}}, {{strict}},
-- {{notify_channel}}, {{package_version}}, {{schema_version}}, {{reader_role}},
-- {{notify_role}} (literals).

INSERT INTO {schema}.settings AS s (id, mail_mode, strict, notify_channel)
VALUES (1, {mail_mode}, {strict}, {notify_channel})
ON CONFLICT (id) DO UPDATE
    SET mail_mode = EXCLUDED.mail_mode, strict = EXCLUDED.strict,
        notify_channel = EXCLUDED.notify_channel
    WHERE (s.mail_mode, s.strict, s.notify_channel)
          IS DISTINCT FROM (EXCLUDED.mail_mode, EXCLUDED.strict, EXCLUDED.notify_channel);

INSERT INTO {schema}.installs (package_version, schema_version, mail_mode, reader_role, notify_role,
                               functions)
SELECT {package_version}, {schema_version}, {mail_mode}, {reader_role}, {notify_role},
       coalesce(jsonb_object_agg(p.proname, md5(p.prosrc)), '{{}}'::jsonb)
  FROM pg_catalog.pg_proc AS p
 WHERE p.pronamespace = {schema_name}::regnamespace;
