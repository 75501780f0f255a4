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

-- A restore of a dump sets each sequence to the value the dumped database had (pg_dump's
-- setval), which can be behind the ids this database's own rows hold: the next row would
-- collide.  Every serial of the schema but the audit table's is moved past its table's
-- highest id first (the catalog snapshot and the mail claim also cope on their own).  The
-- audit table's is left to record_event(): it moves it on at the next firing and says so
-- in that row's marker, so the rewind stays in the log as evidence.
DO $auditor$
DECLARE
    t      record;
    v_max  bigint;
    v_next bigint;
BEGIN
    -- each sequence owned by an id column of the schema's tables (bigserial)
    FOR t IN SELECT d.refobjid::regclass AS tbl, d.objid::regclass AS seq
               FROM pg_depend AS d
               JOIN pg_class AS s ON s.oid = d.objid AND s.relkind = 'S'
               JOIN pg_class AS c ON c.oid = d.refobjid
               JOIN pg_attribute AS a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
              WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
                AND d.deptype = 'a' AND a.attname = 'id' AND c.relname <> 'events'
                AND c.relnamespace = {schema_name}::regnamespace
    LOOP
        EXECUTE format('SELECT max(id) FROM %s', t.tbl) INTO v_max;
        EXECUTE format('SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END FROM %s',
                       t.seq) INTO v_next;
        IF v_max >= v_next THEN
            RAISE NOTICE 'auditor: % was behind the ids of % (a restore of a dump sets it back): moved past %',
                t.seq, t.tbl, v_max;
            PERFORM setval(t.seq, v_max);
        END IF;
    END LOOP;
END
$auditor$;

INSERT INTO {schema}.installs (package_version, schema_version, mail_mode, reader_role, notify_role,
                               functions)
SELECT {package_version}, {schema_version}, {mail_mode}, {reader_role}, {notify_role},
       coalesce(jsonb_object_agg(p.proname, md5(p.prosrc)), '{{}}'::jsonb)
  FROM pg_catalog.pg_proc AS p
 WHERE p.pronamespace = {schema_name}::regnamespace;
